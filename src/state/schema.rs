//! The LMDB databases, their key layouts and the row codec.
//!
//! Keys that hold names Consul compares case-insensitively (node and service names)
//! are lowercased; the row keeps the original spelling. Names become key bytes
//! through [`super::keys`] (any length, no collisions).

use heed::types::Bytes;
use heed::{CommitOrAbort, Database, Env, RoTxn, RwTxn, WithoutTls};
use serde::{Serialize, de::DeserializeOwned};

use super::{Result, keys};

pub type Db = Database<'static, Bytes, Bytes>;

/// Key/value pairs borrowed from a read transaction.
pub type KvIter<'t> = Box<dyn Iterator<Item = heed::Result<(&'t [u8], &'t [u8])>> + 't>;

/// Every database of the store.
pub struct Tables {
    /// Raft bookkeeping: last applied log id, membership.
    pub meta: Db,
    /// Max index per table (`nodes`, `kvs`, ...) and per service (`service.<name>`).
    pub index: Db,
    /// lower(node) → Node
    pub nodes: Db,
    /// lower(node) \0 service id → NodeService
    pub services: Db,
    /// lower(service name) \0 lower(node) \0 service id → ()
    pub services_by_name: Db,
    /// lower(node) \0 check id → HealthCheck
    pub checks: Db,
    /// key → DirEntry
    pub kv: Db,
    /// key → index of the delete (KV graveyard)
    pub tombstones: Db,
    /// session \0 key → () : the keys a session holds
    pub kv_by_session: Db,
    /// session id → Session
    pub sessions: Db,
    /// lower(node) \0 check id \0 session id → () : sessions that depend on a check
    pub session_checks: Db,
    /// lower(node) \0 segment → Coordinate
    pub coordinates: Db,
    /// Small singleton documents (Connect CA state, autopilot config, ...).
    pub system: Db,
}

impl Tables {
    pub fn open(env: &Env<WithoutTls>) -> Result<Tables> {
        let wtxn = env.write_txn()?;
        let tables = env
            .create_databases_and_commit(wtxn, |opener, wtxn| -> Result<_> {
                let mut open =
                    |name: &str| opener.create_database::<Bytes, Bytes>(wtxn, Some(name));
                let t = (
                    (
                        open("meta")?,
                        open("index")?,
                        open("nodes")?,
                        open("services")?,
                    ),
                    (
                        open("services_by_name")?,
                        open("checks")?,
                        open("kv")?,
                        open("tombstones")?,
                    ),
                    (
                        open("kv_by_session")?,
                        open("sessions")?,
                        open("session_checks")?,
                        open("coordinates")?,
                    ),
                    open("system")?,
                );
                Ok(CommitOrAbort::<_, ()>::Commit(t))
            })?
            .unwrap_commit();
        let (
            (meta, index, nodes, services),
            (services_by_name, checks, kv, tombstones),
            (kv_by_session, sessions, session_checks, coordinates),
            system,
        ) = tables;
        Ok(Tables {
            meta,
            index,
            nodes,
            services,
            services_by_name,
            checks,
            kv,
            tombstones,
            kv_by_session,
            sessions,
            session_checks,
            coordinates,
            system,
        })
    }

    /// Every database with its name, in [`TABLE_NAMES`] order, for snapshots.
    pub fn all(&self) -> [(&'static str, &Db); 13] {
        let dbs = [
            &self.meta,
            &self.index,
            &self.nodes,
            &self.services,
            &self.services_by_name,
            &self.checks,
            &self.kv,
            &self.tombstones,
            &self.kv_by_session,
            &self.sessions,
            &self.session_checks,
            &self.coordinates,
            &self.system,
        ];
        std::array::from_fn(|i| (TABLE_NAMES[i], dbs[i]))
    }
}

/// The tables in snapshot order: a snapshot numbers a table by its position here,
/// so the list only ever grows at the end.
pub const TABLE_NAMES: [&str; 13] = [
    "meta",
    "index",
    "nodes",
    "services",
    "services_by_name",
    "checks",
    "kv",
    "tombstones",
    "kv_by_session",
    "sessions",
    "session_checks",
    "coordinates",
    "system",
];

/// The key of a tuple of names (see [`super::keys::parts`]).
pub fn key(parts: &[&str]) -> Vec<u8> {
    keys::parts(parts)
}

/// The prefix that selects every key whose first parts are `parts`. Parts are
/// self-delimiting, so this is the tuple's own key.
pub fn prefix(parts: &[&str]) -> Vec<u8> {
    keys::parts(parts)
}

pub fn lower(s: &str) -> String {
    s.to_lowercase()
}

pub fn get_json<T: DeserializeOwned>(
    db: &Db,
    txn: &RoTxn<'_, WithoutTls>,
    k: &[u8],
) -> Result<Option<T>> {
    match db.get(txn, k)? {
        Some(bytes) => Ok(Some(serde_json::from_slice(bytes)?)),
        None => Ok(None),
    }
}

pub fn put_json<T: Serialize>(db: &Db, txn: &mut RwTxn<'_>, k: &[u8], v: &T) -> Result<()> {
    let bytes = serde_json::to_vec(v)?;
    db.put(txn, k, &bytes)?;
    Ok(())
}

/// Iterates `(key, value)` pairs whose key starts with `prefix`, in key order. LMDB
/// rejects a zero-length seek key, so the empty prefix is a full scan.
pub fn iter_prefix<'t>(
    db: &Db,
    txn: &'t RoTxn<'_, WithoutTls>,
    prefix: &[u8],
) -> Result<KvIter<'t>> {
    if prefix.is_empty() {
        Ok(Box::new(db.iter(txn)?))
    } else {
        Ok(Box::new(db.prefix_iter(txn, prefix)?))
    }
}

/// Rows whose key starts with `prefix`, decoded, in the order of `name`: the key
/// order, unless a hashed name (see [`keys::has_hashed`]) makes the rows be sorted.
pub fn scan_json_by<T: DeserializeOwned, K: Ord>(
    db: &Db,
    txn: &RoTxn<'_, WithoutTls>,
    prefix: &[u8],
    name: impl Fn(&T) -> K,
) -> Result<Vec<T>> {
    let mut out = Vec::new();
    let mut hashed = false;
    for item in iter_prefix(db, txn, prefix)? {
        let (k, v) = item?;
        hashed |= keys::has_hashed(k);
        out.push(serde_json::from_slice(v)?);
    }
    if hashed {
        out.sort_by_key(name);
    }
    Ok(out)
}

/// Keys that start with `prefix` (owned copies).
pub fn scan_keys(db: &Db, txn: &RoTxn<'_, WithoutTls>, prefix: &[u8]) -> Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    for item in iter_prefix(db, txn, prefix)? {
        let (k, _) = item?;
        out.push(k.to_vec());
    }
    Ok(out)
}

pub fn get_index(db: &Db, txn: &RoTxn<'_, WithoutTls>, name: &[u8]) -> Result<u64> {
    Ok(db
        .get(txn, name)?
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_be_bytes)
        .unwrap_or(0))
}

/// Raises a named index to `idx` (indexes never go backwards).
pub fn set_index(db: &Db, txn: &mut RwTxn<'_>, name: &[u8], idx: u64) -> Result<()> {
    let current = get_index(db, txn, name)?;
    if idx > current {
        db.put(txn, name, &idx.to_be_bytes())?;
    }
    Ok(())
}
