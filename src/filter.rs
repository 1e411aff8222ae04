//! Which store paths must never leave this machine (system closures, secrets, keys).

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

/// fnmatch patterns on the store path basename. Secret-looking words are caught between dashes
/// and at the end of a name (`…-db-password`, `…-wg-private-key`), never inside a longer word, so
/// that libraries named after them (`libsecret`, `gnome-keyring`, `python3-keyring`,
/// `passwdqc`) are still shared.
pub const DEFAULT_PATTERNS: &[&str] = &[
    "*-nixos-system-*",
    "*-etc-*",
    "*-nixos-*-config",
    "*-unit-*.service",
    "*-system-path",
    "*-booted-system",
    "*-toplevel",
    "*-activation-script-*",
    "*-systemd-*",
    "*-sops-nix-*",
    "*-agenix-*",
    "*-home-manager-*",
    "*-home-files-*",
    // Secrets, between dashes or at the end of the name.
    "*-secret-*",
    "*-secret",
    "*-secrets-*",
    "*-secrets",
    "*-password-*",
    "*-password",
    "*-passwords-*",
    "*-passwords",
    "*-passwd",
    "*-htpasswd",
    "*-private-key-*",
    "*-private-key",
    "*-private-keys",
    "*-privkey",
    "*-credentials-*",
    "*-credentials",
    "*-api-key-*",
    "*-api-key",
    "*-api-keys",
    "*-apikey-*",
    "*-apikey",
    // Only at the end: `token-bucket` and the like are ordinary packages.
    "*-token",
    "*-tokens",
    // Key and certificate files.
    "*-id_rsa",
    "*-id_ecdsa",
    "*-id_ed25519",
    "*.key",
    "*.pem",
    "*.p12",
    "*.pfx",
    "*.env",
];

/// All patterns compiled into one matcher: a request pays one pass, not one per pattern.
#[derive(Clone, Debug, Default)]
pub struct PathFilter {
    patterns: GlobSet,
    /// The patterns' text, in the order they were added to `patterns` (its match indices).
    texts: Vec<String>,
}

impl PathFilter {
    /// `enabled = false` (`--no-filter`) shares everything; otherwise the defaults (unless
    /// `with_defaults` is false) plus `extra`. Every pattern ignores case: a secret's name is
    /// as secret in capitals (`…-API-SECRETS-prod`), and a user's `*-vpn-*` means `-VPN-` too.
    pub fn new(
        enabled: bool,
        with_defaults: bool,
        extra: &[String],
    ) -> Result<Self, globset::Error> {
        if !enabled {
            return Ok(Self::default());
        }
        let defaults = DEFAULT_PATTERNS.iter().copied().filter(|_| with_defaults);
        let mut set = GlobSetBuilder::new();
        let mut texts = Vec::new();
        for pattern in defaults.chain(extra.iter().map(String::as_str)) {
            set.add(GlobBuilder::new(pattern).case_insensitive(true).build()?);
            texts.push(pattern.to_owned());
        }
        Ok(Self {
            patterns: set.build()?,
            texts,
        })
    }

    /// True when the path with this basename may be offered to others.
    pub fn allows(&self, basename: &str) -> bool {
        !self.patterns.is_match(basename)
    }

    /// The first pattern (defaults first, then the user's) that hides this basename, if any:
    /// what `peerix why` names. Slower than [`Self::allows`], which stays the hot path's test.
    pub fn hiding_pattern(&self, basename: &str) -> Option<&str> {
        let first = self.patterns.matches(basename).into_iter().min()?;
        self.texts.get(first).map(String::as_str)
    }

    pub fn pattern_count(&self) -> usize {
        self.patterns.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "7h7qgvs4kgzsn8a6rb273saxyqh4jxlz";

    #[test]
    fn defaults_hide_sensitive_paths_in_any_case_and_at_the_end() {
        let filter = PathFilter::new(true, true, &[]).unwrap();
        for hidden in [
            "nixos-system-host-24.05",
            "app-secrets-prod",
            "tls.pem",
            "unit-nginx.service",
            "db-password",
            "app-secret",
            "wg-private-key",
            "API-SECRETS-prod",
            "DB-PASSWORD",
            "App-Secret",
            "deploy-Credentials",
            "github-token",
            "stripe-api-key",
            "mail-apikey",
            "site-htpasswd",
            "backup-id_ed25519",
            "Server.KEY",
            "prod.env",
        ] {
            assert!(!filter.allows(&format!("{HASH}-{hidden}")), "{hidden}");
        }
        // Libraries named after the words are ordinary packages everyone needs.
        for shared in [
            "hello-2.12.1",
            "libsecret-0.21.4",
            "gnome-keyring-46.1",
            "python3.12-keyring-25.2.1",
            "python3.12-secretstorage-3.3.3",
            "passwdqc-2.0.3",
            "python3.12-token-bucket-0.3.0",
            "python3.12-tokenizers-0.19.1",
            "keyutils-1.6.3",
        ] {
            assert!(filter.allows(&format!("{HASH}-{shared}")), "{shared}");
        }
    }

    #[test]
    fn flags_change_the_set() {
        let path = format!("{HASH}-app-secrets-prod");
        assert!(PathFilter::new(false, true, &[]).unwrap().allows(&path));
        assert!(PathFilter::new(true, false, &[]).unwrap().allows(&path));
        let custom = PathFilter::new(true, false, &["*-hello-*".into()]).unwrap();
        assert!(!custom.allows(&format!("{HASH}-hello-2.12.1")));
        assert!(custom.allows(&path));
        assert!(PathFilter::new(true, true, &["[".into()]).is_err());
    }

    #[test]
    fn the_first_hiding_pattern_is_named() {
        let filter = PathFilter::new(true, true, &["*-corp-*".into(), "*-db".into()]).unwrap();
        let hiding = |name: &str| filter.hiding_pattern(&format!("{HASH}-{name}"));
        assert_eq!(hiding("fixture-secrets-db"), Some("*-secrets-*"));
        assert_eq!(hiding("corp-tools-1.0"), Some("*-corp-*"));
        assert_eq!(hiding("my-db"), Some("*-db"));
        assert_eq!(hiding("hello-2.12.1"), None);
        // `--no-filter`: nothing hides anything.
        let open = PathFilter::new(false, true, &[]).unwrap();
        assert_eq!(
            open.hiding_pattern(&format!("{HASH}-app-secrets-prod")),
            None
        );
    }

    #[test]
    fn user_patterns_ignore_case() {
        let custom = PathFilter::new(true, false, &["*-CORP-*".into()]).unwrap();
        assert!(!custom.allows(&format!("{HASH}-corp-tools-1.0")));
        assert!(!custom.allows(&format!("{HASH}-Corp-tools-1.0")));
    }
}
