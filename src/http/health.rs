//! `/v1/health/...`: checks by node, by service and by state; service instances with
//! their checks (`?passing`, `?tag`, `?node-meta`, `?filter`).

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::get;

use super::blocking::{Found, blocking, blocking_shared};
use super::catalog::{node_meta_matches, tags_match};
use super::endpoint;
use super::error::{ApiError, ApiResult};
use super::query::QueryOptions;
use super::response::{json_bytes, json_with_meta, rendered_with_meta};
use crate::acl::Access;
use crate::agent::Agent;
use crate::state::{Table, WatchKey, schema::lower};
use crate::structs::{HEALTH_PASSING, HealthCheck};

pub fn router() -> Router<Arc<Agent>> {
    Router::new()
        .route("/v1/health/node/{node}", endpoint(&["GET"], get(node)))
        .route(
            "/v1/health/checks/{service}",
            endpoint(&["GET"], get(checks)),
        )
        .route("/v1/health/state/{state}", endpoint(&["GET"], get(state)))
        .route(
            "/v1/health/service/{service}",
            endpoint(&["GET"], get(service)),
        )
        .route(
            "/v1/health/connect/{service}",
            endpoint(&["GET"], get(connect)),
        )
}

async fn node(
    State(agent): State<Arc<Agent>>,
    Path(name): Path<String>,
    opts: QueryOptions,
) -> ApiResult<Response> {
    agent.authorize(&opts.token, Access::NodeRead(&name))?;
    let ans = blocking(&agent, &opts, &[WatchKey::Node(lower(&name))], true, |r| {
        let (idx, checks) = r.checks_of_node(&name)?;
        Ok(Found::new(idx, checks))
    })
    .await?;
    let checks = opts.apply_filter(ans.value)?;
    Ok(json_with_meta(&checks, &ans.meta, opts.pretty))
}

async fn checks(
    State(agent): State<Arc<Agent>>,
    Path(service): Path<String>,
    opts: QueryOptions,
) -> ApiResult<Response> {
    agent.authorize(&opts.token, Access::ServiceRead(&service))?;
    let ans = blocking(
        &agent,
        &opts,
        &[WatchKey::Service(lower(&service))],
        true,
        |r| {
            let (idx, checks) = r.all_checks()?;
            let out = checks_where(r, checks, &opts, |c| {
                c.service_name.eq_ignore_ascii_case(&service)
            })?;
            Ok(Found::new(idx, out))
        },
    )
    .await?;
    let checks = opts.apply_filter(ans.value)?;
    Ok(json_with_meta(&checks, &ans.meta, opts.pretty))
}

/// The checks that pass `keep` and whose node matches `?node-meta`.
fn checks_where(
    r: crate::state::ReaderRef<'_>,
    checks: Vec<HealthCheck>,
    opts: &QueryOptions,
    keep: impl Fn(&HealthCheck) -> bool,
) -> crate::state::Result<Vec<HealthCheck>> {
    let mut out = Vec::new();
    for c in checks.into_iter().filter(|c| keep(c)) {
        if !opts.node_meta.is_empty() {
            match r.node(&c.node)? {
                Some(n) if node_meta_matches(&n, &opts.node_meta) => {}
                _ => continue,
            }
        }
        out.push(c);
    }
    Ok(out)
}

async fn state(
    State(agent): State<Arc<Agent>>,
    Path(state): Path<String>,
    opts: QueryOptions,
) -> ApiResult<Response> {
    if !matches!(state.as_str(), "any" | "passing" | "warning" | "critical") {
        return Err(ApiError::bad_request(format!(
            "Invalid check state: {state}"
        )));
    }
    agent.authorize(&opts.token, Access::NodeRead(""))?;
    let ans = blocking(
        &agent,
        &opts,
        &[WatchKey::Table(Table::Checks)],
        true,
        |r| {
            let (idx, checks) = r.all_checks()?;
            let out = checks_where(r, checks, &opts, |c| state == "any" || c.status == state)?;
            Ok(Found::new(idx, out))
        },
    )
    .await?;
    let checks = opts.apply_filter(ans.value)?;
    Ok(json_with_meta(&checks, &ans.meta, opts.pretty))
}

async fn service(
    State(agent): State<Arc<Agent>>,
    Path(name): Path<String>,
    opts: QueryOptions,
) -> ApiResult<Response> {
    service_health(agent, name, opts, false).await
}

async fn connect(
    State(agent): State<Arc<Agent>>,
    Path(name): Path<String>,
    opts: QueryOptions,
) -> ApiResult<Response> {
    service_health(agent, name, opts, true).await
}

/// `/v1/health/service/:name`, or with `connect` its Connect-capable instances.
async fn service_health(
    agent: Arc<Agent>,
    name: String,
    opts: QueryOptions,
    connect: bool,
) -> ApiResult<Response> {
    agent.authorize(&opts.token, Access::ServiceRead(&name))?;
    let passing = match opts.params.get("passing") {
        None => false,
        Some("") => true,
        Some(v) => {
            parse_go_bool(v).ok_or_else(|| ApiError::bad_request("Invalid value for ?passing"))?
        }
    };
    let watch = if connect {
        vec![
            WatchKey::Table(Table::Services),
            WatchKey::Table(Table::Checks),
        ]
    } else {
        vec![WatchKey::Service(lower(&name))]
    };
    let label = format!(
        "health/{}/{name}",
        if connect { "connect" } else { "service" }
    );
    let ans = blocking_shared(&agent, &opts, &label, &watch, true, |r| {
        let (idx, list) = if connect {
            r.connect_check_service_nodes(&name)?
        } else {
            r.check_service_nodes(&name)?
        };
        let mut list: Vec<_> = list
            .into_iter()
            .filter(|csn| node_meta_matches(&csn.node, &opts.node_meta))
            .filter(|csn| tags_match(&csn.service.tags, &opts.tags))
            .filter(|csn| !passing || csn.checks.iter().all(|c| c.status == HEALTH_PASSING))
            .collect();
        super::coordinate::sort_near(&agent, opts.near.as_deref(), &mut list, |c| &c.node.node);
        let list = opts.apply_filter(list)?;
        Ok(Found::new(idx, json_bytes(&list, opts.pretty).into()))
    })
    .await?;
    Ok(rendered_with_meta(ans.value, &ans.meta))
}

/// Go's `strconv.ParseBool`.
pub fn parse_go_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}
