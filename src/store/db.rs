//! Queries on a Nix store's database (`<root>/nix/var/nix/db/db.sqlite`): path info by store hash,
//! store hash by NAR hash. A root without a database is an empty store until one appears.

use std::path::{Path, PathBuf};

use peerix_http::{CacheError, NarHash, StoreHash, StorePathName};
use rusqlite::OptionalExtension;

use super::sqlite::ReadOnlyDb;

/// Path metadata as the database records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathInfo {
    pub path: StorePathName,
    pub nar_hash: NarHash,
    pub nar_size: u64,
    pub deriver: Option<StorePathName>,
    /// Sorted, as Nix lists them.
    pub references: Vec<StorePathName>,
    pub sigs: Vec<String>,
    pub ca: Option<String>,
}

/// A row as stored; nothing in it is trusted until [`RawPathInfo::validate`] accepts it.
struct RawPathInfo {
    path: String,
    nar_hash: String,
    deriver: Option<String>,
    nar_size: Option<i64>,
    sigs: Option<String>,
    ca: Option<String>,
    /// Space-separated absolute paths (store paths contain no spaces).
    references: Option<String>,
}

impl RawPathInfo {
    fn validate(self) -> Result<PathInfo, CacheError> {
        let corrupt =
            |what: &str| CacheError::Corrupt(format!("{}: bad {what} in database", self.path));
        let store_path = |p: &str, what| StorePathName::from_absolute(p).map_err(|_| corrupt(what));
        let mut references = self
            .references
            .as_deref()
            .unwrap_or_default()
            .split(' ')
            .filter(|r| !r.is_empty())
            .map(|r| store_path(r, "reference"))
            .collect::<Result<Vec<_>, _>>()?;
        references.sort_unstable_by(|a, b| a.basename().cmp(b.basename()));
        Ok(PathInfo {
            path: store_path(&self.path, "path")?,
            nar_hash: NarHash::parse(&self.nar_hash).map_err(|_| corrupt("hash"))?,
            nar_size: self
                .nar_size
                .and_then(|n| u64::try_from(n).ok())
                .ok_or_else(|| corrupt("narSize"))?,
            deriver: self
                .deriver
                .as_deref()
                .filter(|d| !d.is_empty())
                .map(|d| store_path(d, "deriver"))
                .transpose()?,
            references,
            sigs: self
                .sigs
                .as_deref()
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_owned)
                .collect(),
            ca: self.ca.clone().filter(|c| !c.is_empty()),
        })
    }
}

pub struct StoreDb {
    db: ReadOnlyDb,
}

fn db_error(e: rusqlite::Error) -> CacheError {
    CacheError::Database(e.to_string())
}

impl StoreDb {
    pub fn new(store_root: &Path) -> Self {
        Self {
            db: ReadOnlyDb::new(Self::file(store_root)),
        }
    }

    /// Where Nix keeps the database of the store at `store_root`.
    pub fn file(store_root: &Path) -> PathBuf {
        store_root.join("nix/var/nix/db/db.sqlite")
    }

    pub fn path_info(&self, hash: StoreHash) -> Result<Option<PathInfo>, CacheError> {
        // Store paths sort by hash first: `<dir>/<hash>-` up to `<dir>/<hash>.` brackets one hash.
        let low = format!("{}/{hash}-", peerix_http::store_path::STORE_DIR);
        let high = format!("{}/{hash}.", peerix_http::store_path::STORE_DIR);
        let row = self.db.query(|conn| {
            // One statement, so one read transaction (and one round of file locks) per lookup.
            conn.prepare_cached(
                "SELECT v.path, v.hash, v.deriver, v.narSize, v.sigs, v.ca, \
                   (SELECT group_concat(p.path, ' ') FROM Refs r \
                    JOIN ValidPaths p ON p.id = r.reference WHERE r.referrer = v.id) \
                 FROM ValidPaths v WHERE v.path >= ?1 AND v.path < ?2 LIMIT 1",
            )?
            .query_row((&low, &high), |r| {
                Ok(RawPathInfo {
                    path: r.get(0)?,
                    nar_hash: r.get(1)?,
                    deriver: r.get(2)?,
                    nar_size: r.get(3)?,
                    sigs: r.get(4)?,
                    ca: r.get(5)?,
                    references: r.get(6)?,
                })
            })
            .optional()
        });
        row.map_err(db_error)?
            .map(RawPathInfo::validate)
            .transpose()
    }

    /// The store hash of the path whose NAR has this hash. Nix keeps no index on NAR hashes, so
    /// this scans the table: only for stores whose paths were not read in full yet.
    pub fn hash_of_nar(&self, nar_hash: NarHash) -> Result<Option<StoreHash>, CacheError> {
        let hex = format!("sha256:{}", nar_hash.to_hex());
        let base32 = nar_hash.to_string();
        let path: Option<String> = self
            .db
            .query(|conn| {
                conn.prepare_cached("SELECT path FROM ValidPaths WHERE hash IN (?1, ?2) LIMIT 1")?
                    .query_row((&hex, &base32), |r| r.get(0))
                    .optional()
            })
            .map_err(db_error)?;
        Ok(path
            .and_then(|p| StorePathName::from_absolute(&p).ok())
            .map(|p| p.hash()))
    }

    /// A cheap fingerprint of the set of valid paths: it changes when paths are added or removed
    /// (the largest row id and the row count).
    pub fn generation(&self) -> Result<(i64, i64), CacheError> {
        let found = self
            .db
            .query(|conn| {
                conn.prepare_cached("SELECT coalesce(max(id), 0), count(*) FROM ValidPaths")?
                    .query_row((), |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
            })
            .map_err(db_error)?;
        Ok(found.unwrap_or((0, 0)))
    }

    /// Every valid path, by name, with its NAR hash (rows that do not parse are left out).
    pub fn all_paths(&self) -> Result<Vec<(StorePathName, NarHash)>, CacheError> {
        let rows: Vec<(String, String)> = self
            .db
            .query(|conn| {
                let mut statement = conn.prepare_cached("SELECT path, hash FROM ValidPaths")?;
                let rows = statement.query_map((), |r| Ok((r.get(0)?, r.get(1)?)))?;
                rows.collect::<rusqlite::Result<_>>().map(Some)
            })
            .map_err(db_error)?
            .unwrap_or_default();
        Ok(rows
            .iter()
            .filter_map(|(path, hash)| {
                Some((
                    StorePathName::from_absolute(path).ok()?,
                    NarHash::parse(hash).ok()?,
                ))
            })
            .collect())
    }
}
