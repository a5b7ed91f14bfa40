//! `consul services register|deregister`: adds services to the local agent from
//! flags or from service definitions in config files, and removes them again
//! (Consul's `command/services/register`, `deregister`). Files are read with the
//! agent's own config loader in dev mode, so any file the agent accepts works.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::{ArgAction, Args, Subcommand};
use serde_json::{Map, Value, json};

use super::client::Client;
use super::http_flags::{ClientFlags, ServerFlags};
use super::ui::{self, fail, go_quote};
use crate::config::flags::{ConfigPath, ConfigPaths};
use crate::config::{AgentFlags, build_from_flags};
use crate::structs::{ServiceDefinition, decode};

#[derive(Subcommand, Debug)]
pub enum ServicesCommand {
    /// Register services with the local agent.
    Register(RegisterArgs),
    /// Deregister services with the local agent.
    Deregister(DeregisterArgs),
}

pub async fn run(cmd: &ServicesCommand) -> i32 {
    match cmd {
        ServicesCommand::Register(a) => register(a).await,
        ServicesCommand::Deregister(a) => deregister(a).await,
    }
}

#[derive(Args, Debug)]
pub struct RegisterArgs {
    /// ID of the service to register for arg-based registration. If this isn't
    /// set, it will default to the -name value.
    #[arg(
        long,
        default_value = "",
        hide_default_value = true,
        value_name = "VALUE"
    )]
    id: String,
    /// Name of the service to register for arg-based registration.
    #[arg(
        long,
        default_value = "",
        hide_default_value = true,
        value_name = "VALUE"
    )]
    name: String,
    /// Address of the service to register for arg-based registration.
    #[arg(
        long,
        default_value = "",
        hide_default_value = true,
        value_name = "VALUE"
    )]
    address: String,
    /// Port of the service to register for arg-based registration.
    #[arg(
        long,
        default_value = "0",
        hide_default_value = true,
        value_name = "INT",
        allow_negative_numbers = true
    )]
    port: i64,
    /// Path to the Unix domain socket to register for arg-based registration
    /// (conflicts with address and port).
    #[arg(
        long,
        default_value = "",
        hide_default_value = true,
        value_name = "VALUE"
    )]
    socket: String,
    /// Metadata to set on the service, formatted as key=value. This flag may be
    /// specified multiple times to set multiple meta fields.
    #[arg(long, action = ArgAction::Append, value_name = "key=value")]
    meta: Vec<String>,
    /// Tag to add to the service. This flag can be specified multiple times to
    /// set multiple tags.
    #[arg(long, action = ArgAction::Append, value_name = "VALUE")]
    tag: Vec<String>,
    /// Tagged address to set on the service, formatted as key=value. This flag
    /// may be specified multiple times to set multiple addresses.
    #[arg(long = "tagged-address", action = ArgAction::Append, value_name = "key=value")]
    tagged_address: Vec<String>,
    /// The services 'kind'.
    #[arg(
        long,
        default_value = "",
        hide_default_value = true,
        value_name = "VALUE"
    )]
    kind: String,
    #[command(flatten)]
    http: ClientFlags,
    #[command(flatten)]
    server: ServerFlags,
    /// Service definition files (HCL or JSON).
    #[arg(value_name = "FILE")]
    files: Vec<PathBuf>,
}

#[derive(Args, Debug)]
pub struct DeregisterArgs {
    /// ID to delete. This must not be set if arguments are given.
    #[arg(
        long,
        default_value = "",
        hide_default_value = true,
        value_name = "VALUE"
    )]
    id: String,
    #[command(flatten)]
    http: ClientFlags,
    #[command(flatten)]
    server: ServerFlags,
    /// Service definition files (HCL or JSON).
    #[arg(value_name = "FILE")]
    files: Vec<PathBuf>,
}

/// `key=value` flag values as Consul's `FlagMapValue` takes them: split at the
/// first `=`, later keys win.
fn flag_map(flag: &str, values: &[String]) -> Result<BTreeMap<String, String>, String> {
    let mut map = BTreeMap::new();
    for v in values {
        let Some((k, val)) = v.split_once('=') else {
            return Err(format!(
                "invalid value {} for flag -{flag}: Missing \"=\" value in argument: {v}",
                go_quote(v)
            ));
        };
        map.insert(k.to_string(), val.to_string());
    }
    Ok(map)
}

/// Go's `net.SplitHostPort`, with its error texts.
fn split_host_port(hostport: &str) -> Result<(String, String), String> {
    let err = |why: &str| format!("address {hostport}: {why}");
    let Some(colon) = hostport.rfind(':') else {
        return Err(err("missing port in address"));
    };
    let (host, port) = (&hostport[..colon], &hostport[colon + 1..]);
    let host = if let Some(rest) = host.strip_prefix('[') {
        let Some(inner) = rest.strip_suffix(']') else {
            return Err(if rest.contains(']') {
                err("missing port in address")
            } else {
                err("missing ']' in address")
            });
        };
        if inner.contains('[') {
            return Err(err("unexpected '[' in address"));
        }
        inner
    } else {
        if host.contains(':') {
            return Err(err("too many colons in address"));
        }
        if host.contains('[') {
            return Err(err("unexpected '[' in address"));
        }
        if host.contains(']') {
            return Err(err("unexpected ']' in address"));
        }
        host
    };
    Ok((host.to_string(), port.to_string()))
}

/// The Go api's `ParseServiceAddr`: `host:port` into a tagged address.
fn parse_service_addr(addr: &str) -> Result<Value, String> {
    let (host, port) = split_host_port(addr)?;
    let port: i64 = port.parse().map_err(|_| {
        format!(
            "strconv.Atoi: parsing {}: {}",
            go_quote(&port),
            if port.chars().all(|c| c.is_ascii_digit()) && !port.is_empty() {
                "value out of range"
            } else {
                "invalid syntax"
            }
        )
    })?;
    Ok(json!({"Address": host, "Port": port}))
}

/// The registration the flags describe, in the Go api's JSON shape (empty fields
/// left out, as its `omitempty` tags do).
struct FlagService {
    kind: String,
    id: String,
    name: String,
    address: String,
    port: i64,
    socket_path: String,
    tags: Vec<String>,
    meta: BTreeMap<String, String>,
    tagged_addresses: BTreeMap<String, Value>,
}

impl FlagService {
    fn from_args(args: &RegisterArgs) -> Result<FlagService, String> {
        let meta = flag_map("meta", &args.meta)?;
        let mut tagged_addresses = BTreeMap::new();
        for (k, v) in flag_map("tagged-address", &args.tagged_address)? {
            let addr =
                parse_service_addr(&v).map_err(|e| format!("Invalid Tagged Address: {e}"))?;
            tagged_addresses.insert(k, addr);
        }
        Ok(FlagService {
            kind: args.kind.clone(),
            id: args.id.clone(),
            name: args.name.clone(),
            address: args.address.clone(),
            port: args.port,
            socket_path: args.socket.clone(),
            tags: args.tag.clone(),
            meta,
            tagged_addresses,
        })
    }

    fn to_json(&self) -> Value {
        let mut m = Map::new();
        let mut put_str = |k: &str, v: &str| {
            if !v.is_empty() {
                m.insert(k.to_string(), Value::from(v));
            }
        };
        put_str("Kind", &self.kind);
        put_str("ID", &self.id);
        put_str("Name", &self.name);
        put_str("Address", &self.address);
        put_str("SocketPath", &self.socket_path);
        if !self.tags.is_empty() {
            m.insert("Tags".into(), json!(self.tags));
        }
        if self.port != 0 {
            m.insert("Port".into(), json!(self.port));
        }
        if !self.tagged_addresses.is_empty() {
            m.insert("TaggedAddresses".into(), json!(self.tagged_addresses));
        }
        if !self.meta.is_empty() {
            m.insert("Meta".into(), json!(self.meta));
        }
        Value::Object(m)
    }

    /// Fills what a file's definition leaves out from the flags, as Consul's
    /// `CombineArgs`: scalars only where the file has none, meta and tagged
    /// addresses merged (the flags win), tags appended.
    fn fill(&self, def: &mut Map<String, Value>) {
        canonical_keys(def);
        let mut scalar = |key: &str, v: Value, empty: bool| {
            let unset = match def.get(key) {
                None | Some(Value::Null) => true,
                Some(Value::String(s)) => s.is_empty(),
                Some(Value::Number(n)) => n.as_f64() == Some(0.0),
                _ => false,
            };
            if !empty && unset {
                def.insert(key.to_string(), v);
            }
        };
        scalar("ID", json!(self.id), self.id.is_empty());
        scalar("Name", json!(self.name), self.name.is_empty());
        scalar("Address", json!(self.address), self.address.is_empty());
        scalar("Port", json!(self.port), self.port == 0);
        scalar("Kind", json!(self.kind), self.kind.is_empty());
        scalar(
            "SocketPath",
            json!(self.socket_path),
            self.socket_path.is_empty(),
        );
        merge_map(def, "Meta", self.meta.iter().map(|(k, v)| (k, json!(v))));
        merge_map(
            def,
            "TaggedAddresses",
            self.tagged_addresses.iter().map(|(k, v)| (k, v.clone())),
        );
        let tags = def
            .entry("Tags")
            .or_insert_with(|| Value::Array(Vec::new()));
        if tags.is_null() {
            *tags = Value::Array(Vec::new());
        }
        if let Value::Array(list) = tags {
            list.extend(self.tags.iter().map(|t| json!(t)));
        }
    }
}

/// The fields the flags can fill, in the API's spelling.
const COMBINED_FIELDS: [&str; 9] = [
    "Kind",
    "ID",
    "Name",
    "Address",
    "Port",
    "SocketPath",
    "Meta",
    "TaggedAddresses",
    "Tags",
];

/// Renames a definition's keys for the combined fields to the API's spelling: a
/// config file may write `name`, `socket_path` or `Name` alike.
fn canonical_keys(def: &mut Map<String, Value>) {
    let fold = |s: &str| -> String {
        s.chars()
            .filter(|c| *c != '_' && *c != '-')
            .flat_map(char::to_lowercase)
            .collect()
    };
    let keys: Vec<String> = def.keys().cloned().collect();
    for key in keys {
        if let Some(canon) = COMBINED_FIELDS.iter().find(|c| fold(c) == fold(&key))
            && key != *canon
            && let Some(v) = def.remove(&key)
        {
            def.insert((*canon).to_string(), v);
        }
    }
}

fn merge_map<'a>(
    def: &mut Map<String, Value>,
    key: &str,
    entries: impl Iterator<Item = (&'a String, Value)>,
) {
    let target = def.entry(key).or_insert_with(|| Value::Object(Map::new()));
    if target.is_null() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(m) = target {
        for (k, v) in entries {
            m.insert(k.clone(), v);
        }
    }
}

/// The service definitions in config files, loaded as the agent loads them (in
/// dev mode, so agent-only settings such as `data_dir` are not required). The
/// loader's warnings go to stderr.
fn services_from_files(files: &[PathBuf]) -> Result<Vec<Value>, String> {
    let flags = AgentFlags {
        dev: Some(true),
        config: ConfigPaths {
            paths: files.iter().cloned().map(ConfigPath::File).collect(),
        },
        ..Default::default()
    };
    let rt = build_from_flags(&flags).map_err(|e| e.to_string())?;
    for w in &rt.warnings {
        ui::error(w);
    }
    Ok(rt.services)
}

/// A definition decoded as the agent will decode it.
fn decode_service(raw: &Value) -> Result<ServiceDefinition, String> {
    decode::from_value(raw.clone()).map_err(|e| format!("invalid service definition: {e}"))
}

fn connect(http: &ClientFlags, server: &ServerFlags) -> Result<Client, i32> {
    Client::new(http, Some(server))
        .map_err(|e| fail(format!("Error connecting to Consul agent: {e}")))
}

async fn register(args: &RegisterArgs) -> i32 {
    let flags = match FlagService::from_args(args) {
        Ok(f) => f,
        Err(e) if e.starts_with("invalid value") => {
            return ui::fail_with_usage(&e, &["services", "register"]);
        }
        Err(e) => return fail(e),
    };
    if args.files.is_empty() && args.name.is_empty() {
        return fail("Service registration requires at least one argument or flags.");
    }
    if !args.files.is_empty() && !args.name.is_empty() {
        return fail("Service registration requires arguments or -id, not both.");
    }
    // (body, name) pairs.
    let mut services = Vec::new();
    if args.files.is_empty() {
        services.push((flags.to_json(), flags.name.clone()));
    } else {
        let raw = match services_from_files(&args.files) {
            Ok(r) => r,
            Err(e) => return fail(format!("Error: {e}")),
        };
        for mut def in raw {
            if let Value::Object(m) = &mut def {
                flags.fill(m);
            }
            match decode_service(&def) {
                Ok(d) => services.push((def, d.name)),
                Err(e) => return fail(format!("Error: {e}")),
            }
        }
    }
    let client = match connect(&args.http, &args.server) {
        Ok(c) => c,
        Err(code) => return code,
    };
    for (body, name) in services {
        if let Err(e) = client
            .put("/v1/agent/service/register")
            .json(&body)
            .send_ok()
            .await
        {
            return fail(format!(
                "Error registering service {}: {e}",
                go_quote(&name)
            ));
        }
        ui::output(&format!("Registered service: {name}"));
    }
    0
}

async fn deregister(args: &DeregisterArgs) -> i32 {
    if args.files.is_empty() && args.id.is_empty() {
        return fail("Service deregistration requires at least one argument or -id.");
    }
    if !args.files.is_empty() && !args.id.is_empty() {
        return fail("Service deregistration requires arguments or -id, not both.");
    }
    // (id, name) pairs.
    let mut services = Vec::new();
    if args.files.is_empty() {
        services.push((args.id.clone(), String::new()));
    } else {
        let raw = match services_from_files(&args.files) {
            Ok(r) => r,
            Err(e) => return fail(format!("Error: {e}")),
        };
        for def in raw {
            match decode_service(&def) {
                Ok(d) => {
                    let id = if d.id.is_empty() {
                        d.name.clone()
                    } else {
                        d.id
                    };
                    services.push((id, d.name));
                }
                Err(e) => return fail(format!("Error: {e}")),
            }
        }
    }
    let client = match connect(&args.http, &args.server) {
        Ok(c) => c,
        Err(code) => return code,
    };
    for (id, name) in services {
        if id.is_empty() {
            continue;
        }
        if let Err(e) = client
            .put(&format!("/v1/agent/service/deregister/{id}"))
            .send_ok()
            .await
        {
            return fail(format!(
                "Error deregistering service {}: {e}",
                go_quote(&name)
            ));
        }
        ui::output(&format!("Deregistered service: {id}"));
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tagged_addresses_parse_like_go() {
        assert_eq!(
            parse_service_addr("10.0.0.1:80").unwrap(),
            json!({"Address": "10.0.0.1", "Port": 80})
        );
        assert_eq!(
            parse_service_addr("[::1]:8080").unwrap(),
            json!({"Address": "::1", "Port": 8080})
        );
        assert_eq!(
            parse_service_addr("10.0.0.1").unwrap_err(),
            "address 10.0.0.1: missing port in address"
        );
        assert_eq!(
            parse_service_addr("::1:80").unwrap_err(),
            "address ::1:80: too many colons in address"
        );
        assert_eq!(
            parse_service_addr("[::1:80").unwrap_err(),
            "address [::1:80: missing ']' in address"
        );
        assert_eq!(
            parse_service_addr("h:http").unwrap_err(),
            "strconv.Atoi: parsing \"http\": invalid syntax"
        );
    }

    #[test]
    fn flag_maps_split_at_the_first_equals() {
        let m = flag_map("meta", &["a=b=c".into(), "a=d".into(), "e=".into()]).unwrap();
        assert_eq!(m.get("a").map(String::as_str), Some("d"));
        assert_eq!(m.get("e").map(String::as_str), Some(""));
        assert_eq!(
            flag_map("meta", &["x".into()]).unwrap_err(),
            "invalid value \"x\" for flag -meta: Missing \"=\" value in argument: x"
        );
    }

    #[test]
    fn flags_fill_what_a_file_leaves_out() {
        let flags = FlagService {
            kind: String::new(),
            id: "web-1".into(),
            name: String::new(),
            address: "10.0.0.9".into(),
            port: 9090,
            socket_path: String::new(),
            tags: vec!["flag".into()],
            meta: BTreeMap::from([("env".into(), "prod".into())]),
            tagged_addresses: BTreeMap::new(),
        };
        let mut def = json!({"name": "web", "port": 80, "tags": ["file"], "meta": {"env": "dev", "team": "a"}});
        let Value::Object(m) = &mut def else {
            unreachable!()
        };
        flags.fill(m);
        assert_eq!(
            def,
            json!({
                "ID": "web-1", "Name": "web", "Address": "10.0.0.9", "Port": 80,
                "Tags": ["file", "flag"], "Meta": {"env": "prod", "team": "a"},
                "TaggedAddresses": {}
            })
        );
    }

    #[test]
    fn flag_registrations_leave_empty_fields_out() {
        let flags = FlagService {
            kind: String::new(),
            id: String::new(),
            name: "web".into(),
            address: String::new(),
            port: 0,
            socket_path: String::new(),
            tags: vec![],
            meta: BTreeMap::new(),
            tagged_addresses: BTreeMap::new(),
        };
        assert_eq!(flags.to_json(), json!({"Name": "web"}));
    }
}
