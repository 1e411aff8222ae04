//! Read-only SQLite access that never writes, never blocks Nix and needs no write permission.
//!
//! Nix keeps its database in WAL mode. A read-only connection needs the `-wal` and `-shm` files:
//! while they exist (Nix or any reader has the database open) pooled connections read committed
//! state and, by holding the files open, keep them in place. When they do not exist and this
//! process may not create them (not root), the database is fully checkpointed and idle: each query
//! then reads the main file as an immutable snapshot and checks afterwards that no write began in
//! the meantime (the WAL is still absent, the main file's size and mtime unchanged), retrying if
//! one did. Snapshot connections are reused only while the file keeps the version they opened.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use rusqlite::{Connection, ErrorCode, OpenFlags};

/// Idle connections kept for reuse; more are opened under load and closed after.
const POOL_SIZE: usize = 16;
/// Snapshot reads that raced a write are retried this often before giving up.
const SNAPSHOT_ATTEMPTS: usize = 5;
/// File timestamps tick coarsely: a version is trusted for reuse only once it is older than this,
/// so that any later write is sure to show as a newer mtime.
const SETTLED: Duration = Duration::from_secs(2);

type FileVersion = (u64, SystemTime);

pub struct ReadOnlyDb {
    file: PathBuf,
    wal: PathBuf,
    pool: Mutex<Vec<Connection>>,
    /// Immutable connections with the file version they were opened on.
    snapshot_pool: Mutex<Vec<(FileVersion, Connection)>>,
    /// Set once a shared connection failed for lack of write permission on the WAL files.
    snapshots: AtomicBool,
}

fn is_read_only_error(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::ReadOnly | ErrorCode::CannotOpen)
    )
}

/// What tells a snapshot reader that the main file changed under it.
fn file_version(path: &Path) -> Option<FileVersion> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.len(), meta.modified().ok()?))
}

fn uri_escape(path: &Path) -> String {
    path.to_string_lossy()
        .chars()
        .map(|c| match c {
            '%' | '?' | '#' | ' ' => format!("%{:02X}", c as u32),
            c => c.to_string(),
        })
        .collect()
}

impl ReadOnlyDb {
    pub fn new(file: PathBuf) -> Self {
        let mut wal = file.clone().into_os_string();
        wal.push("-wal");
        Self {
            file,
            wal: wal.into(),
            pool: Mutex::new(Vec::new()),
            snapshot_pool: Mutex::new(Vec::new()),
            snapshots: AtomicBool::new(false),
        }
    }

    /// Runs `query`; `Ok(None)` when there is no database (yet).
    pub fn query<T>(
        &self,
        query: impl Fn(&Connection) -> rusqlite::Result<Option<T>>,
    ) -> rusqlite::Result<Option<T>> {
        if !self.snapshots.load(Ordering::Relaxed) || self.wal.exists() {
            match self.shared_query(&query) {
                Err(e) if is_read_only_error(&e) && self.file.exists() => {
                    self.snapshots.store(true, Ordering::Relaxed);
                }
                other => return other,
            }
        }
        self.snapshot_query(&query)
    }

    fn shared_query<T>(
        &self,
        query: &impl Fn(&Connection) -> rusqlite::Result<Option<T>>,
    ) -> rusqlite::Result<Option<T>> {
        let pooled = self.pool.lock().ok().and_then(|mut pool| pool.pop());
        let conn = match pooled {
            Some(conn) => conn,
            None if !self.file.exists() => return Ok(None),
            None => {
                let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
                let conn = Connection::open_with_flags(&self.file, flags)?;
                // A checkpoint by Nix can briefly lock the WAL index: wait rather than fail.
                conn.busy_timeout(Duration::from_secs(1))?;
                conn
            }
        };
        let result = query(&conn);
        if result.is_ok() {
            if let Ok(mut pool) = self.pool.lock() {
                if pool.len() < POOL_SIZE {
                    pool.push(conn);
                }
            }
        }
        result
    }

    fn snapshot_query<T>(
        &self,
        query: &impl Fn(&Connection) -> rusqlite::Result<Option<T>>,
    ) -> rusqlite::Result<Option<T>> {
        let mut last = Err(rusqlite::Error::InvalidQuery);
        for _ in 0..SNAPSHOT_ATTEMPTS {
            let Some(before) = file_version(&self.file) else {
                return Ok(None);
            };
            if self.wal.exists() {
                // Nix is writing right now, so the shared files exist: read through them.
                return self.shared_query(query);
            }
            let conn = match self.pooled_snapshot(before) {
                Some(conn) => conn,
                None => self.open_snapshot()?,
            };
            last = query(&conn);
            if !self.wal.exists() && file_version(&self.file) == Some(before) {
                let settled = before.1.elapsed().is_ok_and(|age| age > SETTLED);
                if last.is_ok() && settled {
                    if let Ok(mut pool) = self.snapshot_pool.lock() {
                        if pool.len() < POOL_SIZE {
                            pool.push((before, conn));
                        }
                    }
                }
                return last;
            }
        }
        last
    }

    /// A reusable snapshot connection of this exact file version; older ones are dropped.
    fn pooled_snapshot(&self, version: FileVersion) -> Option<Connection> {
        let mut pool = self.snapshot_pool.lock().ok()?;
        pool.retain(|(v, _)| *v == version);
        pool.pop().map(|(_, conn)| conn)
    }

    fn open_snapshot(&self) -> rusqlite::Result<Connection> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI;
        let uri = format!("file:{}?immutable=1", uri_escape(&self.file));
        Connection::open_with_flags(&uri, flags)
    }
}
