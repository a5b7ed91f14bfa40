//! Anti-entropy: makes this node's catalog entries match the agent's local state.
//! Runs at once after every local change and periodically to repair drift (a
//! service deleted from the catalog behind the agent's back comes back).

use std::sync::Arc;
use std::time::Duration;

use super::Agent;
use super::leader::self_registration;
use crate::fsm::{Command, Registration};
use crate::structs::{CONSUL_SERVICE, HealthCheck, NodeService, SERF_CHECK_ID};

/// The full sync period (Consul scales its 1m interval with cluster size).
const FULL_SYNC: Duration = Duration::from_secs(60);

fn same_service(local: &NodeService, catalog: &NodeService) -> bool {
    let mut c = catalog.clone();
    c.create_index = 0;
    c.modify_index = 0;
    &c == local
}

fn same_check(local: &HealthCheck, catalog: &HealthCheck) -> bool {
    let mut c = catalog.clone();
    c.create_index = 0;
    c.modify_index = 0;
    let mut l = local.clone();
    l.create_index = 0;
    l.modify_index = 0;
    l == c
}

/// Syncs right away (after an agent API write, so the catalog shows the change by the
/// time the write is answered, as clients expect). Failures are left to the loop.
pub async fn sync_now(agent: &Agent) {
    if agent.consensus.leader().is_none() {
        return;
    }
    if let Err(e) = sync_once(agent).await {
        tracing::warn!(error = %e, "anti-entropy sync failed; will retry");
    }
}

/// One pass. Returns `Err` with a reason when a write failed (retried next pass).
/// Passes never overlap.
pub async fn sync_once(agent: &Agent) -> anyhow::Result<()> {
    let _pass = agent.sync_lock.lock().await;
    let node = self_registration(agent).node;
    let (catalog_services, catalog_checks) = {
        let r = agent.store.read()?;
        let v = r.view();
        (v.services_of_node(&node.node)?, v.node_checks(&node.node)?)
    };
    let local_checks = agent.local.checks();

    for svc in agent.local.services() {
        let mut svc = svc;
        let in_catalog = catalog_services.iter().find(|c| c.id == svc.id);
        if let Some(c) = in_catalog
            && svc.enable_tag_override
            && c.tags != svc.tags
        {
            agent.local.adopt_tags(&svc.id, c.tags.clone());
            svc.tags = c.tags.clone();
        }
        let checks: Vec<HealthCheck> = local_checks
            .iter()
            .filter(|c| c.service_id == svc.id)
            .cloned()
            .collect();
        let service_ok = in_catalog.is_some_and(|c| same_service(&svc, c));
        let checks_ok = checks.iter().all(|l| {
            catalog_checks
                .iter()
                .any(|c| c.check_id == l.check_id && same_check(l, c))
        });
        if !(service_ok && checks_ok) {
            tracing::info!(service = %svc.id, "Synced service");
            agent
                .consensus
                .propose(Command::Register(Registration {
                    node: node.clone(),
                    skip_node_update: true,
                    service: Some(svc.clone()),
                    checks,
                }))
                .await?;
        }
    }

    let node_checks: Vec<HealthCheck> = local_checks
        .iter()
        .filter(|c| c.service_id.is_empty())
        .filter(|l| {
            !catalog_checks
                .iter()
                .any(|c| c.check_id == l.check_id && same_check(l, c))
        })
        .cloned()
        .collect();
    if !node_checks.is_empty() {
        agent
            .consensus
            .propose(Command::Register(Registration {
                node: node.clone(),
                skip_node_update: true,
                service: None,
                checks: node_checks,
            }))
            .await?;
    }

    let local_service_ids: Vec<String> = agent.local.services().into_iter().map(|s| s.id).collect();
    for c in &catalog_services {
        let keep =
            local_service_ids.contains(&c.id) || (c.id == CONSUL_SERVICE && agent.config.server);
        if !keep {
            agent
                .consensus
                .propose(Command::DeregisterService {
                    node: node.node.clone(),
                    service_id: c.id.clone(),
                })
                .await?;
        }
    }
    for c in &catalog_checks {
        let keep =
            c.check_id == SERF_CHECK_ID || local_checks.iter().any(|l| l.check_id == c.check_id);
        // A check of a service just deregistered went with it.
        let gone_with_service =
            !c.service_id.is_empty() && !local_service_ids.contains(&c.service_id);
        if !keep && !gone_with_service {
            agent
                .consensus
                .propose(Command::DeregisterCheck {
                    node: node.node.clone(),
                    check_id: c.check_id.clone(),
                })
                .await?;
        }
    }
    Ok(())
}

/// The sync loop, plus the TTL clock and the critical-service reaper.
pub async fn run(agent: Arc<Agent>) {
    let mut changes = agent.local.subscribe();
    let mut full = tokio::time::interval(FULL_SYNC);
    let mut reap = tokio::time::interval(Duration::from_secs(1));
    let mut retry = false;
    loop {
        let ttl_wait = agent
            .local
            .expire_ttls()
            .unwrap_or(Duration::from_secs(1))
            .min(Duration::from_secs(1));
        tokio::select! {
            _ = agent.shutdown.cancelled() => return,
            r = changes.changed() => { if r.is_err() { return; } }
            _ = full.tick() => {}
            _ = reap.tick() => {
                for id in agent.local.critical_too_long() {
                    tracing::info!(service = %id, "deregistering service critical longer than DeregisterCriticalServiceAfter");
                    let _ = agent.local.remove_service(&id);
                }
                continue;
            }
            _ = tokio::time::sleep(if retry { Duration::from_millis(200) } else { ttl_wait }) => {
                if !retry { continue; }
            }
        }
        changes.borrow_and_update();
        if agent.consensus.leader().is_none() {
            retry = true;
            continue;
        }
        retry = match sync_once(&agent).await {
            Ok(()) => false,
            Err(e) => {
                tracing::warn!(error = %e, "anti-entropy sync failed; will retry");
                true
            }
        };
    }
}
