//! The fixture: a chroot Nix store built with the installed `nix-store`, its signing key, the
//! store hashes it holds and hashes it does not.

use std::collections::HashSet;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::{BenchResult, BIG_NAR_BYTES, SMALL_PATHS};

pub(crate) const KEY_NAME: &str = "bench-1";
const NIX_CONFIG: &str = "experimental-features = nix-command\nsubstituters =";

/// A chroot Nix store with 1000 small paths and one 256 MiB path, plus a signing key.
pub(crate) struct Fixture {
    /// Owns every file below; removed on drop.
    _dir: tempfile::TempDir,
    pub(crate) store_root: PathBuf,
    pub(crate) secret_key: PathBuf,
    pub(crate) small_hashes: Vec<String>,
    pub(crate) big_hash: String,
}

impl Fixture {
    pub(crate) fn build() -> BenchResult<Self> {
        let dir = tempfile::Builder::new()
            .prefix("peerix-bench-http-front-")
            .tempdir()?;
        let store_root = dir.path().join("root");
        let inputs = dir.path().join("inputs");
        fs::create_dir_all(&inputs)?;

        let small_files = write_small_files(&inputs, run_nonce())?;
        let small_paths = nix_store_add(&store_root, &small_files)?;
        if small_paths.len() != SMALL_PATHS {
            return Err(format!("nix-store --add gave {} paths", small_paths.len()).into());
        }
        let big_file = inputs.join("big-256MiB");
        write_random_file(&big_file, BIG_NAR_BYTES)?;
        let big_path = nix_store_add(&store_root, &[big_file])?;
        fs::remove_dir_all(&inputs)?;

        let secret_key = dir.path().join("bench.sk");
        generate_key(&secret_key, &dir.path().join("bench.pk"))?;
        Ok(Self {
            store_root,
            secret_key,
            small_hashes: small_paths.iter().map(|p| store_hash(p)).collect(),
            big_hash: big_path
                .first()
                .map(|p| store_hash(p))
                .ok_or("no big path")?,
            _dir: dir,
        })
    }

    pub(crate) fn nix_store_dir(&self) -> PathBuf {
        self.store_root.join("nix/store")
    }

    pub(crate) fn nix_db(&self) -> PathBuf {
        self.store_root.join("nix/var/nix/db/db.sqlite")
    }
}

/// Distinct per run, so no other server's store holds the fixture's paths.
fn run_nonce() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

fn write_small_files(dir: &Path, nonce: u128) -> io::Result<Vec<PathBuf>> {
    (0..SMALL_PATHS)
        .map(|i| {
            let file = dir.join(format!("small-{i:04}"));
            fs::write(&file, format!("peerix bench file {i}, run {nonce}\n"))?;
            Ok(file)
        })
        .collect()
}

fn write_random_file(file: &Path, bytes: u64) -> io::Result<()> {
    let mut random = fs::File::open("/dev/urandom")?.take(bytes);
    let mut out = io::BufWriter::new(fs::File::create(file)?);
    io::copy(&mut random, &mut out)?;
    Ok(())
}

fn nix_command(program: &str) -> Command {
    let mut command = Command::new(program);
    command.env("NIX_CONFIG", NIX_CONFIG);
    command
}

/// One `nix-store --add` for all `files`; returns the store paths it printed.
fn nix_store_add(store_root: &Path, files: &[PathBuf]) -> BenchResult<Vec<String>> {
    let store = format!("local?root={}", store_root.display());
    let output = nix_command("nix-store")
        .args(["--store", &store, "--add"])
        .args(files)
        .output()?;
    check_success("nix-store --add", &output)?;
    Ok(String::from_utf8(output.stdout)?
        .lines()
        .map(str::to_owned)
        .collect())
}

fn generate_key(secret: &Path, public: &Path) -> BenchResult<()> {
    let output = nix_command("nix-store")
        .arg("--generate-binary-cache-key")
        .arg(KEY_NAME)
        .args([secret, public])
        .output()?;
    check_success("nix-store --generate-binary-cache-key", &output)
}

fn check_success(what: &str, output: &std::process::Output) -> BenchResult<()> {
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    Err(format!("{what} failed ({}): {stderr}", output.status).into())
}

/// `/nix/store/<hash>-<name>` -> `<hash>`.
fn store_hash(store_path: &str) -> String {
    let basename = store_path.rsplit('/').next().unwrap_or(store_path);
    basename.chars().take(32).collect()
}

/// Valid-looking nixbase32 store hashes that are not among `taken` (deterministic sequence).
pub(crate) fn miss_hashes(count: usize, taken: &HashSet<&str>) -> Vec<String> {
    const ALPHABET: &[u8] = b"0123456789abcdfghijklmnpqrsvwxyz";
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next_char = move || {
        // xorshift64: plenty for picking letters.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        char::from(ALPHABET[(state % 32) as usize])
    };
    let mut hashes = Vec::with_capacity(count);
    while hashes.len() < count {
        let hash: String = (0..32).map(|_| next_char()).collect();
        if !taken.contains(hash.as_str()) {
            hashes.push(hash);
        }
    }
    hashes
}
