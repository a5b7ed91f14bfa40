//! Members as the rest of the agent sees them (serf's `Member`), and the identity foca
//! gossips about.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

/// memberlist protocol versions Consul reports (`ProtocolMin/Max/Cur` in `/v1/agent/members`).
pub const PROTOCOL_MIN: u8 = 1;
pub const PROTOCOL_MAX: u8 = 5;
pub const PROTOCOL_CUR: u8 = 2;
/// serf protocol versions Consul reports (`DelegateMin/Max/Cur`).
pub const DELEGATE_MIN: u8 = 2;
pub const DELEGATE_MAX: u8 = 5;
pub const DELEGATE_CUR: u8 = 4;

/// serf's member status. `code()` is the number Consul's JSON carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemberStatus {
    Alive,
    Leaving,
    Left,
    Failed,
}

impl MemberStatus {
    /// serf's numeric status (`Status` in `/v1/agent/members`).
    pub fn code(self) -> u8 {
        match self {
            MemberStatus::Alive => 1,
            MemberStatus::Leaving => 2,
            MemberStatus::Left => 3,
            MemberStatus::Failed => 4,
        }
    }

    /// serf's status string (`consul members` prints it).
    pub fn as_str(self) -> &'static str {
        match self {
            MemberStatus::Alive => "alive",
            MemberStatus::Leaving => "leaving",
            MemberStatus::Left => "left",
            MemberStatus::Failed => "failed",
        }
    }
}

/// One member of the pool, self included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    pub addr: IpAddr,
    pub port: u16,
    pub tags: BTreeMap<String, String>,
    pub status: MemberStatus,
    pub protocol_min: u8,
    pub protocol_max: u8,
    pub protocol_cur: u8,
    pub delegate_min: u8,
    pub delegate_max: u8,
    pub delegate_cur: u8,
}

impl Member {
    pub(crate) fn new(
        name: &str,
        addr: SocketAddr,
        tags: BTreeMap<String, String>,
        status: MemberStatus,
    ) -> Member {
        Member {
            name: name.to_string(),
            addr: addr.ip(),
            port: addr.port(),
            tags,
            status,
            protocol_min: PROTOCOL_MIN,
            protocol_max: PROTOCOL_MAX,
            protocol_cur: PROTOCOL_CUR,
            delegate_min: DELEGATE_MIN,
            delegate_max: DELEGATE_MAX,
            delegate_cur: DELEGATE_CUR,
        }
    }
}

/// What foca knows a member by. `generation` orders the lives of one (name, address): it starts
/// at the process start time in milliseconds, so a restarted member outranks its previous
/// life, and grows by one each time the member renews itself after being declared down.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NodeId {
    pub name: String,
    pub addr: SocketAddr,
    pub generation: u64,
}

impl foca::Identity for NodeId {
    // Name *and* address: two live processes claiming one name stay two foca members, and
    // the member table settles the conflict (see `state.rs`) instead of foca flip-flopping
    // them down forever.
    type Addr = (String, SocketAddr);

    fn renew(&self) -> Option<Self> {
        // Declared down while actually alive (a partition, a long pause, a restart the pool
        // has not noticed yet): come back under a newer generation at once.
        Some(NodeId {
            generation: self.generation + 1,
            ..self.clone()
        })
    }

    fn addr(&self) -> Self::Addr {
        (self.name.clone(), self.addr)
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        self.generation > adversary.generation
    }
}
