//! The replicated state machine's command set: `Command` is every write concord makes,
//! and [`apply`] runs one in the state store at its Raft index. Each command is
//! all-or-nothing (it runs in a nested transaction of the batch).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::state::{Batch, StateError, Table};
use crate::structs::{
    CoordinateEntry, DirEntry, HealthCheck, Node, NodeService, Session, TxnError, TxnOp,
    TxnResponse,
};

/// One catalog registration: a node, optionally with a service and checks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Registration {
    pub node: Node,
    pub skip_node_update: bool,
    pub service: Option<NodeService>,
    pub checks: Vec<HealthCheck>,
}

/// Every write that goes through Raft. Commands are built once and moved into the
/// log, so the size spread between variants costs nothing worth boxing for.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    KvSet {
        entry: DirEntry,
    },
    KvCas {
        entry: DirEntry,
        index: u64,
    },
    KvLock {
        entry: DirEntry,
        session: String,
    },
    KvUnlock {
        entry: DirEntry,
        session: String,
    },
    KvDelete {
        key: String,
    },
    KvDeleteCas {
        key: String,
        index: u64,
    },
    KvDeleteTree {
        prefix: String,
    },
    /// Drops KV tombstones written at or before `index` (leader's periodic reaper).
    KvReapTombstones {
        index: u64,
    },
    Register(Registration),
    DeregisterNode {
        node: String,
    },
    DeregisterService {
        node: String,
        service_id: String,
    },
    DeregisterCheck {
        node: String,
        check_id: String,
    },
    SessionCreate(Session),
    SessionDestroy {
        id: String,
    },
    Txn {
        ops: Vec<TxnOp>,
    },
    /// Several commands in one log entry (group commit, see `raft::batcher`); each
    /// applies on its own and answers on its own.
    Batch(Vec<Command>),
    /// Replaces the whole state with a `/v1/snapshot` archive's state.
    Restore {
        state: Vec<u8>,
    },
    CoordinateUpdate {
        entries: Vec<CoordinateEntry>,
    },
    /// Stores a singleton document (Connect CA, autopilot config, ...).
    PutSystem {
        name: String,
        table: Table,
        doc: Value,
    },
    /// Stores a singleton configuration stamped with this entry's index as its
    /// `CreateIndex`/`ModifyIndex`; with `cas`, only if the stored one's
    /// `ModifyIndex` equals it (answers `Bool`).
    PutConfig {
        name: String,
        table: Table,
        doc: Value,
        cas: Option<u64>,
    },
}

/// What applying a command answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Response {
    Done,
    Bool(bool),
    Session(Session),
    Txn(TxnResponse),
    TxnFailed(Vec<TxnError>),
    /// A rule of the data model refused the command; the text goes to the client.
    Rejected(String),
    /// One answer per command of a `Command::Batch`, in order.
    Batch(Vec<Response>),
}

impl Command {
    /// About how many bytes the command carries (for sizing batches).
    pub fn approx_size(&self) -> usize {
        let entry = |e: &DirEntry| e.key.len() + e.value.as_ref().map_or(0, Vec::len);
        match self {
            Command::KvSet { entry: e }
            | Command::KvCas { entry: e, .. }
            | Command::KvLock { entry: e, .. }
            | Command::KvUnlock { entry: e, .. } => 64 + entry(e),
            Command::Txn { ops } => ops
                .iter()
                .map(|op| match op {
                    TxnOp::Kv { entry: e, .. } => 64 + entry(e),
                    _ => 512,
                })
                .sum(),
            Command::Restore { state } => state.len(),
            Command::Batch(cmds) => cmds.iter().map(Command::approx_size).sum(),
            _ => 512,
        }
    }
}

/// Applies `cmd` at `index` inside `batch`. Total: every command gets an answer. A
/// command that cannot be applied (a rule of the data model, or any error inside its
/// own nested transaction, which is then rolled back) fails alone, and the entries
/// after it apply as usual. Only committing the batch itself can fail the stream.
pub fn apply(batch: &mut Batch<'_>, index: u64, cmd: &Command) -> Response {
    if let Command::Batch(cmds) = cmd {
        return Response::Batch(cmds.iter().map(|c| apply(batch, index, c)).collect());
    }
    let out = batch.apply(index, |w| {
        Ok(match cmd {
            Command::KvSet { entry } => {
                w.kv_set(entry.clone(), false)?;
                Response::Bool(true)
            }
            Command::KvCas { entry, index } => {
                Response::Bool(w.kv_cas(entry.clone(), *index)?.is_some())
            }
            Command::KvLock { entry, session } => {
                Response::Bool(w.kv_lock(entry.clone(), session)?.is_some())
            }
            Command::KvUnlock { entry, session } => {
                Response::Bool(w.kv_unlock(entry.clone(), session)?.is_some())
            }
            Command::KvDelete { key } => {
                w.kv_delete(key)?;
                Response::Bool(true)
            }
            Command::KvDeleteCas { key, index } => Response::Bool(w.kv_delete_cas(key, *index)?),
            Command::KvDeleteTree { prefix } => {
                w.kv_delete_tree(prefix)?;
                Response::Bool(true)
            }
            Command::KvReapTombstones { index } => {
                w.kv_reap_tombstones(*index)?;
                Response::Done
            }
            Command::Register(reg) => {
                let exists = w.reader().node(&reg.node.node)?.is_some();
                if !(reg.skip_node_update && exists) {
                    w.ensure_node(reg.node.clone())?;
                }
                if let Some(svc) = &reg.service {
                    w.ensure_service(&reg.node.node, svc.clone())?;
                }
                for c in &reg.checks {
                    let mut c = c.clone();
                    c.node = reg.node.node.clone();
                    w.ensure_check(c)?;
                }
                Response::Bool(true)
            }
            Command::DeregisterNode { node } => {
                w.delete_node(node)?;
                Response::Bool(true)
            }
            Command::DeregisterService { node, service_id } => {
                w.delete_service(node, service_id)?;
                Response::Bool(true)
            }
            Command::DeregisterCheck { node, check_id } => {
                w.delete_check(node, check_id)?;
                Response::Bool(true)
            }
            Command::SessionCreate(session) => {
                Response::Session(w.session_create(session.clone())?)
            }
            Command::SessionDestroy { id } => {
                w.session_destroy(id)?;
                Response::Bool(true)
            }
            Command::Txn { ops } => Response::Txn(w.txn_apply(ops)?),
            Command::Batch(_) => unreachable!("batches are unpacked above"),
            Command::Restore { state } => {
                w.restore(state)?;
                Response::Done
            }
            Command::CoordinateUpdate { entries } => {
                w.coordinates_update(entries)?;
                Response::Done
            }
            Command::PutSystem { name, table, doc } => {
                w.put_system(name, *table, doc)?;
                Response::Done
            }
            Command::PutConfig {
                name,
                table,
                doc,
                cas,
            } => Response::Bool(w.put_config(name, *table, doc.clone(), *cas)?),
        })
    });
    match out {
        Ok(r) => r,
        Err(StateError::Rejected(msg)) => Response::Rejected(msg),
        Err(StateError::TxnFailed(errors)) => Response::TxnFailed(errors),
        Err(e) => {
            tracing::error!(index, error = %e, "command failed to apply; it was rolled back alone");
            Response::Rejected(e.to_string())
        }
    }
}

#[cfg(test)]
mod tests;
