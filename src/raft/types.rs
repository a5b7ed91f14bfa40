//! openraft type configuration: our command and response types, the node record.

use serde::{Deserialize, Serialize};
use std::io::Cursor;

use crate::fsm::{Command, Response};

/// What Raft knows about a server: where to reach it and who it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerNode {
    /// Server RPC address, `ip:port` (Consul's port 8300).
    pub addr: String,
    /// The agent's node name.
    pub name: String,
    /// The agent's node ID (UUID).
    pub node_id: String,
}

impl std::fmt::Display for ServerNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.name, self.addr)
    }
}

openraft::declare_raft_types!(
    pub TypeConfig:
        D = Command,
        R = Response,
        NodeId = u64,
        Node = ServerNode,
        SnapshotData = Cursor<Vec<u8>>,
);

pub type LogId = openraft::LogId<u64>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type Vote = openraft::Vote<u64>;
pub type StorageError = openraft::StorageError<u64>;
pub type StoredMembership = openraft::StoredMembership<u64, ServerNode>;
pub type SnapshotMeta = openraft::SnapshotMeta<u64, ServerNode>;

/// Raft IDs are u64; Consul's are node UUIDs. The first 8 bytes of the UUID serve.
pub fn raft_id(node_id: &str) -> u64 {
    match uuid::Uuid::parse_str(node_id) {
        Ok(u) => {
            let b = u.as_bytes();
            u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
        }
        Err(_) => {
            // Not a UUID: hash the text (FNV-1a) so the ID is still stable.
            node_id.bytes().fold(0xcbf29ce484222325u64, |h, b| {
                (h ^ b as u64).wrapping_mul(0x100000001b3)
            })
        }
    }
}
