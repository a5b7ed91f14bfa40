//! `/v1/operator/usage`: catalog usage of this datacenter, keyed by datacenter
//! name as Consul answers it (a blocking read like any other).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;

use super::blocking::{Found, blocking};
use super::endpoint;
use super::error::ApiResult;
use super::query::QueryOptions;
use super::response::json_with_meta;
use crate::acl::Access;
use crate::agent::Agent;
use crate::state::{Table, WatchKey};

pub fn router() -> Router<Arc<Agent>> {
    Router::new().route("/v1/operator/usage", endpoint(&["GET"], get(usage)))
}

async fn usage(State(agent): State<Arc<Agent>>, opts: QueryOptions) -> ApiResult<Response> {
    agent.authorize(&opts.token, Access::OperatorRead)?;
    let ans = blocking(
        &agent,
        &opts,
        &[
            WatchKey::Table(Table::Nodes),
            WatchKey::Table(Table::Services),
        ],
        true,
        |r| {
            let (idx, usage) = r.usage()?;
            Ok(Found::new(idx, usage))
        },
    )
    .await?;
    let by_dc = BTreeMap::from([(agent.config.datacenter.clone(), ans.value)]);
    Ok(json_with_meta(
        &serde_json::json!({ "Usage": by_dc }),
        &ans.meta,
        opts.pretty,
    ))
}
