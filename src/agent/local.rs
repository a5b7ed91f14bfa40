//! The agent's local state: the services and checks registered with this agent (by
//! API or config file), which are the source of truth for this node's entries in the
//! catalog. Anti-entropy ([`super::sync`]) copies them there.
//!
//! Also here: TTL deadlines and the runners of active checks. What the API
//! registered is also written to disk ([`super::persist`]) as it changes and read
//! back at start ([`LocalState::restore`]).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::Agent;
use super::checks::{self, CheckSink, CheckSpec, Probe};
use super::definition::{build_service, fill_sidecar, take_sidecar};
use super::persist::{PersistedCheck, PersistedService, Persistence};
use crate::structs::{
    CheckDefinition, HEALTH_CRITICAL, HEALTH_MAINT, HEALTH_PASSING, HEALTH_WARNING, HealthCheck,
    NodeService, ServiceDefinition, is_valid_status,
};

/// Why a local operation was refused; the HTTP layer maps these to Consul's codes.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Internal(String),
}

/// Where a registration came from: script checks have different gates, and only
/// what the API registered is kept on disk (config files are read again).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Api,
    Config,
}

pub struct LocalService {
    pub service: NodeService,
    /// The registration's ACL token, for anti-entropy once ACLs are enforced.
    #[allow(dead_code)]
    pub token: String,
    pub source: Source,
    /// For a sidecar proxy registered through its parent: the parent's ID (removing
    /// the parent removes the sidecar).
    pub sidecar_of: Option<String>,
    /// The local state version when this definition was last (re)registered:
    /// anti-entropy adopts the catalog's tags (`EnableTagOverride`) only once a
    /// pass that began after it has succeeded.
    pub modified: u64,
}

pub struct LocalCheck {
    pub check: HealthCheck,
    pub def: CheckDefinition,
    pub source: Source,
    pub ttl_deadline: Option<Instant>,
    pub critical_since: Option<Instant>,
    runner: Option<CancellationToken>,
}

impl Drop for LocalCheck {
    fn drop(&mut self) {
        if let Some(stop) = &self.runner {
            stop.cancel();
        }
    }
}

#[derive(Default)]
struct Inner {
    services: BTreeMap<String, LocalService>,
    checks: BTreeMap<String, LocalCheck>,
}

pub struct LocalState {
    inner: Mutex<Inner>,
    /// Bumped on every change: anti-entropy and hash-blocking agent reads wait on it.
    version: watch::Sender<u64>,
    /// The agent, for runners' status reports (set once the agent exists).
    agent: Mutex<Weak<Agent>>,
    /// Where API registrations are kept across restarts.
    disk: Persistence,
}

impl Default for LocalState {
    fn default() -> Self {
        LocalState::new(Persistence::default())
    }
}

/// Runners report through this; it holds the agent weakly so a runner never keeps a
/// stopped agent alive.
struct Sink(Weak<Agent>);

impl CheckSink for Sink {
    fn update(&self, check_id: &str, status: &str, output: String) {
        if let Some(agent) = self.0.upgrade() {
            agent.local.set_status(check_id, status, &output);
        }
    }
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

impl LocalState {
    pub fn new(disk: Persistence) -> LocalState {
        LocalState {
            inner: Mutex::new(Inner::default()),
            version: watch::channel(0).0,
            agent: Mutex::new(Weak::new()),
            disk,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn attach(&self, agent: &Arc<Agent>) {
        *self.agent.lock().unwrap_or_else(|e| e.into_inner()) = Arc::downgrade(agent);
    }

    fn changed(&self) {
        self.version.send_modify(|v| *v += 1);
    }

    /// Grows with every change to the local services and checks.
    pub fn version(&self) -> u64 {
        *self.version.borrow()
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    pub fn services(&self) -> Vec<NodeService> {
        self.lock()
            .services
            .values()
            .map(|s| s.service.clone())
            .collect()
    }

    pub fn service(&self, id: &str) -> Option<NodeService> {
        self.lock().services.get(id).map(|s| s.service.clone())
    }

    pub fn checks(&self) -> Vec<HealthCheck> {
        self.lock()
            .checks
            .values()
            .map(|c| c.check.clone())
            .collect()
    }

    pub fn check(&self, id: &str) -> Option<HealthCheck> {
        self.lock().checks.get(id).map(|c| c.check.clone())
    }

    /// Every service with the version it was last registered at
    /// ([`LocalService::modified`]).
    pub fn services_with_versions(&self) -> Vec<(NodeService, u64)> {
        self.lock()
            .services
            .values()
            .map(|s| (s.service.clone(), s.modified))
            .collect()
    }

    /// The tags anti-entropy saw in the catalog for a service with
    /// `EnableTagOverride`: the catalog's edit wins, unless the service was
    /// registered again since `modified` (then the new definition is pushed).
    pub fn adopt_tags(&self, id: &str, tags: Vec<String>, modified: u64) {
        let mut inner = self.lock();
        if let Some(s) = inner.services.get_mut(id)
            && s.service.enable_tag_override
            && s.modified == modified
            && s.service.tags != tags
        {
            s.service.tags = tags;
            drop(inner);
            self.changed();
        }
    }

    /// Records a status; false when it is what the check already had.
    fn apply_status(c: &mut LocalCheck, status: &str, output: &str) -> bool {
        if c.check.status == status && c.check.output == output {
            return false;
        }
        if status == HEALTH_CRITICAL {
            c.critical_since.get_or_insert_with(Instant::now);
        } else {
            c.critical_since = None;
        }
        c.check.status = status.to_string();
        c.check.output = output.to_string();
        true
    }

    /// Applies a runner's (or alias's) result. Unknown checks (removed meanwhile) are
    /// ignored.
    pub fn set_status(&self, check_id: &str, status: &str, output: &str) {
        let mut inner = self.lock();
        let Some(c) = inner.checks.get_mut(check_id) else {
            return;
        };
        if Self::apply_status(c, status, output) {
            drop(inner);
            self.changed();
        }
    }

    /// `check/pass|warn|fail|update`: only for TTL checks; restarts the TTL clock.
    pub fn update_ttl(
        &self,
        check_id: &str,
        status: &str,
        output: &str,
        max_output: usize,
    ) -> Result<(), LocalError> {
        if !is_valid_status(status) {
            return Err(LocalError::BadRequest(format!(
                "Invalid check status: '{status}'"
            )));
        }
        let mut inner = self.lock();
        let Some(c) = inner.checks.get_mut(check_id) else {
            return Err(LocalError::NotFound(format!(
                "Unknown check ID \"{check_id}\". Ensure that the check ID is passed, not the check name."
            )));
        };
        let Some(ttl) = c.def.ttl else {
            return Err(LocalError::Internal(format!(
                "CheckID \"{check_id}\" does not have associated TTL"
            )));
        };
        c.ttl_deadline = Some(Instant::now() + ttl);
        let output = truncate(output.to_string(), max_output);
        let changed = Self::apply_status(c, status, &output);
        // Kept so the check comes back in this state after a restart, while the
        // TTL would not have run out yet.
        let saved = self.disk.save_check_state(check_id, status, &output, ttl);
        drop(inner);
        if changed {
            self.changed();
        }
        saved.map_err(LocalError::Internal)
    }

    /// Turns expired TTL checks critical; returns how long until the next deadline.
    pub fn expire_ttls(&self) -> Option<Duration> {
        let now = Instant::now();
        let mut expired = Vec::new();
        let mut next: Option<Duration> = None;
        {
            let mut inner = self.lock();
            for (id, c) in inner.checks.iter_mut() {
                let Some(deadline) = c.ttl_deadline else {
                    continue;
                };
                if deadline <= now {
                    c.ttl_deadline = None;
                    // Consul adds the last output only when there was one.
                    let output = if c.check.output.is_empty() {
                        "TTL expired".to_string()
                    } else {
                        format!(
                            "TTL expired (last output before timeout follows): {}",
                            c.check.output
                        )
                    };
                    expired.push((id.clone(), output));
                } else {
                    let left = deadline - now;
                    next = Some(next.map_or(left, |n| n.min(left)));
                }
            }
        }
        for (id, output) in expired {
            self.set_status(&id, HEALTH_CRITICAL, &output);
        }
        next
    }

    /// Services whose checks have been critical longer than their
    /// `DeregisterCriticalServiceAfter`.
    pub fn critical_too_long(&self) -> Vec<String> {
        let inner = self.lock();
        let mut out = Vec::new();
        for c in inner.checks.values() {
            let (Some(after), Some(since)) =
                (c.def.deregister_critical_service_after, c.critical_since)
            else {
                continue;
            };
            // Consul's floor (`check_deregister_interval_min`).
            let after = after.max(Duration::from_secs(60));
            if !c.check.service_id.is_empty()
                && since.elapsed() >= after
                && !out.contains(&c.check.service_id)
            {
                out.push(c.check.service_id.clone());
            }
        }
        out
    }

    fn purge_check_definition(&self, id: &str) {
        if let Err(e) = self.disk.purge_check(id) {
            tracing::error!(check = %id, error = %e, "failed to purge check file");
        }
    }

    /// Removes a check; with `purge`, also what the disk keeps of it.
    fn remove_check_locked(&self, inner: &mut Inner, id: &str, purge: bool) -> bool {
        let removed = inner.checks.remove(id).is_some();
        if purge {
            self.purge_check_definition(id);
            if let Err(e) = self.disk.purge_check_state(id) {
                tracing::error!(check = %id, error = %e, "failed to purge check state");
            }
        }
        removed
    }

    pub fn remove_check(&self, id: &str) -> Result<(), LocalError> {
        let removed = self.remove_check_locked(&mut self.lock(), id, true);
        if !removed {
            return Err(LocalError::NotFound(format!(
                "Unknown check ID \"{id}\". Ensure that the check ID is passed, not the check name."
            )));
        }
        self.changed();
        Ok(())
    }

    pub fn remove_service(&self, id: &str) -> Result<(), LocalError> {
        let sidecars: Vec<String> = self
            .lock()
            .services
            .iter()
            .filter(|(_, s)| s.sidecar_of.as_deref() == Some(id))
            .map(|(sid, _)| sid.clone())
            .collect();
        for sid in sidecars {
            let _ = self.remove_service(&sid);
        }
        {
            let mut inner = self.lock();
            if inner.services.remove(id).is_none() {
                return Err(LocalError::NotFound(format!(
                    "Unknown service ID \"{id}\". Ensure that the service ID is passed, not the service name."
                )));
            }
            if let Err(e) = self.disk.purge_service(id) {
                tracing::error!(service = %id, error = %e, "failed to purge service file");
            }
            let owned: Vec<String> = inner
                .checks
                .values()
                .filter(|c| c.check.service_id == id)
                .map(|c| c.check.check_id.clone())
                .collect();
            for c in owned {
                self.remove_check_locked(&mut inner, &c, true);
            }
        }
        self.changed();
        Ok(())
    }

    /// Adds or replaces a check and starts its runner; what the API registered is
    /// also kept on disk.
    pub fn add_check(
        &self,
        agent: &Agent,
        check: HealthCheck,
        def: CheckDefinition,
        source: Source,
    ) -> Result<(), LocalError> {
        self.insert_check(agent, check, def, source, source == Source::Api)?;
        self.changed();
        Ok(())
    }

    fn insert_check(
        &self,
        agent: &Agent,
        mut check: HealthCheck,
        def: CheckDefinition,
        source: Source,
        persist: bool,
    ) -> Result<(), LocalError> {
        let mut inner = self.lock();
        if !check.service_id.is_empty() {
            let Some(svc) = inner.services.get(&check.service_id) else {
                return Err(LocalError::NotFound(format!(
                    "ServiceID \"{}\" does not exist",
                    check.service_id
                )));
            };
            check.service_name = svc.service.service.clone();
            check.service_tags = svc.service.tags.clone();
        }
        check.node = agent.node_name().to_string();
        if persist {
            let kept = PersistedCheck {
                check: check.clone(),
                definition: def.clone(),
            };
            self.disk.save_check(&kept).map_err(LocalError::Internal)?;
        }
        // A TTL check starts from the status last pushed to it, if that has not
        // run out yet (as Consul restores it on every registration).
        if def.ttl.is_some()
            && let Some((status, output)) = self.disk.load_check_state(&check.check_id)
        {
            check.status = status;
            check.output = output;
        }
        let runner = self.start_runner(agent, &check, &def);
        let ttl_deadline = def.ttl.map(|t| Instant::now() + t);
        let critical_since = (check.status == HEALTH_CRITICAL).then(Instant::now);
        inner.checks.insert(
            check.check_id.clone(),
            LocalCheck {
                check,
                def,
                source,
                ttl_deadline,
                critical_since,
                runner,
            },
        );
        Ok(())
    }

    /// Inserts (or replaces) a service, keeping it on disk when the API registered it.
    fn insert_service(&self, inner: &mut Inner, svc: LocalService) -> Result<(), LocalError> {
        if svc.source == Source::Api {
            let kept = PersistedService {
                service: svc.service.clone(),
                token: svc.token.clone(),
                sidecar_of: svc.sidecar_of.clone(),
            };
            self.disk
                .save_service(&kept)
                .map_err(LocalError::Internal)?;
        }
        inner.services.insert(svc.service.id.clone(), svc);
        Ok(())
    }

    /// Reads back what the API registered before the agent last stopped. Runs after
    /// the config's own definitions are in: on an ID both have, the config wins and
    /// the kept copy is dropped. Restored checks start critical (a TTL check from
    /// its kept status, if still valid); a file that cannot be used is logged and
    /// removed, never a reason not to start.
    pub fn restore(&self, agent: &Agent) {
        for kept in self.disk.load_services() {
            let id = kept.service.id.clone();
            let mut inner = self.lock();
            if inner.services.contains_key(&id) {
                tracing::debug!(service = %id, "service exists, not restoring from file");
                if let Err(e) = self.disk.purge_service(&id) {
                    tracing::error!(service = %id, error = %e, "failed to purge service file");
                }
                continue;
            }
            let svc = LocalService {
                service: kept.service,
                token: kept.token,
                source: Source::Api,
                sidecar_of: kept.sidecar_of,
                modified: self.version(),
            };
            inner.services.insert(id.clone(), svc);
            tracing::debug!(service = %id, "restored service definition from file");
        }
        for kept in self.disk.load_checks() {
            let id = kept.check.check_id.clone();
            if self.check(&id).is_some() {
                tracing::debug!(check = %id, "check exists, not restoring from file");
                self.purge_check_definition(&id);
                continue;
            }
            let restored = if matches!(kept.definition.kind(), "script" | "docker")
                && !agent.config.enable_script_checks
            {
                Err("Scripts are disabled on this agent".to_string())
            } else {
                let mut check = kept.check;
                // Not in the pool before a check says it is healthy.
                check.status = HEALTH_CRITICAL.to_string();
                self.insert_check(agent, check, kept.definition, Source::Api, false)
                    .map_err(|e| e.to_string())
            };
            match restored {
                Ok(()) => tracing::debug!(check = %id, "restored health check from file"),
                Err(e) => {
                    tracing::warn!(check = %id, error = %e, "Failed to restore check");
                    self.purge_check_definition(&id);
                }
            }
        }
        self.changed();
    }

    fn start_runner(
        &self,
        agent: &Agent,
        check: &HealthCheck,
        def: &CheckDefinition,
    ) -> Option<CancellationToken> {
        let interval = def.interval.unwrap_or(Duration::from_secs(10));
        // Zero lets the runner apply Consul's per-type default (10s, 30s for scripts).
        let timeout = def.timeout.unwrap_or(Duration::ZERO);
        let probe = match def.kind() {
            "http" => Probe::Http {
                url: def.http.clone(),
                method: if def.method.is_empty() {
                    "GET".into()
                } else {
                    def.method.clone()
                },
                headers: def.header.clone(),
                body: def.body.clone(),
                tls_skip_verify: def.tls_skip_verify,
                tls_server_name: def.tls_server_name.clone(),
                disable_redirects: def.disable_redirects,
            },
            "tcp" => Probe::Tcp {
                addr: def.tcp.clone(),
                use_tls: def.tcp_use_tls,
                tls_skip_verify: def.tls_skip_verify,
            },
            "udp" => Probe::Udp {
                addr: def.udp.clone(),
            },
            "grpc" => Probe::Grpc {
                target: def.grpc.clone(),
                use_tls: def.grpc_use_tls,
                tls_skip_verify: def.tls_skip_verify,
            },
            "h2ping" => Probe::H2Ping {
                addr: def.h2ping.clone(),
                use_tls: def.h2ping_use_tls,
                tls_skip_verify: def.tls_skip_verify,
            },
            "docker" => Probe::Docker {
                container_id: def.docker_container_id.clone(),
                shell: def.shell.clone(),
                args: def.script_args(),
            },
            "script" => Probe::Script {
                args: def.script_args(),
            },
            "alias" => {
                let stop = CancellationToken::new();
                let weak = self.agent.lock().unwrap_or_else(|e| e.into_inner()).clone();
                tokio::spawn(super::alias::run(
                    weak,
                    check.check_id.clone(),
                    def.alias_node.clone(),
                    def.alias_service.clone(),
                    stop.clone(),
                ));
                return Some(stop);
            }
            _ => return None,
        };
        let stop = CancellationToken::new();
        let sink = Arc::new(Sink(
            self.agent.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        ));
        // A check may lower the agent's output limit, never raise it.
        let max = match def.output_max_size {
            0 => agent.config.check_output_max_size,
            n => n.min(agent.config.check_output_max_size),
        };
        checks::spawn(
            CheckSpec {
                check_id: check.check_id.clone(),
                probe,
                interval,
                timeout,
                success_before_passing: def.success_before_passing,
                failures_before_warning: def.failures_before_warning,
                failures_before_critical: def.failures_before_critical,
                output_max_size: max,
            },
            sink,
            stop.clone(),
        );
        Some(stop)
    }

    /// Registers (or replaces) a service with its checks.
    pub fn add_service(
        &self,
        agent: &Agent,
        mut def: ServiceDefinition,
        replace_existing_checks: bool,
        source: Source,
    ) -> Result<(), LocalError> {
        let sidecar = take_sidecar(&mut def)?;
        let (mut service, checks) = build_service(agent, def, source)?;
        let modified = self.version();
        service.modified = modified;
        if let Some(mut sidecar_def) = sidecar {
            let parent = &service.service;
            let used: Vec<i64> = self
                .lock()
                .services
                .values()
                .map(|s| s.service.port)
                .collect();
            fill_sidecar(&mut sidecar_def, parent, &used);
            let (mut sidecar_svc, sidecar_checks) = build_service(agent, sidecar_def, source)?;
            sidecar_svc.sidecar_of = Some(parent.id.clone());
            sidecar_svc.modified = modified;
            self.insert_service(&mut self.lock(), sidecar_svc)?;
            for (check, cdef) in sidecar_checks {
                self.insert_check(agent, check, cdef, source, source == Source::Api)?;
            }
        }
        let id = service.service.id.clone();
        {
            let mut inner = self.lock();
            self.insert_service(&mut inner, service)?;
            if replace_existing_checks {
                let keep: Vec<&str> = checks.iter().map(|(c, _)| c.check_id.as_str()).collect();
                let stale: Vec<String> = inner
                    .checks
                    .values()
                    .filter(|c| {
                        c.check.service_id == id && !keep.contains(&c.check.check_id.as_str())
                    })
                    .map(|c| c.check.check_id.clone())
                    .collect();
                for c in stale {
                    self.remove_check_locked(&mut inner, &c, true);
                }
            }
            // Service tags and name flow into its existing checks.
            let (name, tags) = {
                let s = &inner.services[&id].service;
                (s.service.clone(), s.tags.clone())
            };
            for c in inner
                .checks
                .values_mut()
                .filter(|c| c.check.service_id == id)
            {
                c.check.service_name = name.clone();
                c.check.service_tags = tags.clone();
            }
        }
        for (check, cdef) in checks {
            self.insert_check(agent, check, cdef, source, source == Source::Api)?;
        }
        self.changed();
        Ok(())
    }

    /// Removes everything a config file registered (before a reload re-adds it).
    /// Checks the API attached to a config service stay:
    /// [`Self::drop_orphan_checks`] removes those whose service does not come back.
    pub fn remove_config_sourced(&self) {
        let mut inner = self.lock();
        inner.services.retain(|_, s| s.source != Source::Config);
        inner.checks.retain(|_, c| c.source != Source::Config);
    }

    /// Removes (also from disk) the checks of services that no longer exist.
    pub fn drop_orphan_checks(&self) {
        let mut inner = self.lock();
        let orphans: Vec<String> = inner
            .checks
            .values()
            .filter(|c| {
                !c.check.service_id.is_empty() && !inner.services.contains_key(&c.check.service_id)
            })
            .map(|c| c.check.check_id.clone())
            .collect();
        for id in orphans {
            tracing::warn!(check = %id, "removing check: its service is gone");
            self.remove_check_locked(&mut inner, &id, true);
        }
        drop(inner);
        self.changed();
    }
}

/// Worst status among checks: critical > warning > passing.
pub fn aggregate_status<'a>(statuses: impl Iterator<Item = &'a str>) -> &'static str {
    let mut worst = HEALTH_PASSING;
    for s in statuses {
        match s {
            HEALTH_CRITICAL | HEALTH_MAINT => return HEALTH_CRITICAL,
            HEALTH_WARNING => worst = HEALTH_WARNING,
            _ => {}
        }
    }
    worst
}
