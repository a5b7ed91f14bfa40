//! `/v1/operator/raft/*` and `/v1/operator/autopilot/*`: the Raft configuration as
//! openraft knows it, peer removal, and the autopilot configuration (replicated,
//! with CAS), health and state as [`crate::agent::autopilot`] computes them.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{delete, get, post};
use serde_json::json;

use super::blocking::{Found, blocking};
use super::endpoint;
use super::error::{ApiError, ApiResult};
use super::query::QueryOptions;
use super::response::{json, json_status, json_with_meta};
use crate::acl::Access;
use crate::agent::Agent;
use crate::agent::autopilot::{self, AUTOPILOT_DOC, AutopilotConfig, ServerHealth};
use crate::config::duration::{format_go_duration, parse_go_duration};
use crate::fsm::{Command, Response as FsmResponse};
use crate::raft::raft_id;
use crate::state::{Table, WatchKey};
use crate::structs::decode;

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
    let conf = ans
        .value
        .unwrap_or_else(|| AutopilotConfig::from_agent(&agent));
    Ok(json_with_meta(&conf, &ans.meta, opts.pretty))
}

async fn set_autopilot(
    State(agent): State<Arc<Agent>>,
    opts: QueryOptions,
    body: Bytes,
) -> ApiResult<Response> {
    agent.authorize(&opts.token, Access::OperatorWrite)?;
    let mut conf: AutopilotConfig = decode::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("Error parsing autopilot config: {e}")))?;
    // Durations are stored as Consul renders them: an absent one is zero ("0s").
    for d in [
        &mut conf.last_contact_threshold,
        &mut conf.server_stabilization_time,
    ] {
        let parsed = if d.is_empty() {
            Ok(std::time::Duration::ZERO)
        } else {
            parse_go_duration(d)
        };
        *d =
            format_go_duration(parsed.map_err(|e| {
                ApiError::bad_request(format!("Error parsing autopilot config: {e}"))
            })?);
    }
    let cas = match opts.params.get("cas") {
        Some(cas) => Some(
            cas.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("Error parsing cas value: {cas:?}")))?,
        ),
        None => None,
    };
    match agent
        .consensus
        .propose(Command::PutConfig {
            name: AUTOPILOT_DOC.into(),
            table: Table::Autopilot,
            doc: serde_json::to_value(&conf).map_err(|e| ApiError::internal(e.to_string()))?,
            cas,
        })
        .await?
    {
        FsmResponse::Bool(stored) => Ok(json(&stored, opts.pretty)),
        FsmResponse::Rejected(msg) => Err(ApiError::from_message(msg)),
        other => Err(ApiError::internal(format!("unexpected answer: {other:?}"))),
    }
}

/// One server in `/v1/operator/autopilot/health`'s shape.
fn server_json(s: &ServerHealth) -> serde_json::Value {
    json!({
        "ID": s.id,
        "Name": s.name,
        "Address": s.address,
        "SerfStatus": s.serf_status,
        "Version": s.version,
        "Leader": s.leader,
        "LastContact": s.last_contact_text(),
        "LastTerm": s.last_term,
        "LastIndex": s.last_index,
        "Healthy": s.healthy,
        "Voter": s.voter,
        "StableSince": s.stable_since_text(),
    })
}

async fn autopilot_health(
    State(agent): State<Arc<Agent>>,
    opts: QueryOptions,
) -> ApiResult<Response> {
    agent.authorize(&opts.token, Access::OperatorRead)?;
    let health = autopilot::health(&agent);
    let body = json!({
        "Healthy": health.healthy,
        "FailureTolerance": health.failure_tolerance,
        "Servers": health.servers.iter().map(server_json).collect::<Vec<_>>(),
    });
    // Consul answers 429 while any server is unhealthy, so a load balancer or a
    // script can tell without reading the body.
    let status = if health.healthy {
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
    let health = autopilot::health(&agent);
    let mut map = serde_json::Map::new();
    let mut voters = Vec::new();
    let mut leader_id = String::new();
    for s in &health.servers {
        if s.leader {
            leader_id = s.id.clone();
        }
        if s.voter {
            voters.push(s.id.clone());
        }
        let status = match (s.leader, s.voter) {
            (true, _) => "leader",
            (false, true) => "voter",
            (false, false) => "non-voter",
        };
        map.insert(
            s.id.clone(),
            json!({
                "ID": s.id,
                "Name": s.name,
                "Address": s.address,
                "NodeStatus": s.serf_status,
                "Version": s.version,
                "LastContact": s.last_contact_text(),
                "LastTerm": s.last_term,
                "LastIndex": s.last_index,
                "Healthy": s.healthy,
                "StableSince": s.stable_since_text(),
                "ReadReplica": false,
                "Status": status,
                "Meta": { "consul-network-segment": "" },
                "NodeType": "voter",
            }),
        );
    }
    Ok(json(
        &json!({
            "Healthy": health.healthy,
            "FailureTolerance": health.failure_tolerance,
            // Without Consul Enterprise's features the two are the same.
            "OptimisticFailureTolerance": health.failure_tolerance,
            "Servers": map,
            "Leader": leader_id,
            "Voters": voters,
        }),
        opts.pretty,
    ))
}
