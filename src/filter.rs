//! Which store paths must never leave this machine (system closures, secrets, keys).

use globset::{Glob, GlobSet, GlobSetBuilder};

/// fnmatch patterns on the store path basename, as the earlier Peerix shipped them.
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
    "*-secret-*",
    "*-secrets-*",
    "*-password-*",
    "*-private-key-*",
    "*-credentials-*",
    "*.key",
    "*.pem",
    "*-home-manager-*",
    "*-home-files-*",
];

/// All patterns compiled into one matcher: a request pays one pass, not one per pattern.
#[derive(Clone, Debug, Default)]
pub struct PathFilter {
    patterns: GlobSet,
}

impl PathFilter {
    /// `enabled = false` (`--no-filter`) shares everything; otherwise the defaults (unless
    /// `with_defaults` is false) plus `extra`.
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
        for pattern in defaults.chain(extra.iter().map(String::as_str)) {
            set.add(Glob::new(pattern)?);
        }
        Ok(Self {
            patterns: set.build()?,
        })
    }

    /// True when the path with this basename may be offered to others.
    pub fn allows(&self, basename: &str) -> bool {
        !self.patterns.is_match(basename)
    }

    pub fn pattern_count(&self) -> usize {
        self.patterns.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_hide_sensitive_paths() {
        let filter = PathFilter::new(true, true, &[]).unwrap();
        for hidden in [
            "7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-nixos-system-host-24.05",
            "7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-app-secrets-prod",
            "7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-tls.pem",
            "7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-unit-nginx.service",
        ] {
            assert!(!filter.allows(hidden), "{hidden}");
        }
        assert!(filter.allows("7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-hello-2.12.1"));
    }

    #[test]
    fn flags_change_the_set() {
        let path = "7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-app-secrets-prod";
        assert!(PathFilter::new(false, true, &[]).unwrap().allows(path));
        assert!(PathFilter::new(true, false, &[]).unwrap().allows(path));
        let custom = PathFilter::new(true, false, &["*-hello-*".into()]).unwrap();
        assert!(!custom.allows("7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-hello-2.12.1"));
        assert!(custom.allows(path));
        assert!(PathFilter::new(true, true, &["[".into()]).is_err());
    }
}
