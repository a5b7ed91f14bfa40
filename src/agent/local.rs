//! The agent's local state: the services and checks registered with this agent (by
//! API or config file), which are the source of truth for this node's entries in the
//! catalog. Anti-entropy ([`super::sync`]) copies them there.
//!
//! Also here: TTL deadlines, maintenance mode, and the runners of active checks.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::Agent;
use super::checks::{self, CheckSink, CheckSpec, Probe};
use crate::structs::{
    AgentService, CheckDefinition, HEALTH_CRITICAL, HEALTH_MAINT, HEALTH_PASSING, HEALTH_WARNING,
    HealthCheck, NodeService, ServiceDefinition, Weights, default_proxy, is_valid_status,
};

pub const NODE_MAINT_CHECK_ID: &str = "_node_maintenance";
pub const SERVICE_MAINT_PREFIX: &str = "_service_maintenance:";
const DEFAULT_SERVICE_MAINT_REASON: &str = "Maintenance mode is enabled for this service, but no reason was provided. This is a default message.";
const DEFAULT_NODE_MAINT_REASON: &str = "Maintenance mode is enabled for this node, but no reason was provided. This is a default message.";

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

/// Where a registration came from (script checks have different gates).
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
}

pub struct LocalCheck {
    pub check: HealthCheck,
    pub def: CheckDefinition,
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
}

impl Default for LocalState {
    fn default() -> Self {
        LocalState {
            inner: Mutex::new(Inner::default()),
            version: watch::channel(0).0,
            agent: Mutex::new(Weak::new()),
        }
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

    /// The tags anti-entropy saw in the catalog for a service with
    /// `EnableTagOverride`: the catalog's edit wins.
    pub fn adopt_tags(&self, id: &str, tags: Vec<String>) {
        let mut inner = self.lock();
        if let Some(s) = inner.services.get_mut(id)
            && s.service.enable_tag_override
            && s.service.tags != tags
        {
            s.service.tags = tags;
            drop(inner);
            self.changed();
        }
    }

    /// Applies a runner's (or alias's) result. Unknown checks (removed meanwhile) are
    /// ignored.
    pub fn set_status(&self, check_id: &str, status: &str, output: &str) {
        let mut inner = self.lock();
        let Some(c) = inner.checks.get_mut(check_id) else {
            return;
        };
        if c.check.status == status && c.check.output == output {
            return;
        }
        if status == HEALTH_CRITICAL {
            c.critical_since.get_or_insert_with(Instant::now);
        } else {
            c.critical_since = None;
        }
        c.check.status = status.to_string();
        c.check.output = output.to_string();
        drop(inner);
        self.changed();
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
        drop(inner);
        self.set_status(check_id, status, &truncate(output.to_string(), max_output));
        Ok(())
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

    fn remove_check_locked(inner: &mut Inner, id: &str) -> bool {
        inner.checks.remove(id).is_some()
    }

    pub fn remove_check(&self, id: &str) -> Result<(), LocalError> {
        let removed = Self::remove_check_locked(&mut self.lock(), id);
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
            let owned: Vec<String> = inner
                .checks
                .values()
                .filter(|c| c.check.service_id == id)
                .map(|c| c.check.check_id.clone())
                .collect();
            for c in owned {
                Self::remove_check_locked(&mut inner, &c);
            }
        }
        self.changed();
        Ok(())
    }

    /// Adds or replaces a check and starts its runner.
    pub fn add_check(
        &self,
        agent: &Agent,
        mut check: HealthCheck,
        def: CheckDefinition,
    ) -> Result<(), LocalError> {
        if !check.service_id.is_empty() {
            let inner = self.lock();
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
        let runner = self.start_runner(agent, &check, &def);
        let ttl_deadline = def.ttl.map(|t| Instant::now() + t);
        let critical_since = (check.status == HEALTH_CRITICAL).then(Instant::now);
        self.lock().checks.insert(
            check.check_id.clone(),
            LocalCheck {
                check,
                def,
                ttl_deadline,
                critical_since,
                runner,
            },
        );
        self.changed();
        Ok(())
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
        let sidecar = self.take_sidecar(&mut def)?;
        let (service, checks) = build_service(agent, def, source)?;
        if let Some(mut sidecar_def) = sidecar {
            let parent = &service.service;
            self.fill_sidecar(&mut sidecar_def, parent);
            let (mut sidecar_svc, sidecar_checks) = build_service(agent, sidecar_def, source)?;
            sidecar_svc.sidecar_of = Some(parent.id.clone());
            let sid = sidecar_svc.service.id.clone();
            self.lock().services.insert(sid, sidecar_svc);
            for (check, cdef) in sidecar_checks {
                self.add_check(agent, check, cdef)?;
            }
        }
        let id = service.service.id.clone();
        {
            let mut inner = self.lock();
            inner.services.insert(id.clone(), service);
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
                    Self::remove_check_locked(&mut inner, &c);
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
            self.add_check(agent, check, cdef)?;
        }
        self.changed();
        Ok(())
    }

    /// Removes `Connect.SidecarService` from a definition (Consul stores the parent
    /// without it) and returns the sidecar's own definition.
    fn take_sidecar(
        &self,
        def: &mut ServiceDefinition,
    ) -> Result<Option<ServiceDefinition>, LocalError> {
        let Some(serde_json::Value::Object(connect)) = def.connect.as_mut() else {
            return Ok(None);
        };
        let key = connect
            .keys()
            .find(|k| k.eq_ignore_ascii_case("SidecarService") || *k == "sidecar_service")
            .cloned();
        let Some(raw) = key.and_then(|k| connect.remove(&k)) else {
            return Ok(None);
        };
        if raw.is_null() {
            return Ok(None);
        }
        crate::structs::decode::from_value::<ServiceDefinition>(raw)
            .map(Some)
            .map_err(|e| LocalError::BadRequest(format!("Invalid SidecarService: {e}")))
    }

    /// Consul's sidecar defaults: `<id>-sidecar-proxy`, a port from 21000-21255, a
    /// proxy pointing at the parent, a listening TCP check and an alias check.
    fn fill_sidecar(&self, sc: &mut ServiceDefinition, parent: &NodeService) {
        if sc.id.is_empty() {
            sc.id = format!("{}-sidecar-proxy", parent.id);
        }
        if sc.name.is_empty() {
            sc.name = format!("{}-sidecar-proxy", parent.service);
        }
        sc.kind = "connect-proxy".into();
        if sc.tags.is_empty() {
            sc.tags = parent.tags.clone();
        }
        if sc.meta.is_empty() {
            sc.meta = parent.meta.to_map();
        }
        if sc.port == 0 {
            let used: Vec<i64> = self
                .lock()
                .services
                .values()
                .map(|s| s.service.port)
                .collect();
            sc.port = (21000..=21255).find(|p| !used.contains(p)).unwrap_or(21000);
        }
        let mut proxy = match sc.proxy.take() {
            Some(serde_json::Value::Object(m)) => m,
            _ => serde_json::Map::new(),
        };
        proxy.insert(
            "DestinationServiceName".into(),
            parent.service.clone().into(),
        );
        proxy.insert("DestinationServiceID".into(), parent.id.clone().into());
        proxy
            .entry("LocalServiceAddress")
            .or_insert_with(|| "127.0.0.1".into());
        proxy
            .entry("LocalServicePort")
            .or_insert_with(|| parent.port.into());
        proxy.entry("Mode").or_insert_with(|| "".into());
        proxy
            .entry("MeshGateway")
            .or_insert_with(|| serde_json::json!({}));
        proxy
            .entry("Expose")
            .or_insert_with(|| serde_json::json!({}));
        sc.proxy = Some(serde_json::Value::Object(proxy));
        if sc.check.is_none() && sc.checks.is_empty() {
            let addr = if parent.address.is_empty() {
                "127.0.0.1".to_string()
            } else {
                parent.address.clone()
            };
            sc.checks = vec![
                CheckDefinition {
                    name: "Connect Sidecar Listening".into(),
                    tcp: format!("{addr}:{}", sc.port),
                    interval: Some(Duration::from_secs(10)),
                    ..Default::default()
                },
                CheckDefinition {
                    name: format!("Connect Sidecar Aliasing {}", parent.id),
                    alias_service: parent.id.clone(),
                    ..Default::default()
                },
            ];
        }
    }

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
        self.add_check(agent, check, CheckDefinition::default())
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
        self.add_check(agent, check, CheckDefinition::default())
    }

    /// Removes everything a config file registered (before a reload re-adds it).
    pub fn remove_config_sourced(&self) {
        let mut inner = self.lock();
        let ids: Vec<String> = inner
            .services
            .iter()
            .filter(|(_, s)| s.source == Source::Config)
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            inner.services.remove(&id);
            let owned: Vec<String> = inner
                .checks
                .values()
                .filter(|c| c.check.service_id == id)
                .map(|c| c.check.check_id.clone())
                .collect();
            for c in owned {
                Self::remove_check_locked(&mut inner, &c);
            }
        }
        drop(inner);
        self.changed();
    }
}

/// Validates a check definition and builds its initial HealthCheck.
pub fn build_check(
    agent: &Agent,
    def: &CheckDefinition,
    source: Source,
    default_id: String,
    default_name: String,
) -> Result<HealthCheck, LocalError> {
    if !def.status.is_empty() && !is_valid_status(&def.status) {
        return Err(LocalError::BadRequest(
            "Status for checks must 'passing', 'warning', 'critical'".to_string(),
        ));
    }
    if !def.is_valid() {
        return Err(LocalError::BadRequest(
            "Invalid check: one of TTL, HTTP, TCP, UDP, GRPC, H2PING, alias, Docker or script args is required"
                .into(),
        ));
    }
    let kind = def.kind();
    if matches!(
        kind,
        "http" | "tcp" | "udp" | "grpc" | "h2ping" | "script" | "docker"
    ) && def.interval.is_none_or(|i| i.is_zero())
    {
        return Err(LocalError::BadRequest(
            "Invalid check: Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or GRPC checks"
                .into(),
        ));
    }
    if matches!(kind, "script" | "docker") {
        let allowed = agent.config.enable_script_checks
            || (source == Source::Config && agent.config.enable_local_script_checks);
        if !allowed {
            return Err(LocalError::BadRequest(
                "Scripts are disabled on this agent; to enable, configure 'enable_script_checks' or 'enable_local_script_checks' to true"
                    .into(),
            ));
        }
    }
    let id = [def.check_id.as_str(), def.id.as_str()]
        .into_iter()
        .find(|s| !s.is_empty())
        .map(str::to_string)
        .unwrap_or(default_id);
    let name = if def.name.is_empty() {
        default_name
    } else {
        def.name.clone()
    };
    let status = if def.status.is_empty() {
        HEALTH_CRITICAL.to_string()
    } else {
        def.status.clone()
    };
    let fmt = |d: Option<Duration>| d.map(crate::config::format_go_duration).unwrap_or_default();
    let mut definition = serde_json::Map::new();
    if !def.http.is_empty() {
        definition.insert("HTTP".into(), def.http.clone().into());
    }
    if !def.tcp.is_empty() {
        definition.insert("TCP".into(), def.tcp.clone().into());
    }
    if def.interval.is_some() {
        definition.insert("Interval".into(), fmt(def.interval).into());
    }
    if def.timeout.is_some() {
        definition.insert("Timeout".into(), fmt(def.timeout).into());
    }
    if def.deregister_critical_service_after.is_some() {
        definition.insert(
            "DeregisterCriticalServiceAfter".into(),
            fmt(def.deregister_critical_service_after).into(),
        );
    }
    Ok(HealthCheck {
        node: agent.node_name().to_string(),
        check_id: id,
        name,
        status,
        notes: def.notes.clone(),
        output: def.output.clone(),
        service_id: def.service_id.clone(),
        check_type: kind.to_string(),
        interval: fmt(def.interval),
        timeout: fmt(def.timeout),
        definition: serde_json::Value::Object(definition),
        ..Default::default()
    })
}

fn validate_meta(meta: &BTreeMap<String, String>) -> Result<(), LocalError> {
    if meta.len() > 64 {
        return Err(LocalError::BadRequest(
            "Node metadata cannot contain more than 64 key/value pairs".into(),
        ));
    }
    for (k, v) in meta {
        if k.is_empty()
            || k.len() > 128
            || !k
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(LocalError::BadRequest(format!(
                "Invalid service Meta: Key {k:?} is invalid"
            )));
        }
        if k.starts_with("consul-") {
            return Err(LocalError::BadRequest(
                "Invalid service Meta: Key prefix 'consul-' is reserved for internal use"
                    .to_string(),
            ));
        }
        if v.len() > 512 {
            return Err(LocalError::BadRequest(format!(
                "Invalid service Meta: Value for key {k:?} is too long (limit: 512 characters)"
            )));
        }
    }
    Ok(())
}

type BuiltService = (LocalService, Vec<(HealthCheck, CheckDefinition)>);

fn build_service(
    agent: &Agent,
    def: ServiceDefinition,
    source: Source,
) -> Result<BuiltService, LocalError> {
    if def.name.is_empty() {
        return Err(LocalError::BadRequest("Missing service name".into()));
    }
    if def.address == "0.0.0.0" || def.address == "::" || def.address == "[::]" {
        return Err(LocalError::BadRequest("Invalid service address".into()));
    }
    let weights = def.weights.clone().unwrap_or_default();
    if weights.passing < 1 {
        return Err(LocalError::BadRequest(
            "Passing must be greater than 0".into(),
        ));
    }
    validate_meta(&def.meta)?;
    let id = if def.id.is_empty() {
        def.name.clone()
    } else {
        def.id.clone()
    };
    let defs: Vec<CheckDefinition> = def
        .check
        .iter()
        .cloned()
        .chain(def.checks.iter().cloned())
        .collect();
    let many = defs.len() > 1;
    let mut checks = Vec::new();
    for (i, mut cdef) in defs.into_iter().enumerate() {
        cdef.service_id = id.clone();
        let default_id = if many {
            format!("service:{id}:{}", i + 1)
        } else {
            format!("service:{id}")
        };
        let check = build_check(
            agent,
            &cdef,
            source,
            default_id,
            format!("Service '{}' check", def.name),
        )?;
        checks.push((check, cdef));
    }
    let tagged: BTreeMap<String, serde_json::Value> = def
        .tagged_addresses
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                serde_json::json!({"Address": v.address, "Port": v.port}),
            )
        })
        .collect();
    let service = NodeService {
        kind: def.kind,
        id,
        service: def.name,
        tags: def.tags,
        address: def.address,
        tagged_addresses: tagged,
        // The agent keeps the definition's map; an agent service always has one.
        meta: def.meta.into(),
        port: def.port,
        ports: def.ports.filter(|p| !p.is_null()),
        socket_path: def.socket_path,
        weights: Weights {
            passing: weights.passing,
            warning: weights.warning,
        },
        enable_tag_override: def.enable_tag_override,
        proxy: def
            .proxy
            .filter(|p| !p.is_null())
            .unwrap_or_else(default_proxy),
        connect: def
            .connect
            .filter(|c| !c.is_null())
            .unwrap_or_else(|| serde_json::json!({})),
        locality: def.locality.filter(|l| !l.is_null()),
        create_index: 0,
        modify_index: 0,
    };
    Ok((
        LocalService {
            service,
            token: def.token,
            source,
            sidecar_of: None,
        },
        checks,
    ))
}

/// The `/v1/agent/services` shape of a local service.
pub fn agent_service(agent: &Agent, s: &NodeService) -> AgentService {
    AgentService {
        kind: s.kind.clone(),
        id: s.id.clone(),
        service: s.service.clone(),
        tags: s.tags.clone(),
        meta: s.meta.to_map(),
        port: s.port,
        address: s.address.clone(),
        socket_path: s.socket_path.clone(),
        tagged_addresses: s.tagged_addresses.clone(),
        weights: s.weights.clone(),
        enable_tag_override: s.enable_tag_override,
        content_hash: None,
        proxy: (!s.kind.is_empty()).then(|| s.proxy.clone()),
        connect: None,
        ports: s.ports.clone(),
        locality: s.locality.clone(),
        datacenter: agent.config.datacenter.clone(),
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
