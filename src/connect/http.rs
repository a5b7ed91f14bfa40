//! `/v1/connect/ca/roots` and `/v1/agent/connect/ca/roots`.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use serde_json::json;

use super::{CA_DOC, CaState};
use crate::agent::Agent;
use crate::http::blocking::{Found, blocking};
use crate::http::endpoint;
use crate::http::error::{ApiError, ApiResult};
use crate::http::query::QueryOptions;
use crate::http::response::json_with_meta;
use crate::state::{Table, WatchKey};

pub fn router() -> Router<Arc<Agent>> {
    Router::new()
        .route("/v1/connect/ca/roots", endpoint(&["GET"], get(roots)))
        .route("/v1/agent/connect/ca/roots", endpoint(&["GET"], get(roots)))
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
