//! Anti-entropy: makes this node's catalog entries match the agent's local state:
//! the node itself (address, tagged addresses, node meta), its services and its
//! checks. Runs at once after every local change and periodically to repair drift
//! (a service deleted or node meta overwritten behind the agent's back comes back).

use std::sync::Arc;
use std::time::Duration;

use super::Agent;
use super::leader::self_registration;
use crate::fsm::{Command, Registration};
use crate::structs::{CONSUL_SERVICE, HealthCheck, Node, NodeService, SERF_CHECK_ID};

/// The full sync period (Consul scales its 1m interval with cluster size).
const FULL_SYNC: Duration = Duration::from_secs(60);

fn same_service(local: &NodeService, catalog: &NodeService) -> bool {
    let mut c = catalog.clone();
    c.create_index = 0;
    c.modify_index = 0;
    &c == local
}

fn same_node(local: &Node, catalog: &Node) -> bool {
    local.id.eq_ignore_ascii_case(&catalog.id)
        && local.address == catalog.address
        && local.tagged_addresses == catalog.tagged_addresses
        && local.meta == catalog.meta
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
///
/// Concurrent callers share passes: a caller whose change an already finished pass
/// covered returns at once, so a burst of registrations costs a few passes (and
/// Raft entries), not one each.
pub async fn sync_now(agent: &Agent) {
    if !agent.consensus.has_leader() {
        return;
    }
    let want = agent.local.version();
    if let Err(e) = sync_once(agent, Some(want)).await {
        tracing::warn!(error = %e, "anti-entropy sync failed; will retry");
    }
}

/// One pass, unless `covering` is given and a pass that started after that local
/// state version already succeeded. Returns `Err` with a reason when a write failed
/// (retried next pass). Passes never overlap; a pass writes all its changes in one
/// Raft entry.
pub async fn sync_once(agent: &Agent, covering: Option<u64>) -> anyhow::Result<()> {
    let mut synced = agent.sync_lock.lock().await;
    if covering.is_some_and(|want| *synced >= want) {
        return Ok(());
    }
    let version = agent.local.version();
    let node = self_registration(agent).node;
    let (catalog_node, catalog_services, catalog_checks) =
        catalog_entries(agent, &node.node).await?;
    let local_checks = agent.local.checks();
    let mut writes = Vec::new();

    // The node entry first (Consul's `syncNodeInfo`): registered if missing,
    // rewritten if its ID, address, tagged addresses or meta drifted from the
    // agent's, whoever changed them. Service and check writes below keep it.
    if !catalog_node.as_ref().is_some_and(|c| same_node(&node, c)) {
        tracing::info!("Synced node info");
        writes.push(Command::Register(Registration {
            node: node.clone(),
            skip_node_update: false,
            service: None,
            checks: Vec::new(),
        }));
    }

    for (mut svc, modified) in agent.local.services_with_versions() {
        let in_catalog = catalog_services.iter().find(|c| c.id == svc.id);
        // `EnableTagOverride`: tags edited in the catalog win over the local ones,
        // but only while the local definition is the one a finished pass already
        // pushed (`modified` before its start); a service registered again since
        // is pushed as newly defined, as Consul's agent does.
        if let Some(c) = in_catalog
            && svc.enable_tag_override
            && c.tags != svc.tags
            && modified < *synced
        {
            agent.local.adopt_tags(&svc.id, c.tags.clone(), modified);
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
            writes.push(Command::Register(Registration {
                node: node.clone(),
                skip_node_update: true,
                service: Some(svc.clone()),
                checks,
            }));
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
        writes.push(Command::Register(Registration {
            node: node.clone(),
            skip_node_update: true,
            service: None,
            checks: node_checks,
        }));
    }

    let local_service_ids: Vec<String> = agent.local.services().into_iter().map(|s| s.id).collect();
    for c in &catalog_services {
        let keep =
            local_service_ids.contains(&c.id) || (c.id == CONSUL_SERVICE && agent.config.server);
        if !keep {
            writes.push(Command::DeregisterService {
                node: node.node.clone(),
                service_id: c.id.clone(),
            });
        }
    }
    for c in &catalog_checks {
        let keep =
            c.check_id == SERF_CHECK_ID || local_checks.iter().any(|l| l.check_id == c.check_id);
        // A check of a service just deregistered went with it.
        let gone_with_service =
            !c.service_id.is_empty() && !local_service_ids.contains(&c.service_id);
        if !keep && !gone_with_service {
            writes.push(Command::DeregisterCheck {
                node: node.node.clone(),
                check_id: c.check_id.clone(),
            });
        }
    }
    match writes.len() {
        0 => {}
        1 => {
            agent.consensus.propose(writes.remove(0)).await?;
        }
        _ => {
            agent.consensus.propose(Command::Batch(writes)).await?;
        }
    }
    *synced = version;
    Ok(())
}

/// This node's entry, services and checks as the catalog has them: from the local
/// replica on a server, from a server on a client agent (which has no replica).
async fn catalog_entries(
    agent: &Agent,
    node: &str,
) -> anyhow::Result<(Option<Node>, Vec<NodeService>, Vec<HealthCheck>)> {
    if agent.config.server {
        let r = agent.store.read()?;
        let v = r.view();
        return Ok((
            v.node(node)?,
            v.services_of_node(node)?,
            v.node_checks(node)?,
        ));
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct NodeServices {
        node: Node,
        services: Vec<NodeService>,
    }
    let get = |uri: String| async move {
        crate::http::forward::get_from_server(agent, &uri)
            .await
            .map_err(|e| anyhow::anyhow!("{}", e.body))
    };
    let services = get(format!("/v1/catalog/node-services/{node}")).await?;
    let (node_entry, services) = match serde_json::from_slice::<Option<NodeServices>>(&services)? {
        Some(n) => (Some(n.node), n.services),
        None => (None, Vec::new()),
    };
    let checks = get(format!("/v1/health/node/{node}")).await?;
    Ok((node_entry, services, serde_json::from_slice(&checks)?))
}

/// The sync loop, plus the TTL clock and the critical-service reaper.
pub async fn run(agent: Arc<Agent>) {
    let mut changes = agent.local.subscribe();
    let mut full = tokio::time::interval(FULL_SYNC);
    let mut reap = tokio::time::interval(Duration::from_secs(1));
    let mut retry = false;
    // The periodic pass always runs (it repairs drift made behind the agent's
    // back); a pass for a local change is skipped if an earlier one covered it.
    let mut force = true;
    loop {
        let ttl_wait = agent
            .local
            .expire_ttls()
            .unwrap_or(Duration::from_secs(1))
            .min(Duration::from_secs(1));
        tokio::select! {
            _ = agent.shutdown.cancelled() => return,
            r = changes.changed() => { if r.is_err() { return; } }
            _ = full.tick() => { force = true; }
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
        if !agent.consensus.has_leader() {
            retry = true;
            continue;
        }
        let covering = (!force && !retry).then(|| agent.local.version());
        retry = match sync_once(&agent, covering).await {
            Ok(()) => {
                force = false;
                false
            }
            Err(e) => {
                tracing::warn!(error = %e, "anti-entropy sync failed; will retry");
                true
            }
        };
    }
}
