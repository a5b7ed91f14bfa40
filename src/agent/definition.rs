//! Service and check definitions turned into local state: validation with Consul's
//! messages, default IDs and names, the initial `HealthCheck` of a check and the
//! `NodeService` of a service, Connect sidecar defaults, and the
//! `/v1/agent/services` shape.

use std::collections::BTreeMap;
use std::time::Duration;

use super::Agent;
use super::local::{LocalError, LocalService, Source};
use crate::structs::{
    AgentService, CheckDefinition, HEALTH_CRITICAL, HealthCheck, NodeService, ServiceDefinition,
    Weights, default_proxy, is_valid_status,
};

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

pub type BuiltService = (LocalService, Vec<(HealthCheck, CheckDefinition)>);

pub fn build_service(
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
            modified: 0,
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

/// Removes `Connect.SidecarService` from a definition (Consul stores the parent
/// without it) and returns the sidecar's own definition.
pub fn take_sidecar(def: &mut ServiceDefinition) -> Result<Option<ServiceDefinition>, LocalError> {
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
pub fn fill_sidecar(sc: &mut ServiceDefinition, parent: &NodeService, used_ports: &[i64]) {
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
        sc.port = (21000..=21255)
            .find(|p| !used_ports.contains(p))
            .unwrap_or(21000);
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
