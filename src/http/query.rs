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

/// The read mode a request asks for, as Consul's `parseConsistency` derives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadMode {
    pub consistency: Consistency,
    /// `Some` (and positive) when a stale read is bounded: a follower whose last
    /// contact with the leader is older re-runs the read on the leader.
    pub max_stale: Option<Duration>,
}

impl ReadMode {
    /// `?stale`, `?consistent`, `?leader`, `?cached` and `?max_stale=<dur>`. A
    /// positive `max_stale` implies `stale`. A request naming none of them on
    /// `/v1/catalog` or `/v1/health` is a bounded stale read when the agent sets
    /// `discovery_max_stale`.
    pub fn parse(
        path: &str,
        params: &Params,
        discovery_max_stale: Duration,
    ) -> Result<ReadMode, ApiError> {
        let mut stale = params.has("stale");
        let consistent = params.has("consistent");
        let cached = params.has("cached");
        let mut defaults = !(stale || consistent || cached || params.has("leader"));
        let mut max_stale = None;
        if let Some(ms) = params.get("max_stale").filter(|v| !v.is_empty()) {
            let d = crate::config::parse_go_duration_nanos(ms)
                .map_err(|_| ApiError::bad_request(format!("Invalid max_stale value {ms:?}")))?;
            // Zero or negative: parsed, but it neither bounds nor implies staleness.
            if d > 0 {
                max_stale = Some(Duration::from_nanos(d as u64));
                stale = true;
                defaults = false;
            }
        }
        if defaults
            && !discovery_max_stale.is_zero()
            && (path.starts_with("/v1/catalog") || path.starts_with("/v1/health"))
        {
            max_stale = Some(discovery_max_stale);
            stale = true;
        }
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
        let consistency = if consistent {
            Consistency::Consistent
        } else if stale {
            Consistency::Stale
        } else {
            Consistency::Default
        };
        Ok(ReadMode {
            consistency,
            max_stale,
        })
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
    /// The forwarding middleware can still send this request to the leader if
    /// this server turns out not to lead any more ([`super::forward::Reroutable`]).
    pub reroutable: bool,
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

        let mode = ReadMode::parse(parts.uri.path(), &params, agent.config.discovery_max_stale)?;
        // A bound on staleness is the forwarding middleware's business: by the time
        // a handler runs, the read is served here.
        let consistency = mode.consistency;

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
            reroutable: parts
                .extensions
                .get::<super::forward::Reroutable>()
                .is_some(),
        })
    }

    /// What, besides the endpoint's `label`, decides a read's answer: the query
    /// string without `index` and `wait` (they only decide when to answer), the
    /// token, and the agent node `near=_agent` stands for.
    pub fn share_key(&self, label: &str) -> String {
        let mut key = format!("{label}\0{}\0", self.token);
        if let Some(near) = &self.near {
            key.push_str(near);
        }
        for part in self.raw_query.split('&') {
            let name = part.split_once('=').map_or(part, |(n, _)| n);
            if !matches!(name, "index" | "wait" | "") {
                key.push('\0');
                key.push_str(part);
            }
        }
        key
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

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &str, query: &str, discovery: Duration) -> Result<ReadMode, ApiError> {
        ReadMode::parse(path, &Params::parse(query), discovery)
    }

    #[test]
    fn max_stale_implies_stale() {
        let m = mode("/v1/kv/a", "max_stale=5s", Duration::ZERO).unwrap();
        assert_eq!(m.consistency, Consistency::Stale);
        assert_eq!(m.max_stale, Some(Duration::from_secs(5)));
        // Zero neither bounds nor implies staleness.
        let m = mode("/v1/kv/a", "max_stale=0s", Duration::ZERO).unwrap();
        assert_eq!((m.consistency, m.max_stale), (Consistency::Default, None));
        let m = mode("/v1/kv/a", "stale", Duration::ZERO).unwrap();
        assert_eq!((m.consistency, m.max_stale), (Consistency::Stale, None));
    }

    #[test]
    fn max_stale_errors() {
        let e = mode("/v1/kv/a", "max_stale=soon", Duration::ZERO).unwrap_err();
        assert_eq!(e.body, "Invalid max_stale value \"soon\"");
        let e = mode("/v1/kv/a", "max_stale=1s&consistent", Duration::ZERO).unwrap_err();
        assert_eq!(
            e.body,
            "Cannot specify ?stale with ?consistent, conflicting semantics."
        );
    }

    #[test]
    fn discovery_max_stale_applies_to_default_discovery_reads_only() {
        let d = Duration::from_secs(30);
        for path in ["/v1/catalog/nodes", "/v1/health/service/web"] {
            let m = mode(path, "", d).unwrap();
            assert_eq!((m.consistency, m.max_stale), (Consistency::Stale, Some(d)));
        }
        let m = mode("/v1/kv/a", "", d).unwrap();
        assert_eq!((m.consistency, m.max_stale), (Consistency::Default, None));
        for q in ["leader", "consistent", "cached"] {
            let m = mode("/v1/catalog/nodes", q, d).unwrap();
            assert_eq!(m.max_stale, None, "{q}");
        }
        let m = mode("/v1/catalog/nodes", "max_stale=1s", d).unwrap();
        assert_eq!(m.max_stale, Some(Duration::from_secs(1)));
    }
}
