//! openraft's state machine over the LMDB store: applies committed entries in one
//! write transaction per batch (each command nested), records the applied log id and
//! membership in the same transaction, and builds/installs snapshots.

// openraft's storage traits dictate `StorageError` as the error type.
#![allow(clippy::result_large_err)]

use std::io::Cursor;
use std::path::PathBuf;
use std::sync::Arc;

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{EntryPayload, ErrorSubject, ErrorVerb, RaftSnapshotBuilder};
use serde::{Deserialize, Serialize};

use super::types::{Entry, LogId, SnapshotMeta, StorageError, StoredMembership, TypeConfig};
use crate::fsm::{self, Response};
use crate::state::Store;

const META_APPLIED: &str = "raft.last_applied";
const META_MEMBERSHIP: &str = "raft.membership";

#[allow(clippy::result_large_err)]
fn sm_err(verb: ErrorVerb, e: impl std::fmt::Display) -> StorageError {
    StorageError::from_io_error(
        ErrorSubject::StateMachine,
        verb,
        std::io::Error::other(e.to_string()),
    )
}

#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta,
    #[serde(with = "serde_bytes_b64")]
    data: Vec<u8>,
}

mod serde_bytes_b64 {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        STANDARD.decode(s).map_err(serde::de::Error::custom)
    }
}

/// The state machine; clones share the store.
#[derive(Clone)]
pub struct StateMachine {
    pub store: Arc<Store>,
    /// Where the latest snapshot is kept (`None` in `-dev`: memory only).
    snapshot_path: Option<PathBuf>,
    current: Arc<std::sync::Mutex<Option<StoredSnapshot>>>,
}

impl StateMachine {
    /// The state machine over `store`. A store that was discarded at open (see
    /// `state::guard`) is filled from the latest snapshot here; openraft then applies
    /// the log entries after it, as it does after any restart.
    pub fn new(
        store: Arc<Store>,
        snapshot_path: Option<PathBuf>,
    ) -> Result<StateMachine, StorageError> {
        let current = snapshot_path
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|b| serde_json::from_slice::<StoredSnapshot>(&b).ok());
        let sm = StateMachine {
            store,
            snapshot_path,
            current: Arc::new(std::sync::Mutex::new(None)),
        };
        if let Some(why) = sm.store.rebuilt() {
            match &current {
                Some(snap) => {
                    sm.load(&snap.meta, &snap.data)?;
                    tracing::warn!(
                        index = snap.meta.last_log_id.map_or(0, |l| l.index),
                        "state store rebuilt from the snapshot ({why}); the Raft log replays the rest"
                    );
                }
                None => tracing::warn!("state store rebuilt from the Raft log alone ({why})"),
            }
        }
        *sm.current.lock().unwrap_or_else(|e| e.into_inner()) = current;
        Ok(sm)
    }

    /// Replaces the state with a snapshot's, applied up to the snapshot's last entry.
    fn load(&self, meta: &SnapshotMeta, data: &[u8]) -> Result<(), StorageError> {
        self.store
            .restore_from(&mut &data[..])
            .map_err(|e| sm_err(ErrorVerb::Write, e))?;
        let mut batch = self
            .store
            .batch()
            .map_err(|e| sm_err(ErrorVerb::Write, e))?;
        batch
            .put_meta(META_APPLIED, &meta.last_log_id)
            .and_then(|_| batch.put_meta(META_MEMBERSHIP, &meta.last_membership))
            .map_err(|e| sm_err(ErrorVerb::Write, e))?;
        batch.commit().map_err(|e| sm_err(ErrorVerb::Write, e))?;
        self.store.sync().map_err(|e| sm_err(ErrorVerb::Write, e))
    }

    fn save_snapshot(&self, snap: StoredSnapshot) -> Result<(), StorageError> {
        if let Some(path) = &self.snapshot_path {
            let tmp = path.with_extension("tmp");
            let bytes = serde_json::to_vec(&snap).map_err(|e| sm_err(ErrorVerb::Write, e))?;
            let write = || -> std::io::Result<()> {
                use std::io::Write;
                let mut f = std::fs::File::create(&tmp)?;
                f.write_all(&bytes)?;
                f.sync_all()?;
                std::fs::rename(&tmp, path)?;
                if let Some(dir) = path.parent() {
                    std::fs::File::open(dir)?.sync_all()?;
                }
                Ok(())
            };
            write().map_err(|e| sm_err(ErrorVerb::Write, e))?;
        }
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = Some(snap);
        Ok(())
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let (last_applied, membership) = self.applied_state().await?;
        // The log below this snapshot may be purged next: the store must be on disk.
        self.store.sync().map_err(|e| sm_err(ErrorVerb::Write, e))?;
        let mut data = Vec::new();
        self.store
            .snapshot_to(&mut data)
            .map_err(|e| sm_err(ErrorVerb::Read, e))?;
        let meta = SnapshotMeta {
            last_log_id: last_applied,
            last_membership: membership,
            snapshot_id: format!(
                "{}-{}",
                last_applied.map(|l| l.index).unwrap_or(0),
                uuid::Uuid::new_v4()
            ),
        };
        self.save_snapshot(StoredSnapshot {
            meta: meta.clone(),
            data: data.clone(),
        })?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = StateMachine;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let r = self.store.read().map_err(|e| sm_err(ErrorVerb::Read, e))?;
        let applied = r
            .meta::<LogId>(META_APPLIED)
            .map_err(|e| sm_err(ErrorVerb::Read, e))?;
        let membership = r
            .meta::<StoredMembership>(META_MEMBERSHIP)
            .map_err(|e| sm_err(ErrorVerb::Read, e))?
            .unwrap_or_default();
        Ok((applied, membership))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut batch = self
            .store
            .batch()
            .map_err(|e| sm_err(ErrorVerb::Write, e))?;
        let mut responses = Vec::new();
        let mut last = None;
        let mut membership = None;
        for entry in entries {
            last = Some(entry.log_id);
            let r = match &entry.payload {
                EntryPayload::Blank => Response::Done,
                EntryPayload::Normal(cmd) => fsm::apply(&mut batch, entry.log_id.index, cmd),
                EntryPayload::Membership(m) => {
                    membership = Some(StoredMembership::new(Some(entry.log_id), m.clone()));
                    Response::Done
                }
            };
            responses.push(r);
        }
        if let Some(l) = last {
            batch
                .put_meta(META_APPLIED, &l)
                .map_err(|e| sm_err(ErrorVerb::Write, e))?;
        }
        if let Some(m) = membership {
            batch
                .put_meta(META_MEMBERSHIP, &m)
                .map_err(|e| sm_err(ErrorVerb::Write, e))?;
        }
        batch.commit().map_err(|e| sm_err(ErrorVerb::Write, e))?;
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        self.load(meta, &data)?;
        self.save_snapshot(StoredSnapshot {
            meta: meta.clone(),
            data,
        })
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        Ok(current.as_ref().map(|s| Snapshot {
            meta: s.meta.clone(),
            snapshot: Box::new(Cursor::new(s.data.clone())),
        }))
    }
}
