//! KV entries (`DirEntry`) as Consul stores and returns them.

use serde::{Deserialize, Serialize};

/// One KV entry. `Value` is base64 on the wire and `null` when empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct DirEntry {
    pub lock_index: u64,
    pub key: String,
    pub flags: u64,
    #[serde(with = "super::codec::base64_opt", default)]
    pub value: Option<Vec<u8>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub session: Option<String>,
    pub create_index: u64,
    pub modify_index: u64,
}

impl DirEntry {
    /// Consul treats a write whose visible content equals the stored entry as a no-op
    /// (no new ModifyIndex, no wake-ups).
    pub fn same_content(&self, other: &DirEntry) -> bool {
        self.key == other.key
            && self.flags == other.flags
            && self.value == other.value
            && self.session == other.session
            && self.lock_index == other.lock_index
    }
}
