//! The state store: every replicated table in one LMDB environment (heed), read by the
//! HTTP/DNS layers and written only by the FSM.
//!
//! Reads return `(index, rows)` where `index` is the Raft index blocking queries compare
//! against. Writes go through [`Writer`], which stamps rows with the Raft index of the
//! command being applied, keeps per-table max indexes, and records what it touched so
//! the [`watch::WatchRegistry`] can wake exactly the affected blocking queries.

pub mod catalog;
pub mod coordinate;
pub mod guard;
pub mod keys;
pub mod kvs;
pub mod schema;
pub mod session;
pub mod snapshot;
pub mod system;
pub mod txn;
pub mod upgrade;
pub mod usage;
pub mod watch;

use heed::{Env, EnvFlags, EnvOpenOptions, RoTxn, RwTxn, WithoutTls};
use serde::{Serialize, de::DeserializeOwned};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub use schema::Tables;
pub use watch::{Table, Touched, WatchKey, WatchRegistry};

/// Virtual address space reserved for the map; the file only grows as data does.
const MAP_SIZE: usize = 64 << 30;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state store: {0}")]
    Storage(#[from] heed::Error),
    #[error("state store row encoding: {0}")]
    Codec(#[from] serde_json::Error),
    #[error("state store: {0}")]
    Io(#[from] std::io::Error),
    /// A rule of the data model refused the write; the text goes to the client.
    #[error("{0}")]
    Rejected(String),
    /// A transaction whose ops failed; rolled back as a whole.
    #[error("transaction rolled back")]
    TxnFailed(Vec<crate::structs::TxnError>),
}

impl StateError {
    pub fn rejected(msg: impl Into<String>) -> Self {
        StateError::Rejected(msg.into())
    }
}

pub type Result<T> = std::result::Result<T, StateError>;

/// The store. Cheap to share behind an `Arc`.
pub struct Store {
    env: Env<WithoutTls>,
    db: Tables,
    pub watches: WatchRegistry,
    /// KV lock delays by key (not replicated: every server records them as it applies
    /// session invalidations, as Consul does).
    lock_delays: Mutex<HashMap<String, Instant>>,
    /// Removed on drop when the store lives in a scratch directory (`-dev`).
    scratch_dir: Option<PathBuf>,
    /// Where a durable store lives (its close record is kept there).
    durable_dir: Option<PathBuf>,
    /// Why the store was discarded at open, if it was.
    rebuilt: Option<String>,
}

fn open_env(dir: &Path) -> Result<Env<WithoutTls>> {
    let mut opts = EnvOpenOptions::new().read_txn_without_tls();
    opts.map_size(MAP_SIZE).max_dbs(32).max_readers(1024);
    // SAFETY: NO_SYNC is sound for an environment whose durability comes from the
    // Raft log (see `sync`), and the directory is used by this process only.
    let env = unsafe {
        opts.flags(EnvFlags::NO_SYNC | EnvFlags::NO_READ_AHEAD);
        opts.open(dir)?
    };
    Ok(env)
}

impl Store {
    /// Opens (creating if needed) the store in `dir`. `durable = false` skips fsync
    /// entirely (`-dev`). With `durable = true` commits are not fsynced one by one
    /// either: the Raft log is the durable record, and the store is synced before a
    /// snapshot lets the log be truncated. A durable store that cannot be trusted
    /// (see [`guard`]) is discarded and opened empty; [`Store::rebuilt`] then says why,
    /// and the Raft layer fills it from its snapshot and log.
    pub fn open(dir: &Path, durable: bool) -> Result<Store> {
        std::fs::create_dir_all(dir)?;
        let mut rebuilt = None;
        if durable && let Some(why) = guard::distrust(dir) {
            guard::discard(dir)?;
            rebuilt = Some(why);
        }
        let mut env = open_env(dir)?;
        if durable && rebuilt.is_none() {
            let page_size = env.unnamed_database_stat().page_size;
            if let Some(why) = guard::torn(dir, env.info().last_page_number, page_size) {
                env.prepare_for_closing().wait();
                guard::discard(dir)?;
                env = open_env(dir)?;
                rebuilt = Some(why);
            }
        }
        if let Some(why) = &rebuilt {
            tracing::warn!(dir = %dir.display(), "state store discarded, to be rebuilt from the Raft snapshot and log: {why}");
        }
        let db = Tables::open(&env)?;
        let store = Store {
            env,
            db,
            watches: WatchRegistry::default(),
            lock_delays: Mutex::new(HashMap::new()),
            scratch_dir: None,
            durable_dir: durable.then(|| dir.to_path_buf()),
            rebuilt,
        };
        store.check_format()?;
        if let Some(dir) = &store.durable_dir {
            guard::mark_open(dir)?;
        }
        Ok(store)
    }

    /// Why the store was discarded at open and starts empty, if it was.
    pub fn rebuilt(&self) -> Option<&str> {
        self.rebuilt.as_deref()
    }

    /// Syncs the store and records a clean close; the process must not write to it
    /// afterwards (the next start checks the file against this record).
    pub fn close_clean(&self) -> Result<()> {
        self.sync()?;
        if let Some(dir) = &self.durable_dir {
            guard::mark_clean(dir)?;
        }
        Ok(())
    }

    /// A store in a fresh scratch directory, deleted when the store is dropped.
    #[cfg(test)]
    pub fn open_scratch() -> Result<Store> {
        let dir = std::env::temp_dir().join(format!("concord-dev-{}", uuid::Uuid::new_v4()));
        let mut store = Store::open(&dir, false)?;
        store.scratch_dir = Some(dir);
        Ok(store)
    }

    /// Writes a raw row, bypassing every rule (tests of damaged stores).
    #[cfg(test)]
    pub fn put_raw(&self, table: &str, key: &[u8], value: &[u8]) {
        let mut wtxn = self.env.write_txn().unwrap();
        let (_, db) = self
            .db
            .all()
            .into_iter()
            .find(|(n, _)| *n == table)
            .unwrap();
        db.put(&mut wtxn, key, value).unwrap();
        wtxn.commit().unwrap();
    }

    /// Flushes everything committed so far to disk.
    pub fn sync(&self) -> Result<()> {
        Ok(self.env.force_sync()?)
    }

    pub fn read(&self) -> Result<Reader<'_>> {
        Ok(Reader {
            txn: self.env.read_txn()?,
            db: &self.db,
        })
    }

    /// Starts a batch: several commands in one LMDB transaction, each of them
    /// all-or-nothing on its own (nested transactions).
    pub fn batch(&self) -> Result<Batch<'_>> {
        Ok(Batch {
            store: self,
            txn: Some(self.env.write_txn()?),
            touched: Touched::default(),
            effects: Effects::default(),
        })
    }

    /// The lock delay still in force on `key`, if any.
    pub fn lock_delay(&self, key: &str) -> Option<Duration> {
        let mut delays = self.lock_delays.lock().unwrap_or_else(|e| e.into_inner());
        let until = *delays.get(key)?;
        let now = Instant::now();
        if until <= now {
            delays.remove(key);
            None
        } else {
            Some(until - now)
        }
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        if let Some(dir) = &self.scratch_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Side effects of a write that are not rows: applied after commit.
#[derive(Default)]
pub struct Effects {
    pub lock_delays: Vec<(String, Duration)>,
}

/// A write transaction spanning several commands.
pub struct Batch<'s> {
    store: &'s Store,
    txn: Option<RwTxn<'s>>,
    touched: Touched,
    effects: Effects,
}

impl<'s> Batch<'s> {
    /// Applies one command in a nested transaction: its writes are kept only if `f`
    /// returns `Ok`.
    pub fn apply<T>(
        &mut self,
        raft_index: u64,
        f: impl FnOnce(&mut Writer<'_, '_>) -> Result<T>,
    ) -> Result<T> {
        let parent = self.txn.as_mut().expect("batch already committed");
        let mut child = self.store.env.nested_write_txn(parent)?;
        let mut touched = Touched::default();
        let mut effects = Effects::default();
        let out = {
            let mut w = Writer {
                txn: &mut child,
                db: &self.store.db,
                idx: raft_index,
                touched: &mut touched,
                effects: &mut effects,
            };
            f(&mut w)
        };
        match out {
            Ok(v) => {
                child.commit()?;
                self.touched.merge(touched);
                self.effects.lock_delays.extend(effects.lock_delays);
                Ok(v)
            }
            Err(e) => {
                child.abort();
                Err(e)
            }
        }
    }

    /// Records raft bookkeeping (last applied log, membership) in the same transaction.
    pub fn put_meta<T: Serialize>(&mut self, key: &str, value: &T) -> Result<()> {
        let txn = self.txn.as_mut().expect("batch already committed");
        schema::put_json(&self.store.db.meta, txn, key.as_bytes(), value)
    }

    pub fn commit(mut self) -> Result<()> {
        if let Some(txn) = self.txn.take() {
            txn.commit()?;
        }
        let now = Instant::now();
        if !self.effects.lock_delays.is_empty() {
            let mut delays = self
                .store
                .lock_delays
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            for (key, d) in self.effects.lock_delays.drain(..) {
                delays.insert(key, now + d);
            }
        }
        self.store.watches.notify(&self.touched);
        Ok(())
    }
}

/// Write access for one command.
pub struct Writer<'a, 't> {
    pub(crate) txn: &'a mut RwTxn<'t>,
    pub(crate) db: &'a Tables,
    /// The Raft index of the command: CreateIndex/ModifyIndex of what it writes.
    pub idx: u64,
    pub(crate) touched: &'a mut Touched,
    pub(crate) effects: &'a mut Effects,
}

impl Writer<'_, '_> {
    pub(crate) fn bump(&mut self, table: Table) -> Result<()> {
        schema::set_index(
            &self.db.index,
            self.txn,
            table_index_name(table).as_bytes(),
            self.idx,
        )?;
        self.touched.tables.insert(table);
        Ok(())
    }

    /// Read access inside the write transaction (sees this command's own writes).
    pub fn reader(&self) -> ReaderRef<'_> {
        ReaderRef {
            txn: self.txn,
            db: self.db,
        }
    }
}

pub(crate) fn table_index_name(t: Table) -> &'static str {
    match t {
        Table::Nodes => "nodes",
        Table::Services => "services",
        Table::Checks => "checks",
        Table::Kvs => "kvs",
        Table::Sessions => "sessions",
        Table::Coordinates => "coordinates",
        Table::ConnectCa => "connect-ca",
        Table::ConfigEntries => "config-entries",
        Table::Autopilot => "autopilot",
    }
}

/// A read transaction: a consistent point-in-time view.
pub struct Reader<'s> {
    txn: RoTxn<'s, WithoutTls>,
    db: &'s Tables,
}

impl Reader<'_> {
    pub fn view(&self) -> ReaderRef<'_> {
        ReaderRef {
            txn: &self.txn,
            db: self.db,
        }
    }

    pub fn meta<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        schema::get_json(&self.db.meta, &self.txn, key.as_bytes())
    }

    /// Which committed state this transaction reads: it grows with every commit,
    /// and two readers with the same id see exactly the same data.
    pub fn snapshot_id(&self) -> usize {
        self.txn.id()
    }
}

/// Read queries, usable from a read transaction or inside a write.
#[derive(Clone, Copy)]
pub struct ReaderRef<'a> {
    pub(crate) txn: &'a RoTxn<'a, WithoutTls>,
    pub(crate) db: &'a Tables,
}

impl ReaderRef<'_> {
    /// The max index over several tables (at least 1).
    pub fn table_index(&self, tables: &[Table]) -> Result<u64> {
        let mut max = 0;
        for t in tables {
            max = max.max(schema::get_index(
                &self.db.index,
                self.txn,
                table_index_name(*t).as_bytes(),
            )?);
        }
        Ok(max)
    }

    pub fn named_index(&self, name: impl AsRef<[u8]>) -> Result<u64> {
        schema::get_index(&self.db.index, self.txn, name.as_ref())
    }
}
