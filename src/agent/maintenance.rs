//! Maintenance mode: a critical `_node_maintenance` check for the node, or a
//! `_service_maintenance:<id>` check for one service, with the operator's reason.

use super::Agent;
use super::local::{LocalError, LocalState, Source};
use crate::structs::{CheckDefinition, HEALTH_CRITICAL, HEALTH_MAINT, HealthCheck};

pub const NODE_MAINT_CHECK_ID: &str = "_node_maintenance";
pub const SERVICE_MAINT_PREFIX: &str = "_service_maintenance:";
const DEFAULT_SERVICE_MAINT_REASON: &str = "Maintenance mode is enabled for this service, but no reason was provided. This is a default message.";
const DEFAULT_NODE_MAINT_REASON: &str = "Maintenance mode is enabled for this node, but no reason was provided. This is a default message.";

impl LocalState {
    /// Enables or disables maintenance on a service (a critical check).
    pub fn service_maintenance(
        &self,
        agent: &Agent,
        id: &str,
        enable: bool,
        reason: &str,
    ) -> Result<(), LocalError> {
        let Some(svc) = self.service(id) else {
            return Err(LocalError::NotFound(format!(
                "No service registered with ID {id:?}"
            )));
        };
        let check_id = format!("{SERVICE_MAINT_PREFIX}{id}");
        if !enable {
            let _ = self.remove_check(&check_id);
            return Ok(());
        }
        if self.check(&check_id).is_some() {
            return Ok(());
        }
        let check = HealthCheck {
            check_id,
            name: "Service Maintenance Mode".into(),
            notes: if reason.is_empty() {
                DEFAULT_SERVICE_MAINT_REASON.into()
            } else {
                reason.into()
            },
            service_id: svc.id.clone(),
            service_name: svc.service.clone(),
            status: HEALTH_CRITICAL.into(),
            check_type: HEALTH_MAINT.into(),
            definition: serde_json::json!({}),
            ..Default::default()
        };
        // Kept across restarts, as Consul keeps maintenance mode.
        self.add_check(agent, check, CheckDefinition::default(), Source::Api)
    }

    pub fn node_maintenance(
        &self,
        agent: &Agent,
        enable: bool,
        reason: &str,
    ) -> Result<(), LocalError> {
        if !enable {
            let _ = self.remove_check(NODE_MAINT_CHECK_ID);
            return Ok(());
        }
        if self.check(NODE_MAINT_CHECK_ID).is_some() {
            return Ok(());
        }
        let check = HealthCheck {
            check_id: NODE_MAINT_CHECK_ID.into(),
            name: "Node Maintenance Mode".into(),
            notes: if reason.is_empty() {
                DEFAULT_NODE_MAINT_REASON.into()
            } else {
                reason.into()
            },
            status: HEALTH_CRITICAL.into(),
            check_type: HEALTH_MAINT.into(),
            definition: serde_json::json!({}),
            ..Default::default()
        };
        // Kept across restarts, as Consul keeps maintenance mode.
        self.add_check(agent, check, CheckDefinition::default(), Source::Api)
    }
}
