//! `/v1/txn` request and response shapes.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::catalog::{CheckInput, HealthCheck, Node, NodeService, ServiceInput};
use super::codec::null_default;
use super::kv::DirEntry;

/// Most operations one transaction may carry (Consul's `maxTxnOps`).
pub const MAX_TXN_OPS: usize = 128;

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct TxnOpInput {
    #[serde(rename = "KV", default)]
    pub kv: Option<KvTxnOpInput>,
    #[serde(default)]
    pub node: Option<NodeTxnOpInput>,
    #[serde(default)]
    pub service: Option<ServiceTxnOpInput>,
    #[serde(default)]
    pub check: Option<CheckTxnOpInput>,
    #[serde(default)]
    pub session: Option<SessionTxnOpInput>,
}

/// Fields Consul accepts but CE ignores (namespaces, partitions, peers) are decoded
/// so requests carrying them are not rejected as unknown.
#[allow(dead_code)]
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct KvTxnOpInput {
    #[serde(default, deserialize_with = "null_default")]
    pub verb: String,
    #[serde(default, deserialize_with = "null_default")]
    pub key: String,
    #[serde(with = "super::codec::base64_opt", default)]
    pub value: Option<Vec<u8>>,
    #[serde(default, deserialize_with = "null_default")]
    pub flags: u64,
    #[serde(default, deserialize_with = "null_default")]
    pub index: u64,
    #[serde(default, deserialize_with = "null_default")]
    pub session: String,
    #[serde(default, deserialize_with = "null_default")]
    pub namespace: String,
    #[serde(default, deserialize_with = "null_default")]
    pub partition: String,
}

/// Fields Consul accepts but CE ignores (namespaces, partitions, peers) are decoded
/// so requests carrying them are not rejected as unknown.
#[allow(dead_code)]
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct NodeInput {
    #[serde(rename = "ID", default, deserialize_with = "null_default")]
    pub id: String,
    #[serde(default, deserialize_with = "null_default")]
    pub node: String,
    #[serde(default, deserialize_with = "null_default")]
    pub address: String,
    #[serde(default, deserialize_with = "null_default")]
    pub datacenter: String,
    #[serde(default)]
    pub tagged_addresses: super::NilMap<String>,
    #[serde(default)]
    pub meta: super::NilMap<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub partition: String,
    #[serde(default, deserialize_with = "null_default")]
    pub peer_name: String,
    #[serde(default)]
    pub locality: Option<Value>,
    #[serde(default, deserialize_with = "null_default")]
    pub create_index: u64,
    #[serde(default, deserialize_with = "null_default")]
    pub modify_index: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct NodeTxnOpInput {
    #[serde(default, deserialize_with = "null_default")]
    pub verb: String,
    #[serde(default, deserialize_with = "null_default")]
    pub node: NodeInput,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ServiceTxnOpInput {
    #[serde(default, deserialize_with = "null_default")]
    pub verb: String,
    #[serde(default, deserialize_with = "null_default")]
    pub node: String,
    #[serde(default, deserialize_with = "null_default")]
    pub service: ServiceInput,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct CheckTxnOpInput {
    #[serde(default, deserialize_with = "null_default")]
    pub verb: String,
    #[serde(default, deserialize_with = "null_default")]
    pub check: CheckInput,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct SessionRef {
    #[serde(rename = "ID", default, deserialize_with = "null_default")]
    pub id: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct SessionTxnOpInput {
    #[serde(default, deserialize_with = "null_default")]
    pub verb: String,
    #[serde(default, deserialize_with = "null_default")]
    pub session: SessionRef,
}

/// One operation after validation, in the form the FSM applies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TxnOp {
    Kv {
        verb: String,
        entry: DirEntry,
    },
    Node {
        verb: String,
        node: Node,
    },
    Service {
        verb: String,
        node: String,
        service: NodeService,
    },
    Check {
        verb: String,
        check: HealthCheck,
    },
    Session {
        verb: String,
        id: String,
    },
}

impl TxnOp {
    /// Whether the op changes state (read-only transactions skip Raft).
    pub fn is_write(&self) -> bool {
        match self {
            TxnOp::Kv { verb, .. } => matches!(
                verb.as_str(),
                "set" | "delete" | "delete-cas" | "delete-tree" | "cas" | "lock" | "unlock"
            ),
            TxnOp::Node { verb, .. } | TxnOp::Service { verb, .. } | TxnOp::Check { verb, .. } => {
                verb != "get"
            }
            TxnOp::Session { .. } => true,
        }
    }
}

/// One result element: exactly one field is set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TxnResult {
    #[serde(rename = "KV")]
    Kv(DirEntry),
    Node(Node),
    Service(NodeService),
    Check(HealthCheck),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TxnError {
    pub op_index: usize,
    pub what: String,
}

/// The response body, both for 200 and 409.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct TxnResponse {
    pub results: Option<Vec<TxnResult>>,
    pub errors: Option<Vec<TxnError>>,
}
