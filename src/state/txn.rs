//! Transactions (`/v1/txn`): every op runs, errors are collected with their op index,
//! and any error rolls the whole transaction back (the caller's nested LMDB
//! transaction is aborted when this returns `TxnFailed`).

use super::{ReaderRef, Result, StateError, Writer};
use crate::structs::{DirEntry, TxnError, TxnOp, TxnResponse, TxnResult};

/// Why one op failed: a message for the client, or a storage fault for the server.
enum OpError {
    What(String),
    Fatal(StateError),
}

impl From<StateError> for OpError {
    fn from(e: StateError) -> Self {
        match e {
            StateError::Rejected(msg) => OpError::What(msg),
            other => OpError::Fatal(other),
        }
    }
}

type OpResult = std::result::Result<Vec<TxnResult>, OpError>;

fn blank_value(mut e: DirEntry) -> DirEntry {
    e.value = None;
    e
}

/// Read verbs, shared by read-only transactions and the write path.
fn read_op(r: ReaderRef<'_>, op: &TxnOp) -> Option<OpResult> {
    let res = match op {
        TxnOp::Kv { verb, entry } => match verb.as_str() {
            "get" => (|| -> OpResult {
                match r.kv_get(&entry.key)?.1 {
                    Some(e) => Ok(vec![TxnResult::Kv(e)]),
                    None => Err(OpError::What(format!("key {:?} doesn't exist", entry.key))),
                }
            })(),
            "get-or-empty" => (|| -> OpResult {
                Ok(vec![TxnResult::Kv(r.kv_get(&entry.key)?.1.unwrap_or_else(
                    || DirEntry {
                        key: entry.key.clone(),
                        ..Default::default()
                    },
                ))])
            })(),
            "get-tree" => (|| -> OpResult {
                Ok(r.kv_list(&entry.key)?
                    .1
                    .into_iter()
                    .map(TxnResult::Kv)
                    .collect())
            })(),
            "check-index" => (|| -> OpResult {
                match r.kv_get(&entry.key)?.1 {
                    None => Err(OpError::What(format!(
                        "failed to check index, key {:?} doesn't exist",
                        entry.key
                    ))),
                    Some(e) if e.modify_index != entry.modify_index => Err(OpError::What(format!(
                        "failed index check for key {:?}, current modify index {} != {}",
                        entry.key, e.modify_index, entry.modify_index
                    ))),
                    Some(e) => Ok(vec![TxnResult::Kv(blank_value(e))]),
                }
            })(),
            "check-session" => (|| -> OpResult {
                let want = entry.session.clone().unwrap_or_default();
                match r.kv_get(&entry.key)?.1 {
                    None => Err(OpError::What(format!(
                        "failed to check session, key {:?} doesn't exist",
                        entry.key
                    ))),
                    Some(e) if e.session.clone().unwrap_or_default() != want => {
                        Err(OpError::What(format!(
                            "failed session check for key {:?}, current session {:?} != {:?}",
                            entry.key,
                            e.session.clone().unwrap_or_default(),
                            want
                        )))
                    }
                    Some(e) => Ok(vec![TxnResult::Kv(blank_value(e))]),
                }
            })(),
            "check-not-exists" => (|| -> OpResult {
                match r.kv_get(&entry.key)?.1 {
                    Some(_) => Err(OpError::What(format!("key {:?} exists", entry.key))),
                    None => Ok(vec![]),
                }
            })(),
            _ => return None,
        },
        TxnOp::Node { verb, node } if verb == "get" => (|| -> OpResult {
            match r.node(&node.node)? {
                Some(n) => Ok(vec![TxnResult::Node(n)]),
                None => Err(OpError::What(format!("node {:?} doesn't exist", node.node))),
            }
        })(),
        TxnOp::Service {
            verb,
            node,
            service,
        } if verb == "get" => (|| -> OpResult {
            match r.node_service(node, &service.id)? {
                Some(s) => Ok(vec![TxnResult::Service(s)]),
                None => Err(OpError::What(format!(
                    "service {:?} on node {:?} doesn't exist",
                    service.id, node
                ))),
            }
        })(),
        TxnOp::Check { verb, check } if verb == "get" => (|| -> OpResult {
            match r.check(&check.node, &check.check_id)? {
                Some(c) => Ok(vec![TxnResult::Check(c)]),
                None => Err(OpError::What(format!(
                    "check {:?} on node {:?} doesn't exist",
                    check.check_id, check.node
                ))),
            }
        })(),
        _ => return None,
    };
    Some(res)
}

fn unknown_verb(op: &TxnOp) -> OpError {
    let (kind, verb) = match op {
        TxnOp::Kv { verb, .. } => ("KV", verb),
        TxnOp::Node { verb, .. } => ("Node", verb),
        TxnOp::Service { verb, .. } => ("Service", verb),
        TxnOp::Check { verb, .. } => ("Check", verb),
        TxnOp::Session { verb, .. } => ("Session", verb),
    };
    OpError::What(format!("unknown {kind} verb {verb:?}"))
}

fn write_op(w: &mut Writer<'_, '_>, op: &TxnOp) -> OpResult {
    if let Some(res) = read_op(w.reader(), op) {
        return res;
    }
    match op {
        TxnOp::Kv { verb, entry } => {
            let session = entry.session.clone().unwrap_or_default();
            match verb.as_str() {
                "set" => Ok(vec![TxnResult::Kv(blank_value(
                    w.kv_set(entry.clone(), false)?,
                ))]),
                "cas" => match w.kv_cas(entry.clone(), entry.modify_index)? {
                    Some(e) => Ok(vec![TxnResult::Kv(blank_value(e))]),
                    None => Err(OpError::What(format!(
                        "failed to set key {:?}, index is stale",
                        entry.key
                    ))),
                },
                "lock" => match w.kv_lock(entry.clone(), &session)? {
                    Some(e) => Ok(vec![TxnResult::Kv(blank_value(e))]),
                    None => Err(OpError::What(format!(
                        "failed to lock key {:?}, lock is already held",
                        entry.key
                    ))),
                },
                "unlock" => match w.kv_unlock(entry.clone(), &session)? {
                    Some(e) => Ok(vec![TxnResult::Kv(blank_value(e))]),
                    None => Err(OpError::What(format!(
                        "failed to unlock key {:?}, lock isn't held, or is held by another session",
                        entry.key
                    ))),
                },
                "delete" => {
                    w.kv_delete(&entry.key)?;
                    Ok(vec![])
                }
                "delete-tree" => {
                    w.kv_delete_tree(&entry.key)?;
                    Ok(vec![])
                }
                "delete-cas" => {
                    if w.kv_delete_cas(&entry.key, entry.modify_index)? {
                        Ok(vec![])
                    } else {
                        Err(OpError::What(format!(
                            "failed to delete key {:?}, index is stale",
                            entry.key
                        )))
                    }
                }
                _ => Err(unknown_verb(op)),
            }
        }
        TxnOp::Node { verb, node } => {
            let existing = w.reader().node(&node.node)?;
            match verb.as_str() {
                "set" => Ok(vec![TxnResult::Node(w.ensure_node(node.clone())?)]),
                "cas" => {
                    let ok = match (&existing, node.modify_index) {
                        (None, 0) => true,
                        (Some(e), n) if n != 0 => e.modify_index == n,
                        _ => false,
                    };
                    if !ok {
                        return Err(OpError::What(format!(
                            "failed to set node {:?}, index is stale",
                            node.node
                        )));
                    }
                    Ok(vec![TxnResult::Node(w.ensure_node(node.clone())?)])
                }
                "delete" => {
                    w.delete_node(&node.node)?;
                    Ok(vec![])
                }
                "delete-cas" => match existing {
                    Some(e) if e.modify_index != node.modify_index => Err(OpError::What(format!(
                        "failed to delete node {:?}, index is stale",
                        node.node
                    ))),
                    _ => {
                        w.delete_node(&node.node)?;
                        Ok(vec![])
                    }
                },
                _ => Err(unknown_verb(op)),
            }
        }
        TxnOp::Service {
            verb,
            node,
            service,
        } => {
            let existing = w.reader().node_service(node, &service.id)?;
            match verb.as_str() {
                "set" => Ok(vec![TxnResult::Service(
                    w.ensure_service(node, service.clone())?,
                )]),
                "cas" => {
                    let ok = match (&existing, service.modify_index) {
                        (None, 0) => true,
                        (Some(e), n) if n != 0 => e.modify_index == n,
                        _ => false,
                    };
                    if !ok {
                        return Err(OpError::What(format!(
                            "failed to set service {:?} on node {:?}, index is stale",
                            service.id, node
                        )));
                    }
                    Ok(vec![TxnResult::Service(
                        w.ensure_service(node, service.clone())?,
                    )])
                }
                "delete" => {
                    w.delete_service(node, &service.id)?;
                    Ok(vec![])
                }
                "delete-cas" => match existing {
                    Some(e) if e.modify_index != service.modify_index => {
                        Err(OpError::What(format!(
                            "failed to delete service {:?} on node {:?}, index is stale",
                            service.id, node
                        )))
                    }
                    _ => {
                        w.delete_service(node, &service.id)?;
                        Ok(vec![])
                    }
                },
                _ => Err(unknown_verb(op)),
            }
        }
        TxnOp::Check { verb, check } => {
            let existing = w.reader().check(&check.node, &check.check_id)?;
            match verb.as_str() {
                "set" => Ok(vec![TxnResult::Check(w.ensure_check(check.clone())?)]),
                "cas" => {
                    let ok = match (&existing, check.modify_index) {
                        (None, 0) => true,
                        (Some(e), n) if n != 0 => e.modify_index == n,
                        _ => false,
                    };
                    if !ok {
                        return Err(OpError::What(format!(
                            "failed to set check {:?} on node {:?}, index is stale",
                            check.check_id, check.node
                        )));
                    }
                    Ok(vec![TxnResult::Check(w.ensure_check(check.clone())?)])
                }
                "delete" => {
                    w.delete_check(&check.node, &check.check_id)?;
                    Ok(vec![])
                }
                "delete-cas" => match existing {
                    Some(e) if e.modify_index != check.modify_index => Err(OpError::What(format!(
                        "failed to delete check {:?} on node {:?}, index is stale",
                        check.check_id, check.node
                    ))),
                    _ => {
                        w.delete_check(&check.node, &check.check_id)?;
                        Ok(vec![])
                    }
                },
                _ => Err(unknown_verb(op)),
            }
        }
        TxnOp::Session { verb, id } => match verb.as_str() {
            "delete" => {
                w.session_destroy(id)?;
                Ok(vec![])
            }
            _ => Err(unknown_verb(op)),
        },
    }
}

/// Collects per-op outcomes into Consul's response shape.
fn finish(outcomes: Vec<OpResult>) -> Result<std::result::Result<TxnResponse, Vec<TxnError>>> {
    let mut results = Vec::new();
    let mut errors = Vec::new();
    for (i, o) in outcomes.into_iter().enumerate() {
        match o {
            Ok(r) => results.extend(r),
            Err(OpError::What(what)) => errors.push(TxnError { op_index: i, what }),
            Err(OpError::Fatal(e)) => return Err(e),
        }
    }
    if errors.is_empty() {
        Ok(Ok(TxnResponse {
            results: Some(results),
            errors: None,
        }))
    } else {
        Ok(Err(errors))
    }
}

impl ReaderRef<'_> {
    /// A transaction of read verbs only (no Raft round).
    pub fn txn_read(
        &self,
        ops: &[TxnOp],
    ) -> Result<std::result::Result<TxnResponse, Vec<TxnError>>> {
        let outcomes = ops
            .iter()
            .map(|op| read_op(*self, op).unwrap_or_else(|| Err(unknown_verb(op))))
            .collect();
        finish(outcomes)
    }
}

impl Writer<'_, '_> {
    /// Runs every op; on any failure returns `TxnFailed` so the caller rolls back.
    pub fn txn_apply(&mut self, ops: &[TxnOp]) -> Result<TxnResponse> {
        let outcomes = ops.iter().map(|op| write_op(self, op)).collect();
        match finish(outcomes)? {
            Ok(resp) => Ok(resp),
            Err(errors) => Err(StateError::TxnFailed(errors)),
        }
    }
}
