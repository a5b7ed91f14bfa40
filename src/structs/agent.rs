//! Agent-side definitions: `ServiceDefinition` and `CheckDefinition` as
//! `/v1/agent/service/register`, `/v1/agent/check/register` and config files give
//! them (Go durations as strings or nanoseconds, snake_case aliases), and the
//! `AgentService` answer shape.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

use super::catalog::Weights;
use super::codec::null_default;

/// Writes an optional duration the way [`go_duration_opt`] reads it back: a Go
/// duration string (exact to the nanosecond), or null.
pub fn go_duration_opt_ser<S: serde::Serializer>(
    d: &Option<Duration>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_str(&crate::config::format_go_duration(*d)),
        None => s.serialize_none(),
    }
}

/// A Go duration given as a string (`"10s"`) or as integer nanoseconds.
pub fn go_duration_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => crate::config::parse_go_duration(&s)
            .map(Some)
            .map_err(|_| serde::de::Error::custom(format!("time: invalid duration \"{s}\""))),
        Some(Value::Number(n)) => Ok(Some(Duration::from_nanos(
            n.as_f64().unwrap_or(0.0).max(0.0) as u64,
        ))),
        Some(other) => Err(serde::de::Error::custom(format!(
            "time: invalid duration {other}"
        ))),
    }
}

/// A health check as an agent is asked to run it (Consul's `CheckType` and
/// `CheckDefinition` in one: the latter adds ID, ServiceID and Token).
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct CheckDefinition {
    #[serde(rename = "ID", default, deserialize_with = "null_default")]
    pub id: String,
    #[serde(rename = "CheckID", default, deserialize_with = "null_default")]
    pub check_id: String,
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    #[serde(default, deserialize_with = "null_default")]
    pub notes: String,
    #[serde(rename = "ServiceID", default, deserialize_with = "null_default")]
    pub service_id: String,
    #[serde(default, deserialize_with = "null_default")]
    pub token: String,
    #[serde(default, deserialize_with = "null_default")]
    pub status: String,
    #[serde(default, deserialize_with = "null_default")]
    pub output: String,
    #[serde(default, deserialize_with = "null_default")]
    pub script_args: Vec<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub args: Vec<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub script: String,
    #[serde(rename = "HTTP", default, deserialize_with = "null_default")]
    pub http: String,
    #[serde(default, deserialize_with = "null_default")]
    pub header: BTreeMap<String, Vec<String>>,
    #[serde(default, deserialize_with = "null_default")]
    pub method: String,
    #[serde(default, deserialize_with = "null_default")]
    pub body: String,
    #[serde(default, deserialize_with = "null_default")]
    pub disable_redirects: bool,
    #[serde(rename = "TCP", default, deserialize_with = "null_default")]
    pub tcp: String,
    #[serde(rename = "TCPUseTLS", default, deserialize_with = "null_default")]
    pub tcp_use_tls: bool,
    #[serde(rename = "UDP", default, deserialize_with = "null_default")]
    pub udp: String,
    #[serde(rename = "OSService", default, deserialize_with = "null_default")]
    pub os_service: String,
    #[serde(
        default,
        deserialize_with = "go_duration_opt",
        serialize_with = "go_duration_opt_ser"
    )]
    pub interval: Option<Duration>,
    #[serde(
        default,
        deserialize_with = "go_duration_opt",
        serialize_with = "go_duration_opt_ser"
    )]
    pub timeout: Option<Duration>,
    #[serde(
        rename = "TTL",
        default,
        deserialize_with = "go_duration_opt",
        serialize_with = "go_duration_opt_ser"
    )]
    pub ttl: Option<Duration>,
    #[serde(default, deserialize_with = "null_default")]
    pub alias_node: String,
    #[serde(default, deserialize_with = "null_default")]
    pub alias_service: String,
    #[serde(
        rename = "DockerContainerID",
        default,
        deserialize_with = "null_default"
    )]
    pub docker_container_id: String,
    #[serde(default, deserialize_with = "null_default")]
    pub shell: String,
    #[serde(rename = "GRPC", default, deserialize_with = "null_default")]
    pub grpc: String,
    #[serde(rename = "GRPCUseTLS", default, deserialize_with = "null_default")]
    pub grpc_use_tls: bool,
    #[serde(rename = "H2PING", default, deserialize_with = "null_default")]
    pub h2ping: String,
    #[serde(rename = "H2PingUseTLS", default, deserialize_with = "null_default")]
    pub h2ping_use_tls: bool,
    #[serde(rename = "TLSServerName", default, deserialize_with = "null_default")]
    pub tls_server_name: String,
    #[serde(rename = "TLSSkipVerify", default, deserialize_with = "null_default")]
    pub tls_skip_verify: bool,
    #[serde(default, deserialize_with = "null_default")]
    pub success_before_passing: u32,
    #[serde(default, deserialize_with = "null_default")]
    pub failures_before_warning: u32,
    #[serde(default, deserialize_with = "null_default")]
    pub failures_before_critical: u32,
    #[serde(
        default,
        deserialize_with = "go_duration_opt",
        serialize_with = "go_duration_opt_ser"
    )]
    pub deregister_critical_service_after: Option<Duration>,
    #[serde(default, deserialize_with = "null_default")]
    pub output_max_size: usize,
    #[serde(rename = "ProxyHTTP", default, deserialize_with = "null_default")]
    pub proxy_http: String,
    #[serde(rename = "ProxyGRPC", default, deserialize_with = "null_default")]
    pub proxy_grpc: String,
    #[serde(default, deserialize_with = "null_default")]
    pub namespace: String,
    #[serde(default, deserialize_with = "null_default")]
    pub partition: String,
    #[serde(rename = "Type", default, deserialize_with = "null_default")]
    pub check_type: String,
}

impl CheckDefinition {
    /// The script arguments under whichever name they were given.
    pub fn script_args(&self) -> Vec<String> {
        if !self.script_args.is_empty() {
            self.script_args.clone()
        } else if !self.args.is_empty() {
            self.args.clone()
        } else if !self.script.is_empty() {
            vec!["/bin/sh".into(), "-c".into(), self.script.clone()]
        } else {
            Vec::new()
        }
    }

    /// Consul's check type name (`Type` in answers).
    pub fn kind(&self) -> &'static str {
        if self.ttl.is_some() {
            "ttl"
        } else if !self.http.is_empty() {
            "http"
        } else if !self.tcp.is_empty() {
            "tcp"
        } else if !self.udp.is_empty() {
            "udp"
        } else if !self.grpc.is_empty() {
            "grpc"
        } else if !self.h2ping.is_empty() {
            "h2ping"
        } else if !self.docker_container_id.is_empty() {
            "docker"
        } else if !self.alias_service.is_empty() || !self.alias_node.is_empty() {
            "alias"
        } else if !self.os_service.is_empty() {
            "os_service"
        } else if !self.script_args().is_empty() {
            "script"
        } else {
            ""
        }
    }

    /// Whether this definition names anything to check at all.
    pub fn is_valid(&self) -> bool {
        !self.kind().is_empty()
    }
}

#[derive(Debug, Clone, Deserialize, Default, PartialEq)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct TaggedAddress {
    #[serde(default, deserialize_with = "null_default")]
    pub address: String,
    #[serde(default, deserialize_with = "null_default")]
    pub port: i64,
}

/// `PUT /v1/agent/service/register` and config-file `service` blocks.
/// Fields Consul accepts but CE ignores (namespaces, partitions, peers) are decoded
/// so requests carrying them are not rejected as unknown.
#[allow(dead_code)]
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ServiceDefinition {
    #[serde(default, deserialize_with = "null_default")]
    pub kind: String,
    #[serde(rename = "ID", default, deserialize_with = "null_default")]
    pub id: String,
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    #[serde(default, deserialize_with = "null_default")]
    pub tags: Vec<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub address: String,
    #[serde(default, deserialize_with = "null_default")]
    pub tagged_addresses: BTreeMap<String, TaggedAddress>,
    #[serde(default, deserialize_with = "null_default")]
    pub meta: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "null_default")]
    pub port: i64,
    #[serde(default)]
    pub ports: Option<Value>,
    #[serde(default, deserialize_with = "null_default")]
    pub socket_path: String,
    #[serde(default)]
    pub check: Option<CheckDefinition>,
    #[serde(default, deserialize_with = "null_default")]
    pub checks: Vec<CheckDefinition>,
    #[serde(default)]
    pub weights: Option<Weights>,
    #[serde(default, deserialize_with = "null_default")]
    pub token: String,
    #[serde(default, deserialize_with = "null_default")]
    pub enable_tag_override: bool,
    #[serde(default)]
    pub proxy: Option<Value>,
    #[serde(default)]
    pub connect: Option<Value>,
    #[serde(default)]
    pub locality: Option<Value>,
    #[serde(default, deserialize_with = "null_default")]
    pub namespace: String,
    #[serde(default, deserialize_with = "null_default")]
    pub partition: String,
}

/// One service as `/v1/agent/services` shows it (`api.AgentService`).
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct AgentService {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(rename = "ID")]
    pub id: String,
    pub service: String,
    pub tags: Vec<String>,
    pub meta: BTreeMap<String, String>,
    pub port: i64,
    pub address: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub socket_path: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tagged_addresses: BTreeMap<String, Value>,
    pub weights: Weights,
    pub enable_tag_override: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_hash: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ports: Option<Value>,
    pub datacenter: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locality: Option<Value>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::structs::decode;

    #[test]
    fn service_definition_accepts_aliases_nulls_and_durations() {
        let d: ServiceDefinition = decode::from_slice(
            br#"{"name":"web","Tags":null,"Port":80,"enable_tag_override":true,
                 "Check":{"http":"http://x/","interval":"10s","DeregisterCriticalServiceAfter":"1m","tls_skip_verify":true},
                 "checks":[{"args":["/bin/true"],"Interval":1000000000},{"TTL":"5s"}]}"#,
        )
        .unwrap();
        assert_eq!(d.name, "web");
        assert!(d.enable_tag_override);
        let c = d.check.unwrap();
        assert_eq!(c.interval, Some(Duration::from_secs(10)));
        assert_eq!(
            c.deregister_critical_service_after,
            Some(Duration::from_secs(60))
        );
        assert!(c.tls_skip_verify);
        assert_eq!(c.kind(), "http");
        assert_eq!(d.checks[0].script_args(), vec!["/bin/true"]);
        assert_eq!(d.checks[0].interval, Some(Duration::from_secs(1)));
        assert_eq!(d.checks[1].kind(), "ttl");
    }

    #[test]
    fn bad_durations_say_invalid_duration() {
        let e = decode::from_slice::<CheckDefinition>(br#"{"TTL":"nope"}"#).unwrap_err();
        assert!(e.contains("invalid duration"), "{e}");
    }
}
