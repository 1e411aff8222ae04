//! Nix as the tests run it: real Nix with an offline configuration and a private narinfo cache,
//! and `nix copy --from` a binary cache with `require-sigs`.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use super::ChrootStore;

pub const NIX_CONFIG: &str = "experimental-features = nix-command\nsubstituters =\nsandbox = false";

pub fn require_nix() {
    static CHECKED: OnceLock<()> = OnceLock::new();
    CHECKED.get_or_init(|| {
        let found = Command::new("nix-store").arg("--version").output();
        assert!(
            found.is_ok_and(|o| o.status.success()),
            "these tests need real Nix: run scripts/test, which installs Debian's nix-bin"
        );
    });
}

/// A Nix command with an offline configuration and a private narinfo disk cache.
pub fn nix(program: &str, cache_home: &Path) -> Command {
    require_nix();
    let mut cmd = Command::new(program);
    configure(&mut cmd, cache_home);
    cmd
}

/// The offline configuration and a private narinfo disk cache, on a command that runs Nix
/// (directly, or inside a lab's namespace).
fn configure<'a>(cmd: &'a mut Command, cache_home: &Path) -> &'a mut Command {
    cmd.env("NIX_CONFIG", NIX_CONFIG)
        .env("XDG_CACHE_HOME", cache_home)
        .stdin(Stdio::null())
}

pub fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `nix copy --from <cache> --to <dest>` with require-sigs and exactly one trusted key.
pub fn nix_copy_from(cache: &str, dest: &ChrootStore, trusted_key: &str, paths: &[&str]) -> Output {
    require_nix();
    nix_copy_with(Command::new("nix"), cache, dest, trusted_key, paths)
}

/// [`nix_copy_from`] with `nix_program`, a command that runs `nix` (inside a lab's namespace,
/// say).
pub fn nix_copy_with(
    mut nix_program: Command,
    cache: &str,
    dest: &ChrootStore,
    trusted_key: &str,
    paths: &[&str],
) -> Output {
    configure(&mut nix_program, dest.root())
        .args(["copy", "--from", cache, "--to", &dest.url()])
        .args(["--option", "trusted-public-keys", trusted_key])
        .args(["--option", "require-sigs", "true"])
        .args(paths)
        .output()
        .unwrap()
}

/// [`nix_copy_from`], which must succeed.
pub fn nix_copy_ok(cache: &str, dest: &ChrootStore, trusted_key: &str, paths: &[&str]) {
    assert_copied(&nix_copy_from(cache, dest, trusted_key, paths));
}

/// A `nix copy` that succeeded.
pub fn assert_copied(out: &Output) {
    assert!(
        out.status.success(),
        "nix copy failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
