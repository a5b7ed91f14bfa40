//! `/v1/agent/...`: the agent's own services and checks, maintenance, TTL updates,
//! agent health by service, self/members/host/version/metrics, reload, tokens.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use serde::Deserialize;
use serde_json::json;

use super::definition::{agent_service, build_check};
use super::local::{LocalError, Source, aggregate_status};
use super::{Agent, CONCORD_VERSION, CONSUL_VERSION};
use crate::acl::Access;
use crate::http::blocking::wait_budget;
use crate::http::endpoint;
use crate::http::error::{ApiError, ApiResult};
use crate::http::health::parse_go_bool;
use crate::http::query::QueryOptions;
use crate::http::response::{empty, json, json_status};
use crate::structs::codec::null_default;
use crate::structs::{
    AgentService, CheckDefinition, HEALTH_CRITICAL, HEALTH_PASSING, HEALTH_WARNING, HealthCheck,
    ServiceDefinition, decode,
};

pub fn router() -> Router<Arc<Agent>> {
    Router::new()
        .route("/v1/agent/self", endpoint(&["GET"], get(agent_self)))
        .route("/v1/agent/members", endpoint(&["GET"], get(members)))
        .route("/v1/agent/services", endpoint(&["GET"], get(services)))
        .route("/v1/agent/service/{*id}", endpoint(&["GET"], get(service)))
        .route("/v1/agent/checks", endpoint(&["GET"], get(checks)))
        .route(
            "/v1/agent/service/register",
            endpoint(&["PUT"], put(register_service)),
        )
        .route(
            "/v1/agent/service/deregister/{*id}",
            endpoint(&["PUT"], put(deregister_service)),
        )
        .route(
            "/v1/agent/service/maintenance/{*id}",
            endpoint(&["PUT"], put(service_maintenance)),
        )
        .route(
            "/v1/agent/maintenance",
            endpoint(&["PUT"], put(node_maintenance)),
        )
        .route(
            "/v1/agent/check/register",
            endpoint(&["PUT"], put(register_check)),
        )
        .route(
            "/v1/agent/check/deregister/{*id}",
            endpoint(&["PUT"], put(deregister_check)),
        )
        .route(
            "/v1/agent/check/pass/{*id}",
            endpoint(&["PUT"], put(check_pass)),
        )
        .route(
            "/v1/agent/check/warn/{*id}",
            endpoint(&["PUT"], put(check_warn)),
        )
        .route(
            "/v1/agent/check/fail/{*id}",
            endpoint(&["PUT"], put(check_fail)),
        )
        .route(
            "/v1/agent/check/update/{*id}",
            endpoint(&["PUT"], put(check_update)),
        )
        .route(
            "/v1/agent/health/service/id/{*id}",
            endpoint(&["GET"], get(health_by_id)),
        )
        .route(
            "/v1/agent/health/service/name/{*name}",
            endpoint(&["GET"], get(health_by_name)),
        )
        .route("/v1/agent/reload", endpoint(&["PUT"], put(reload)))
        .route("/v1/agent/token/{kind}", endpoint(&["PUT"], put(token)))
        .route("/v1/agent/host", endpoint(&["GET"], get(host)))
        .route("/v1/agent/version", endpoint(&["GET"], get(version)))
        .route(
            "/v1/agent/metrics",
            endpoint(&["GET"], get(super::metrics::handler)),
        )
        .route("/v1/agent/join/{addr}", endpoint(&["PUT"], put(join)))
        .route("/v1/agent/leave", endpoint(&["PUT"], put(leave)))
        .route(
            "/v1/agent/force-leave/{node}",
            endpoint(&["PUT"], put(force_leave)),
        )
}

impl From<LocalError> for ApiError {
    fn from(e: LocalError) -> Self {
        match e {
            LocalError::BadRequest(m) => ApiError::bad_request(m),
            LocalError::NotFound(m) => ApiError::not_found(m),
            LocalError::Internal(m) => ApiError::internal(m),
        }
    }
}

/// This agent as a gossip member (`serf.Member` JSON): from the pool when gossip
/// runs, else as it would be gossiped.
pub fn member(agent: &Agent) -> serde_json::Value {
    use crate::gossip::{Member, MemberStatus};
    let me = agent
        .gossip
        .as_ref()
        .and_then(|g| {
            g.members()
                .into_iter()
                .find(|m| m.name == agent.node_name())
        })
        .unwrap_or_else(|| {
            Member::new(
                agent.node_name(),
                agent.serf_lan_addr(),
                super::cluster::member_tags(&agent.config, agent.node_id()),
                MemberStatus::Alive,
            )
        });
    super::cluster::member_json(&me)
}

async fn agent_self(State(agent): State<Arc<Agent>>, opts: QueryOptions) -> ApiResult<Response> {
    agent.authorize(&opts.token, Access::AgentRead)?;
    let cfg = &agent.config;
    let raft = crate::raft::RaftTimings::scaled(cfg.raft_multiplier);
    let dur = crate::config::format_go_duration;
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
            "ConsulRaftElectionTimeout": dur(raft.election_timeout),
            "ConsulRaftHeartbeatTimeout": dur(raft.heartbeat_timeout),
            "ConsulRaftLeaderLeaseTimeout": dur(raft.leader_lease_timeout),
            "ACLsEnabled": cfg.acl.enabled,
            "EnableScriptChecks": cfg.enable_script_checks,
            "EnableLocalScriptChecks": cfg.enable_local_script_checks,
            "Version": CONSUL_VERSION,
        },
        "Coord": null,
        "Member": member(&agent),
        "Stats": super::stats::stats(&agent),
        "Meta": cfg.node_meta,
        // Consul sends `xDS` only when its xDS server runs; concord has none.
    });
    Ok(json(&body, opts.pretty))
}

/// Consul's agent endpoints take `?wan` as set only when it has a value.
fn wan_param(opts: &QueryOptions) -> bool {
    opts.params.get("wan").is_some_and(|v| !v.is_empty())
}

async fn members(State(agent): State<Arc<Agent>>, opts: QueryOptions) -> ApiResult<Response> {
    agent.authorize(&opts.token, Access::AgentRead)?;
    let wan = wan_param(&opts);
    if wan
        && let Some(seg) = opts.params.get("segment")
        && !seg.is_empty()
        && seg != "_all"
    {
        return Err(ApiError::bad_request(
            "Cannot provide a segment with wan=true",
        ));
    }
    let members = match (&agent.gossip, &agent.wan) {
        // Client agents (and servers with the WAN pool off) have no WAN
        // members: Consul answers `null`.
        (_, None) if wan => return Ok(json(&serde_json::Value::Null, opts.pretty)),
        (_, Some(pool)) if wan => pool
            .members()
            .iter()
            .map(super::cluster::member_json)
            .collect(),
        (Some(gossip), _) => gossip
            .members()
            .iter()
            .filter(|m| {
                // Consul lists the agent's own segment; without segments, all.
                m.tags.get("dc") == Some(&agent.config.datacenter)
            })
            .map(super::cluster::member_json)
            .collect(),
        (None, _) => vec![member(&agent)],
    };
    let list = opts.apply_filter(members)?;
    Ok(json(&list, opts.pretty))
}

fn agent_services(agent: &Agent) -> Vec<AgentService> {
    agent
        .local
        .services()
        .iter()
        .map(|s| agent_service(agent, s))
        .collect()
}

async fn services(State(agent): State<Arc<Agent>>, opts: QueryOptions) -> ApiResult<Response> {
    agent.authorize(&opts.token, Access::ServiceRead(""))?;
    let list = opts.apply_filter(agent_services(&agent))?;
    let map: BTreeMap<String, AgentService> = list.into_iter().map(|s| (s.id.clone(), s)).collect();
    Ok(json(&map, opts.pretty))
}

/// A stable 64-bit FNV-1a of the answer's JSON, printed as 16 hex digits.
fn content_hash(svc: &AgentService) -> String {
    let bytes = serde_json::to_vec(svc).unwrap_or_default();
    let h = bytes.iter().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ *b as u64).wrapping_mul(0x100000001b3)
    });
    format!("{h:016x}")
}

async fn service(
    State(agent): State<Arc<Agent>>,
    Path(id): Path<String>,
    opts: QueryOptions,
) -> ApiResult<Response> {
    agent.authorize(&opts.token, Access::ServiceRead(&id))?;
    let current = || -> ApiResult<AgentService> {
        let svc = agent
            .local
            .service(&id)
            .ok_or_else(|| ApiError::not_found(format!("unknown service ID: {id}")))?;
        let mut out = agent_service(&agent, &svc);
        out.content_hash = Some(content_hash(&out));
        Ok(out)
    };
    let mut out = current()?;
    // Hash-based blocking: wait while the answer still hashes to `?hash`.
    if let Some(hash) = opts.params.get("hash").filter(|h| !h.is_empty()) {
        let deadline = tokio::time::Instant::now() + wait_budget(&agent, opts.wait);
        let mut changes = agent.local.subscribe();
        while out.content_hash.as_deref() == Some(hash) {
            if tokio::time::timeout_at(deadline, changes.changed())
                .await
                .is_err()
            {
                break;
            }
            out = current()?;
        }
    }
    let mut r = json(&out, opts.pretty);
    if let Some(h) = out
        .content_hash
        .as_deref()
        .and_then(|h| HeaderValue::from_str(h).ok())
    {
        r.headers_mut().insert("X-Consul-ContentHash", h);
    }
    Ok(r)
}

async fn checks(State(agent): State<Arc<Agent>>, opts: QueryOptions) -> ApiResult<Response> {
    agent.authorize(&opts.token, Access::NodeRead(agent.node_name()))?;
    let list = opts.apply_filter(agent.local.checks())?;
    let map: BTreeMap<String, HealthCheck> =
        list.into_iter().map(|c| (c.check_id.clone(), c)).collect();
    Ok(json(&map, opts.pretty))
}

async fn register_service(
    State(agent): State<Arc<Agent>>,
    opts: QueryOptions,
    body: Bytes,
) -> ApiResult<Response> {
    let def: ServiceDefinition = decode::from_slice(&body).map_err(ApiError::decode)?;
    agent.authorize(&opts.token, Access::ServiceWrite(&def.name))?;
    let replace = match opts.params.get("replace-existing-checks") {
        None => false,
        Some("") => true,
        Some(v) => parse_go_bool(v).unwrap_or(false),
    };
    agent.local.add_service(&agent, def, replace, Source::Api)?;
    super::sync::sync_now(&agent).await;
    Ok(empty())
}

async fn deregister_service(
    State(agent): State<Arc<Agent>>,
    Path(id): Path<String>,
    opts: QueryOptions,
) -> ApiResult<Response> {
    agent.authorize(&opts.token, Access::ServiceWrite(&id))?;
    agent.local.remove_service(&id)?;
    super::sync::sync_now(&agent).await;
    Ok(empty())
}

fn enable_param(opts: &QueryOptions) -> ApiResult<bool> {
    match opts.params.get("enable") {
        None | Some("") => Err(ApiError::bad_request("Missing value for enable")),
        Some(v) => parse_go_bool(v)
            .ok_or_else(|| ApiError::bad_request(format!("Invalid value for enable: {v:?}"))),
    }
}

async fn service_maintenance(
    State(agent): State<Arc<Agent>>,
    Path(id): Path<String>,
    opts: QueryOptions,
) -> ApiResult<Response> {
    agent.authorize(&opts.token, Access::ServiceWrite(&id))?;
    let enable = enable_param(&opts)?;
    let reason = opts.params.get("reason").unwrap_or("");
    agent
        .local
        .service_maintenance(&agent, &id, enable, reason)?;
    super::sync::sync_now(&agent).await;
    Ok(empty())
}

async fn node_maintenance(
    State(agent): State<Arc<Agent>>,
    opts: QueryOptions,
) -> ApiResult<Response> {
    agent.authorize(&opts.token, Access::NodeWrite(agent.node_name()))?;
    let enable = enable_param(&opts)?;
    let reason = opts.params.get("reason").unwrap_or("");
    agent.local.node_maintenance(&agent, enable, reason)?;
    super::sync::sync_now(&agent).await;
    Ok(empty())
}

async fn register_check(
    State(agent): State<Arc<Agent>>,
    opts: QueryOptions,
    body: Bytes,
) -> ApiResult<Response> {
    let def: CheckDefinition = decode::from_slice(&body).map_err(ApiError::decode)?;
    agent.authorize(&opts.token, Access::NodeWrite(agent.node_name()))?;
    if def.name.is_empty() {
        return Err(ApiError::bad_request("Missing check name"));
    }
    let check = build_check(
        &agent,
        &def,
        Source::Api,
        def.name.clone(),
        def.name.clone(),
    )?;
    agent.local.add_check(&agent, check, def, Source::Api)?;
    super::sync::sync_now(&agent).await;
    Ok(empty())
}

async fn deregister_check(
    State(agent): State<Arc<Agent>>,
    Path(id): Path<String>,
    opts: QueryOptions,
) -> ApiResult<Response> {
    agent.authorize(&opts.token, Access::NodeWrite(agent.node_name()))?;
    agent.local.remove_check(&id)?;
    super::sync::sync_now(&agent).await;
    Ok(empty())
}

async fn ttl_update(
    agent: &Agent,
    opts: &QueryOptions,
    id: &str,
    status: &str,
    output: &str,
) -> ApiResult<Response> {
    agent.authorize(&opts.token, Access::NodeWrite(agent.node_name()))?;
    agent
        .local
        .update_ttl(id, status, output, agent.config.check_output_max_size)?;
    super::sync::sync_now(agent).await;
    Ok(empty())
}

async fn check_pass(
    State(agent): State<Arc<Agent>>,
    Path(id): Path<String>,
    opts: QueryOptions,
) -> ApiResult<Response> {
    let note = opts.params.get("note").unwrap_or("").to_string();
    ttl_update(&agent, &opts, &id, HEALTH_PASSING, &note).await
}

async fn check_warn(
    State(agent): State<Arc<Agent>>,
    Path(id): Path<String>,
    opts: QueryOptions,
) -> ApiResult<Response> {
    let note = opts.params.get("note").unwrap_or("").to_string();
    ttl_update(&agent, &opts, &id, HEALTH_WARNING, &note).await
}

async fn check_fail(
    State(agent): State<Arc<Agent>>,
    Path(id): Path<String>,
    opts: QueryOptions,
) -> ApiResult<Response> {
    let note = opts.params.get("note").unwrap_or("").to_string();
    ttl_update(&agent, &opts, &id, HEALTH_CRITICAL, &note).await
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct CheckUpdate {
    #[serde(default, deserialize_with = "null_default")]
    status: String,
    #[serde(default, deserialize_with = "null_default")]
    output: String,
}

async fn check_update(
    State(agent): State<Arc<Agent>>,
    Path(id): Path<String>,
    opts: QueryOptions,
    body: Bytes,
) -> ApiResult<Response> {
    let u: CheckUpdate = decode::from_slice(&body).map_err(ApiError::decode)?;
    if !crate::structs::is_valid_status(&u.status) {
        return Err(ApiError::bad_request(format!(
            "Invalid check status: '{}'",
            u.status
        )));
    }
    ttl_update(&agent, &opts, &id, &u.status, &u.output).await
}

fn wants_text(opts: &QueryOptions, headers: &HeaderMap) -> bool {
    opts.params.get("format") == Some("text")
        || headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/plain"))
}

fn health_code(status: &str) -> StatusCode {
    match status {
        HEALTH_PASSING => StatusCode::OK,
        HEALTH_WARNING => StatusCode::TOO_MANY_REQUESTS,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    }
}

fn service_health(agent: &Agent, id: &str) -> Option<(&'static str, serde_json::Value)> {
    let svc = agent.local.service(id)?;
    let checks: Vec<HealthCheck> = agent
        .local
        .checks()
        .into_iter()
        .filter(|c| c.service_id == id || c.service_id.is_empty())
        .collect();
    let status = aggregate_status(checks.iter().map(|c| c.status.as_str()));
    Some((
        status,
        json!({ "AggregatedStatus": status, "Service": agent_service(agent, &svc), "Checks": checks }),
    ))
}

fn text_or_json(
    status: StatusCode,
    text: &str,
    body: &serde_json::Value,
    as_text: bool,
    pretty: bool,
) -> Response {
    if as_text {
        let mut r = (status, text.to_string()).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        r
    } else {
        json_status(status, body, pretty)
    }
}

async fn health_by_id(
    State(agent): State<Arc<Agent>>,
    Path(id): Path<String>,
    opts: QueryOptions,
    headers: HeaderMap,
) -> ApiResult<Response> {
    agent.authorize(&opts.token, Access::ServiceRead(&id))?;
    let as_text = wants_text(&opts, &headers);
    match service_health(&agent, &id) {
        Some((status, body)) => Ok(text_or_json(
            health_code(status),
            status,
            &body,
            as_text,
            opts.pretty,
        )),
        None => {
            let body =
                json!({ "AggregatedStatus": HEALTH_CRITICAL, "Service": null, "Checks": null });
            let text = format!("ServiceId {id} not found");
            Ok(text_or_json(
                StatusCode::NOT_FOUND,
                &text,
                &body,
                as_text,
                opts.pretty,
            ))
        }
    }
}

async fn health_by_name(
    State(agent): State<Arc<Agent>>,
    Path(name): Path<String>,
    opts: QueryOptions,
    headers: HeaderMap,
) -> ApiResult<Response> {
    agent.authorize(&opts.token, Access::ServiceRead(&name))?;
    let as_text = wants_text(&opts, &headers);
    let mut statuses = Vec::new();
    let mut bodies = Vec::new();
    for svc in agent.local.services().iter().filter(|s| s.service == name) {
        if let Some((status, body)) = service_health(&agent, &svc.id) {
            statuses.push(status);
            bodies.push(body);
        }
    }
    if bodies.is_empty() {
        let text = format!("ServiceName {name} Not Found");
        return Ok(text_or_json(
            StatusCode::NOT_FOUND,
            &text,
            &json!([]),
            as_text,
            opts.pretty,
        ));
    }
    let worst = aggregate_status(statuses.into_iter());
    Ok(text_or_json(
        health_code(worst),
        worst,
        &json!(bodies),
        as_text,
        opts.pretty,
    ))
}

async fn reload(State(agent): State<Arc<Agent>>, opts: QueryOptions) -> ApiResult<Response> {
    agent.authorize(&opts.token, Access::AgentWrite)?;
    super::reload(&agent)
        .map_err(|e| ApiError::internal(format!("Failed to reload configs: {e}")))?;
    Ok(empty())
}

async fn token(
    State(agent): State<Arc<Agent>>,
    Path(_kind): Path<String>,
    opts: QueryOptions,
) -> ApiResult<Response> {
    agent.authorize(&opts.token, Access::AgentWrite)?;
    if !agent.config.acl.enabled {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "ACL support disabled",
        ));
    }
    Err(ApiError::internal(
        "ACL token updates are not supported yet",
    ))
}

async fn host(State(agent): State<Arc<Agent>>, opts: QueryOptions) -> ApiResult<Response> {
    agent.authorize(&opts.token, Access::OperatorRead)?;
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let mem_total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .unwrap_or(0)
        * 1024;
    let now = time::OffsetDateTime::now_utc();
    let body = json!({
        "Memory": { "total": mem_total },
        "CPU": [{ "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) }],
        "Host": { "hostname": hostname.trim(), "os": std::env::consts::OS, "kernelArch": std::env::consts::ARCH },
        "Disk": {},
        "CollectionTime": now.unix_timestamp_nanos() as i64,
        "Errors": null,
    });
    Ok(json(&body, opts.pretty))
}

async fn version(State(agent): State<Arc<Agent>>, opts: QueryOptions) -> ApiResult<Response> {
    let _ = &agent;
    Ok(json(
        &json!({
            "SHA": "",
            "BuildDate": "1970-01-01T00:00:00Z",
            "HumanVersion": format!("Consul v{CONSUL_VERSION} (concord {CONCORD_VERSION})"),
            "FIPS": "",
        }),
        opts.pretty,
    ))
}

async fn join(
    State(agent): State<Arc<Agent>>,
    Path(addr): Path<String>,
    opts: QueryOptions,
) -> ApiResult<Response> {
    agent.authorize(&opts.token, Access::AgentWrite)?;
    let (pool, port) = if wan_param(&opts) {
        let Some(wan) = &agent.wan else {
            return Err(ApiError::internal(if agent.config.server {
                "WAN Federation is disabled"
            } else {
                "Must be a server to join WAN cluster"
            }));
        };
        (wan, agent.config.ports.serf_wan)
    } else {
        let Some(gossip) = &agent.gossip else {
            return Err(ApiError::internal(
                "Gossip is disabled on this agent (ports.serf_lan = -1)",
            ));
        };
        (gossip, agent.config.ports.serf_lan)
    };
    let (addrs, unresolved) =
        super::cluster::resolve_join_addrs(std::slice::from_ref(&addr), port.max(0) as u16).await;
    pool.join_reporting(&addrs, unresolved)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(empty())
}

async fn leave(State(agent): State<Arc<Agent>>, opts: QueryOptions) -> ApiResult<Response> {
    agent.authorize(&opts.token, Access::AgentWrite)?;
    // A server leaves the WAN first, as Consul's does, so other datacenters
    // stop routing to it before its own datacenter sees it go.
    if let Some(wan) = &agent.wan {
        wan.leave()
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?;
    }
    if let Some(gossip) = &agent.gossip {
        gossip
            .leave()
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?;
    }
    let a = agent.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        a.shutdown.cancel();
    });
    Ok(empty())
}

async fn force_leave(
    State(agent): State<Arc<Agent>>,
    Path(node): Path<String>,
    opts: QueryOptions,
) -> ApiResult<Response> {
    agent.authorize(&opts.token, Access::OperatorWrite)?;
    let prune = opts.params.has("prune");
    // Unlike join and members, force-leave takes `?wan` as set whenever present.
    if opts.params.has("wan") {
        if !agent.config.server {
            return Err(ApiError::internal(
                "Must be a server to force-leave a node from the WAN cluster",
            ));
        }
        // Consul names no node in this message when the WAN pool lacks it.
        return remove_failed(&[(agent.wan.as_ref(), "WAN", &node)], "", prune);
    }
    // A server also removes the node's WAN member (`<node>.<dc>`), as Consul's does.
    let suffix = format!(".{}", agent.config.datacenter);
    let wan_name = if node.ends_with(&suffix) {
        node.clone()
    } else {
        format!("{node}{suffix}")
    };
    let pools = [
        (agent.gossip.as_ref(), "LAN", &node),
        (agent.wan.as_ref(), "WAN", &wan_name),
    ];
    if agent.gossip.is_none() && node == agent.node_name() {
        return Ok(empty());
    }
    remove_failed(&pools, &node, prune)
}

/// Force-leaves `name` from every pool that has it; fails when none does.
fn remove_failed(
    pools: &[(Option<&crate::gossip::Gossip>, &str, &String)],
    node: &str,
    prune: bool,
) -> ApiResult<Response> {
    let mut found = false;
    let mut errors = Vec::new();
    for (pool, label, name) in pools {
        let Some(pool) = pool else { continue };
        match pool.force_leave(name, prune) {
            Ok(()) => found = true,
            Err(crate::gossip::GossipError::NoSuchNode(_)) => {}
            Err(e) => errors.push(format!("could not remove failed node from {label}: {e}")),
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::internal(crate::gossip::multi_error(&errors)));
    }
    if !found {
        return Err(ApiError::internal(format!(
            "agent: No node found with name '{node}'"
        )));
    }
    Ok(empty())
}
