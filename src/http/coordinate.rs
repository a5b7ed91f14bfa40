//! `/v1/coordinate/...`, and the `?near=` sort every catalog/health list shares.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, put};
use serde_json::json;

use super::blocking::{Found, blocking};
use super::endpoint;
use super::error::{ApiError, ApiResult};
use super::query::QueryOptions;
use super::response::{empty, json, json_with_meta, not_found_with_meta};
use crate::acl::Access;
use crate::agent::Agent;
use crate::fsm::Command;
use crate::state::{Table, WatchKey, schema::lower};
use crate::structs::{Coordinate, CoordinateEntry, decode};

pub fn router() -> Router<Arc<Agent>> {
    Router::new()
        .route(
            "/v1/coordinate/datacenters",
            endpoint(&["GET"], get(datacenters)),
        )
        .route("/v1/coordinate/nodes", endpoint(&["GET"], get(nodes)))
        .route("/v1/coordinate/node/{node}", endpoint(&["GET"], get(node)))
        .route("/v1/coordinate/update", endpoint(&["PUT"], put(update)))
}

/// Sorts `items` by estimated RTT from the node `near` names (`_agent` = this agent).
/// Items without a coordinate go last; with no coordinate for the source, the order
/// is left alone (Consul's behaviour).
pub fn sort_near<T>(
    agent: &Agent,
    near: Option<&str>,
    items: &mut [T],
    node_of: impl Fn(&T) -> &str,
) {
    let Some(near) = near else { return };
    let source = if near == "_agent" {
        agent.node_name()
    } else {
        near
    };
    let Ok(reader) = agent.store.read() else {
        return;
    };
    let Ok((_, all)) = reader.view().coordinates() else {
        return;
    };
    let coords: HashMap<String, Coordinate> =
        all.into_iter().map(|e| (lower(&e.node), e.coord)).collect();
    let Some(from) = coords.get(&lower(source)).cloned() else {
        return;
    };
    items.sort_by(|a, b| {
        let da = coords
            .get(&lower(node_of(a)))
            .map_or(f64::INFINITY, |c| from.distance_to(c));
        let db = coords
            .get(&lower(node_of(b)))
            .map_or(f64::INFINITY, |c| from.distance_to(c));
        da.partial_cmp(&db).unwrap_or(std::cmp::Ordering::Equal)
    });
}

async fn datacenters(State(agent): State<Arc<Agent>>, opts: QueryOptions) -> ApiResult<Response> {
    let coords: Vec<_> = agent
        .store
        .read()?
        .view()
        .node_coordinates(agent.node_name())?
        .1
        .into_iter()
        // Consul strips the `.<datacenter>` suffix of the WAN member names here.
        .map(|e| json!({ "Node": e.node, "Coord": e.coord }))
        .collect();
    let coords = if coords.is_empty() {
        vec![json!({ "Node": agent.node_name(), "Coord": Coordinate::default() })]
    } else {
        coords
    };
    Ok(json(
        &json!([{ "Datacenter": agent.config.datacenter, "AreaID": "wan", "Coordinates": coords }]),
        opts.pretty,
    ))
}

async fn nodes(State(agent): State<Arc<Agent>>, opts: QueryOptions) -> ApiResult<Response> {
    agent.authorize(&opts.token, Access::NodeRead(""))?;
    let ans = blocking(
        &agent,
        &opts,
        &[WatchKey::Table(Table::Coordinates)],
        true,
        |r| {
            let (idx, all) = r.coordinates()?;
            Ok(Found::new(idx, all))
        },
    )
    .await?;
    let mut list = ans.value;
    if let Some(seg) = opts.params.get("segment") {
        list.retain(|e| e.segment == seg);
    }
    Ok(json_with_meta(&list, &ans.meta, opts.pretty))
}

async fn node(
    State(agent): State<Arc<Agent>>,
    Path(name): Path<String>,
    opts: QueryOptions,
) -> ApiResult<Response> {
    agent.authorize(&opts.token, Access::NodeRead(&name))?;
    let ans = blocking(
        &agent,
        &opts,
        &[WatchKey::Table(Table::Coordinates)],
        true,
        |r| {
            let (idx, list) = r.node_coordinates(&name)?;
            Ok(Found::new(idx, list))
        },
    )
    .await?;
    if ans.value.is_empty() {
        return Ok(not_found_with_meta(&ans.meta));
    }
    Ok(json_with_meta(&ans.value, &ans.meta, opts.pretty))
}

async fn update(
    State(agent): State<Arc<Agent>>,
    opts: QueryOptions,
    body: Bytes,
) -> ApiResult<Response> {
    let entry: CoordinateEntry = decode::from_slice(&body).map_err(ApiError::decode)?;
    agent.authorize(&opts.token, Access::NodeWrite(&entry.node))?;
    if entry.coord.vec.len() != 8 {
        return Err(ApiError::bad_request(format!(
            "Invalid coordinate: dimensionality mismatch ({} != 8)",
            entry.coord.vec.len()
        )));
    }
    agent
        .consensus
        .propose(Command::CoordinateUpdate {
            entries: vec![entry],
        })
        .await?;
    Ok(empty())
}
