//! `/v1/operator/raft/*` and `/v1/operator/autopilot/*`: the Raft configuration as
//! openraft knows it, peer removal, and the autopilot configuration (replicated,
//! with CAS) and health.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{delete, get, post};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::blocking::{Found, blocking};
use super::endpoint;
use super::error::{ApiError, ApiResult};
use super::query::QueryOptions;
use super::response::{json, json_status, json_with_meta};
use crate::acl::Access;
use crate::agent::{Agent, CONSUL_VERSION};
use crate::config::format_go_duration;
use crate::fsm::{Command, Response as FsmResponse};
use crate::raft::raft_id;
use crate::state::{Table, WatchKey};
use crate::structs::codec::null_default;
use crate::structs::decode;

const AUTOPILOT_DOC: &str = "autopilot-config";

pub fn router() -> Router<Arc<Agent>> {
    Router::new()
        .route(
            "/v1/operator/raft/configuration",
            endpoint(&["GET"], get(raft_configuration)),
        )
        .route(
            "/v1/operator/raft/peer",
            endpoint(&["DELETE"], delete(remove_peer)),
        )
        .route(
            "/v1/operator/raft/transfer-leader",
            endpoint(&["POST"], post(transfer_leader)),
        )
        .route(
            "/v1/operator/autopilot/configuration",
            endpoint(&["GET", "PUT"], get(get_autopilot).put(set_autopilot)),
        )
        .route(
            "/v1/operator/autopilot/health",
            endpoint(&["GET"], get(autopilot_health)),
        )
        .route(
            "/v1/operator/autopilot/state",
            endpoint(&["GET"], get(autopilot_state)),
        )
}

async fn raft_configuration(
    State(agent): State<Arc<Agent>>,
    opts: QueryOptions,
) -> ApiResult<Response> {
    agent.authorize(&opts.token, Access::OperatorRead)?;
    let leader = agent.consensus.leader();
    let servers: Vec<_> = agent
        .consensus
        .voters()
        .into_iter()
        .map(|n| {
            json!({
                "ID": n.node_id,
                "Node": n.name,
                "Address": n.addr,
                "Leader": leader.as_ref().is_some_and(|l| l.node_id == n.node_id),
                "ProtocolVersion": "3",
                "Voter": true,
                "LastIndex": agent.consensus.raft.metrics().borrow().last_applied.map_or(0, |l| l.index),
            })
        })
        .collect();
    let index = agent
        .consensus
        .raft
        .metrics()
        .borrow()
        .membership_config
        .log_id()
        .map_or(0, |l| l.index);
    Ok(json(
        &json!({ "Servers": servers, "Index": index }),
        opts.pretty,
    ))
}

async fn remove_peer(State(agent): State<Arc<Agent>>, opts: QueryOptions) -> ApiResult<Response> {
    agent.authorize(&opts.token, Access::OperatorWrite)?;
    let (by, value) = match (opts.params.get("id"), opts.params.get("address")) {
        (Some(id), _) if !id.is_empty() => ("id", id.to_string()),
        (_, Some(addr)) if !addr.is_empty() => ("address", addr.to_string()),
        _ => {
            return Err(ApiError::bad_request(
                "Must specify either ?id with the server's ID or ?address with IP:port of peer to remove",
            ));
        }
    };
    let voters = agent.consensus.voters();
    let Some(peer) = voters.iter().find(|n| {
        if by == "id" {
            n.node_id == value
        } else {
            n.addr == value
        }
    }) else {
        return Err(ApiError::internal(format!(
            "{by} {value:?} was not found in the Raft configuration"
        )));
    };
    let id = raft_id(&peer.node_id);
    let remove = std::collections::BTreeSet::from([id]);
    agent
        .consensus
        .raft
        .change_membership(openraft::ChangeMembers::RemoveVoters(remove), false)
        .await
        .map_err(|e| ApiError::internal(format!("failed to remove raft peer: {e}")))?;
    Ok(super::response::empty())
}

async fn transfer_leader(
    State(agent): State<Arc<Agent>>,
    opts: QueryOptions,
) -> ApiResult<Response> {
    agent.authorize(&opts.token, Access::OperatorWrite)?;
    let target = opts
        .params
        .get("id")
        .filter(|id| !id.is_empty())
        .map(crate::raft::raft_id);
    agent
        .consensus
        .transfer_leadership(target)
        .await
        .map_err(|e| ApiError::internal(format!("Failed to transfer leadership: {e}")))?;
    Ok(json(&serde_json::json!({ "Success": true }), opts.pretty))
}

/// The replicated autopilot configuration, in Consul's JSON shape.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AutopilotConfig {
    #[serde(default, deserialize_with = "null_default")]
    cleanup_dead_servers: bool,
    #[serde(default, deserialize_with = "null_default")]
    last_contact_threshold: String,
    #[serde(default, deserialize_with = "null_default")]
    max_trailing_logs: u64,
    #[serde(default, deserialize_with = "null_default")]
    min_quorum: u32,
    #[serde(default, deserialize_with = "null_default")]
    server_stabilization_time: String,
    #[serde(default, deserialize_with = "null_default")]
    redundancy_zone_tag: String,
    #[serde(default, deserialize_with = "null_default")]
    disable_upgrade_migration: bool,
    #[serde(default, deserialize_with = "null_default")]
    upgrade_version_tag: String,
    #[serde(default, deserialize_with = "null_default")]
    create_index: u64,
    #[serde(default, deserialize_with = "null_default")]
    modify_index: u64,
}

fn default_autopilot(agent: &Agent) -> AutopilotConfig {
    let a = &agent.config.autopilot;
    AutopilotConfig {
        cleanup_dead_servers: a.cleanup_dead_servers,
        last_contact_threshold: format_go_duration(a.last_contact_threshold),
        max_trailing_logs: a.max_trailing_logs,
        min_quorum: a.min_quorum,
        server_stabilization_time: format_go_duration(a.server_stabilization_time),
        redundancy_zone_tag: String::new(),
        disable_upgrade_migration: false,
        upgrade_version_tag: String::new(),
        create_index: 0,
        modify_index: 0,
    }
}

async fn get_autopilot(State(agent): State<Arc<Agent>>, opts: QueryOptions) -> ApiResult<Response> {
    agent.authorize(&opts.token, Access::OperatorRead)?;
    let ans = blocking(
        &agent,
        &opts,
        &[WatchKey::Table(Table::Autopilot)],
        false,
        |r| {
            let idx = r.table_index(&[Table::Autopilot])?;
            Ok(Found::new(idx, r.system::<AutopilotConfig>(AUTOPILOT_DOC)?))
        },
    )
    .await?;
    let conf = ans.value.unwrap_or_else(|| default_autopilot(&agent));
    Ok(json_with_meta(&conf, &ans.meta, opts.pretty))
}

async fn set_autopilot(
    State(agent): State<Arc<Agent>>,
    opts: QueryOptions,
    body: Bytes,
) -> ApiResult<Response> {
    agent.authorize(&opts.token, Access::OperatorWrite)?;
    let mut conf: AutopilotConfig = decode::from_slice(&body).map_err(ApiError::decode)?;
    let current = {
        let r = agent.store.read()?;
        let v = r.view();
        (
            v.system::<AutopilotConfig>(AUTOPILOT_DOC)?,
            v.table_index(&[Table::Autopilot])?,
        )
    };
    if let Some(cas) = opts.params.get("cas") {
        let cas: u64 = cas
            .parse()
            .map_err(|_| ApiError::bad_request(format!("Error parsing cas value: {cas:?}")))?;
        let current_index = current.0.as_ref().map_or(0, |c| c.modify_index);
        if cas != current_index {
            return Ok(json(&false, opts.pretty));
        }
    }
    // The stored document carries its own indexes: the next Raft index is not known
    // before the write, so the table index after it is used.
    conf.create_index = current.0.as_ref().map_or(current.1 + 1, |c| c.create_index);
    conf.modify_index = current.1 + 1;
    match agent
        .consensus
        .propose(Command::PutSystem {
            name: AUTOPILOT_DOC.into(),
            table: Table::Autopilot,
            doc: serde_json::to_value(&conf).map_err(|e| ApiError::internal(e.to_string()))?,
        })
        .await?
    {
        FsmResponse::Rejected(msg) => Err(ApiError::from_message(msg)),
        _ => Ok(json(&true, opts.pretty)),
    }
}

fn server_health(agent: &Agent) -> Vec<serde_json::Value> {
    let leader = agent.consensus.leader();
    let metrics = agent.consensus.raft.metrics();
    let m = metrics.borrow();
    agent
        .consensus
        .voters()
        .into_iter()
        .map(|n| {
            let is_leader = leader.as_ref().is_some_and(|l| l.node_id == n.node_id);
            json!({
                "ID": n.node_id,
                "Name": n.name,
                "Address": n.addr,
                "SerfStatus": "alive",
                "Version": CONSUL_VERSION,
                "Leader": is_leader,
                "LastContact": "0s",
                "LastTerm": m.current_term,
                "LastIndex": m.last_applied.map_or(0, |l| l.index),
                "Healthy": true,
                "Voter": true,
                "StableSince": "1970-01-01T00:00:00Z",
            })
        })
        .collect()
}

async fn autopilot_health(
    State(agent): State<Arc<Agent>>,
    opts: QueryOptions,
) -> ApiResult<Response> {
    agent.authorize(&opts.token, Access::OperatorRead)?;
    let servers = server_health(&agent);
    let voters = servers.len();
    let healthy = agent.consensus.leader().is_some();
    let body = json!({
        "Healthy": healthy,
        "FailureTolerance": voters.saturating_sub(1) / 2,
        "Servers": servers,
    });
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::TOO_MANY_REQUESTS
    };
    Ok(json_status(status, &body, opts.pretty))
}

async fn autopilot_state(
    State(agent): State<Arc<Agent>>,
    opts: QueryOptions,
) -> ApiResult<Response> {
    agent.authorize(&opts.token, Access::OperatorRead)?;
    let servers = server_health(&agent);
    let mut map = serde_json::Map::new();
    let mut voters = Vec::new();
    let mut leader_id = String::new();
    for s in &servers {
        let id = s["ID"].as_str().unwrap_or_default().to_string();
        if s["Leader"].as_bool() == Some(true) {
            leader_id = id.clone();
        }
        voters.push(id.clone());
        map.insert(
            id.clone(),
            json!({
                "ID": id,
                "Name": s["Name"],
                "Address": s["Address"],
                "NodeStatus": "alive",
                "Version": CONSUL_VERSION,
                "LastContact": "0s",
                "LastTerm": s["LastTerm"],
                "LastIndex": s["LastIndex"],
                "Healthy": true,
                "StableSince": s["StableSince"],
                "ReadReplica": false,
                "Status": if s["Leader"].as_bool() == Some(true) { "leader" } else { "voter" },
                "Meta": { "consul-network-segment": "" },
                "NodeType": "voter",
            }),
        );
    }
    let n = voters.len();
    Ok(json(
        &json!({
            "Healthy": agent.consensus.leader().is_some(),
            "FailureTolerance": n.saturating_sub(1) / 2,
            "OptimisticFailureTolerance": n.saturating_sub(1) / 2,
            "Servers": map,
            "Leader": leader_id,
            "Voters": voters,
        }),
        opts.pretty,
    ))
}
