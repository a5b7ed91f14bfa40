//! Connect endpoints: CA roots and configuration, agent leaf certificates, and
//! authorize. A client agent's `/v1/agent/connect/ca/*` requests are answered
//! by a server (see [`crate::http::forward`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{CA_DOC, CaState, IssuedCert, sign_leaf};
use crate::acl::Access;
use crate::agent::Agent;
use crate::fsm::{Command, Response as FsmResponse};
use crate::http::blocking::{Found, blocking};
use crate::http::endpoint;
use crate::http::error::{ApiError, ApiResult};
use crate::http::query::QueryOptions;
use crate::http::response::{empty, json, json_with_meta};
use crate::state::{Table, WatchKey};
use crate::structs::codec::null_default;
use crate::structs::decode;

/// The replicated CA configuration document.
pub const CA_CONFIG_DOC: &str = "connect-ca-config";

pub fn router() -> Router<Arc<Agent>> {
    Router::new()
        .route("/v1/connect/ca/roots", endpoint(&["GET"], get(roots)))
        .route("/v1/agent/connect/ca/roots", endpoint(&["GET"], get(roots)))
        .route(
            "/v1/connect/ca/configuration",
            endpoint(&["GET", "PUT"], get(get_config).put(set_config)),
        )
        .route(
            "/v1/agent/connect/ca/leaf/{service}",
            endpoint(&["GET"], get(leaf)),
        )
        .route(
            "/v1/agent/connect/ca/leaf/",
            endpoint(&["GET"], get(leaf_unnamed)),
        )
        .route(
            "/v1/agent/connect/authorize",
            endpoint(&["POST"], post(authorize)),
        )
}

pub fn require_connect(agent: &Agent) -> ApiResult<()> {
    if agent.config.connect.enabled {
        Ok(())
    } else {
        Err(ApiError::internal(
            "Connect must be enabled in order to use this endpoint",
        ))
    }
}

async fn roots(State(agent): State<Arc<Agent>>, opts: QueryOptions) -> ApiResult<Response> {
    require_connect(&agent)?;
    let ans = blocking(
        &agent,
        &opts,
        &[WatchKey::Table(Table::ConnectCa)],
        true,
        |r| {
            let idx = r.table_index(&[Table::ConnectCa])?;
            Ok(Found::new(idx, r.system::<CaState>(CA_DOC)?))
        },
    )
    .await?;
    let body = match ans.value {
        Some(ca) => {
            let roots: Vec<_> = ca
                .roots
                .iter()
                .map(|r| {
                    let mut r = r.clone();
                    r.create_index = ans.meta.index;
                    r.modify_index = ans.meta.index;
                    r
                })
                .collect();
            json!({
                "ActiveRootID": ca.active_root_id,
                "TrustDomain": format!("{}.consul", ca.cluster_id),
                "Roots": roots,
            })
        }
        None => json!({ "ActiveRootID": "", "TrustDomain": "", "Roots": [] }),
    };
    Ok(json_with_meta(&body, &ans.meta, opts.pretty))
}

/// The CA configuration as stored and answered (`structs.CAConfiguration`).
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct CaConfig {
    #[serde(default, deserialize_with = "null_default")]
    pub provider: String,
    #[serde(default, deserialize_with = "null_default")]
    pub config: Map<String, Value>,
    #[serde(default)]
    pub state: Option<Map<String, Value>>,
    #[serde(default, deserialize_with = "null_default")]
    pub force_without_cross_signing: bool,
    #[serde(default, deserialize_with = "null_default")]
    pub create_index: u64,
    #[serde(default, deserialize_with = "null_default")]
    pub modify_index: u64,
}

/// Consul's default provider configuration, then the agent's `ca_config`.
fn default_config(agent: &Agent) -> CaConfig {
    let mut config = Map::new();
    config.insert("LeafCertTTL".into(), json!("72h"));
    config.insert("IntermediateCertTTL".into(), json!("8760h"));
    config.insert("RootCertTTL".into(), json!("87600h"));
    for (k, v) in &agent.config.connect.ca_config {
        config.insert(k.clone(), v.clone());
    }
    CaConfig {
        provider: agent
            .config
            .connect
            .ca_provider
            .clone()
            .unwrap_or_else(|| "consul".into()),
        config,
        ..Default::default()
    }
}

async fn get_config(State(agent): State<Arc<Agent>>, opts: QueryOptions) -> ApiResult<Response> {
    require_connect(&agent)?;
    agent.authorize(&opts.token, Access::OperatorRead)?;
    let ans = blocking(
        &agent,
        &opts,
        &[WatchKey::Table(Table::ConnectCa)],
        true,
        |r| {
            let idx = r.table_index(&[Table::ConnectCa])?;
            Ok(Found::new(idx, r.system::<CaConfig>(CA_CONFIG_DOC)?))
        },
    )
    .await?;
    let mut conf = ans.value.unwrap_or_else(|| default_config(&agent));
    conf.create_index = conf.create_index.max(1);
    conf.modify_index = ans.meta.index;
    Ok(json_with_meta(&conf, &ans.meta, opts.pretty))
}

async fn set_config(
    State(agent): State<Arc<Agent>>,
    opts: QueryOptions,
    body: Bytes,
) -> ApiResult<Response> {
    require_connect(&agent)?;
    agent.authorize(&opts.token, Access::OperatorWrite)?;
    let mut conf: CaConfig = decode::from_slice(&body).map_err(ApiError::decode)?;
    if conf.provider.is_empty() {
        conf.provider = "consul".into();
    }
    if conf.provider != "consul" {
        return Err(ApiError::internal(format!(
            "error parsing CA config: unsupported CA provider {:?}",
            conf.provider
        )));
    }
    // The built-in provider keeps provider state passed as `test_state` (used by
    // Consul's own tests to round-trip provider state).
    if let Some(Value::Object(state)) = conf.config.get("test_state") {
        conf.state = Some(state.clone());
    }
    let view = agent.store.read()?;
    let previous = view.view().system::<CaConfig>(CA_CONFIG_DOC)?;
    let ca = view.view().system::<CaState>(CA_DOC)?;
    drop(view);
    conf.create_index = previous.map_or(0, |p| p.create_index);
    let text = |key: &str| conf.config.get(key).and_then(Value::as_str);
    // A new private key (with or without its root certificate) rotates the root;
    // the configuration and the new root are written in one Raft entry.
    let rotated = match &ca {
        Some(ca) => ca
            .root_for_config(text("PrivateKey"), text("RootCert"))
            .map_err(|e| ApiError::internal(e.to_string()))?
            .map(|(root, key)| {
                let mut next = ca.clone();
                next.rotate(root, key);
                next
            }),
        None => None,
    };
    let encode = |v: serde_json::Result<Value>| v.map_err(|e| ApiError::internal(e.to_string()));
    let mut commands = vec![Command::PutSystem {
        name: CA_CONFIG_DOC.into(),
        table: Table::ConnectCa,
        doc: encode(serde_json::to_value(&conf))?,
    }];
    if let Some(next) = &rotated {
        commands.push(Command::PutSystem {
            name: CA_DOC.into(),
            table: Table::ConnectCa,
            doc: encode(serde_json::to_value(next))?,
        });
    }
    let answer = agent.consensus.propose(Command::Batch(commands)).await?;
    let answers = match answer {
        FsmResponse::Batch(all) => all,
        other => vec![other],
    };
    if let Some(FsmResponse::Rejected(msg)) = answers
        .into_iter()
        .find(|a| matches!(a, FsmResponse::Rejected(_)))
    {
        return Err(ApiError::from_message(msg));
    }
    if let Some(next) = rotated {
        tracing::info!(root = %next.active_root_id, "rotated the Connect CA root");
    }
    Ok(empty())
}

/// Leaf certificates are cached per agent and service until the root changes. A
/// server also signs for the client agents that forward these requests to it,
/// and each agent keeps a certificate of its own, as in Consul.
#[derive(Default)]
pub struct LeafCache {
    certs: Mutex<HashMap<(String, String), (String, IssuedCert)>>,
}

/// A leaf certificate request that names nothing to certify: Consul's leaf
/// manager refuses it once it knows Connect is on.
async fn leaf_unnamed(State(agent): State<Arc<Agent>>) -> ApiResult<Response> {
    require_connect(&agent)?;
    Err(ApiError::internal(
        "URI must be either service, agent, server, or kind",
    ))
}

async fn leaf(
    State(agent): State<Arc<Agent>>,
    Path(service): Path<String>,
    opts: QueryOptions,
) -> ApiResult<Response> {
    require_connect(&agent)?;
    agent.authorize(&opts.token, Access::ServiceWrite(&service))?;
    let ans = blocking(
        &agent,
        &opts,
        &[WatchKey::Table(Table::ConnectCa)],
        false,
        |r| {
            let idx = r.table_index(&[Table::ConnectCa])?;
            Ok(Found::new(idx, r.system::<CaState>(CA_DOC)?))
        },
    )
    .await?;
    let Some(ca) = ans.value else {
        return Err(ApiError::internal("CA is not initialized yet"));
    };
    let mut cache = agent
        .leaf_cache
        .certs
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let key = (opts.agent_node.clone(), service.clone());
    let cert = match cache.get(&key) {
        Some((root, cert)) if *root == ca.active_root_id => cert.clone(),
        _ => {
            let mut cert = sign_leaf(
                &ca,
                &agent.config.datacenter,
                &service,
                time::Duration::hours(72),
            )
            .map_err(|e| ApiError::internal(format!("error signing leaf certificate: {e}")))?;
            cert.create_index = ans.meta.index;
            cert.modify_index = ans.meta.index;
            cache.insert(key, (ca.active_root_id.clone(), cert.clone()));
            cert
        }
    };
    drop(cache);
    Ok(json_with_meta(&cert, &ans.meta, opts.pretty))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct AuthorizeRequest {
    #[serde(default, deserialize_with = "null_default")]
    target: String,
    #[serde(rename = "ClientCertURI", default, deserialize_with = "null_default")]
    client_cert_uri: String,
    #[serde(default, deserialize_with = "null_default")]
    client_cert_serial: String,
    #[serde(default, deserialize_with = "null_default")]
    namespace: String,
    #[serde(default, deserialize_with = "null_default")]
    partition: String,
}

async fn authorize(
    State(agent): State<Arc<Agent>>,
    opts: QueryOptions,
    body: Bytes,
) -> ApiResult<Response> {
    require_connect(&agent)?;
    let req: AuthorizeRequest = decode::from_slice(&body).map_err(ApiError::decode)?;
    let _ = (&req.client_cert_serial, &req.namespace, &req.partition);
    if req.target.is_empty() {
        return Err(ApiError::bad_request("Target service must be specified"));
    }
    if req.client_cert_uri.is_empty() {
        return Err(ApiError::bad_request("ClientCertURI must be specified"));
    }
    if !req.client_cert_uri.starts_with("spiffe://") {
        return Err(ApiError::bad_request(
            "ClientCertURI not a valid Connect identifier",
        ));
    }
    agent.authorize(&opts.token, Access::ServiceWrite(&req.target))?;
    // No intentions exist yet, so the default decides: ACLs off (or default allow)
    // means allow, as Consul answers.
    let allow = !agent.config.acl.enabled || agent.config.acl.default_policy == "allow";
    Ok(json(
        &json!({
            "Authorized": allow,
            "Reason": "Default behavior configured by ACLs",
        }),
        opts.pretty,
    ))
}
