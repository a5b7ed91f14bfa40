//! `/v1/operator/usage`: catalog usage of this datacenter, keyed by datacenter
//! name as Consul answers it (a blocking read like any other). Consul's body is its
//! `Usage` struct, which embeds the query metadata, so the body repeats what the
//! `X-Consul-*` headers say.

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
    let meta = &ans.meta;
    let body = serde_json::json!({
        "Usage": by_dc,
        // Consul's `QueryMeta` in its JSON form: `LastContact` is a Go duration
        // (nanoseconds), `Backend` 0 is a blocking query.
        "Index": meta.index,
        "LastContact": meta.last_contact_ms.saturating_mul(1_000_000),
        "KnownLeader": meta.known_leader,
        "ConsistencyLevel": meta.consistency.map(|c| c.header_value()).unwrap_or_default(),
        "NotModified": false,
        "Backend": 0,
        "ResultsFilteredByACLs": false,
    });
    Ok(json_with_meta(&body, meta, opts.pretty))
}
