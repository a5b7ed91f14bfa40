//! `/v1/agent/...` endpoints served from the agent's own state.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use serde_json::json;

use super::{Agent, CONCORD_VERSION, CONSUL_VERSION};
use crate::acl::Access;
use crate::http::endpoint;
use crate::http::error::ApiResult;
use crate::http::query::QueryOptions;
use crate::http::response::json;

pub fn router() -> Router<Arc<Agent>> {
    Router::new()
        .route("/v1/agent/self", endpoint(&["GET"], get(agent_self)))
        .route("/v1/agent/members", endpoint(&["GET"], get(members)))
}

/// This agent as a gossip member (`serf.Member` JSON).
pub fn member(agent: &Agent) -> serde_json::Value {
    let mut tags = serde_json::Map::new();
    for (k, v) in [
        ("dc", agent.config.datacenter.clone()),
        ("id", agent.node_id().to_string()),
        ("port", agent.config.ports.server.to_string()),
        ("role", if agent.config.server { "consul" } else { "node" }.to_string()),
        ("segment", String::new()),
        ("vsn", "2".to_string()),
        ("vsn_min", "2".to_string()),
        ("vsn_max", "3".to_string()),
        ("build", format!("{CONSUL_VERSION}:concord-{CONCORD_VERSION}")),
        ("raft_vsn", "3".to_string()),
    ] {
        tags.insert(k.to_string(), json!(v));
    }
    if agent.config.server && agent.config.bootstrap {
        tags.insert("bootstrap".into(), json!("1"));
    }
    json!({
        "Name": agent.node_name(),
        "Addr": agent.advertise.to_string(),
        "Port": agent.config.ports.serf_lan,
        "Tags": tags,
        "Status": 1,
        "ProtocolMin": 1,
        "ProtocolMax": 5,
        "ProtocolCur": 2,
        "DelegateMin": 2,
        "DelegateMax": 5,
        "DelegateCur": 4,
    })
}

async fn agent_self(State(agent): State<Arc<Agent>>, opts: QueryOptions) -> ApiResult<Response> {
    agent.authorize(&opts.token, Access::AgentRead)?;
    let cfg = &agent.config;
    let body = json!({
        "Config": {
            "Datacenter": cfg.datacenter,
            "PrimaryDatacenter": cfg.primary_datacenter,
            "NodeName": agent.node_name(),
            "NodeID": agent.node_id(),
            "Revision": "concord",
            "Server": cfg.server,
            "Version": CONSUL_VERSION,
            "BuildDate": "1970-01-01T00:00:00Z",
        },
        "DebugConfig": {
            "Datacenter": cfg.datacenter,
            "NodeName": agent.node_name(),
            "NodeID": agent.node_id(),
            "ServerMode": cfg.server,
            "DevMode": cfg.dev,
            "DataDir": cfg.data_dir.as_ref().map(|d| d.display().to_string()).unwrap_or_default(),
            "SerfAdvertiseAddrLAN": format!("tcp://{}", agent.serf_lan_addr()),
            "RPCAdvertiseAddr": format!("tcp://{}", agent.server_rpc_addr()),
            "Bootstrap": cfg.bootstrap,
            "BootstrapExpect": cfg.bootstrap_expect,
            "ACLsEnabled": cfg.acl.enabled,
            "Version": CONSUL_VERSION,
        },
        "Coord": null,
        "Member": member(&agent),
        "Stats": {
            "agent": { "check_monitors": "0", "check_ttls": "0", "checks": "0", "services": "0" },
            "build": { "prerelease": "", "revision": "concord", "version": CONSUL_VERSION, "version_metadata": "" },
            "raft": {
                "state": if agent.consensus.is_leader() { "Leader" } else { "Follower" },
            },
            "runtime": { "arch": std::env::consts::ARCH, "os": std::env::consts::OS, "version": format!("concord {CONCORD_VERSION}") },
        },
        "Meta": cfg.node_meta,
        "xDS": null,
    });
    Ok(json(&body, opts.pretty))
}

async fn members(State(agent): State<Arc<Agent>>, opts: QueryOptions) -> ApiResult<Response> {
    agent.authorize(&opts.token, Access::AgentRead)?;
    let list = opts.apply_filter(vec![member(&agent)])?;
    Ok(json(&list, opts.pretty))
}
