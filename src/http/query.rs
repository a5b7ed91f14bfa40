//! `QueryOptions`: the one extractor every endpoint uses to read Consul's common query
//! parameters (token, dc, index/wait, consistency, filter, node-meta, tag, near,
//! pretty) with Consul's validation and error texts.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use percent_encoding::percent_decode_str;

use super::error::ApiError;
use crate::agent::Agent;
use crate::config::parse_go_duration;
use crate::filter::Filter;

/// Parsed query string: every `key=value` pair in order (Go's `url.Values`).
#[derive(Debug, Default, Clone)]
pub struct Params(Vec<(String, String)>);

impl Params {
    pub fn parse(raw: &str) -> Params {
        let decode = |s: &str| {
            let s = s.replace('+', " ");
            percent_decode_str(&s).decode_utf8_lossy().into_owned()
        };
        Params(
            raw.split('&')
                .filter(|p| !p.is_empty())
                .map(|pair| match pair.split_once('=') {
                    Some((k, v)) => (decode(k), decode(v)),
                    None => (decode(pair), String::new()),
                })
                .collect(),
        )
    }

    /// The first value (Go's `Values.Get`), `None` when absent.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Presence flags: any value, even `false`, counts as set (Consul's rule).
    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(k, _)| k == name)
    }

    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consistency {
    /// Served by the leader without a quorum check.
    Default,
    Stale,
    Consistent,
}

impl Consistency {
    pub fn header_value(self) -> &'static str {
        match self {
            Consistency::Default => "leader",
            Consistency::Stale => "stale",
            Consistency::Consistent => "consistent",
        }
    }
}

/// Everything a read endpoint needs from the query string and headers.
pub struct QueryOptions {
    pub params: Params,
    pub raw_query: String,
    pub token: String,
    pub min_index: u64,
    pub wait: Duration,
    pub consistency: Consistency,
    pub filter: Option<Filter>,
    pub node_meta: Vec<(String, String)>,
    pub tags: Vec<String>,
    pub near: Option<String>,
    pub pretty: bool,
    /// The node of the agent the client called (`_agent`, a session's default
    /// node): this one, or the one that forwarded the request here.
    pub agent_node: String,
}

fn token_from(params: &Params, parts: &Parts, agent: &Agent) -> String {
    if let Some(t) = params.get("token").filter(|t| !t.is_empty()) {
        return t.to_string();
    }
    if let Some(t) = parts
        .headers
        .get("x-consul-token")
        .and_then(|v| v.to_str().ok())
        .filter(|t| !t.is_empty())
    {
        return t.to_string();
    }
    if let Some(auth) = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
    {
        let mut words = auth.split_whitespace();
        if let (Some(scheme), Some(value)) = (words.next(), words.next())
            && scheme.eq_ignore_ascii_case("bearer")
        {
            return value.to_string();
        }
    }
    agent.config.acl.tokens.default.clone().unwrap_or_default()
}

impl QueryOptions {
    pub fn from_parts(parts: &Parts, agent: &Agent) -> Result<QueryOptions, ApiError> {
        let raw_query = parts.uri.query().unwrap_or("").to_string();
        let params = Params::parse(&raw_query);

        for (param, header, feature) in [
            ("ns", "X-Consul-Namespace", "Namespaces"),
            ("partition", "X-Consul-Partition", "Partitions"),
        ] {
            if params.get(param).is_some_and(|v| !v.is_empty()) {
                return Err(ApiError::bad_request(format!(
                    "Invalid query parameter: \"{param}\" - {feature} are a Consul Enterprise feature"
                )));
            }
            if parts.headers.get(header).is_some_and(|v| !v.is_empty()) {
                return Err(ApiError::bad_request(format!(
                    "Invalid header: \"{header}\" - {feature} are a Consul Enterprise feature"
                )));
            }
        }

        // Requests for another datacenter were forwarded there (`forward`); one
        // that gets here had no path. Agent endpoints ignore `dc`, as Consul's do.
        if let Some(dc) = params.get("dc").filter(|d| !d.is_empty())
            && dc != agent.config.datacenter
            && !super::forward::agent_local(parts.uri.path())
        {
            return Err(ApiError::internal(super::forward::NO_DC_PATH));
        }

        let mut wait = Duration::ZERO;
        if let Some(w) = params.get("wait") {
            wait = parse_go_duration(w).map_err(|_| ApiError::bad_request("Invalid wait time"))?;
        }
        let mut min_index = 0;
        if let Some(i) = params.get("index") {
            min_index = i
                .parse::<u64>()
                .map_err(|_| ApiError::bad_request("Invalid index"))?;
        }

        let stale = params.has("stale");
        let consistent = params.has("consistent");
        let cached = params.has("cached");
        if stale && consistent {
            return Err(ApiError::bad_request(
                "Cannot specify ?stale with ?consistent, conflicting semantics.",
            ));
        }
        if cached && consistent {
            return Err(ApiError::bad_request(
                "Cannot specify ?cached with ?consistent, conflicting semantics.",
            ));
        }
        let mut max_stale = None;
        if let Some(ms) = params.get("max_stale") {
            max_stale =
                Some(parse_go_duration(ms).map_err(|_| {
                    ApiError::bad_request(format!("Invalid max_stale value {ms:?}"))
                })?);
        }
        let consistency = if consistent {
            Consistency::Consistent
        } else if stale || max_stale.is_some_and(|d| !d.is_zero()) {
            Consistency::Stale
        } else {
            Consistency::Default
        };

        let filter_text = params.get("filter").unwrap_or("").to_string();
        let filter = if filter_text.is_empty() {
            None
        } else {
            Some(Filter::parse(&filter_text).map_err(|e| ApiError::internal(e.to_string()))?)
        };

        let node_meta = params
            .all("node-meta")
            .into_iter()
            .map(|kv| match kv.split_once(':') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (kv.to_string(), String::new()),
            })
            .collect();
        let tags = params.all("tag").into_iter().map(str::to_string).collect();
        // A request forwarded by another agent speaks for that agent's node.
        let agent_node = parts
            .headers
            .get(super::forward::AGENT_NODE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or(agent.node_name())
            .to_string();
        let near = params.get("near").filter(|n| !n.is_empty()).map(|n| {
            if n == "_agent" {
                agent_node.clone()
            } else {
                n.to_string()
            }
        });
        let pretty = params.has("pretty") || agent.config.dev;
        let token = token_from(&params, parts, agent);

        Ok(QueryOptions {
            params,
            raw_query,
            token,
            min_index,
            wait,
            consistency,
            filter,
            node_meta,
            tags,
            near,
            pretty,
            agent_node,
        })
    }

    /// Applies `?filter=` to a list of wire values (see [`crate::filter::apply`]).
    pub fn apply_filter<T: serde::Serialize>(&self, items: Vec<T>) -> Result<Vec<T>, ApiError> {
        crate::filter::apply(self.filter.as_ref(), items)
            .map_err(|e| ApiError::internal(e.to_string()))
    }
}

impl FromRequestParts<Arc<Agent>> for QueryOptions {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        agent: &Arc<Agent>,
    ) -> Result<Self, Self::Rejection> {
        QueryOptions::from_parts(parts, agent)
    }
}
