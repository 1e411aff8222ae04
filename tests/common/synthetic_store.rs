//! A synthetic chroot Nix store of many paths, for tests and benchmarks at scale: building 100k
//! real paths with Nix is too slow. Each path (`<root>/nix/store/<hash>-p<i>`) is the same tiny
//! regular file, and the Nix database (`ValidPaths`, `Refs`) carries the real NAR hash and size
//! of that file. Store hashes are distinct, valid nixbase32 and random per run.
//! Included by `tests/common` and `benches/p2p_scale`.

use std::collections::HashSet;
use std::error::Error;
use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

type StoreResult<T> = Result<T, Box<dyn Error + Send + Sync>>;

/// What every synthetic path holds.
pub const FILE_CONTENTS: &[u8] = b"peerix\n";

/// A synthetic chroot store; removed on drop.
pub struct SyntheticStore {
    _dir: tempfile::TempDir,
    pub root: PathBuf,
    pub hashes: Vec<String>,
    pub generated_in: Duration,
}

/// The NAR of a single regular, non-executable file.
pub fn nar_of_file(contents: &[u8]) -> Vec<u8> {
    fn string(nar: &mut Vec<u8>, bytes: &[u8]) {
        nar.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        nar.extend_from_slice(bytes);
        nar.resize(nar.len().next_multiple_of(8), 0);
    }
    let mut nar = Vec::new();
    for token in [
        &b"nix-archive-1"[..],
        b"(",
        b"type",
        b"regular",
        b"contents",
        contents,
        b")",
    ] {
        string(&mut nar, token);
    }
    nar
}

/// `count` distinct nixbase32 store hashes, different every run.
pub fn store_hashes(count: usize) -> Vec<String> {
    const ALPHABET: &[u8] = b"0123456789abcdfghijklmnpqrsvwxyz";
    let nonce = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut seen = HashSet::with_capacity(count);
    let mut hashes = Vec::with_capacity(count);
    let mut i = 0u64;
    while hashes.len() < count {
        let digest = Sha256::digest(format!("peerix p2p_scale {nonce} {i}"));
        i += 1;
        let hash: String = digest
            .iter()
            .map(|b| char::from(ALPHABET[usize::from(b % 32)]))
            .collect();
        if seen.insert(hash.clone()) {
            hashes.push(hash);
        }
    }
    hashes
}

impl SyntheticStore {
    pub fn generate(count: usize) -> StoreResult<Self> {
        let started = Instant::now();
        let dir = tempfile::Builder::new()
            .prefix("peerix-bench-p2p-scale-")
            .tempdir()?;
        let root = dir.path().join("root");
        let store = root.join("nix/store");
        let db_dir = root.join("nix/var/nix/db");
        fs::create_dir_all(&store)?;
        fs::create_dir_all(&db_dir)?;

        let nar = nar_of_file(FILE_CONTENTS);
        let nar_hash = format!("sha256:{:x}", Sha256::digest(&nar));
        let nar_size = i64::try_from(nar.len())?;
        let hashes = store_hashes(count);

        let mut db = rusqlite::Connection::open(db_dir.join("db.sqlite"))?;
        db.pragma_update(None, "journal_mode", "WAL")?;
        db.pragma_update(None, "synchronous", "OFF")?;
        db.execute_batch(
            "CREATE TABLE ValidPaths (
                 id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
                 path TEXT UNIQUE NOT NULL,
                 hash TEXT NOT NULL,
                 registrationTime INTEGER NOT NULL,
                 deriver TEXT,
                 narSize INTEGER,
                 ultimate INTEGER,
                 sigs TEXT,
                 ca TEXT
             );
             CREATE TABLE Refs (
                 referrer INTEGER NOT NULL,
                 reference INTEGER NOT NULL,
                 PRIMARY KEY (referrer, reference),
                 FOREIGN KEY (referrer) REFERENCES ValidPaths(id) ON DELETE CASCADE,
                 FOREIGN KEY (reference) REFERENCES ValidPaths(id) ON DELETE RESTRICT
             );
             CREATE INDEX IndexReferrer ON Refs(referrer);
             CREATE INDEX IndexReference ON Refs(reference);
             CREATE TABLE DerivationOutputs (
                 drv INTEGER NOT NULL,
                 id TEXT NOT NULL,
                 path TEXT NOT NULL,
                 PRIMARY KEY (drv, id),
                 FOREIGN KEY (drv) REFERENCES ValidPaths(id) ON DELETE CASCADE
             );
             CREATE INDEX IndexDerivationOutputs ON DerivationOutputs(path);",
        )?;
        let registered = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let registered = i64::try_from(registered)?;
        let transaction = db.transaction()?;
        {
            let mut insert = transaction.prepare(
                "INSERT INTO ValidPaths (path, hash, registrationTime, narSize, ultimate) \
                 VALUES (?1, ?2, ?3, ?4, 1)",
            )?;
            for (i, hash) in hashes.iter().enumerate() {
                let name = format!("{hash}-p{i}");
                fs::write(store.join(&name), FILE_CONTENTS)?;
                insert.execute((
                    format!("/nix/store/{name}"),
                    &nar_hash,
                    registered,
                    nar_size,
                ))?;
            }
        }
        transaction.commit()?;
        db.close().map_err(|(_, e)| e)?;
        Ok(Self {
            _dir: dir,
            root,
            hashes,
            generated_in: started.elapsed(),
        })
    }
}

impl SyntheticStore {
    /// Registers one more path, `<hash>-extra`, as Nix would: its file, then its row.
    pub fn register(&self, hash: &str) -> StoreResult<()> {
        let name = format!("{hash}-extra");
        fs::write(self.root.join("nix/store").join(&name), FILE_CONTENTS)?;
        let nar = nar_of_file(FILE_CONTENTS);
        let db = rusqlite::Connection::open(self.root.join("nix/var/nix/db/db.sqlite"))?;
        db.execute(
            "INSERT INTO ValidPaths (path, hash, registrationTime, narSize, ultimate) \
             VALUES (?1, ?2, ?3, ?4, 1)",
            (
                format!("/nix/store/{name}"),
                format!("sha256:{:x}", Sha256::digest(&nar)),
                i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs())?,
                i64::try_from(nar.len())?,
            ),
        )?;
        Ok(())
    }
}
