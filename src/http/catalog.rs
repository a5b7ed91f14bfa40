//! `/v1/catalog/...`: register/deregister, datacenters, nodes, services, service
//! instances, a node's services.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, put};

use super::blocking::{Found, blocking, blocking_shared};
use super::endpoint;
use super::error::{ApiError, ApiResult};
use super::query::QueryOptions;
use super::response::{json, json_bytes, json_with_meta, rendered_with_meta};
use crate::acl::Access;
use crate::agent::Agent;
use crate::fsm::{Command, Registration, Response as FsmResponse};
use crate::state::{Table, WatchKey, schema::lower};
use crate::structs::{
    DeregisterRequest, Node, NodeService, NodeServices, RegisterRequest, ServiceNode, decode,
};

pub fn router() -> Router<Arc<Agent>> {
    Router::new()
        .route("/v1/catalog/register", endpoint(&["PUT"], put(register)))
        .route(
            "/v1/catalog/deregister",
            endpoint(&["PUT"], put(deregister)),
        )
        .route(
            "/v1/catalog/datacenters",
            endpoint(&["GET"], get(datacenters)),
        )
        .route("/v1/catalog/nodes", endpoint(&["GET"], get(nodes)))
        .route("/v1/catalog/services", endpoint(&["GET"], get(services)))
        .route(
            "/v1/catalog/service/{name}",
            endpoint(&["GET"], get(service)),
        )
        .route(
            "/v1/catalog/connect/{name}",
            endpoint(&["GET"], get(connect)),
        )
        .route("/v1/catalog/node/{node}", endpoint(&["GET"], get(node)))
        .route(
            "/v1/catalog/node-services/{node}",
            endpoint(&["GET"], get(node_services)),
        )
}

/// `?node-meta=k:v` pairs must all match.
pub fn node_meta_matches(node: &Node, wanted: &[(String, String)]) -> bool {
    wanted
        .iter()
        .all(|(k, v)| node.meta.get(k).is_some_and(|have| have == v))
}

/// `?tag=` values must all be present, compared case-insensitively.
pub fn tags_match(tags: &[String], wanted: &[String]) -> bool {
    wanted
        .iter()
        .all(|w| tags.iter().any(|t| t.eq_ignore_ascii_case(w)))
}

async fn propose(agent: &Agent, cmd: Command) -> ApiResult<()> {
    match agent.consensus.propose(cmd).await? {
        FsmResponse::Rejected(msg) => Err(ApiError::from_message(msg)),
        _ => Ok(()),
    }
}

async fn register(
    State(agent): State<Arc<Agent>>,
    opts: QueryOptions,
    body: Bytes,
) -> ApiResult<Response> {
    let req: RegisterRequest = decode::from_slice(&body).map_err(ApiError::decode)?;
    if req.node.is_empty() {
        return Err(ApiError::bad_request("Invalid request: Missing node name"));
    }
    if req.address.is_empty() && !req.skip_node_update {
        return Err(ApiError::bad_request(
            "Invalid request: Missing node address",
        ));
    }
    agent.authorize(&opts.token, Access::NodeWrite(&req.node))?;
    let node = Node {
        id: req.id,
        node: req.node.clone(),
        address: req.address,
        // A body naming another datacenter was routed there (`body_dc`).
        datacenter: agent.config.datacenter.clone(),
        tagged_addresses: req.tagged_addresses,
        meta: req.node_meta,
        locality: req.locality.filter(|l| !l.is_null()),
        create_index: 0,
        modify_index: 0,
    };
    let service: Option<NodeService> = match req.service {
        Some(s) => {
            if s.service.is_empty() {
                return Err(ApiError::bad_request(
                    "Invalid request: Missing service name",
                ));
            }
            agent.authorize(&opts.token, Access::ServiceWrite(&s.service))?;
            Some(s.into_node_service())
        }
        None => None,
    };
    let mut checks = Vec::new();
    for c in req.check.into_iter().chain(req.checks) {
        let mut c = c.into_health_check();
        if c.check_id.is_empty() {
            c.check_id = c.name.clone();
        }
        if c.check_id.is_empty() {
            return Err(ApiError::bad_request("Invalid request: Missing check ID"));
        }
        if !crate::structs::is_valid_status(&c.status) {
            return Err(ApiError::bad_request(format!(
                "Invalid request: Invalid check status {:?}",
                c.status
            )));
        }
        checks.push(c);
    }
    propose(
        &agent,
        Command::Register(Registration {
            node,
            skip_node_update: req.skip_node_update,
            service,
            checks,
        }),
    )
    .await?;
    Ok(json(&true, opts.pretty))
}

async fn deregister(
    State(agent): State<Arc<Agent>>,
    opts: QueryOptions,
    body: Bytes,
) -> ApiResult<Response> {
    let req: DeregisterRequest = decode::from_slice(&body).map_err(ApiError::decode)?;
    if req.node.is_empty() {
        return Err(ApiError::bad_request("Invalid request: Missing node name"));
    }
    agent.authorize(&opts.token, Access::NodeWrite(&req.node))?;
    let cmd = if !req.service_id.is_empty() {
        Command::DeregisterService {
            node: req.node,
            service_id: req.service_id,
        }
    } else if !req.check_id.is_empty() {
        Command::DeregisterCheck {
            node: req.node,
            check_id: req.check_id,
        }
    } else {
        Command::DeregisterNode { node: req.node }
    };
    propose(&agent, cmd).await?;
    Ok(json(&true, opts.pretty))
}

async fn datacenters(State(agent): State<Arc<Agent>>, opts: QueryOptions) -> ApiResult<Response> {
    Ok(json(&crate::agent::wan::datacenters(&agent), opts.pretty))
}

async fn nodes(State(agent): State<Arc<Agent>>, opts: QueryOptions) -> ApiResult<Response> {
    agent.authorize(&opts.token, Access::NodeRead(""))?;
    let watch = [WatchKey::Table(Table::Nodes)];
    let ans = blocking_shared(&agent, &opts, "catalog/nodes", &watch, true, |r| {
        let (idx, nodes) = r.nodes()?;
        let mut nodes: Vec<Node> = nodes
            .into_iter()
            .filter(|n| node_meta_matches(n, &opts.node_meta))
            .collect();
        super::coordinate::sort_near(&agent, opts.near.as_deref(), &mut nodes, |n| &n.node);
        let nodes = opts.apply_filter(nodes)?;
        Ok(Found::new(idx, json_bytes(&nodes, opts.pretty).into()))
    })
    .await?;
    Ok(rendered_with_meta(ans.value, &ans.meta))
}

async fn services(State(agent): State<Arc<Agent>>, opts: QueryOptions) -> ApiResult<Response> {
    agent.authorize(&opts.token, Access::ServiceRead(""))?;
    let watch = [WatchKey::Table(Table::Services)];
    let ans = blocking_shared(&agent, &opts, "catalog/services", &watch, true, |r| {
        let (idx, all) = r.services()?;
        let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut instances = Vec::new();
        for (node, svc) in all {
            if node_meta_matches(&node, &opts.node_meta) {
                instances.push(ServiceNode::new(&node, &svc));
            }
        }
        for sn in opts.apply_filter(instances)? {
            out.entry(sn.service_name.clone())
                .or_default()
                .extend(sn.service_tags.iter().cloned());
        }
        Ok(Found::new(idx, json_bytes(&out, opts.pretty).into()))
    })
    .await?;
    Ok(rendered_with_meta(ans.value, &ans.meta))
}

async fn service(
    State(agent): State<Arc<Agent>>,
    Path(name): Path<String>,
    opts: QueryOptions,
) -> ApiResult<Response> {
    service_nodes(agent, name, opts, false).await
}

async fn connect(
    State(agent): State<Arc<Agent>>,
    Path(name): Path<String>,
    opts: QueryOptions,
) -> ApiResult<Response> {
    service_nodes(agent, name, opts, true).await
}

/// `/v1/catalog/service/:name`, or with `connect` its Connect-capable instances.
async fn service_nodes(
    agent: Arc<Agent>,
    name: String,
    opts: QueryOptions,
    connect: bool,
) -> ApiResult<Response> {
    agent.authorize(&opts.token, Access::ServiceRead(&name))?;
    let watch = if connect {
        WatchKey::Table(Table::Services)
    } else {
        WatchKey::Service(lower(&name))
    };
    let label = format!(
        "catalog/{}/{name}",
        if connect { "connect" } else { "service" }
    );
    let ans = blocking_shared(&agent, &opts, &label, &[watch], true, |r| {
        let (idx, instances) = if connect {
            r.connect_instances(&name)?
        } else {
            r.service_instances(&name)?
        };
        let mut list: Vec<ServiceNode> = instances
            .iter()
            .filter(|(n, s)| {
                node_meta_matches(n, &opts.node_meta) && tags_match(&s.tags, &opts.tags)
            })
            .map(|(n, s)| ServiceNode::new(n, s))
            .collect();
        super::coordinate::sort_near(&agent, opts.near.as_deref(), &mut list, |s| &s.node);
        let list = opts.apply_filter(list)?;
        Ok(Found::new(idx, json_bytes(&list, opts.pretty).into()))
    })
    .await?;
    Ok(rendered_with_meta(ans.value, &ans.meta))
}

async fn node(
    State(agent): State<Arc<Agent>>,
    Path(name): Path<String>,
    opts: QueryOptions,
) -> ApiResult<Response> {
    node_view(agent, name, opts, false).await
}

async fn node_services(
    State(agent): State<Arc<Agent>>,
    Path(name): Path<String>,
    opts: QueryOptions,
) -> ApiResult<Response> {
    node_view(agent, name, opts, true).await
}

/// A node with its services: `/v1/catalog/node/:node` answers them as a map by ID,
/// `/v1/catalog/node-services/:node` (`as_list`) as a list. An unknown node is `null`.
async fn node_view(
    agent: Arc<Agent>,
    name: String,
    opts: QueryOptions,
    as_list: bool,
) -> ApiResult<Response> {
    agent.authorize(&opts.token, Access::NodeRead(&name))?;
    let ans = blocking(&agent, &opts, &[WatchKey::Node(lower(&name))], true, |r| {
        let (idx, found) = r.node_services(&name)?;
        Ok(Found::new(idx, found))
    })
    .await?;
    let Some((node, services)) = ans.value else {
        return Ok(json_with_meta(
            &serde_json::Value::Null,
            &ans.meta,
            opts.pretty,
        ));
    };
    let services = opts.apply_filter(services)?;
    if as_list {
        let out = serde_json::json!({ "Node": node, "Services": services });
        return Ok(json_with_meta(&out, &ans.meta, opts.pretty));
    }
    let out = NodeServices {
        node,
        services: services.into_iter().map(|s| (s.id.clone(), s)).collect(),
    };
    Ok(json_with_meta(&out, &ans.meta, opts.pretty))
}
