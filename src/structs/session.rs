//! Sessions: the JSON shape, behaviours and the limits Consul validates.

use serde::{Deserialize, Serialize};
use std::time::Duration;

pub const SESSION_BEHAVIOR_RELEASE: &str = "release";
pub const SESSION_BEHAVIOR_DELETE: &str = "delete";
/// The default lock delay (`LockDelay` when the request gives none).
pub const DEFAULT_LOCK_DELAY: Duration = Duration::from_secs(15);
/// Lock delays are capped at one minute, as Consul caps them.
pub const MAX_LOCK_DELAY: Duration = Duration::from_secs(60);
pub const SESSION_TTL_MAX: Duration = Duration::from_secs(24 * 3600);
/// Sessions are reaped after TTL × this multiplier without a renew.
pub const SESSION_TTL_MULTIPLIER: u32 = 2;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ServiceCheck {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(default)]
    pub namespace: String,
}

/// A session as stored and returned. `LockDelay` is an integer in nanoseconds, `TTL` a
/// Go duration string, as on Consul's wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Session {
    #[serde(rename = "ID")]
    pub id: String,
    pub name: String,
    pub node: String,
    pub lock_delay: u64,
    pub behavior: String,
    #[serde(rename = "TTL")]
    pub ttl: String,
    pub node_checks: Vec<String>,
    pub service_checks: Option<Vec<ServiceCheck>>,
    pub create_index: u64,
    pub modify_index: u64,
}

impl Session {
    /// Every check whose health the session depends on (node checks first).
    pub fn check_ids(&self) -> Vec<String> {
        let mut ids = self.node_checks.clone();
        if let Some(svc) = &self.service_checks {
            ids.extend(svc.iter().map(|c| c.id.clone()));
        }
        ids
    }
}

/// The wire form of a session (the legacy `Checks` list is no longer sent).
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SessionView<'a> {
    #[serde(rename = "ID")]
    pub id: &'a str,
    pub name: &'a str,
    pub node: &'a str,
    pub lock_delay: u64,
    pub behavior: &'a str,
    #[serde(rename = "TTL")]
    pub ttl: &'a str,
    pub node_checks: &'a [String],
    pub service_checks: &'a Option<Vec<ServiceCheck>>,
    pub create_index: u64,
    pub modify_index: u64,
}

impl<'a> From<&'a Session> for SessionView<'a> {
    fn from(s: &'a Session) -> Self {
        SessionView {
            id: &s.id,
            name: &s.name,
            node: &s.node,
            lock_delay: s.lock_delay,
            behavior: &s.behavior,
            ttl: &s.ttl,
            node_checks: &s.node_checks,
            service_checks: &s.service_checks,
            create_index: s.create_index,
            modify_index: s.modify_index,
        }
    }
}
