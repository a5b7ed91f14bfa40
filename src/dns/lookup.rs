//! Every catalog read the DNS interface makes, in one place: service instances
//! with their checks, nodes, and what a name maps to in the catalog. Each function
//! takes the agent and returns plain data. Servers read their own replica; client
//! agents, which have none, ask a server over the server RPC port (the same HTTP
//! reads a client would make, `?stale` when `allow_stale` permits). Names in
//! another datacenter are read from that datacenter's servers.
//!
//! Reads honour `dns_config.allow_stale` and `max_stale`: a stale read is served
//! from the local copy; otherwise (or when the last contact with the leader is
//! older than `max_stale`) a leader must be known first.

use std::net::IpAddr;
use std::sync::Arc;

use super::name::Target;
use super::settings::Settings;
use crate::agent::Agent;
use crate::http::blocking::Found;
use crate::structs::{CheckServiceNode, Node, NodeService};

/// Why a lookup could not be answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupError {
    /// The datacenter is not one we can reach (Consul: "No path to datacenter").
    NoPathToDatacenter,
    /// No prepared query has that ID or name.
    QueryNotFound,
    /// Anything else (no leader, a storage error): the client gets SERVFAIL.
    Unavailable(String),
}

pub type LookupResult<T> = Result<T, LookupError>;

/// Which endpoints of a service to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoints {
    /// The service's own instances.
    Service,
    /// Connect-capable instances (sidecar proxies and native services).
    Connect,
    /// Ingress gateways exposing the service.
    Ingress,
}

/// Makes sure this agent may answer from its copy of the state.
async fn ensure_readable(agent: &Agent, settings: &Settings) -> LookupResult<()> {
    let too_stale = u128::from(agent.consensus.last_contact_ms()) > settings.max_stale.as_millis();
    if settings.allow_stale && !too_stale {
        return Ok(());
    }
    if agent.consensus.is_leader()
        || agent
            .consensus
            .wait_for_leader(agent.consensus.hold_timeout)
            .await
    {
        Ok(())
    } else {
        Err(LookupError::Unavailable("No cluster leader".into()))
    }
}

/// Where a lookup is answered.
enum Scope {
    /// This datacenter's catalog.
    Local,
    /// Another datacenter's, through its servers.
    Remote(String),
    /// A cluster peer: concord has none, so there is no data.
    Nothing,
}

fn scope(settings: &Settings, target: &Target) -> Scope {
    match target {
        Target::Local => Scope::Local,
        Target::Datacenter(dc) if dc.eq_ignore_ascii_case(&settings.datacenter) => Scope::Local,
        Target::Datacenter(dc) => Scope::Remote(dc.to_ascii_lowercase()),
        Target::Peer(_) => Scope::Nothing,
    }
}

fn storage(e: impl std::fmt::Display) -> LookupError {
    LookupError::Unavailable(e.to_string())
}

/// A client agent's read, answered by a server.
async fn from_server<T: serde::de::DeserializeOwned>(
    agent: &Agent,
    settings: &Settings,
    uri: &str,
) -> LookupResult<T> {
    // The server applies `max_stale` as it does for HTTP reads: a follower whose
    // last contact with the leader is older hands the read to the leader.
    let uri = if settings.allow_stale {
        format!("{uri}?stale&max_stale={}ns", settings.max_stale.as_nanos())
    } else {
        uri.to_string()
    };
    let body = crate::http::forward::get_from_server(agent, &uri)
        .await
        .map_err(|e| LookupError::Unavailable(e.body))?;
    serde_json::from_slice(&body).map_err(storage)
}

/// A read in another datacenter, answered by one of its servers. An unknown
/// datacenter is Consul's "No path to datacenter" (NXDOMAIN to the client).
async fn from_datacenter<T: serde::de::DeserializeOwned>(
    agent: &Agent,
    settings: &Settings,
    dc: &str,
    uri: &str,
) -> LookupResult<T> {
    let uri = if settings.allow_stale {
        format!("{uri}?stale")
    } else {
        uri.to_string()
    };
    match crate::http::forward::get_from_datacenter(agent, dc, &uri).await {
        Ok(body) => serde_json::from_slice(&body).map_err(storage),
        Err(e) if e.body == crate::http::forward::NO_DC_PATH => {
            Err(LookupError::NoPathToDatacenter)
        }
        Err(e) => Err(LookupError::Unavailable(e.body)),
    }
}

/// The instances of `service` with their node and checks (unfiltered by health),
/// narrowed to those carrying `tag` (case-insensitive) when given.
pub async fn service_nodes(
    agent: &Agent,
    settings: &Settings,
    target: &Target,
    service: &str,
    tag: Option<&str>,
    endpoints: Endpoints,
) -> LookupResult<Vec<CheckServiceNode>> {
    // Ingress gateways exist nowhere (see `local_service_nodes`).
    let uri = match endpoints {
        Endpoints::Service => format!("/v1/health/service/{service}"),
        Endpoints::Connect => format!("/v1/health/connect/{service}"),
        Endpoints::Ingress => String::new(),
    };
    let nodes: Arc<Vec<CheckServiceNode>> = match scope(settings, target) {
        Scope::Nothing => return Ok(Vec::new()),
        Scope::Local if agent.config.server => {
            local_service_nodes(agent, settings, service, endpoints).await?
        }
        _ if uri.is_empty() => Arc::default(),
        Scope::Local => Arc::new(from_server(agent, settings, &uri).await?),
        Scope::Remote(dc) => Arc::new(from_datacenter(agent, settings, &dc, &uri).await?),
    };
    Ok(nodes
        .iter()
        .filter(|n| {
            tag.is_none_or(|tag| n.service.tags.iter().any(|t| t.eq_ignore_ascii_case(tag)))
        })
        .cloned()
        .collect())
}

async fn local_service_nodes(
    agent: &Agent,
    settings: &Settings,
    service: &str,
    endpoints: Endpoints,
) -> LookupResult<Arc<Vec<CheckServiceNode>>> {
    ensure_readable(agent, settings).await?;
    // concord has no ingress gateway configuration entries yet, so no gateway
    // exposes any service.
    if endpoints == Endpoints::Ingress {
        return Ok(Arc::default());
    }
    // Every query for a service decodes the same rows until the next write:
    // lookups of one snapshot share them.
    let key = format!("{endpoints:?}\0{service}");
    let found = agent
        .dns_instances
        .get(&agent.store, &key, &|view| {
            let (idx, nodes) = if endpoints == Endpoints::Connect {
                view.connect_check_service_nodes(service)?
            } else {
                view.check_service_nodes(service)?
            };
            Ok(Found::new(idx, Arc::new(nodes)))
        })
        .await
        .map_err(|e| storage(e.body))?;
    Ok(found.value)
}

/// One node by name (case-insensitive); `None` when it is not registered.
pub async fn node(
    agent: &Agent,
    settings: &Settings,
    target: &Target,
    name: &str,
) -> LookupResult<Option<Node>> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct NodeServices {
        node: Node,
    }
    match scope(settings, target) {
        Scope::Nothing => return Ok(None),
        Scope::Remote(dc) => {
            let uri = format!("/v1/catalog/node/{name}");
            let found: Option<NodeServices> = from_datacenter(agent, settings, &dc, &uri).await?;
            return Ok(found.map(|n| n.node));
        }
        Scope::Local => {}
    }
    if !agent.config.server {
        let found: Option<NodeServices> =
            from_server(agent, settings, &format!("/v1/catalog/node/{name}")).await?;
        return Ok(found.map(|n| n.node));
    }
    ensure_readable(agent, settings).await?;
    let reader = agent.store.read().map_err(storage)?;
    reader.view().node(name).map_err(storage)
}

/// Every node of the local datacenter (reverse lookups).
pub async fn nodes(agent: &Agent, settings: &Settings) -> LookupResult<Vec<Node>> {
    if !agent.config.server {
        return from_server(agent, settings, "/v1/catalog/nodes").await;
    }
    ensure_readable(agent, settings).await?;
    let reader = agent.store.read().map_err(storage)?;
    Ok(reader.view().nodes().map_err(storage)?.1)
}

/// Every service instance with its node (reverse lookups by service address).
/// Client agents answer reverse lookups from nodes only: listing every instance
/// would take one server read per service.
pub async fn service_instances(
    agent: &Agent,
    settings: &Settings,
) -> LookupResult<Vec<(Node, NodeService)>> {
    if !agent.config.server {
        return Ok(Vec::new());
    }
    ensure_readable(agent, settings).await?;
    let reader = agent.store.read().map_err(storage)?;
    Ok(reader.view().services().map_err(storage)?.1)
}

/// The virtual IP assigned to a service. concord does not allocate virtual IPs
/// (they belong to transparent-proxy meshes), so there never is one.
pub async fn virtual_ip(
    _agent: &Agent,
    _settings: &Settings,
    _service: &str,
) -> LookupResult<Option<IpAddr>> {
    Ok(None)
}

/// The result of executing a prepared query: the service it names and its
/// instances, already filtered by the query's own health rules.
#[derive(Debug, Clone)]
pub struct PreparedAnswer {
    pub service: String,
    pub nodes: Vec<CheckServiceNode>,
}

/// Runs a prepared query. Prepared queries do not exist in concord yet, so every
/// ID or name is unknown, which Consul reports as NXDOMAIN.
pub async fn prepared_query(
    _agent: &Agent,
    _settings: &Settings,
    // Another datacenter would run the query there; none exist anywhere, and an
    // unknown datacenter gets the same NXDOMAIN, so where does not matter.
    _datacenter: Option<&str>,
    _query: &str,
) -> LookupResult<PreparedAnswer> {
    Err(LookupError::QueryNotFound)
}
