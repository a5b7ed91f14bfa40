//! `/v1/status/leader` and `/v1/status/peers`.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;

use super::endpoint;
use super::error::ApiResult;
use super::query::QueryOptions;
use super::response::json;
use crate::agent::Agent;

pub fn router() -> Router<Arc<Agent>> {
    Router::new()
        .route("/v1/status/leader", endpoint(&["GET"], get(leader)))
        .route("/v1/status/peers", endpoint(&["GET"], get(peers)))
}

async fn leader(State(agent): State<Arc<Agent>>, opts: QueryOptions) -> ApiResult<Response> {
    let addr = agent.consensus.leader().map(|n| n.addr).unwrap_or_default();
    Ok(json(&addr, opts.pretty))
}

async fn peers(State(agent): State<Arc<Agent>>, opts: QueryOptions) -> ApiResult<Response> {
    let peers: Vec<String> = agent
        .consensus
        .voters()
        .into_iter()
        .map(|n| n.addr)
        .collect();
    Ok(json(&peers, opts.pretty))
}
