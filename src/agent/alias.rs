//! Alias checks: mirror the aggregated health of another service (or node), read from
//! this agent's local state when the target is local, else from the catalog.

use std::sync::Weak;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Agent;
use super::local::aggregate_status;
use crate::structs::{HEALTH_CRITICAL, HEALTH_PASSING, HealthCheck};

fn target_checks(agent: &Agent, node: &str, service: &str) -> Option<Vec<HealthCheck>> {
    let local = node.is_empty() || node.eq_ignore_ascii_case(agent.node_name());
    if local {
        if !service.is_empty() && agent.local.service(service).is_none() {
            return None;
        }
        return Some(
            agent
                .local
                .checks()
                .into_iter()
                .filter(|c| {
                    service.is_empty() || c.service_id == service || c.service_id.is_empty()
                })
                .collect(),
        );
    }
    let reader = agent.store.read().ok()?;
    let view = reader.view();
    view.node(node).ok()??;
    if !service.is_empty() && view.node_service(node, service).ok()?.is_none() {
        return None;
    }
    Some(
        view.node_checks(node)
            .ok()?
            .into_iter()
            .filter(|c| service.is_empty() || c.service_id == service || c.service_id.is_empty())
            .collect(),
    )
}

pub async fn run(
    agent: Weak<Agent>,
    check_id: String,
    node: String,
    service: String,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        let Some(agent) = agent.upgrade() else { return };
        let (status, output) = match target_checks(&agent, &node, &service) {
            None => (
                HEALTH_CRITICAL,
                format!("Service {service} could not be found on node {node}"),
            ),
            Some(checks) => {
                let checks: Vec<_> = checks
                    .into_iter()
                    .filter(|c| c.check_id != check_id)
                    .collect();
                if checks.is_empty() {
                    (HEALTH_PASSING, "No checks found.".to_string())
                } else {
                    let s = aggregate_status(checks.iter().map(|c| c.status.as_str()));
                    let out = if s == HEALTH_PASSING {
                        "All checks passing.".to_string()
                    } else {
                        format!("Aliased checks are {s}.")
                    };
                    (s, out)
                }
            }
        };
        agent.local.set_status(&check_id, status, &output);
    }
}
