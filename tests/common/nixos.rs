//! Peerix's NixOS modules evaluated by the real module system (Nixpkgs' lib from `NIXPKGS_LIB`,
//! default `../shared/nixpkgs-lib/lib`) through `tests/nixos/eval.nix` and Debian's
//! `nix-instantiate`, and the command lines of the units they make.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use tempfile::TempDir;

/// Where Nixpkgs' lib is, or `None` (and a loud note) when it is not on this machine.
pub fn nixpkgs_lib() -> Option<PathBuf> {
    let path = std::env::var_os("NIXPKGS_LIB").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/nixpkgs-lib/lib"),
        PathBuf::from,
    );
    if path.join("default.nix").exists() {
        return Some(path);
    }
    eprintln!(
        "SKIPPED: no Nixpkgs lib at {} (set NIXPKGS_LIB to a nixpkgs/lib): the NixOS modules \
         were NOT evaluated",
        path.display()
    );
    None
}

/// A package directory whose `bin/peerix` is the binary under test.
pub fn package() -> TempDir {
    let dir = TempDir::new().unwrap();
    std::fs::create_dir(dir.path().join("bin")).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_peerix"), dir.path().join("bin/peerix"))
        .unwrap();
    dir
}

/// The evaluation of `configuration` (a Nix expression: a module).
pub fn evaluate(lib: &Path, package: &Path, configuration: &str) -> Value {
    super::require_nix();
    let out = Command::new("nix-instantiate")
        .args(["--eval", "--strict", "--json"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/nixos/eval.nix"))
        .arg("--argstr")
        .arg("nixpkgsLib")
        .arg(lib)
        .arg("--argstr")
        .arg("peerixDir")
        .arg(package)
        .args(["--arg", "configuration", configuration])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "evaluating {configuration}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The words of a unit's command `key` (`ExecStart`, `ExecStartPre`), split as a shell (and
/// systemd) does.
pub fn command_words(unit: &Value, key: &str) -> Vec<String> {
    let command = unit["serviceConfig"][key].as_str().unwrap();
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("printf '%s\\n' {command}"))
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

pub fn words(unit: &Value) -> Vec<String> {
    command_words(unit, "ExecStart")
}

/// Runs a unit's `ExecStartPre` (its `--check-config`) as systemd would: `%d` is the
/// credentials directory, also in `CREDENTIALS_DIRECTORY`. Returns its output.
pub fn check_as_systemd(unit: &Value, credentials: &Path) -> std::process::Output {
    let mut pre = command_words(unit, "ExecStartPre");
    let start = words(unit);
    assert_eq!(pre.pop().as_deref(), Some("--check-config"));
    assert_eq!(pre, start, "ExecStartPre checks another command line");
    let resolved: Vec<String> = command_words(unit, "ExecStartPre")
        .iter()
        .map(|w| w.replace("%d", credentials.to_str().unwrap()))
        .collect();
    Command::new(&resolved[0])
        .args(&resolved[1..])
        .env("CREDENTIALS_DIRECTORY", credentials)
        .output()
        .unwrap()
}
