//! `/v1/operator/keyring`: the gossip encryption keyrings (list, install, use,
//! remove) of this agent's pools, answered per pool in Consul's `KeyringResponse`
//! shape: on a server the WAN pool first, then the LAN pool. Other datacenters'
//! LAN pools are not reached (Consul forwards to each datacenter).

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;
use serde_json::json;

use super::endpoint;
use super::error::{ApiError, ApiResult};
use super::query::QueryOptions;
use super::response::{empty, json};
use crate::acl::Access;
use crate::agent::Agent;
use crate::gossip::{Gossip, GossipError, KeyringResponse};
use crate::structs::codec::null_default;
use crate::structs::decode;

pub fn router() -> Router<Arc<Agent>> {
    Router::new().route(
        "/v1/operator/keyring",
        endpoint(
            &["GET", "POST", "PUT", "DELETE"],
            get(list).post(install).put(use_key).delete(remove),
        ),
    )
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct KeyRequest {
    #[serde(default, deserialize_with = "null_default")]
    key: String,
}

fn gossip(agent: &Agent) -> ApiResult<&Gossip> {
    agent
        .gossip
        .as_ref()
        .ok_or_else(|| ApiError::internal("Gossip is disabled on this agent"))
}

/// The pools a keyring operation covers, WAN first as Consul answers them.
fn pools(agent: &Agent) -> ApiResult<Vec<(bool, &Gossip)>> {
    let mut out: Vec<(bool, &Gossip)> = agent.wan.iter().map(|g| (true, g)).collect();
    out.push((false, gossip(agent)?));
    Ok(out)
}

fn pool_json(agent: &Agent, wan: bool, r: &KeyringResponse) -> serde_json::Value {
    json!({
        "WAN": wan,
        "Datacenter": agent.config.datacenter,
        "Segment": "",
        "Partition": "",
        "Keys": r.keys,
        "PrimaryKeys": r.primary_keys,
        "NumNodes": r.num_nodes,
        "Messages": r.messages,
    })
}

fn failed(e: GossipError) -> ApiError {
    ApiError::internal(e.to_string())
}

/// Collects the pools' answers the way Consul's `keyringErrorsOrNil` reports them:
/// every pool that had failures contributes `<pool> error: <why>` and then one
/// `<node>: <message>` line per failed member (such as a member without
/// encryption, "Keyring is empty (encryption not enabled)"); any such line makes
/// the whole request a 500 listing them all.
#[derive(Default)]
struct PoolErrors(Vec<String>);

impl PoolErrors {
    /// The pool's answer, when it has one; its failures are recorded.
    fn take(
        &mut self,
        agent: &Agent,
        wan: bool,
        result: Result<KeyringResponse, GossipError>,
    ) -> ApiResult<KeyringResponse> {
        match result {
            Ok(answer) => Ok(answer),
            Err(GossipError::Keyring { message, response }) => {
                let pool = if wan {
                    "WAN".to_string()
                } else {
                    format!("{} (LAN)", agent.config.datacenter)
                };
                self.0.push(format!("{pool} error: {message}"));
                self.0.extend(
                    response
                        .messages
                        .iter()
                        .map(|(node, msg)| format!("{node}: {msg}")),
                );
                Ok(*response)
            }
            Err(e) => Err(failed(e)),
        }
    }

    fn into_result(self) -> ApiResult<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ApiError::internal(crate::gossip::multi_error(&self.0)))
        }
    }
}

async fn list(State(agent): State<Arc<Agent>>, opts: QueryOptions) -> ApiResult<Response> {
    agent.authorize(&opts.token, Access::KeyringRead)?;
    let mut answers = Vec::new();
    let mut errors = PoolErrors::default();
    for (wan, pool) in pools(&agent)? {
        let answer = errors.take(&agent, wan, pool.keyring_list().await)?;
        answers.push(pool_json(&agent, wan, &answer));
    }
    errors.into_result()?;
    Ok(json(&answers, opts.pretty))
}

/// The three keyring changes, each taking a `{"Key": ...}` body.
#[derive(Clone, Copy)]
enum Change {
    Install,
    Use,
    Remove,
}

async fn change(
    agent: &Agent,
    opts: &QueryOptions,
    body: &Bytes,
    op: Change,
) -> ApiResult<Response> {
    agent.authorize(&opts.token, Access::KeyringWrite)?;
    let req: KeyRequest = decode::from_slice(body).map_err(ApiError::decode)?;
    let mut errors = PoolErrors::default();
    for (wan, pool) in pools(agent)? {
        let result = match op {
            Change::Install => pool.keyring_install(&req.key).await,
            Change::Use => pool.keyring_use(&req.key).await,
            Change::Remove => pool.keyring_remove(&req.key).await,
        };
        errors.take(agent, wan, result)?;
    }
    errors.into_result()?;
    Ok(empty())
}

async fn install(
    State(agent): State<Arc<Agent>>,
    opts: QueryOptions,
    body: Bytes,
) -> ApiResult<Response> {
    change(&agent, &opts, &body, Change::Install).await
}

async fn use_key(
    State(agent): State<Arc<Agent>>,
    opts: QueryOptions,
    body: Bytes,
) -> ApiResult<Response> {
    change(&agent, &opts, &body, Change::Use).await
}

async fn remove(
    State(agent): State<Arc<Agent>>,
    opts: QueryOptions,
    body: Bytes,
) -> ApiResult<Response> {
    change(&agent, &opts, &body, Change::Remove).await
}
