//! Catalog types: nodes, services, checks, and the register/deregister requests.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

use super::NilMap;
use super::codec::null_default;

pub const HEALTH_PASSING: &str = "passing";
pub const HEALTH_WARNING: &str = "warning";
pub const HEALTH_CRITICAL: &str = "critical";
pub const HEALTH_MAINT: &str = "maintenance";
/// The node-level check every agent has; sessions depend on it by default.
pub const SERF_CHECK_ID: &str = "serfHealth";
pub const SERF_CHECK_NAME: &str = "Serf Health Status";
pub const SERF_CHECK_ALIVE_OUTPUT: &str = "Agent alive and reachable";
/// The service every server registers for itself.
pub const CONSUL_SERVICE: &str = "consul";

pub fn is_valid_status(s: &str) -> bool {
    matches!(s, HEALTH_PASSING | HEALTH_WARNING | HEALTH_CRITICAL)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Weights {
    pub passing: i64,
    pub warning: i64,
}

impl Default for Weights {
    fn default() -> Self {
        Weights {
            passing: 1,
            warning: 1,
        }
    }
}

/// A catalog node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct Node {
    #[serde(rename = "ID")]
    pub id: String,
    pub node: String,
    pub address: String,
    pub datacenter: String,
    #[serde(default)]
    pub tagged_addresses: NilMap<String>,
    #[serde(default)]
    pub meta: NilMap<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub locality: Option<Value>,
    pub create_index: u64,
    pub modify_index: u64,
}

/// A service instance on a node (Consul's `NodeService`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NodeService {
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub kind: String,
    #[serde(rename = "ID")]
    pub id: String,
    pub service: String,
    pub tags: Vec<String>,
    pub address: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
    pub tagged_addresses: BTreeMap<String, Value>,
    #[serde(default)]
    pub meta: NilMap<String>,
    pub port: i64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ports: Option<Value>,
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub socket_path: String,
    pub weights: Weights,
    pub enable_tag_override: bool,
    pub proxy: Value,
    pub connect: Value,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub locality: Option<Value>,
    pub create_index: u64,
    pub modify_index: u64,
}

impl Default for NodeService {
    fn default() -> Self {
        NodeService {
            kind: String::new(),
            id: String::new(),
            service: String::new(),
            tags: Vec::new(),
            address: String::new(),
            tagged_addresses: BTreeMap::new(),
            meta: NilMap::default(),
            port: 0,
            ports: None,
            socket_path: String::new(),
            weights: Weights::default(),
            enable_tag_override: false,
            proxy: default_proxy(),
            connect: Value::Object(Default::default()),
            locality: None,
            create_index: 0,
            modify_index: 0,
        }
    }
}

/// What Consul prints for `Proxy` on a service that is not a proxy.
pub fn default_proxy() -> Value {
    serde_json::json!({"Mode": "", "MeshGateway": {}, "Expose": {}})
}

/// A health check (node-level when `ServiceID` is empty).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct HealthCheck {
    pub node: String,
    #[serde(rename = "CheckID")]
    pub check_id: String,
    pub name: String,
    pub status: String,
    pub notes: String,
    pub output: String,
    #[serde(rename = "ServiceID")]
    pub service_id: String,
    pub service_name: String,
    pub service_tags: Vec<String>,
    #[serde(rename = "Type")]
    pub check_type: String,
    pub interval: String,
    pub timeout: String,
    pub exposed_port: i64,
    pub definition: Value,
    pub create_index: u64,
    pub modify_index: u64,
}

/// A service instance joined with its node (Consul's `ServiceNode`, the element of
/// `/v1/catalog/service/:name`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ServiceNode {
    #[serde(rename = "ID")]
    pub id: String,
    pub node: String,
    pub address: String,
    pub datacenter: String,
    pub tagged_addresses: NilMap<String>,
    pub node_meta: NilMap<String>,
    pub service_kind: String,
    #[serde(rename = "ServiceID")]
    pub service_id: String,
    pub service_name: String,
    pub service_tags: Vec<String>,
    pub service_address: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub service_tagged_addresses: BTreeMap<String, Value>,
    pub service_weights: Weights,
    pub service_meta: NilMap<String>,
    pub service_port: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_ports: Option<Value>,
    pub service_socket_path: String,
    pub service_enable_tag_override: bool,
    pub service_proxy: Value,
    pub service_connect: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_locality: Option<Value>,
    pub create_index: u64,
    pub modify_index: u64,
}

impl ServiceNode {
    pub fn new(node: &Node, svc: &NodeService) -> Self {
        ServiceNode {
            id: node.id.clone(),
            node: node.node.clone(),
            address: node.address.clone(),
            datacenter: node.datacenter.clone(),
            tagged_addresses: node.tagged_addresses.clone(),
            node_meta: node.meta.clone(),
            service_kind: svc.kind.clone(),
            service_id: svc.id.clone(),
            service_name: svc.service.clone(),
            service_tags: svc.tags.clone(),
            service_address: svc.address.clone(),
            service_tagged_addresses: svc.tagged_addresses.clone(),
            service_weights: svc.weights.clone(),
            service_meta: svc.meta.clone(),
            service_port: svc.port,
            service_ports: svc.ports.clone(),
            service_socket_path: svc.socket_path.clone(),
            service_enable_tag_override: svc.enable_tag_override,
            service_proxy: svc.proxy.clone(),
            service_connect: svc.connect.clone(),
            service_locality: svc.locality.clone(),
            create_index: svc.create_index,
            modify_index: svc.modify_index,
        }
    }
}

/// `/v1/catalog/node/:node`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct NodeServices {
    pub node: Node,
    pub services: BTreeMap<String, NodeService>,
}

/// An element of `/v1/health/service/:name`.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CheckServiceNode {
    pub node: Node,
    pub service: NodeService,
    pub checks: Vec<HealthCheck>,
}

/// A service as given in a catalog registration (all fields optional on the wire).
/// Fields Consul accepts but CE ignores (namespaces, partitions, peers) are decoded
/// so requests carrying them are not rejected as unknown.
#[allow(dead_code)]
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ServiceInput {
    #[serde(default, deserialize_with = "null_default")]
    pub kind: String,
    #[serde(rename = "ID", default, deserialize_with = "null_default")]
    pub id: String,
    #[serde(default, deserialize_with = "null_default")]
    pub service: String,
    #[serde(default, deserialize_with = "null_default")]
    pub tags: Vec<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub address: String,
    #[serde(default, deserialize_with = "null_default")]
    pub tagged_addresses: BTreeMap<String, Value>,
    #[serde(default)]
    pub meta: NilMap<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub port: i64,
    #[serde(default)]
    pub ports: Option<Value>,
    #[serde(default, deserialize_with = "null_default")]
    pub socket_path: String,
    #[serde(default)]
    pub weights: Option<Weights>,
    #[serde(default, deserialize_with = "null_default")]
    pub enable_tag_override: bool,
    #[serde(default)]
    pub proxy: Option<Value>,
    #[serde(default)]
    pub connect: Option<Value>,
    #[serde(default)]
    pub locality: Option<Value>,
    #[serde(default, deserialize_with = "null_default")]
    pub peer_name: String,
    #[serde(default, deserialize_with = "null_default")]
    pub namespace: String,
    #[serde(default, deserialize_with = "null_default")]
    pub partition: String,
    #[serde(default, deserialize_with = "null_default")]
    pub create_index: u64,
    #[serde(default, deserialize_with = "null_default")]
    pub modify_index: u64,
}

impl ServiceInput {
    pub fn into_node_service(self) -> NodeService {
        let id = if self.id.is_empty() {
            self.service.clone()
        } else {
            self.id
        };
        NodeService {
            kind: self.kind,
            id,
            service: self.service,
            tags: self.tags,
            address: self.address,
            tagged_addresses: self.tagged_addresses,
            meta: self.meta,
            port: self.port,
            ports: self.ports.filter(|p| !p.is_null()),
            socket_path: self.socket_path,
            // Zero weights (an unset Go struct) mean the defaults.
            weights: self
                .weights
                .filter(|w| w.passing != 0 || w.warning != 0)
                .unwrap_or_default(),
            enable_tag_override: self.enable_tag_override,
            proxy: self
                .proxy
                .filter(|v| !v.is_null())
                .unwrap_or_else(default_proxy),
            connect: self
                .connect
                .filter(|v| !v.is_null())
                .unwrap_or_else(|| Value::Object(Default::default())),
            locality: self.locality.filter(|l| !l.is_null()),
            create_index: 0,
            modify_index: 0,
        }
    }
}

/// A check as given in a catalog registration.
/// Fields Consul accepts but CE ignores (namespaces, partitions, peers) are decoded
/// so requests carrying them are not rejected as unknown.
#[allow(dead_code)]
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct CheckInput {
    #[serde(default, deserialize_with = "null_default")]
    pub node: String,
    #[serde(rename = "CheckID", default, deserialize_with = "null_default")]
    pub check_id: String,
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    #[serde(default, deserialize_with = "null_default")]
    pub status: String,
    #[serde(default, deserialize_with = "null_default")]
    pub notes: String,
    #[serde(default, deserialize_with = "null_default")]
    pub output: String,
    #[serde(rename = "ServiceID", default, deserialize_with = "null_default")]
    pub service_id: String,
    #[serde(default, deserialize_with = "null_default")]
    pub service_name: String,
    #[serde(default, deserialize_with = "null_default")]
    pub service_tags: Vec<String>,
    #[serde(rename = "Type", default, deserialize_with = "null_default")]
    pub check_type: String,
    #[serde(default, deserialize_with = "null_default")]
    pub interval: String,
    #[serde(default, deserialize_with = "null_default")]
    pub timeout: String,
    #[serde(default, deserialize_with = "null_default")]
    pub exposed_port: i64,
    #[serde(default)]
    pub definition: Option<Value>,
    #[serde(default, deserialize_with = "null_default")]
    pub peer_name: String,
    #[serde(default, deserialize_with = "null_default")]
    pub namespace: String,
    #[serde(default, deserialize_with = "null_default")]
    pub partition: String,
    #[serde(default, deserialize_with = "null_default")]
    pub create_index: u64,
    #[serde(default, deserialize_with = "null_default")]
    pub modify_index: u64,
}

impl CheckInput {
    pub fn into_health_check(self) -> HealthCheck {
        let definition = normalize_definition(self.definition.filter(|v| !v.is_null()));
        let check_type = if self.check_type.is_empty() {
            definition_type(&definition).to_string()
        } else {
            self.check_type
        };
        HealthCheck {
            node: self.node,
            check_id: self.check_id,
            name: self.name,
            status: if self.status.is_empty() {
                HEALTH_CRITICAL.to_string()
            } else {
                self.status
            },
            notes: self.notes,
            output: self.output,
            service_id: self.service_id,
            service_name: self.service_name,
            service_tags: self.service_tags,
            check_type,
            interval: self.interval,
            timeout: self.timeout,
            exposed_port: self.exposed_port,
            definition,
            create_index: 0,
            modify_index: 0,
        }
    }
}

/// The check type a definition implies (Consul fills `Type` from it).
fn definition_type(def: &Value) -> &'static str {
    let has = |k: &str| {
        def.get(k)
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty())
    };
    if has("HTTP") {
        "http"
    } else if has("TCP") {
        "tcp"
    } else if has("UDP") {
        "udp"
    } else if has("GRPC") {
        "grpc"
    } else if has("OSService") {
        "os_service"
    } else {
        ""
    }
}

/// A check's `Definition` as Consul stores it: known fields only, zero values left
/// out, durations as Go duration strings whichever form (`Interval` string or
/// `IntervalDuration` nanoseconds) they arrived in.
pub fn normalize_definition(def: Option<Value>) -> Value {
    let mut out = serde_json::Map::new();
    let Some(Value::Object(input)) = def else {
        return Value::Object(out);
    };
    let find = |name: &str| {
        input
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    for key in [
        "HTTP",
        "Header",
        "Method",
        "Body",
        "TLSServerName",
        "TLSSkipVerify",
        "TCP",
        "TCPUseTLS",
        "UDP",
        "GRPC",
        "OSService",
        "GRPCUseTLS",
        "SessionName",
    ] {
        match find(key) {
            None | Some(Value::Null) | Some(Value::Bool(false)) => {}
            Some(Value::String(s)) if s.is_empty() => {}
            Some(Value::Object(m)) if m.is_empty() => {}
            Some(v) => {
                out.insert(key.to_string(), v);
            }
        }
    }
    for key in ["Interval", "Timeout", "DeregisterCriticalServiceAfter"] {
        let nanos = |v: Option<Value>| -> u64 {
            match v {
                Some(Value::Number(n)) => n.as_f64().unwrap_or(0.0).max(0.0) as u64,
                Some(Value::String(s)) => crate::config::parse_go_duration(&s)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(0),
                _ => 0,
            }
        };
        let mut ns = nanos(find(&format!("{key}Duration")));
        if ns == 0 {
            ns = nanos(find(key));
        }
        if ns > 0 {
            out.insert(
                key.to_string(),
                Value::String(crate::config::format_go_duration(
                    std::time::Duration::from_nanos(ns),
                )),
            );
        }
    }
    Value::Object(out)
}

/// `PUT /v1/catalog/register`.
/// Fields Consul accepts but CE ignores (namespaces, partitions, peers) are decoded
/// so requests carrying them are not rejected as unknown.
#[allow(dead_code)]
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct RegisterRequest {
    #[serde(rename = "ID", default, deserialize_with = "null_default")]
    pub id: String,
    #[serde(default, deserialize_with = "null_default")]
    pub node: String,
    #[serde(default, deserialize_with = "null_default")]
    pub address: String,
    #[serde(default, deserialize_with = "null_default")]
    pub datacenter: String,
    #[serde(default)]
    pub tagged_addresses: NilMap<String>,
    #[serde(default)]
    pub node_meta: NilMap<String>,
    #[serde(default)]
    pub service: Option<ServiceInput>,
    #[serde(default)]
    pub check: Option<CheckInput>,
    #[serde(default, deserialize_with = "null_default")]
    pub checks: Vec<CheckInput>,
    #[serde(default, deserialize_with = "null_default")]
    pub skip_node_update: bool,
    #[serde(default)]
    pub locality: Option<Value>,
    #[serde(default, deserialize_with = "null_default")]
    pub peer_name: String,
    #[serde(default, deserialize_with = "null_default")]
    pub partition: String,
    #[serde(default, deserialize_with = "null_default")]
    pub namespace: String,
    #[serde(default, deserialize_with = "null_default")]
    pub token: String,
    #[serde(default)]
    pub enterprise_meta: Option<Value>,
}

/// `PUT /v1/catalog/deregister`.
/// Fields Consul accepts but CE ignores (namespaces, partitions, peers) are decoded
/// so requests carrying them are not rejected as unknown.
#[allow(dead_code)]
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct DeregisterRequest {
    #[serde(default, deserialize_with = "null_default")]
    pub node: String,
    #[serde(rename = "ServiceID", default, deserialize_with = "null_default")]
    pub service_id: String,
    #[serde(rename = "CheckID", default, deserialize_with = "null_default")]
    pub check_id: String,
    #[serde(default, deserialize_with = "null_default")]
    pub datacenter: String,
    /// Sent by the Go client; Consul ignores it for deregistration.
    #[serde(default, deserialize_with = "null_default")]
    pub address: String,
    #[serde(default, deserialize_with = "null_default")]
    pub peer_name: String,
    #[serde(default, deserialize_with = "null_default")]
    pub partition: String,
    #[serde(default, deserialize_with = "null_default")]
    pub namespace: String,
    #[serde(default)]
    pub enterprise_meta: Option<Value>,
}
