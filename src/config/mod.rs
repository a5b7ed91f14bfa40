//! The agent configuration: Consul-compatible config files (JSON and HCL),
//! config directories, `-hcl` snippets and command-line flags, merged with
//! Consul's precedence and defaults into one validated [`RuntimeConfig`].
//!
//! Order of sources (later wins, lists append), as in Consul's builder:
//! defaults, the `-dev` preset, list-valued flags, config files and
//! directories in command-line order, the other flags, then `-hcl` snippets.

pub mod duration;
pub mod file;
pub mod flags;
pub mod merge;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map as JsonMap, Value, json};

pub use duration::{format_go_duration, parse_go_duration, parse_go_duration_nanos};
pub use flags::AgentFlags;

use file::{Format, normalize_source, parse_source, read_path};
use merge::merge_all;

/// A configuration problem. The message names the source (config file or
/// flag) and the dotted key where one is known.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file or directory could not be read.
    #[error("{origin}: {error}")]
    Io {
        origin: String,
        error: std::io::Error,
    },
    /// A source is not valid JSON/HCL.
    #[error("{origin}: parse error: {message}")]
    Parse { origin: String, message: String },
    /// A key that Consul's config format does not have.
    #[error("{origin}: unknown key \"{key}\"")]
    UnknownKey { origin: String, key: String },
    /// A value of the wrong type or form.
    #[error("{origin}: {key}: invalid value {value}: expected {expected}")]
    InvalidValue {
        origin: String,
        key: String,
        value: String,
        expected: String,
    },
    /// A `-config-file` whose format cannot be told from its name.
    #[error(
        "config file \"{}\" has unknown extension; must be .hcl or .json, or -config-format must be set",
        path.display()
    )]
    UnknownExtension { path: PathBuf },
    /// A semantic error in the merged configuration (Consul's wording).
    #[error("{0}")]
    Invalid(String),
}

fn invalid(msg: impl Into<String>) -> ConfigError {
    ConfigError::Invalid(msg.into())
}

/// Listener addresses overriding `client_addr` per interface. Each value is
/// one or more space-separated IPs, or `unix:///path` (HTTP/HTTPS).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Addresses {
    pub http: Option<String>,
    pub https: Option<String>,
    pub dns: Option<String>,
    pub grpc: Option<String>,
    pub grpc_tls: Option<String>,
}

/// Listener ports; `-1` means disabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    pub dns: i32,
    pub http: i32,
    pub https: i32,
    pub grpc: i32,
    pub grpc_tls: i32,
    pub serf_lan: i32,
    pub serf_wan: i32,
    pub server: i32,
}

/// DNS SOA record timers, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SoaConfig {
    pub refresh: u32,
    pub retry: u32,
    pub expire: u32,
    pub min_ttl: u32,
}

/// `dns_config` block.
#[derive(Debug, Clone, PartialEq)]
pub struct DnsConfig {
    pub allow_stale: bool,
    pub max_stale: Duration,
    pub node_ttl: Duration,
    /// Per-service TTLs; keys may end in `*` as a wildcard.
    pub service_ttl: BTreeMap<String, Duration>,
    pub udp_answer_limit: u32,
    pub a_record_limit: u32,
    pub enable_truncate: bool,
    pub only_passing: bool,
    pub recursor_timeout: Duration,
    pub enable_additional_node_meta_txt: bool,
    pub disable_compression: bool,
    pub soa: SoaConfig,
}

/// Agent ACL tokens from `acl.tokens` (and the legacy top-level keys).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AclTokens {
    pub initial_management: Option<String>,
    pub agent_recovery: Option<String>,
    pub default: Option<String>,
    pub agent: Option<String>,
    pub replication: Option<String>,
    pub config_file_service_registration: Option<String>,
    pub dns: Option<String>,
}

/// `acl` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclConfig {
    pub enabled: bool,
    /// "allow" or "deny".
    pub default_policy: String,
    /// "allow", "deny", "extend-cache" or "async-cache".
    pub down_policy: String,
    pub enable_token_replication: bool,
    pub enable_key_list_policy: bool,
    pub enable_token_persistence: bool,
    pub token_ttl: Duration,
    pub policy_ttl: Duration,
    pub role_ttl: Duration,
    pub tokens: AclTokens,
}

/// `connect` block.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectConfig {
    pub enabled: bool,
    pub ca_provider: Option<String>,
    /// Provider configuration, kept verbatim with the keys as written.
    pub ca_config: JsonMap<String, Value>,
}

/// `http_config` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    pub response_headers: BTreeMap<String, String>,
    pub block_endpoints: Vec<String>,
    /// Whether `?cached` queries use the agent cache (Consul default: true).
    pub use_cache: bool,
    /// CIDRs allowed to call write endpoints; empty means everyone.
    pub allow_write_http_from: Vec<String>,
}

/// The parts of the `telemetry` block the agent uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Telemetry {
    /// Zero disables the Prometheus format on `/v1/agent/metrics`.
    pub prometheus_retention_time: Duration,
    pub disable_hostname: bool,
    pub metrics_prefix: String,
}

/// TLS settings for the agent's own listeners and outgoing RPC, resolved from
/// `tls.defaults` with the per-interface blocks (`tls.https`,
/// `tls.internal_rpc`) and the legacy top-level keys applied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsConfig {
    /// `tls.https.*` if set there, else `tls.defaults.*`.
    pub ca_file: Option<PathBuf>,
    pub ca_path: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// `tls.defaults.verify_incoming`.
    pub verify_incoming: bool,
    /// `tls.internal_rpc.verify_incoming`, else the default.
    pub verify_incoming_rpc: bool,
    /// `tls.https.verify_incoming`, else the default.
    pub verify_incoming_https: bool,
    /// `tls.internal_rpc.verify_outgoing`, else the default.
    pub verify_outgoing: bool,
    /// `tls.internal_rpc.verify_server_hostname`, else the default.
    pub verify_server_hostname: bool,
}

/// A `gossip_lan`/`gossip_wan` block: memberlist tuning. Unset fields keep the
/// pool's own defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GossipTuning {
    pub gossip_nodes: Option<u32>,
    pub gossip_interval: Option<Duration>,
    pub probe_interval: Option<Duration>,
    pub probe_timeout: Option<Duration>,
    pub suspicion_mult: Option<u32>,
    pub retransmit_mult: Option<u32>,
}

/// `autopilot` block (server only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutopilotConfig {
    pub cleanup_dead_servers: bool,
    pub last_contact_threshold: Duration,
    pub max_trailing_logs: u64,
    pub min_quorum: u32,
    pub server_stabilization_time: Duration,
}

/// `locality` block.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Locality {
    pub region: String,
    pub zone: String,
}

/// The validated agent configuration. Every key Consul accepts is parsed and
/// validated; not every one drives behaviour yet.
#[allow(dead_code)]
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    pub dev: bool,
    pub server: bool,
    pub bootstrap: bool,
    pub bootstrap_expect: u32,
    pub read_replica: bool,
    /// Lowercase, `^[a-z0-9_-]+$`.
    pub datacenter: String,
    pub primary_datacenter: String,
    pub primary_gateways: Vec<String>,
    pub node_name: String,
    /// Lowercase UUID after [`ensure_node_id`].
    pub node_id: Option<String>,
    pub node_meta: BTreeMap<String, String>,
    pub tagged_addresses: BTreeMap<String, String>,
    /// `None` in dev mode (in-memory state).
    pub data_dir: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,

    pub bind_addr: IpAddr,
    /// `None`: derive from `bind_addr` (or detect a private IP if it is ANY).
    pub advertise_addr: Option<IpAddr>,
    pub advertise_addr_wan: Option<IpAddr>,
    pub serf_lan_bind: Option<IpAddr>,
    pub serf_wan_bind: Option<IpAddr>,
    /// May be empty: then HTTP/DNS/gRPC listen only where `addresses` says.
    pub client_addrs: Vec<IpAddr>,
    pub addresses: Addresses,
    pub ports: Ports,

    /// Addresses to join with retries; already includes `start_join`.
    pub retry_join: Vec<String>,
    /// `start_join`/`-join` as given. Consul >= 1.15 treats these as
    /// `retry_join` entries, and they are already in `retry_join`.
    pub start_join: Vec<String>,
    pub retry_join_wan: Vec<String>,
    pub retry_interval: Duration,
    pub retry_interval_wan: Duration,
    /// 0 retries forever.
    pub retry_max: u32,
    pub retry_max_wan: u32,
    pub rejoin_after_leave: bool,
    /// `gossip_wan`: timings of the WAN pool.
    pub gossip_wan: GossipTuning,

    /// One of trace, debug, info, warn, err, off.
    pub log_level: String,
    pub log_json: bool,
    pub log_file: Option<PathBuf>,
    pub enable_syslog: bool,

    pub ui: bool,
    pub ui_dir: Option<PathBuf>,
    /// Normalised to `/path/` (default `/ui/`).
    pub ui_content_path: String,
    /// Gossip encryption key (base64).
    pub encrypt: Option<String>,

    pub domain: String,
    pub alt_domain: Option<String>,
    pub recursors: Vec<String>,
    pub dns_config: DnsConfig,
    pub acl: AclConfig,
    pub connect: ConnectConfig,
    pub autopilot: AutopilotConfig,

    pub enable_script_checks: bool,
    pub enable_local_script_checks: bool,
    pub enable_debug: bool,
    pub enable_central_service_config: bool,
    pub disable_update_check: bool,
    pub disable_remote_exec: bool,
    pub disable_anonymous_signature: bool,
    pub disable_keyring_file: bool,
    pub disable_host_node_id: bool,
    /// Default: true for servers, false for clients.
    pub skip_leave_on_interrupt: bool,
    /// Default: false for servers, true for clients.
    pub leave_on_terminate: bool,

    pub kv_max_value_size: u64,
    pub txn_max_req_len: u64,
    pub http_max_conns_per_client: u32,
    /// How long a new HTTP(S) connection may take to finish its TLS handshake and
    /// send its first request's headers (zero: no deadline).
    pub https_handshake_timeout: Duration,
    /// Open connections per client IP on the server RPC port.
    pub rpc_max_conns_per_client: u32,
    /// How long a new server RPC connection may take to send its first request.
    pub rpc_handshake_timeout: Duration,
    pub rpc_hold_timeout: Duration,
    pub leave_drain_time: Duration,
    pub session_ttl_min: Duration,
    pub check_output_max_size: usize,
    pub max_query_time: Duration,
    pub default_query_time: Duration,
    /// Default-mode `/v1/catalog` and `/v1/health` reads become stale reads
    /// bounded by this (0: off), as `?max_stale` bounds them.
    pub discovery_max_stale: Duration,
    pub raft_multiplier: u32,
    /// Applied Raft entries between snapshots (`raft_snapshot_threshold`).
    pub raft_snapshot_threshold: u64,
    /// Entries kept in the log behind a snapshot (`raft_trailing_logs`).
    pub raft_trailing_logs: u64,
    pub raft_protocol: u32,
    pub use_streaming_backend: bool,
    pub experiments: Vec<String>,

    pub http_config: HttpConfig,
    pub telemetry: Telemetry,
    pub tls: TlsConfig,

    /// Raw `service`/`services` definitions in load order, keys as written.
    pub services: Vec<Value>,
    /// Raw `check`/`checks` definitions in load order, keys as written.
    pub checks: Vec<Value>,
    /// Raw `watches` definitions.
    pub watches: Vec<Value>,
    /// Raw `config_entries.bootstrap` entries.
    pub config_entries_bootstrap: Vec<Value>,
    pub peering_enabled: bool,
    pub locality: Option<Locality>,

    /// Files actually read, in load order (for reload and `validate`).
    pub config_files: Vec<PathBuf>,
    /// The merged user configuration (files, flags, `-hcl`) after
    /// normalisation, without defaults: for `/v1/agent/self` DebugConfig.
    pub source: Value,
    /// Deprecation and other warnings to log at startup.
    pub warnings: Vec<String>,
}

/// The `-dev` preset, merged over the defaults and under everything else
/// (Consul's `DevSource`).
fn dev_source() -> JsonMap<String, Value> {
    let v = json!({
        "bind_addr": "127.0.0.1",
        "disable_anonymous_signature": true,
        "disable_keyring_file": true,
        "enable_debug": true,
        "ui_config": {"enabled": true},
        "log_level": "DEBUG",
        "server": true,
        "gossip_lan": {
            "gossip_interval": "100ms",
            "probe_interval": "100ms",
            "probe_timeout": "100ms",
            "suspicion_mult": 3
        },
        "gossip_wan": {
            "gossip_interval": "100ms",
            "probe_interval": "100ms",
            "probe_timeout": "100ms",
            "suspicion_mult": 3
        },
        "connect": {"enabled": true},
        "peering": {"enabled": true},
        "performance": {"raft_multiplier": 1},
        "ports": {"grpc": 8502}
    });
    match v {
        Value::Object(m) => m,
        _ => JsonMap::new(),
    }
}

/// Loads the configuration for `concord agent`: config files and
/// directories, `-hcl` snippets and flags, with the `-dev` preset when asked.
/// Also settles the node ID (see [`ensure_node_id`]).
pub fn load(flags: &AgentFlags) -> Result<RuntimeConfig, ConfigError> {
    let mut rt = build_from_flags(flags)?;
    ensure_node_id(&mut rt)?;
    Ok(rt)
}

/// The configuration as [`load`] reads, merges and validates it, without
/// settling the node ID: nothing is written, so `consul validate` and the
/// service-file commands can use it on any set of files.
pub fn build_from_flags(flags: &AgentFlags) -> Result<RuntimeConfig, ConfigError> {
    let format = match flags.config_format.as_deref() {
        None | Some("") => None,
        Some(f) => Some(Format::from_flag(f)?),
    };
    let mut warnings = Vec::new();
    let (slices_raw, values_raw) = flags.to_sources();
    let flag_slices = normalize_source("command-line flags", slices_raw, &mut warnings)?;
    let flag_values = normalize_source("command-line flags", values_raw, &mut warnings)?;

    let mut config_files = Vec::new();
    let mut file_sources = Vec::new();
    for path in &flags.config.paths {
        file_sources.extend(read_path(
            path.path(),
            format,
            &mut config_files,
            &mut warnings,
        )?);
    }
    let mut hcl_sources = Vec::new();
    for (i, text) in flags.hcl.iter().enumerate() {
        hcl_sources.push(parse_source(
            &format!("flag -hcl #{}", i + 1),
            text,
            Format::Hcl,
            &mut warnings,
        )?);
    }

    let mut user: Vec<&JsonMap<String, Value>> = vec![&flag_slices];
    user.extend(file_sources.iter());
    user.push(&flag_values);
    user.extend(hcl_sources.iter());
    let source = merge_all(user);

    let dev = flags.is_dev();
    let merged = if dev {
        merge_all([&dev_source(), &source])
    } else {
        source.clone()
    };

    let mut rt = build(&merged, dev, &mut warnings)?;
    rt.config_files = config_files;
    rt.source = Value::Object(source);
    rt.warnings = warnings;
    Ok(rt)
}

/// Read access to the merged, normalised config by dotted path. Values were
/// type-checked during normalisation, so wrong types are simply absent here.
struct View<'a>(&'a JsonMap<String, Value>);

impl<'a> View<'a> {
    fn get(&self, path: &str) -> Option<&'a Value> {
        let mut parts = path.split('.');
        let mut cur = self.0.get(parts.next()?)?;
        for part in parts {
            cur = cur.as_object()?.get(part)?;
        }
        Some(cur)
    }

    fn str(&self, path: &str) -> Option<&'a str> {
        self.get(path).and_then(Value::as_str)
    }

    /// A string that counts only when non-empty (Consul's `stringVal != ""`).
    fn nonempty(&self, path: &str) -> Option<String> {
        self.str(path).filter(|s| !s.is_empty()).map(str::to_string)
    }

    fn bool(&self, path: &str) -> Option<bool> {
        self.get(path).and_then(Value::as_bool)
    }

    fn flag(&self, path: &str, default: bool) -> bool {
        self.bool(path).unwrap_or(default)
    }

    fn int(&self, path: &str) -> Option<i64> {
        let v = self.get(path)?;
        v.as_i64()
            .or_else(|| v.as_u64().map(|u| i64::try_from(u).unwrap_or(i64::MAX)))
    }

    fn strs(&self, path: &str) -> Vec<String> {
        self.get(path)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn objects(&self, path: &str) -> Vec<Value> {
        self.get(path)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    }

    fn str_map(&self, path: &str) -> BTreeMap<String, String> {
        self.get(path)
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn dur(&self, path: &str, default: Duration) -> Result<Duration, ConfigError> {
        match self.str(path) {
            None => Ok(default),
            Some(s) => parse_go_duration(s)
                .map_err(|e| invalid(format!("{path}: invalid duration: {s:?}: {e}"))),
        }
    }

    /// A non-negative integer that must fit in `u32`.
    fn u32(&self, path: &str, default: u32) -> Result<u32, ConfigError> {
        match self.int(path) {
            None => Ok(default),
            Some(v) => u32::try_from(v).map_err(|_| {
                invalid(format!(
                    "{path} cannot be {v}. Must be greater than or equal to zero"
                ))
            }),
        }
    }

    fn u64(&self, path: &str, default: u64) -> Result<u64, ConfigError> {
        match self.get(path) {
            None => Ok(default),
            Some(v) => v.as_u64().ok_or_else(|| {
                invalid(format!(
                    "{path} cannot be {v}. Must be greater than or equal to zero"
                ))
            }),
        }
    }

    /// Consul's `portVal`: unset or <= 0 disables (-1), > 65535 is an error.
    fn port(&self, path: &str, default: i32) -> Result<i32, ConfigError> {
        match self.int(path) {
            None => Ok(default),
            Some(v) if v <= 0 => Ok(-1),
            Some(v) if v > 65535 => Err(invalid(format!("{path}: invalid port: {v}"))),
            Some(v) => Ok(v as i32),
        }
    }
}

/// An address from a config value: an IP or a unix socket path.
enum Addr {
    Ip(IpAddr),
    Unix,
}

/// Consul's `expandAddrs`: space-separated IPs or `unix://` paths.
fn expand_addrs(name: &str, s: &str) -> Result<Vec<Addr>, ConfigError> {
    if s.contains("{{") {
        return Err(invalid(format!(
            "{name}: go-sockaddr templates are not supported: {s:?}"
        )));
    }
    let mut out = Vec::new();
    for a in s.split_whitespace() {
        if a.starts_with("unix://") {
            out.push(Addr::Unix);
            continue;
        }
        let ip_text = if a == "[::]" { "::" } else { a };
        let ip: IpAddr = ip_text
            .parse()
            .map_err(|_| invalid(format!("{name}: invalid ip address: {a}")))?;
        out.push(Addr::Ip(ip));
    }
    Ok(out)
}

/// Consul's `expandFirstIP`: at most one IP, no unix socket.
fn first_ip(name: &str, s: Option<&str>) -> Result<Option<IpAddr>, ConfigError> {
    let Some(s) = s.filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let addrs = expand_addrs(name, s)?;
    if addrs.len() > 1 {
        return Err(invalid(format!(
            "{name}: multiple addresses found: {}",
            s.split_whitespace().collect::<Vec<_>>().join(" ")
        )));
    }
    match addrs.into_iter().next() {
        None => Ok(None),
        Some(Addr::Ip(ip)) => Ok(Some(ip)),
        Some(Addr::Unix) => Err(invalid(format!("{name} cannot be a unix socket"))),
    }
}

fn is_any(ip: &IpAddr) -> bool {
    ip.is_unspecified()
}

/// Parses `a.b.c.d/n` or `x::y/n`.
fn valid_cidr(s: &str) -> bool {
    let Some((ip, bits)) = s.trim().split_once('/') else {
        return false;
    };
    let Ok(bits) = bits.parse::<u8>() else {
        return false;
    };
    match ip.parse::<IpAddr>() {
        Ok(IpAddr::V4(_)) => bits <= 32,
        Ok(IpAddr::V6(_)) => bits <= 128,
        Err(_) => false,
    }
}

/// Consul's `validateBasicName`.
fn validate_basic_name(field: &str, value: &str, allow_empty: bool) -> Result<(), ConfigError> {
    if value.is_empty() {
        if allow_empty {
            return Ok(());
        }
        return Err(invalid(format!("{field} cannot be empty")));
    }
    let ok = value
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if !ok {
        return Err(invalid(format!(
            "{field} can only contain lowercase alphanumeric, - or _ characters. received: {value:?}"
        )));
    }
    Ok(())
}

/// Maps a log level to its canonical lowercase name.
fn normalize_log_level(s: &str) -> Result<String, ConfigError> {
    let level = match s.trim().to_ascii_lowercase().as_str() {
        "trace" => "trace",
        "debug" => "debug",
        "info" => "info",
        "warn" | "warning" => "warn",
        "err" | "error" => "err",
        "off" => "off",
        _ => {
            return Err(invalid(format!(
                "Invalid log level: {s}. Valid log levels are: [TRACE DEBUG INFO WARN ERR ERROR]"
            )));
        }
    };
    Ok(level.to_string())
}

/// Consul's `structs.ValidateNodeMetadata` for user-supplied node meta.
fn validate_node_meta(meta: &BTreeMap<String, String>) -> Result<(), ConfigError> {
    if meta.len() > 64 {
        return Err(invalid(
            "node_meta invalid: Node metadata cannot contain more than 64 key/value pairs",
        ));
    }
    for (k, v) in meta {
        let problem = if k.is_empty() {
            Some("Key cannot be blank".to_string())
        } else if !k
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            Some("Key contains invalid characters".to_string())
        } else if k.len() > 128 {
            Some("Key is too long (limit: 128 characters)".to_string())
        } else if k.starts_with("consul-") {
            Some("Key prefix 'consul-' is reserved for internal use".to_string())
        } else if v.len() > 512 {
            Some("Value is too long (limit: 512 characters)".to_string())
        } else {
            None
        };
        if let Some(p) = problem {
            return Err(invalid(format!(
                "node_meta invalid: Couldn't load metadata pair ('{k}', '{v}'): {p}"
            )));
        }
    }
    Ok(())
}

/// The machine's hostname (Consul's default node name).
fn hostname() -> Result<String, ConfigError> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for `buf.len()` bytes; gethostname writes
    // at most that many and we stop at the first NUL below.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return Err(invalid(format!(
            "node_name: {}",
            std::io::Error::last_os_error()
        )));
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    Ok(String::from_utf8_lossy(&buf[..end]).into_owned())
}

/// Builds and validates the runtime config from the merged sources.
fn build(
    merged: &JsonMap<String, Value>,
    dev: bool,
    warnings: &mut Vec<String>,
) -> Result<RuntimeConfig, ConfigError> {
    let c = View(merged);

    let server = c.flag("server", false);
    let raft_protocol = c.int("raft_protocol").unwrap_or(3);
    if raft_protocol != 3 {
        return Err(invalid(format!(
            "raft_protocol version {raft_protocol} is not supported by this version of Consul"
        )));
    }

    let ports = build_ports(&c, server)?;
    let net = build_network(&c, warnings)?;
    let (recursors, dns_config) = build_dns(&c)?;
    let datacenter = c.str("datacenter").unwrap_or("dc1").to_lowercase();
    let primary_datacenter = match c.str("primary_datacenter").map(str::to_lowercase) {
        Some(p) if !p.is_empty() => p,
        _ => datacenter.clone(),
    };
    let alt_domain = c.nonempty("alt_domain");
    if let Some(alt) = &alt_domain {
        let reserved = [
            "service",
            "connect",
            "node",
            "query",
            "addr",
            datacenter.as_str(),
        ];
        if reserved.iter().any(|w| alt.starts_with(&format!("{w}."))) {
            return Err(invalid(format!(
                "alt_domain cannot start with {{service,connect,node,query,addr,{datacenter}}}"
            )));
        }
    }

    let acl = build_acl(&c)?;
    let connect = build_connect(&c)?;
    let ui = build_ui(&c, dev, warnings)?;
    let http_config = build_http(&c)?;
    let tls = build_tls(&c);
    let encrypt = c.nonempty("encrypt");
    if let Some(key) = &encrypt {
        use base64::Engine as _;
        if let Err(e) = base64::engine::general_purpose::STANDARD.decode(key) {
            return Err(invalid(format!("encrypt has invalid key: {e}")));
        }
    }

    let log_level = normalize_log_level(c.str("log_level").unwrap_or("INFO"))?;

    let raft_multiplier = c.int("performance.raft_multiplier").unwrap_or(5);
    if !(1..=10).contains(&raft_multiplier) {
        return Err(invalid(format!(
            "performance.raft_multiplier cannot be {raft_multiplier}. Must be between 1 and 10"
        )));
    }

    let check_output_max_size = c.int("check_output_max_size").unwrap_or(4096);
    if check_output_max_size < 1 {
        return Err(invalid(
            "check_output_max_size must be positive, to discard check output use the discard_check_output flag",
        ));
    }

    let bootstrap_expect = c.int("bootstrap_expect").unwrap_or(0);
    if bootstrap_expect < 0 {
        return Err(invalid(format!(
            "bootstrap_expect cannot be {bootstrap_expect}. Must be greater than or equal to zero"
        )));
    }
    let mut bootstrap = c.flag("bootstrap", false);
    let mut bootstrap_expect = u32::try_from(bootstrap_expect)
        .map_err(|_| invalid(format!("bootstrap_expect cannot be {bootstrap_expect}")))?;
    if bootstrap_expect == 1 {
        bootstrap = true;
        bootstrap_expect = 0;
        warnings
            .push("BootstrapExpect is set to 1; this is the same as Bootstrap mode.".to_string());
    }

    let node_name = match c.str("node_name").map(str::trim) {
        Some(n) if !n.is_empty() => n.to_string(),
        _ => hostname()?.trim().to_string(),
    };
    let node_meta = c.str_map("node_meta");
    validate_node_meta(&node_meta)?;

    let enable_script_checks = c.flag("enable_script_checks", false);
    let locality = c
        .get("locality")
        .and_then(Value::as_object)
        .map(|m| Locality {
            region: m
                .get("region")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            zone: m
                .get("zone")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        });

    let rt = RuntimeConfig {
        dev,
        server,
        bootstrap,
        bootstrap_expect,
        read_replica: c.flag("read_replica", false),
        datacenter,
        primary_datacenter,
        primary_gateways: c.strs("primary_gateways"),
        node_name,
        node_id: c.nonempty("node_id"),
        node_meta,
        tagged_addresses: c.str_map("tagged_addresses"),
        data_dir: c.nonempty("data_dir").map(PathBuf::from),
        pid_file: c.nonempty("pid_file").map(PathBuf::from),
        bind_addr: net.bind_addr,
        advertise_addr: net.advertise_addr,
        advertise_addr_wan: net.advertise_addr_wan,
        serf_lan_bind: net.serf_lan_bind,
        serf_wan_bind: net.serf_wan_bind,
        client_addrs: net.client_addrs,
        addresses: net.addresses,
        ports,
        retry_join: c.strs("retry_join"),
        start_join: c.strs("start_join"),
        retry_join_wan: c.strs("retry_join_wan"),
        retry_interval: c.dur("retry_interval", Duration::from_secs(30))?,
        retry_interval_wan: c.dur("retry_interval_wan", Duration::from_secs(30))?,
        retry_max: c.u32("retry_max", 0)?,
        retry_max_wan: c.u32("retry_max_wan", 0)?,
        rejoin_after_leave: c.flag("rejoin_after_leave", false),
        gossip_wan: gossip_tuning(&c, "gossip_wan")?,
        log_level,
        log_json: c.flag("log_json", false),
        log_file: c.nonempty("log_file").map(PathBuf::from),
        enable_syslog: c.flag("enable_syslog", false),
        ui: ui.enabled,
        ui_dir: ui.dir,
        ui_content_path: ui.content_path,
        encrypt,
        domain: c.str("domain").unwrap_or("consul.").to_string(),
        alt_domain,
        recursors,
        dns_config,
        acl,
        connect,
        autopilot: AutopilotConfig {
            cleanup_dead_servers: c.flag("autopilot.cleanup_dead_servers", true),
            last_contact_threshold: c.dur(
                "autopilot.last_contact_threshold",
                Duration::from_millis(200),
            )?,
            max_trailing_logs: c.u64("autopilot.max_trailing_logs", 250)?,
            min_quorum: c.u32("autopilot.min_quorum", 0)?,
            server_stabilization_time: c.dur(
                "autopilot.server_stabilization_time",
                Duration::from_secs(10),
            )?,
        },
        enable_script_checks,
        enable_local_script_checks: c.flag("enable_local_script_checks", enable_script_checks),
        enable_debug: c.flag("enable_debug", false),
        enable_central_service_config: c.flag("enable_central_service_config", true),
        disable_update_check: c.flag("disable_update_check", false),
        disable_remote_exec: c.flag("disable_remote_exec", true),
        disable_anonymous_signature: c.flag("disable_anonymous_signature", false),
        disable_keyring_file: c.flag("disable_keyring_file", false),
        disable_host_node_id: c.flag("disable_host_node_id", true),
        skip_leave_on_interrupt: c.flag("skip_leave_on_interrupt", server),
        leave_on_terminate: c.flag("leave_on_terminate", !server),
        kv_max_value_size: c.u64("limits.kv_max_value_size", 512 * 1024)?,
        txn_max_req_len: c.u64("limits.txn_max_req_len", 512 * 1024)?,
        http_max_conns_per_client: c.u32("limits.http_max_conns_per_client", 200)?,
        https_handshake_timeout: c.dur("limits.https_handshake_timeout", Duration::from_secs(5))?,
        // As in Consul, zero keeps the defaults.
        rpc_max_conns_per_client: match c.u32("limits.rpc_max_conns_per_client", 100)? {
            0 => 100,
            n => n,
        },
        rpc_handshake_timeout: match c
            .dur("limits.rpc_handshake_timeout", Duration::from_secs(5))?
        {
            d if d.is_zero() => Duration::from_secs(5),
            d => d,
        },
        rpc_hold_timeout: c.dur("performance.rpc_hold_timeout", Duration::from_secs(7))?,
        leave_drain_time: c.dur("performance.leave_drain_time", Duration::from_secs(5))?,
        session_ttl_min: c.dur("session_ttl_min", Duration::from_secs(10))?,
        check_output_max_size: usize::try_from(check_output_max_size).unwrap_or(usize::MAX),
        max_query_time: c.dur("max_query_time", Duration::from_secs(600))?,
        default_query_time: c.dur("default_query_time", Duration::from_secs(300))?,
        discovery_max_stale: c.dur("discovery_max_stale", Duration::ZERO)?,
        raft_multiplier: raft_multiplier as u32,
        raft_snapshot_threshold: c.u64("raft_snapshot_threshold", 16384)?,
        raft_trailing_logs: c.u64("raft_trailing_logs", 10240)?,
        raft_protocol: 3,
        use_streaming_backend: c.flag("use_streaming_backend", true),
        experiments: c.strs("experiments"),
        http_config,
        telemetry: Telemetry {
            prometheus_retention_time: c
                .dur("telemetry.prometheus_retention_time", Duration::ZERO)?,
            disable_hostname: c.flag("telemetry.disable_hostname", false),
            metrics_prefix: c
                .str("telemetry.metrics_prefix")
                .unwrap_or("consul")
                .to_string(),
        },
        tls,
        services: c.objects("services"),
        checks: c.objects("checks"),
        watches: c.objects("watches"),
        config_entries_bootstrap: c.objects("config_entries.bootstrap"),
        peering_enabled: c.flag("peering.enabled", true),
        locality,
        config_files: Vec::new(),
        source: Value::Null,
        warnings: Vec::new(),
    };
    let mut rt = validate(rt)?;
    // Dev mode bootstraps its single server (Consul's DevMode does the same).
    if rt.dev && rt.server && rt.bootstrap_expect == 0 {
        rt.bootstrap = true;
    }
    Ok(rt)
}

/// A `gossip_lan`/`gossip_wan` block.
fn gossip_tuning(c: &View<'_>, block: &str) -> Result<GossipTuning, ConfigError> {
    let dur = |key: &str| -> Result<Option<Duration>, ConfigError> {
        let path = format!("{block}.{key}");
        c.str(&path)
            .map(|_| c.dur(&path, Duration::ZERO))
            .transpose()
    };
    let num = |key: &str| -> Result<Option<u32>, ConfigError> {
        let path = format!("{block}.{key}");
        c.int(&path).map(|_| c.u32(&path, 0)).transpose()
    };
    Ok(GossipTuning {
        gossip_nodes: num("gossip_nodes")?,
        gossip_interval: dur("gossip_interval")?,
        probe_interval: dur("probe_interval")?,
        probe_timeout: dur("probe_timeout")?,
        suspicion_mult: num("suspicion_mult")?,
        retransmit_mult: num("retransmit_mult")?,
    })
}

/// `ports.*`, with Consul's disabling and range rules.
fn build_ports(c: &View<'_>, server: bool) -> Result<Ports, ConfigError> {
    let ports = Ports {
        dns: c.port("ports.dns", 8600)?,
        http: c.port("ports.http", 8500)?,
        https: c.port("ports.https", -1)?,
        grpc: c.port("ports.grpc", -1)?,
        // Servers get a gRPC TLS listener on 8503 unless told otherwise.
        grpc_tls: if c.get("ports.grpc_tls").is_none() && server {
            8503
        } else {
            c.port("ports.grpc_tls", -1)?
        },
        serf_lan: c.port("ports.serf_lan", 8301)?,
        serf_wan: c.port("ports.serf_wan", 8302)?,
        server: c.port("ports.server", 8300)?,
    };
    for key in [
        "ports.proxy_min_port",
        "ports.proxy_max_port",
        "ports.sidecar_min_port",
        "ports.sidecar_max_port",
        "ports.expose_min_port",
        "ports.expose_max_port",
    ] {
        c.port(key, -1)?;
    }
    if ports.server <= 0 {
        return Err(invalid("server-port must be greater than zero"));
    }
    if ports.serf_lan <= 0 {
        return Err(invalid("serf-lan-port must be greater than zero"));
    }

    Ok(ports)
}

/// Bind, advertise and client addresses.
struct Network {
    bind_addr: IpAddr,
    advertise_addr: Option<IpAddr>,
    advertise_addr_wan: Option<IpAddr>,
    serf_lan_bind: Option<IpAddr>,
    serf_wan_bind: Option<IpAddr>,
    client_addrs: Vec<IpAddr>,
    addresses: Addresses,
}

fn build_network(c: &View<'_>, warnings: &mut Vec<String>) -> Result<Network, ConfigError> {
    let bind_text = c.str("bind_addr").unwrap_or("0.0.0.0");
    let bind_addrs = expand_addrs("bind_addr", bind_text)?;
    let bind_addr = match bind_addrs.as_slice() {
        [] => return Err(invalid("bind_addr cannot be empty")),
        [Addr::Ip(ip)] => *ip,
        [Addr::Unix] => return Err(invalid("bind_addr cannot be a unix socket")),
        _ => {
            return Err(invalid(
                "bind_addr cannot contain multiple addresses. Use 'addresses.{dns,http,https}' instead.",
            ));
        }
    };
    let advertise_addr = first_ip("advertise_addr", c.str("advertise_addr"))?;
    if advertise_addr.as_ref().is_some_and(is_any) {
        return Err(invalid("Advertise address cannot be 0.0.0.0, :: or [::]"));
    }
    let advertise_addr_wan = first_ip("advertise_addr_wan", c.str("advertise_addr_wan"))?;
    if advertise_addr_wan.as_ref().is_some_and(is_any) {
        return Err(invalid(
            "Advertise WAN address cannot be 0.0.0.0, :: or [::]",
        ));
    }
    for key in [
        "advertise_addr_ipv4",
        "advertise_addr_ipv6",
        "advertise_addr_wan_ipv4",
        "advertise_addr_wan_ipv6",
    ] {
        let ip = first_ip(key, c.str(key))?;
        let want_v4 = key.ends_with("ipv4");
        if let Some(ip) = ip
            && ip.is_ipv4() != want_v4
        {
            let family = if want_v4 { "ipv4" } else { "ipv6" };
            return Err(invalid(format!("{key} must be an {family} address")));
        }
    }
    let serf_lan_bind = first_ip("serf_lan", c.str("serf_lan"))?;
    let serf_wan_bind = first_ip("serf_wan", c.str("serf_wan"))?;

    let client_text = c.str("client_addr").unwrap_or("127.0.0.1");
    let mut client_addrs = Vec::new();
    for a in expand_addrs("client_addr", client_text)? {
        match a {
            Addr::Ip(ip) => client_addrs.push(ip),
            Addr::Unix => return Err(invalid("client_addr cannot be a unix socket")),
        }
    }
    if client_addrs.is_empty() {
        warnings.push(
            "client_addr is empty, client services (DNS, HTTP, HTTPS, GRPC) will not be listening for connections"
                .to_string(),
        );
    }
    let addresses = Addresses {
        http: c.nonempty("addresses.http"),
        https: c.nonempty("addresses.https"),
        dns: c.nonempty("addresses.dns"),
        grpc: c.nonempty("addresses.grpc"),
        grpc_tls: c.nonempty("addresses.grpc_tls"),
    };
    for (name, value) in [
        ("addresses.http", &addresses.http),
        ("addresses.https", &addresses.https),
        ("addresses.dns", &addresses.dns),
        ("addresses.grpc", &addresses.grpc),
        ("addresses.grpc_tls", &addresses.grpc_tls),
    ] {
        if let Some(v) = value {
            let addrs = expand_addrs(name, v)?;
            if name == "addresses.dns" && addrs.iter().any(|a| matches!(a, Addr::Unix)) {
                return Err(invalid("DNS address cannot be a unix socket"));
            }
        }
    }

    Ok(Network {
        bind_addr,
        advertise_addr,
        advertise_addr_wan,
        serf_lan_bind,
        serf_wan_bind,
        client_addrs,
        addresses,
    })
}

/// `recursors` (expanded and de-duplicated) and `dns_config`.
fn build_dns(c: &View<'_>) -> Result<(Vec<String>, DnsConfig), ConfigError> {
    let mut recursors: Vec<String> = Vec::new();
    for r in c.strs("recursors") {
        if r.contains("{{") {
            return Err(invalid(format!(
                "Invalid DNS recursor template {r:?}: go-sockaddr templates are not supported"
            )));
        }
        for addr in r.split_whitespace() {
            if addr.starts_with("unix://") {
                return Err(invalid(format!(
                    "DNS Recursors cannot be unix sockets: {addr}"
                )));
            }
            if matches!(addr, "0.0.0.0" | "::" | "[::]") {
                return Err(invalid(
                    "DNS recursor address cannot be 0.0.0.0, :: or [::]",
                ));
            }
            if !recursors.iter().any(|x| x == addr) {
                recursors.push(addr.to_string());
            }
        }
    }
    let mut service_ttl = BTreeMap::new();
    if let Some(m) = c.get("dns_config.service_ttl").and_then(Value::as_object) {
        for (k, v) in m {
            let s = v.as_str().unwrap_or_default();
            let d = parse_go_duration(s).map_err(|e| {
                invalid(format!(
                    "dns_config.service_ttl[{k:?}]: invalid duration: {s:?}: {e}"
                ))
            })?;
            service_ttl.insert(k.clone(), d);
        }
    }
    let dns_config = DnsConfig {
        allow_stale: c.flag("dns_config.allow_stale", true),
        max_stale: c.dur("dns_config.max_stale", Duration::from_secs(87_600 * 3600))?,
        node_ttl: c.dur("dns_config.node_ttl", Duration::ZERO)?,
        service_ttl,
        udp_answer_limit: c.u32("dns_config.udp_answer_limit", 3)?,
        a_record_limit: c.u32("dns_config.a_record_limit", 0)?,
        enable_truncate: c.flag("dns_config.enable_truncate", false),
        only_passing: c.flag("dns_config.only_passing", false),
        recursor_timeout: c.dur("dns_config.recursor_timeout", Duration::from_secs(2))?,
        enable_additional_node_meta_txt: c.flag("dns_config.enable_additional_node_meta_txt", true),
        disable_compression: c.flag("dns_config.disable_compression", false),
        soa: SoaConfig {
            refresh: c.u32("dns_config.soa.refresh", 3600)?,
            retry: c.u32("dns_config.soa.retry", 600)?,
            expire: c.u32("dns_config.soa.expire", 86_400)?,
            min_ttl: c.u32("dns_config.soa.min_ttl", 0)?,
        },
    };
    if let Some(strategy) = c.str("dns_config.recursor_strategy")
        && !matches!(strategy, "" | "sequential" | "random")
    {
        return Err(invalid(format!(
            "dns_config.recursor_strategy: invalid strategy: {strategy:?}"
        )));
    }

    Ok((recursors, dns_config))
}

fn build_acl(c: &View<'_>) -> Result<AclConfig, ConfigError> {
    let acl = AclConfig {
        enabled: c.flag("acl.enabled", false),
        default_policy: c.str("acl.default_policy").unwrap_or("allow").to_string(),
        down_policy: c
            .str("acl.down_policy")
            .unwrap_or("extend-cache")
            .to_string(),
        enable_token_replication: c.flag("acl.enable_token_replication", false),
        enable_key_list_policy: c.flag("acl.enable_key_list_policy", false),
        enable_token_persistence: c.flag("acl.enable_token_persistence", false),
        token_ttl: c.dur("acl.token_ttl", Duration::from_secs(30))?,
        policy_ttl: c.dur("acl.policy_ttl", Duration::from_secs(30))?,
        role_ttl: c.dur("acl.role_ttl", Duration::from_secs(30))?,
        tokens: AclTokens {
            initial_management: c.nonempty("acl.tokens.initial_management"),
            agent_recovery: c.nonempty("acl.tokens.agent_recovery"),
            default: c.nonempty("acl.tokens.default"),
            agent: c.nonempty("acl.tokens.agent"),
            replication: c.nonempty("acl.tokens.replication"),
            config_file_service_registration: c
                .nonempty("acl.tokens.config_file_service_registration"),
            dns: c.nonempty("acl.tokens.dns"),
        },
    };
    if !matches!(acl.default_policy.as_str(), "allow" | "deny") {
        return Err(invalid(format!(
            "invalid default policy {:?}",
            acl.default_policy
        )));
    }
    if !matches!(
        acl.down_policy.as_str(),
        "allow" | "deny" | "extend-cache" | "async-cache"
    ) {
        return Err(invalid(format!(
            "invalid ACL down policy {:?}",
            acl.down_policy
        )));
    }

    Ok(acl)
}

fn build_connect(c: &View<'_>) -> Result<ConnectConfig, ConfigError> {
    // Connect: auto_encrypt.allow_tls and auto_config imply it.
    let connect = ConnectConfig {
        enabled: c.flag("connect.enabled", true)
            || c.flag("auto_encrypt.allow_tls", false)
            || c.flag("auto_config.enabled", false),
        ca_provider: c.nonempty("connect.ca_provider"),
        ca_config: c
            .get("connect.ca_config")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default(),
    };
    if let Some(p) = &connect.ca_provider
        && !matches!(p.as_str(), "consul" | "vault" | "aws-pca")
    {
        return Err(invalid(format!("{p} is not a valid CA provider")));
    }
    if c.flag("connect.enable_mesh_gateway_wan_federation", false) && !connect.enabled {
        return Err(invalid(
            "'connect.enable_mesh_gateway_wan_federation=true' requires 'connect.enabled=true'",
        ));
    }

    Ok(connect)
}

/// UI settings.
struct Ui {
    enabled: bool,
    dir: Option<PathBuf>,
    content_path: String,
}

fn build_ui(c: &View<'_>, dev: bool, warnings: &mut Vec<String>) -> Result<Ui, ConfigError> {
    // UI: the deprecated top-level keys only fill in what ui_config leaves unset.
    if c.get("ui").is_some() {
        warnings.push(
            "The 'ui' field is deprecated. Use the 'ui_config.enabled' field instead.".to_string(),
        );
    }
    if c.get("ui_dir").is_some() {
        warnings.push(
            "The 'ui_dir' field is deprecated. Use the 'ui_config.dir' field instead.".to_string(),
        );
    }
    if c.get("ui_content_path").is_some() {
        warnings.push(
            "The 'ui_content_path' field is deprecated. Use the 'ui_config.content_path' field instead.".to_string(),
        );
    }
    let ui = c
        .bool("ui_config.enabled")
        .or(c.bool("ui"))
        .unwrap_or(false);
    let ui_dir = c
        .str("ui_config.dir")
        .or(c.str("ui_dir"))
        .filter(|s| !s.is_empty())
        .map(PathBuf::from);
    let ui_content_path = match c.str("ui_config.content_path").or(c.str("ui_content_path")) {
        Some(p) if !p.is_empty() => format!("/{}/", p.trim_matches('/')),
        _ => "/ui/".to_string(),
    };
    let path_ok = ui_content_path
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'-'));
    if !path_ok {
        return Err(invalid(format!(
            "ui-content-path can only contain alphanumeric, -, _, or /. received: {ui_content_path:?}"
        )));
    }
    let inner = &ui_content_path[1..ui_content_path.len() - 1];
    if inner.len() > 1 && inner.starts_with('v') && inner[1..].bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(format!(
            "ui-content-path cannot have 'v[0-9]'. received: {ui_content_path:?}"
        )));
    }
    if !dev && ui && ui_dir.is_some() {
        return Err(invalid(
            "Both the ui_config.enabled and ui_config.dir (or -ui and -ui-dir) were specified, please provide only one.\n\
             If trying to use your own web UI resources, use ui_config.dir or the -ui-dir flag.\n\
             The web UI is included in the binary so use ui_config.enabled or the -ui flag to enable it",
        ));
    }

    Ok(Ui {
        enabled: ui,
        dir: ui_dir,
        content_path: ui_content_path,
    })
}

fn build_http(c: &View<'_>) -> Result<HttpConfig, ConfigError> {
    let allow_write_http_from = c.strs("http_config.allow_write_http_from");
    for cidr in &allow_write_http_from {
        if !valid_cidr(cidr) {
            return Err(invalid(format!(
                "allow_write_http_from: invalid cidr: {cidr}"
            )));
        }
    }
    let http_config = HttpConfig {
        response_headers: c.str_map("http_config.response_headers"),
        block_endpoints: c.strs("http_config.block_endpoints"),
        use_cache: c.flag("http_config.use_cache", true),
        allow_write_http_from,
    };
    for key in ["serf_lan_allowed_cidrs", "serf_wan_allowed_cidrs"] {
        for cidr in c.strs(key) {
            if !valid_cidr(&cidr) {
                return Err(invalid(format!("{key}: invalid CIDR address: {cidr}")));
            }
        }
    }

    Ok(http_config)
}

fn build_tls(c: &View<'_>) -> TlsConfig {
    // TLS: per-interface settings fall back to tls.defaults.
    let tls_str = |block: &str, key: &str| {
        c.nonempty(&format!("tls.{block}.{key}"))
            .or_else(|| c.nonempty(&format!("tls.defaults.{key}")))
            .map(PathBuf::from)
    };
    let tls_bool = |block: &str, key: &str| {
        c.bool(&format!("tls.{block}.{key}"))
            .or_else(|| c.bool(&format!("tls.defaults.{key}")))
            .unwrap_or(false)
    };
    TlsConfig {
        ca_file: tls_str("https", "ca_file"),
        ca_path: tls_str("https", "ca_path"),
        cert_file: tls_str("https", "cert_file"),
        key_file: tls_str("https", "key_file"),
        verify_incoming: c.flag("tls.defaults.verify_incoming", false),
        verify_incoming_rpc: tls_bool("internal_rpc", "verify_incoming"),
        verify_incoming_https: tls_bool("https", "verify_incoming"),
        verify_outgoing: tls_bool("internal_rpc", "verify_outgoing"),
        verify_server_hostname: tls_bool("internal_rpc", "verify_server_hostname"),
    }
}

/// Consul's `builder.validate`, for the settings concord models.
fn validate(rt: RuntimeConfig) -> Result<RuntimeConfig, ConfigError> {
    validate_basic_name("datacenter", &rt.datacenter, false)?;
    match &rt.data_dir {
        None if !rt.dev => return Err(invalid("data_dir cannot be empty")),
        Some(dir) if !rt.dev => match std::fs::metadata(dir) {
            Ok(meta) if !meta.is_dir() => {
                return Err(invalid(format!(
                    "data_dir {:?} is not a directory",
                    dir.display().to_string()
                )));
            }
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(invalid(format!("Error getting info on data_dir: {e}")));
            }
            _ => {}
        },
        _ => {}
    }
    if rt.node_name.is_empty() {
        return Err(invalid("node_name cannot be empty"));
    }
    if rt.bootstrap && !rt.server {
        return Err(invalid("'bootstrap = true' requires 'server = true'"));
    }
    if rt.bootstrap_expect > 0 && !rt.server {
        return Err(invalid("'bootstrap_expect > 0' requires 'server = true'"));
    }
    if rt.bootstrap_expect > 0 && rt.dev {
        return Err(invalid("'bootstrap_expect > 0' not allowed in dev mode"));
    }
    if rt.bootstrap_expect > 0 && rt.bootstrap {
        return Err(invalid(
            "'bootstrap_expect > 0' and 'bootstrap = true' are mutually exclusive",
        ));
    }
    validate_basic_name("primary_datacenter", &rt.primary_datacenter, true)?;
    if !rt.primary_gateways.is_empty() {
        if !rt.server {
            return Err(invalid("'primary_gateways' requires 'server = true'"));
        }
        if rt.primary_datacenter == rt.datacenter {
            return Err(invalid(
                "'primary_gateways' should only be configured in a secondary datacenter",
            ));
        }
    }
    // Two listeners on the same TCP address would fail at bind time with a
    // less helpful message; Consul rejects this up front.
    let mut in_use: Vec<(String, &str)> = Vec::new();
    let mut claim = |addr: String, name: &'static str| -> Result<(), ConfigError> {
        if let Some((_, other)) = in_use.iter().find(|(a, _)| *a == addr) {
            return Err(invalid(format!(
                "{name} address {addr} already configured for {other}"
            )));
        }
        in_use.push((addr, name));
        Ok(())
    };
    for (name, port, explicit) in [
        ("DNS", rt.ports.dns, &rt.addresses.dns),
        ("HTTP", rt.ports.http, &rt.addresses.http),
        ("HTTPS", rt.ports.https, &rt.addresses.https),
    ] {
        if port <= 0 {
            continue;
        }
        let ips: Vec<String> = match explicit {
            Some(list) => list.split_whitespace().map(str::to_string).collect(),
            None => rt.client_addrs.iter().map(IpAddr::to_string).collect(),
        };
        for ip in ips {
            if let Some(path) = ip.strip_prefix("unix://") {
                claim(format!("unix:{path}"), name)?;
            } else {
                let ip = if ip == "[::]" { "::".to_string() } else { ip };
                claim(format!("tcp:{}", socket_text(&ip, port)), name)?;
            }
        }
    }
    let advertise = rt
        .advertise_addr
        .unwrap_or(if rt.bind_addr.is_unspecified() {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        } else {
            rt.bind_addr
        });
    claim(
        format!(
            "tcp:{}",
            socket_text(&advertise.to_string(), rt.ports.server)
        ),
        "RPC Advertise",
    )?;
    claim(
        format!(
            "tcp:{}",
            socket_text(&advertise.to_string(), rt.ports.serf_lan)
        ),
        "Serf Advertise LAN",
    )?;
    if rt.ports.serf_wan > 0 {
        let wan = rt.advertise_addr_wan.unwrap_or(advertise);
        claim(
            format!("tcp:{}", socket_text(&wan.to_string(), rt.ports.serf_wan)),
            "Serf Advertise WAN",
        )?;
    }
    Ok(rt)
}

fn socket_text(ip: &str, port: i32) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

/// go-uuid's `ParseUUID` format check: 8-4-4-4-12 hex digits.
fn is_go_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// Settles `node_id` the way Consul's agent does: a configured ID is
/// lowercased and must be a UUID; otherwise the ID persisted in
/// `<data_dir>/node-id` is used, or a new random one is generated and
/// written there. In dev mode (no data dir) a fresh ID is used each run.
pub fn ensure_node_id(rt: &mut RuntimeConfig) -> Result<(), ConfigError> {
    if let Some(id) = &rt.node_id {
        let id = id.trim().to_lowercase();
        if !is_go_uuid(&id) {
            return Err(invalid(format!(
                "node_id {id:?} is not a valid UUID (expected 8-4-4-4-12 hex digits)"
            )));
        }
        rt.node_id = Some(id);
        return Ok(());
    }
    let data_dir = match (&rt.data_dir, rt.dev) {
        (Some(dir), false) => dir.clone(),
        _ => {
            rt.node_id = Some(uuid::Uuid::new_v4().to_string());
            return Ok(());
        }
    };
    let path = data_dir.join("node-id");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let id = text.trim().to_lowercase();
            if !is_go_uuid(&id) {
                return Err(invalid(format!(
                    "node ID in {:?} is not a valid UUID: {id:?}",
                    path.display().to_string()
                )));
            }
            rt.node_id = Some(id);
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let id = uuid::Uuid::new_v4().to_string();
            write_node_id(&data_dir, &path, &id)?;
            rt.node_id = Some(id);
            Ok(())
        }
        Err(error) => Err(ConfigError::Io {
            origin: format!("node ID file \"{}\"", path.display()),
            error,
        }),
    }
}

fn write_node_id(data_dir: &Path, path: &Path, id: &str) -> Result<(), ConfigError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let io_err = |error| ConfigError::Io {
        origin: format!("node ID file \"{}\"", path.display()),
        error,
    };
    std::fs::create_dir_all(data_dir).map_err(io_err)?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err)?;
    f.write_all(id.as_bytes()).map_err(io_err)?;
    f.sync_all().map_err(io_err)
}

#[cfg(test)]
mod tests {
    use super::flags::{ConfigPath, ConfigPaths};
    use super::*;
    use std::fs;

    /// The config the Go api test harness writes (go-api-testsuite.md §2.3).
    const HARNESS_JSON: &str = r#"{"node_name":"node-6d4e4a6a-2b6e-4c51-9d0e-7b7a1c0e5f11","node_id":"6D4E4A6A-2B6E-4C51-9D0E-7B7A1C0E5F11","performance":{"raft_multiplier":1},
 "bootstrap":true,"server":true,"data_dir":"DATA_DIR","segments":null,
 "disable_update_check":true,"log_level":"debug","bind_addr":"127.0.0.1","addresses":{},
 "ports":{"dns":20000,"http":20001,"https":-1,"serf_lan":20003,"serf_wan":20004,"server":20005,"grpc":20006,"grpc_tls":20007},
 "acl":{"tokens":{}},
 "connect":{"enabled":true,"ca_config":{"cluster_id":"11111111-2222-3333-4444-555555555555"}},
 "skip_leave_on_interrupt":true,"peering":{"enabled":true},"version":"1.22.6"}"#;

    fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
        let p = dir.join(name);
        fs::write(&p, content).expect("write test file");
        p
    }

    fn files(paths: &[&Path]) -> AgentFlags {
        AgentFlags {
            config: ConfigPaths {
                paths: paths
                    .iter()
                    .map(|p| ConfigPath::File(p.to_path_buf()))
                    .collect(),
            },
            ..AgentFlags::default()
        }
    }

    fn err_text(flags: &AgentFlags) -> String {
        match load(flags) {
            Ok(_) => panic!("expected an error"),
            Err(e) => e.to_string(),
        }
    }

    fn harness_json(data_dir: &Path) -> String {
        HARNESS_JSON.replace("DATA_DIR", &data_dir.display().to_string())
    }

    fn check_harness(rt: &RuntimeConfig, data_dir: &Path) {
        assert_eq!(rt.node_name, "node-6d4e4a6a-2b6e-4c51-9d0e-7b7a1c0e5f11");
        assert_eq!(
            rt.node_id.as_deref(),
            Some("6d4e4a6a-2b6e-4c51-9d0e-7b7a1c0e5f11")
        );
        assert!(rt.server && rt.bootstrap && !rt.dev);
        assert_eq!(rt.raft_multiplier, 1);
        assert_eq!(rt.data_dir.as_deref(), Some(data_dir));
        assert!(rt.disable_update_check);
        assert_eq!(rt.log_level, "debug");
        assert_eq!(rt.bind_addr, "127.0.0.1".parse::<IpAddr>().expect("ip"));
        assert_eq!(rt.addresses, Addresses::default());
        assert_eq!(
            rt.ports,
            Ports {
                dns: 20000,
                http: 20001,
                https: -1,
                grpc: 20006,
                grpc_tls: 20007,
                serf_lan: 20003,
                serf_wan: 20004,
                server: 20005,
            }
        );
        assert_eq!(rt.acl.tokens, AclTokens::default());
        assert!(!rt.acl.enabled);
        assert!(rt.connect.enabled);
        assert_eq!(
            rt.connect.ca_config.get("cluster_id"),
            Some(&json!("11111111-2222-3333-4444-555555555555"))
        );
        assert!(rt.skip_leave_on_interrupt);
        assert!(rt.peering_enabled);
        assert_eq!(rt.datacenter, "dc1");
        assert_eq!(rt.primary_datacenter, "dc1");
        assert!(rt.http_config.use_cache);
    }

    #[test]
    fn harness_default_config_json() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let cfg = write(dir.path(), "config.json", &harness_json(&data));
        let rt = load(&files(&[&cfg])).expect("load");
        check_harness(&rt, &data);
        assert_eq!(rt.config_files, vec![cfg]);
        // "segments": null is "not set" and "version" is accepted but ignored.
        assert!(rt.source.get("segments").is_none());
        assert_eq!(rt.source["version"], json!("1.22.6"));
    }

    #[test]
    fn harness_default_config_hcl() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let hcl = format!(
            r#"
            node_name = "node-6d4e4a6a-2b6e-4c51-9d0e-7b7a1c0e5f11"
            node_id   = "6D4E4A6A-2B6E-4C51-9D0E-7B7A1C0E5F11"
            performance {{
              raft_multiplier = 1
            }}
            bootstrap = true
            server = true
            data_dir = "{}"
            disable_update_check = true
            log_level = "debug"
            bind_addr = "127.0.0.1"
            addresses {{}}
            ports {{
              dns = 20000
              http = 20001
              https = -1
              serf_lan = 20003
              serf_wan = 20004
              server = 20005
              grpc = 20006
              grpc_tls = 20007
            }}
            acl {{ tokens {{}} }}
            connect {{
              enabled = true
              ca_config {{ cluster_id = "11111111-2222-3333-4444-555555555555" }}
            }}
            skip_leave_on_interrupt = true
            peering {{ enabled = true }}
            version = "1.22.6"
            "#,
            data.display()
        );
        let cfg = write(dir.path(), "config.hcl", &hcl);
        let rt = load(&files(&[&cfg])).expect("load");
        check_harness(&rt, &data);
    }

    #[test]
    fn harness_acl_client_config() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let text = harness_json(&data).replace(
            r#""acl":{"tokens":{}}"#,
            r#""primary_datacenter":"dc1","acl":{"enabled":true,"default_policy":"deny","tokens":{"agent":"root","master":"root"}}"#,
        );
        let cfg = write(dir.path(), "config.json", &text);
        let rt = load(&files(&[&cfg])).expect("load");
        assert!(rt.acl.enabled);
        assert_eq!(rt.acl.default_policy, "deny");
        assert_eq!(rt.acl.tokens.agent.as_deref(), Some("root"));
        assert_eq!(rt.acl.tokens.initial_management.as_deref(), Some("root"));
        assert!(rt.warnings.iter().any(|w| w.contains("acl.tokens.master")));
    }

    #[test]
    fn empty_and_blank_files_are_empty_configs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let cfg = write(dir.path(), "config.json", &harness_json(&data));
        let empty = write(dir.path(), "extra.json", "");
        let blank = write(dir.path(), "blank.hcl", "  \n\t\n");
        let rt = load(&files(&[&cfg, &empty, &blank])).expect("load");
        assert_eq!(rt.config_files, vec![cfg, empty.clone(), blank]);
        assert!(rt.services.is_empty());

        // The reload test then rewrites the empty file with a service using
        // a camel-case key, which is passed through untouched.
        fs::write(
            &empty,
            r#"{"service":{"name":"redis","port":1234,"Meta":{"some":"meta"}}}"#,
        )
        .expect("write");
        let rt = load(&files(&[&dir.path().join("config.json"), &empty])).expect("reload");
        assert_eq!(
            rt.services,
            vec![json!({"name":"redis","port":1234,"Meta":{"some":"meta"}})]
        );
    }

    #[test]
    fn merge_order_files_flags_then_hcl() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = write(
            dir.path(),
            "a.json",
            r#"{"data_dir":"/tmp/x","node_name":"from-file","datacenter":"dc-file","log_level":"info","retry_join":["file-a"],"ports":{"http":1111,"dns":2222}}"#,
        );
        let b = write(
            dir.path(),
            "b.hcl",
            "datacenter = \"dc-b\"\nretry_join = [\"file-b\"]\n",
        );
        let mut flags = files(&[&a, &b]);
        flags.node_name = Some("from-flag".into());
        flags.datacenter = Some("dc-flag".into());
        flags.http_port = Some(3333);
        flags.retry_join = vec!["flag".into()];
        flags.hcl = vec![
            "datacenter = \"dc-hcl\"".into(),
            "log_level = \"WARN\"".into(),
        ];
        let rt = load(&flags).expect("load");
        // Flags override files; -hcl snippets override flags (Consul's order).
        assert_eq!(rt.node_name, "from-flag");
        assert_eq!(rt.datacenter, "dc-hcl");
        assert_eq!(rt.log_level, "warn");
        // Nested blocks merge key by key.
        assert_eq!(rt.ports.http, 3333);
        assert_eq!(rt.ports.dns, 2222);
        // List flags come first, then the files' entries in order.
        assert_eq!(rt.retry_join, vec!["flag", "file-a", "file-b"]);
    }

    #[test]
    fn one_or_many_service_blocks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let one = write(
            dir.path(),
            "1.hcl",
            "data_dir = \"/tmp/x\"\nservice {\n  name = \"a\"\n  port = 1\n}\n",
        );
        let two = write(
            dir.path(),
            "2.hcl",
            "service {\n  name = \"b\"\n}\nservice {\n  name = \"c\"\n}\nservices = [{ name = \"d\" }]\n",
        );
        let three = write(
            dir.path(),
            "3.json",
            r#"{"service":{"name":"e","check":{"ttl":"10s"}},"services":[{"name":"f"}],"checks":{"id":"x","ttl":"5s"},"check":[{"id":"y","ttl":"5s"}]}"#,
        );
        let four = write(
            dir.path(),
            "4.json",
            r#"{"service":[{"name":"g"},{"name":"h"}]}"#,
        );
        let rt = load(&files(&[&one, &two, &three, &four])).expect("load");
        let names: Vec<&str> = rt
            .services
            .iter()
            .filter_map(|s| s["name"].as_str())
            .collect();
        // Within one source Consul puts `services` before `service`.
        assert_eq!(names, vec!["a", "d", "b", "c", "f", "e", "g", "h"]);
        let ids: Vec<&str> = rt.checks.iter().filter_map(|c| c["id"].as_str()).collect();
        assert_eq!(ids, vec!["x", "y"]);
        assert_eq!(rt.services[5]["check"]["ttl"], json!("10s"));
    }

    #[test]
    fn unknown_key_names_file_and_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = write(
            dir.path(),
            "a.json",
            r#"{"data_dir":"/tmp/x","datacentre":"dc1"}"#,
        );
        assert_eq!(
            err_text(&files(&[&a])),
            format!(
                "config file \"{}\": unknown key \"datacentre\"",
                a.display()
            )
        );
        let b = write(dir.path(), "b.hcl", "ports {\n  htp = 1\n}\n");
        assert_eq!(
            err_text(&files(&[&b])),
            format!("config file \"{}\": unknown key \"ports.htp\"", b.display())
        );
        let flags = AgentFlags {
            hcl: vec!["acl { tokens { bogus = \"x\" } }".into()],
            dev: Some(true),
            ..AgentFlags::default()
        };
        assert_eq!(
            err_text(&flags),
            "flag -hcl #1: unknown key \"acl.tokens.bogus\""
        );
        // Consul (mapstructure) matches key names ignoring case.
        let c = write(
            dir.path(),
            "c.json",
            r#"{"Data_Dir":"/tmp/x","Datacenter":"DC2"}"#,
        );
        let rt = load(&files(&[&c])).expect("load");
        assert_eq!(rt.datacenter, "dc2");
    }

    #[test]
    fn bad_value_types() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = write(dir.path(), "a.hcl", "ports {\n  http = \"abc\"\n}\n");
        assert_eq!(
            err_text(&files(&[&a])),
            format!(
                "config file \"{}\": ports.http: invalid value \"abc\": expected an integer",
                a.display()
            )
        );
        let b = write(dir.path(), "b.json", r#"{"server":"yes"}"#);
        assert!(
            err_text(&files(&[&b])).ends_with("server: invalid value \"yes\": expected a boolean")
        );
        let c = write(dir.path(), "c.json", r#"{"retry_interval":"5x"}"#);
        assert!(
            err_text(&files(&[&c])).ends_with(
                "retry_interval: invalid value \"5x\": expected a duration (time: unknown unit \"x\" in duration \"5x\")"
            ),
        );
        let d = write(dir.path(), "d.json", r#"{"retry_join":"x"}"#);
        assert!(
            err_text(&files(&[&d]))
                .ends_with("retry_join: invalid value \"x\": expected a list of strings")
        );
        let e = write(
            dir.path(),
            "e.json",
            r#"{"data_dir":"/tmp/x","ports":{"http":70000}}"#,
        );
        assert_eq!(err_text(&files(&[&e])), "ports.http: invalid port: 70000");
        let f = write(dir.path(), "f.json", "{\"datacenter\": ");
        assert!(
            err_text(&files(&[&f]))
                .starts_with(&format!("config file \"{}\": parse error:", f.display()))
        );
    }

    #[test]
    fn legacy_aliases() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = write(
            dir.path(),
            "a.json",
            r#"{
              "data_dir": "/tmp/x",
              "acl_datacenter": "DC9",
              "acl_default_policy": "deny",
              "acl_down_policy": "async-cache",
              "acl_ttl": "45s",
              "acl_master_token": "mgmt",
              "acl_agent_token": "agent",
              "acl_token": "anon",
              "acl_agent_master_token": "recovery",
              "acl_replication_token": "repl",
              "acl_enforce_version_8": false,
              "ca_file": "/ca.pem",
              "verify_incoming": true,
              "verify_outgoing": true,
              "verify_server_hostname": true,
              "start_join": ["10.0.0.1"],
              "non_voting_server": true,
              "server": true,
              "ui": true
            }"#,
        );
        let rt = load(&files(&[&a])).expect("load");
        assert_eq!(rt.primary_datacenter, "dc9");
        assert!(rt.acl.enabled, "acl_datacenter implies ACLs");
        assert_eq!(rt.acl.default_policy, "deny");
        assert_eq!(rt.acl.down_policy, "async-cache");
        assert_eq!(rt.acl.token_ttl, Duration::from_secs(45));
        assert_eq!(rt.acl.tokens.initial_management.as_deref(), Some("mgmt"));
        assert_eq!(rt.acl.tokens.agent.as_deref(), Some("agent"));
        assert_eq!(rt.acl.tokens.default.as_deref(), Some("anon"));
        assert_eq!(rt.acl.tokens.agent_recovery.as_deref(), Some("recovery"));
        assert_eq!(rt.acl.tokens.replication.as_deref(), Some("repl"));
        assert!(rt.acl.enable_token_replication);
        assert_eq!(rt.tls.ca_file.as_deref(), Some(Path::new("/ca.pem")));
        assert!(
            rt.tls.verify_incoming && rt.tls.verify_incoming_rpc && rt.tls.verify_incoming_https
        );
        assert!(rt.tls.verify_outgoing && rt.tls.verify_server_hostname);
        assert_eq!(rt.retry_join, vec!["10.0.0.1"]);
        assert_eq!(rt.start_join, vec!["10.0.0.1"]);
        assert!(rt.read_replica);
        assert!(rt.ui);
        assert!(
            rt.warnings
                .iter()
                .any(|w| w.contains("acl_enforce_version_8"))
        );

        // The current key wins over the legacy one in the same file.
        let b = write(
            dir.path(),
            "b.json",
            r#"{"data_dir":"/tmp/x","acl":{"tokens":{"initial_management":"new","agent_master":"old-r","agent_recovery":"new-r"}},"acl_master_token":"old"}"#,
        );
        let rt = load(&files(&[&b])).expect("load");
        assert_eq!(rt.acl.tokens.initial_management.as_deref(), Some("new"));
        assert_eq!(rt.acl.tokens.agent_recovery.as_deref(), Some("new-r"));
    }

    #[test]
    fn dev_preset() {
        let flags = AgentFlags {
            dev: Some(true),
            ..AgentFlags::default()
        };
        let rt = load(&flags).expect("load");
        assert!(rt.dev && rt.server && rt.bootstrap);
        assert_eq!(rt.data_dir, None);
        assert_eq!(rt.bind_addr, "127.0.0.1".parse::<IpAddr>().expect("ip"));
        assert_eq!(
            rt.client_addrs,
            vec!["127.0.0.1".parse::<IpAddr>().expect("ip")]
        );
        assert!(rt.ui && rt.connect.enabled && rt.enable_debug && rt.peering_enabled);
        assert_eq!(rt.ports.http, 8500);
        assert_eq!(rt.ports.grpc, 8502);
        assert_eq!(rt.ports.grpc_tls, 8503);
        assert_eq!(rt.ports.https, -1);
        assert_eq!(rt.log_level, "debug");
        assert_eq!(rt.raft_multiplier, 1);
        assert!(!rt.node_name.is_empty());
        assert!(rt.node_id.as_deref().is_some_and(is_go_uuid));
        assert!(rt.disable_anonymous_signature && rt.disable_keyring_file);

        // User settings still override the preset.
        let flags = AgentFlags {
            dev: Some(true),
            log_level: Some("INFO".into()),
            hcl: vec!["ports { grpc = -1 }".into()],
            ..AgentFlags::default()
        };
        let rt = load(&flags).expect("load");
        assert_eq!(rt.log_level, "info");
        assert_eq!(rt.ports.grpc, -1);
    }

    #[test]
    fn defaults_without_dev() {
        let flags = AgentFlags {
            data_dir: Some("/nonexistent/concord-test".into()),
            node_id: Some("11111111-2222-3333-4444-555555555555".into()),
            ..AgentFlags::default()
        };
        let rt = load(&flags).expect("load");
        assert!(!rt.server && !rt.bootstrap);
        assert_eq!(rt.bind_addr, "0.0.0.0".parse::<IpAddr>().expect("ip"));
        assert_eq!(
            rt.ports,
            Ports {
                dns: 8600,
                http: 8500,
                https: -1,
                grpc: -1,
                grpc_tls: -1,
                serf_lan: 8301,
                serf_wan: 8302,
                server: 8300,
            }
        );
        assert_eq!(rt.datacenter, "dc1");
        assert_eq!(rt.domain, "consul.");
        assert_eq!(rt.log_level, "info");
        assert!(!rt.skip_leave_on_interrupt && rt.leave_on_terminate);
        assert_eq!(rt.retry_interval, Duration::from_secs(30));
        assert_eq!(rt.kv_max_value_size, 524_288);
        assert_eq!(rt.txn_max_req_len, 524_288);
        assert_eq!(rt.http_max_conns_per_client, 200);
        assert_eq!(rt.rpc_hold_timeout, Duration::from_secs(7));
        assert_eq!(rt.max_query_time, Duration::from_secs(600));
        assert_eq!(rt.default_query_time, Duration::from_secs(300));
        assert_eq!(rt.raft_multiplier, 5);
        assert_eq!(rt.dns_config.max_stale, Duration::from_secs(87_600 * 3600));
        assert_eq!(rt.dns_config.udp_answer_limit, 3);
        assert!(rt.dns_config.allow_stale && rt.dns_config.enable_additional_node_meta_txt);
        assert_eq!(rt.acl.down_policy, "extend-cache");
        assert_eq!(rt.telemetry.metrics_prefix, "consul");
        assert!(rt.http_config.use_cache);
        assert_eq!(rt.ui_content_path, "/ui/");
        assert!(rt.autopilot.cleanup_dead_servers);
    }

    #[test]
    fn validation_messages() {
        assert_eq!(err_text(&AgentFlags::default()), "data_dir cannot be empty");
        let with = |hcl: &str| AgentFlags {
            data_dir: Some("/nonexistent/concord-test".into()),
            hcl: vec![hcl.to_string()],
            ..AgentFlags::default()
        };
        assert_eq!(
            err_text(&with("datacenter = \"dc 1\"")),
            "datacenter can only contain lowercase alphanumeric, - or _ characters. received: \"dc 1\""
        );
        assert_eq!(
            err_text(&with("bootstrap = true")),
            "'bootstrap = true' requires 'server = true'"
        );
        assert_eq!(
            err_text(&with("raft_protocol = 2")),
            "raft_protocol version 2 is not supported by this version of Consul"
        );
        assert_eq!(
            err_text(&with("bind_addr = \"10.0.0.1 10.0.0.2\"")),
            "bind_addr cannot contain multiple addresses. Use 'addresses.{dns,http,https}' instead."
        );
        assert_eq!(
            err_text(&with("advertise_addr = \"0.0.0.0\"")),
            "Advertise address cannot be 0.0.0.0, :: or [::]"
        );
        assert!(
            err_text(&with("encrypt = \"not base64!\"")).starts_with("encrypt has invalid key")
        );
        assert!(err_text(&with("node_id = \"nope\"")).contains("not a valid UUID"));
        assert_eq!(
            err_text(&with("node_meta { consul-x = \"1\" }")),
            "node_meta invalid: Couldn't load metadata pair ('consul-x', '1'): Key prefix 'consul-' is reserved for internal use"
        );
        assert!(err_text(&with("log_level = \"loud\"")).starts_with("Invalid log level: loud."));
        let bad_format = AgentFlags {
            config_format: Some("yaml".into()),
            ..AgentFlags::default()
        };
        assert_eq!(
            err_text(&bad_format),
            "config: -config-format must be either 'hcl' or 'json'"
        );
    }

    #[test]
    fn bootstrap_expect_one_means_bootstrap() {
        let flags = AgentFlags {
            data_dir: Some("/nonexistent/concord-test".into()),
            server: Some(true),
            bootstrap_expect: Some(1),
            ..AgentFlags::default()
        };
        let rt = load(&flags).expect("load");
        assert!(rt.bootstrap);
        assert_eq!(rt.bootstrap_expect, 0);
        assert!(rt.skip_leave_on_interrupt && !rt.leave_on_terminate);
        assert_eq!(rt.ports.grpc_tls, 8503);
    }

    #[test]
    fn node_id_is_persisted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let flags = AgentFlags {
            data_dir: Some(data.clone()),
            ..AgentFlags::default()
        };
        let first = load(&flags).expect("load").node_id.expect("id");
        assert!(is_go_uuid(&first));
        assert_eq!(
            fs::read_to_string(data.join("node-id"))
                .expect("read")
                .trim(),
            first
        );
        let second = load(&flags).expect("load").node_id.expect("id");
        assert_eq!(first, second);
        fs::write(data.join("node-id"), "garbage").expect("write");
        assert!(err_text(&flags).contains("is not a valid UUID"));
    }

    #[test]
    fn config_dirs_and_formats() {
        let dir = tempfile::tempdir().expect("tempdir");
        let confd = dir.path().join("conf.d");
        fs::create_dir_all(confd.join("sub")).expect("mkdir");
        write(&confd, "b.hcl", "datacenter = \"dc-b\"\n");
        write(
            &confd,
            "a.json",
            r#"{"data_dir":"/tmp/x","datacenter":"dc-a","node_name":"n-a"}"#,
        );
        write(&confd, "c.txt", "this is not config");
        write(&confd.join("sub"), "z.json", r#"{"datacenter":"dc-sub"}"#);
        let flags = AgentFlags {
            config: ConfigPaths {
                paths: vec![ConfigPath::Dir(confd.clone())],
            },
            ..AgentFlags::default()
        };
        let rt = load(&flags).expect("load");
        assert_eq!(rt.datacenter, "dc-b");
        assert_eq!(rt.node_name, "n-a");
        assert_eq!(
            rt.config_files,
            vec![confd.join("a.json"), confd.join("b.hcl")]
        );
        assert!(rt.warnings.iter().any(|w| w.contains("c.txt")));

        // A -config-file needs a known extension unless -config-format is set.
        let conf = write(dir.path(), "agent.conf", r#"{"data_dir":"/tmp/x"}"#);
        assert_eq!(
            err_text(&files(&[&conf])),
            format!(
                "config file \"{}\" has unknown extension; must be .hcl or .json, or -config-format must be set",
                conf.display()
            )
        );
        let mut flags = files(&[&conf]);
        flags.config_format = Some("json".into());
        assert!(load(&flags).is_ok());
        let missing = dir.path().join("missing.json");
        assert!(
            err_text(&files(&[&missing]))
                .starts_with(&format!("config file \"{}\": ", missing.display()))
        );
    }

    #[test]
    fn hcl_quoted_keys_in_blocks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = write(
            dir.path(),
            "a.hcl",
            "data_dir = \"/tmp/x\"\nnode_meta {\n  \"rack-1\" = \"r1\"\n  \"zone\" = \"z\"\n}\n\
             http_config {\n  response_headers {\n    \"Access-Control-Allow-Origin\" = \"*\"\n  }\n}\n\
             dns_config {\n  service_ttl {\n    \"web.*\" = \"5s\"\n  }\n}\n",
        );
        let rt = load(&files(&[&a])).expect("load");
        assert_eq!(rt.node_meta.get("rack-1").map(String::as_str), Some("r1"));
        assert_eq!(rt.node_meta.get("zone").map(String::as_str), Some("z"));
        assert_eq!(
            rt.http_config
                .response_headers
                .get("Access-Control-Allow-Origin")
                .map(String::as_str),
            Some("*")
        );
        assert_eq!(
            rt.dns_config.service_ttl.get("web.*"),
            Some(&Duration::from_secs(5))
        );
    }

    #[test]
    fn unix_socket_http_address_and_client_list() {
        let flags = AgentFlags {
            data_dir: Some("/nonexistent/concord-test".into()),
            hcl: vec![
                "addresses { http = \"unix:///tmp/test.sock\" }".into(),
                "client_addr = \"127.0.0.1 ::1\"".into(),
            ],
            ..AgentFlags::default()
        };
        let rt = load(&flags).expect("load");
        assert_eq!(rt.addresses.http.as_deref(), Some("unix:///tmp/test.sock"));
        assert_eq!(rt.client_addrs.len(), 2);
    }

    #[test]
    fn maps_replace_and_lists_append_across_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = write(
            dir.path(),
            "a.json",
            r#"{"data_dir":"/tmp/x","node_meta":{"a":"1"},"recursors":["1.1.1.1"],"connect":{"ca_config":{"leaf_cert_ttl":"72h"}}}"#,
        );
        let b = write(
            dir.path(),
            "b.json",
            r#"{"node_meta":{"b":"2"},"recursors":["8.8.8.8","1.1.1.1"],"connect":{"ca_provider":"consul"}}"#,
        );
        let rt = load(&files(&[&a, &b])).expect("load");
        assert_eq!(rt.node_meta.keys().collect::<Vec<_>>(), vec!["b"]);
        assert_eq!(rt.recursors, vec!["1.1.1.1", "8.8.8.8"]);
        assert_eq!(rt.connect.ca_provider.as_deref(), Some("consul"));
        assert_eq!(
            rt.connect.ca_config.get("leaf_cert_ttl"),
            Some(&json!("72h"))
        );
    }
}
