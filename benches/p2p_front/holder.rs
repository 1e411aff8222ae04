//! Node A of the scenarios: its signing key, made by `peerix keygen` as a user would, and a
//! node serving the fixture store that signs with it.

use std::ffi::OsStr;
use std::fs;
use std::path::PathBuf;
use std::process::Command;

use crate::fixture::Fixture;
use crate::servers::{spawn_peerix, ServerProcess};
use crate::{BenchResult, KEY_NAME, LOOPBACK_TCP};

/// A's signing key, made by `peerix keygen` as a user would.
pub(crate) struct Keys {
    _dir: tempfile::TempDir,
    pub(crate) secret: PathBuf,
    pub(crate) public: String,
}

impl Keys {
    pub(crate) fn generate() -> BenchResult<Self> {
        let dir = tempfile::Builder::new()
            .prefix("peerix-bench-p2p-keys-")
            .tempdir()?;
        let (secret, public) = (dir.path().join("a.sk"), dir.path().join("a.pk"));
        let output = Command::new(crate::bench_env::peerix_bin())
            .args(["keygen", KEY_NAME])
            .args([&secret, &public])
            .output()?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            return Err(format!("peerix keygen failed ({}): {stderr}", output.status).into());
        }
        let public = fs::read_to_string(&public)?.trim().to_owned();
        Ok(Self {
            _dir: dir,
            secret,
            public,
        })
    }
}

/// A node serving the fixture store and signing with A's key, listening on loopback TCP.
pub(crate) fn spawn_signing_holder(
    name: &'static str,
    fixture: &Fixture,
    keys: &Keys,
) -> BenchResult<ServerProcess> {
    spawn_signing_holder_with(name, fixture, keys, &[])
}

/// [`spawn_signing_holder`] with `extra` flags.
pub(crate) fn spawn_signing_holder_with(
    name: &'static str,
    fixture: &Fixture,
    keys: &Keys,
    extra: &[&OsStr],
) -> BenchResult<ServerProcess> {
    let mut args = vec![
        OsStr::new("--listen-addrs"),
        OsStr::new(LOOPBACK_TCP),
        OsStr::new("--private-key"),
        keys.secret.as_os_str(),
    ];
    args.extend(extra);
    spawn_peerix(name, &fixture.store_root, &args)
}
