//! `PUT /v1/txn`: validates and converts the API form, serves read-only transactions
//! locally (with consistency modes, no Raft round) and applies the rest through Raft;
//! 409 with the error list when anything failed.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::put;

use super::blocking::{check_consistency, meta};
use super::endpoint;
use super::error::{ApiError, ApiResult};
use super::query::QueryOptions;
use super::response::{json_status, set_leader_meta};
use crate::acl::Access;
use crate::agent::Agent;
use crate::fsm::{Command, Response as FsmResponse};
use crate::structs::{
    DirEntry, HealthCheck, MAX_TXN_OPS, Node, TxnError, TxnOp, TxnOpInput, TxnResponse, decode,
};

pub fn router() -> Router<Arc<Agent>> {
    Router::new().route("/v1/txn", endpoint(&["PUT"], put(txn)))
}

fn convert(agent: &Agent, input: TxnOpInput) -> ApiResult<TxnOp> {
    if let Some(kv) = input.kv {
        let size = kv.value.as_ref().map_or(0, |v| v.len()) as u64;
        if size > agent.config.kv_max_value_size {
            return Err(ApiError::too_large(format!(
                "Value for key {:?} is too large ({size} > {} bytes)",
                kv.key, agent.config.kv_max_value_size
            )));
        }
        return Ok(TxnOp::Kv {
            verb: kv.verb,
            entry: DirEntry {
                key: kv.key,
                value: kv.value,
                flags: kv.flags,
                session: (!kv.session.is_empty()).then_some(kv.session),
                modify_index: kv.index,
                ..Default::default()
            },
        });
    }
    if let Some(n) = input.node {
        let node = n.node;
        return Ok(TxnOp::Node {
            verb: n.verb,
            node: Node {
                id: node.id,
                node: node.node,
                address: node.address,
                datacenter: if node.datacenter.is_empty() {
                    agent.config.datacenter.clone()
                } else {
                    node.datacenter
                },
                tagged_addresses: node.tagged_addresses,
                meta: node.meta,
                locality: node.locality.filter(|l| !l.is_null()),
                create_index: 0,
                modify_index: node.modify_index,
            },
        });
    }
    if let Some(s) = input.service {
        let modify_index = s.service.modify_index;
        let mut service = s.service.into_node_service();
        service.modify_index = modify_index;
        return Ok(TxnOp::Service {
            verb: s.verb,
            node: s.node,
            service,
        });
    }
    if let Some(c) = input.check {
        let modify_index = c.check.modify_index;
        let mut check: HealthCheck = c.check.into_health_check();
        check.modify_index = modify_index;
        return Ok(TxnOp::Check {
            verb: c.verb,
            check,
        });
    }
    if let Some(s) = input.session {
        return Ok(TxnOp::Session {
            verb: s.verb,
            id: s.session.id,
        });
    }
    Err(ApiError::bad_request(
        "Failed to parse body: operation has no KV, Node, Service, Check or Session member",
    ))
}

fn authorize(agent: &Agent, token: &str, op: &TxnOp) -> ApiResult<()> {
    match op {
        TxnOp::Kv { verb, entry } => {
            if op.is_write() || verb.starts_with("check") {
                agent.authorize(token, Access::KeyWrite(&entry.key))
            } else {
                agent.authorize(token, Access::KeyRead(&entry.key))
            }
        }
        TxnOp::Node { node, .. } => agent.authorize(token, Access::NodeWrite(&node.node)),
        TxnOp::Service { service, .. } => {
            agent.authorize(token, Access::ServiceWrite(&service.service))
        }
        TxnOp::Check { check, .. } => agent.authorize(token, Access::NodeWrite(&check.node)),
        TxnOp::Session { id, .. } => agent.authorize(token, Access::SessionWrite(id)),
    }
}

fn respond(result: Result<TxnResponse, Vec<TxnError>>, pretty: bool) -> Response {
    match result {
        Ok(resp) => {
            // Unlike the health endpoints, txn results leave a check's empty
            // `ServiceTags` as Go's nil slice: `null`.
            let mut body = serde_json::to_value(&resp).unwrap_or_default();
            if let Some(results) = body.get_mut("Results").and_then(|r| r.as_array_mut()) {
                for r in results {
                    if let Some(tags) = r.pointer_mut("/Check/ServiceTags")
                        && tags.as_array().is_some_and(|a| a.is_empty())
                    {
                        *tags = serde_json::Value::Null;
                    }
                }
            }
            json_status(StatusCode::OK, &body, pretty)
        }
        Err(errors) => json_status(
            StatusCode::CONFLICT,
            &TxnResponse {
                results: None,
                errors: Some(errors),
            },
            pretty,
        ),
    }
}

async fn txn(
    State(agent): State<Arc<Agent>>,
    opts: QueryOptions,
    body: Bytes,
) -> ApiResult<Response> {
    let max_len = agent
        .config
        .txn_max_req_len
        .max(agent.config.kv_max_value_size);
    if body.len() as u64 > max_len {
        return Err(ApiError::too_large(format!(
            "Request body too large, max size: {max_len} bytes"
        )));
    }
    let inputs: Vec<TxnOpInput> = decode::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("Failed to parse body: {e}")))?;
    if inputs.len() > MAX_TXN_OPS {
        return Err(ApiError::too_large(format!(
            "Transaction contains too many operations ({} > {MAX_TXN_OPS})",
            inputs.len()
        )));
    }
    let ops = inputs
        .into_iter()
        .map(|i| convert(&agent, i))
        .collect::<ApiResult<Vec<_>>>()?;
    for op in &ops {
        authorize(&agent, &opts.token, op)?;
    }
    if !ops.iter().any(TxnOp::is_write) {
        check_consistency(&agent, &opts).await?;
        let result = agent.store.read()?.view().txn_read(&ops)?;
        let mut resp = respond(result, opts.pretty);
        set_leader_meta(resp.headers_mut(), &meta(&agent, 0, None));
        return Ok(resp);
    }
    match agent.consensus.propose(Command::Txn { ops }).await? {
        FsmResponse::Txn(resp) => Ok(respond(Ok(resp), opts.pretty)),
        FsmResponse::TxnFailed(errors) => Ok(respond(Err(errors), opts.pretty)),
        FsmResponse::Rejected(msg) => Err(ApiError::from_message(msg)),
        other => Err(ApiError::internal(format!(
            "unexpected FSM answer: {other:?}"
        ))),
    }
}
