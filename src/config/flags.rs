//! `concord agent` command-line flags, named exactly as Consul's
//! (`agent/config/flags.go`), and their translation into config sources.
//!
//! The CLI layer rewrites Consul's single-dash `-flag` into `--flag` before
//! clap runs, so every flag here is a clap long option. Boolean flags follow
//! Go's `flag` package: bare `--dev`, `--dev=true` and `--dev=false` all work.

use std::path::PathBuf;

use clap::{Arg, ArgAction, ArgMatches, Args, Command, FromArgMatches};
use serde_json::{Map as JsonMap, Value};

use super::duration::parse_go_duration_nanos;

/// Go's `strconv.ParseBool`.
pub fn parse_go_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!("invalid boolean value {s:?}")),
    }
}

/// Validates a Go duration but keeps the text, so it flows through the same
/// path as a duration written in a config file.
fn parse_duration_flag(s: &str) -> Result<String, String> {
    parse_go_duration_nanos(s).map(|_| s.to_string())
}

/// Flags of `concord agent`. Unset flags are `None`/empty so that only the
/// flags actually given override config files.
#[derive(Debug, Clone, Default, Args)]
pub struct AgentFlags {
    /// Starts the agent in development mode.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", require_equals = true, value_parser = parse_go_bool)]
    pub dev: Option<bool>,
    /// Switches agent to server mode.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", require_equals = true, value_parser = parse_go_bool)]
    pub server: Option<bool>,
    /// Sets server to bootstrap mode.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", require_equals = true, value_parser = parse_go_bool)]
    pub bootstrap: Option<bool>,
    /// Sets server to expect bootstrap mode.
    #[arg(long, value_name = "INT", allow_negative_numbers = true)]
    pub bootstrap_expect: Option<i64>,
    /// Path to a data directory to store agent state.
    #[arg(long, value_name = "PATH")]
    pub data_dir: Option<PathBuf>,
    /// Config files and directories, in command-line order.
    #[command(flatten)]
    pub config: ConfigPaths,
    /// Config files are in this format irrespective of their extension: 'hcl' or 'json'.
    #[arg(long, value_name = "FORMAT")]
    pub config_format: Option<String>,
    /// HCL config fragment. Can be specified multiple times.
    #[arg(long, value_name = "HCL", action = ArgAction::Append)]
    pub hcl: Vec<String>,
    /// Name of this node. Must be unique in the cluster.
    #[arg(long = "node", value_name = "NAME")]
    pub node_name: Option<String>,
    /// A unique ID for this node across space and time.
    #[arg(long, value_name = "UUID")]
    pub node_id: Option<String>,
    /// Metadata key/value pair for this node, `key:value`. Repeatable.
    #[arg(long, value_name = "KEY:VALUE", action = ArgAction::Append)]
    pub node_meta: Vec<String>,
    /// Datacenter of the agent.
    #[arg(long, value_name = "DC")]
    pub datacenter: Option<String>,
    /// Primary datacenter (authoritative for ACLs and Connect).
    #[arg(long, value_name = "DC")]
    pub primary_datacenter: Option<String>,
    /// Domain to use for the DNS interface.
    #[arg(long, value_name = "DOMAIN")]
    pub domain: Option<String>,
    /// Alternate domain to use for the DNS interface.
    #[arg(long, value_name = "DOMAIN")]
    pub alt_domain: Option<String>,
    /// Sets the bind address for cluster communication.
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<String>,
    /// Sets the address to bind for client access (DNS, HTTP, HTTPS, gRPC).
    #[arg(long, value_name = "ADDRS")]
    pub client: Option<String>,
    /// Sets the advertise address to use.
    #[arg(long, value_name = "ADDR")]
    pub advertise: Option<String>,
    /// Sets address to advertise on WAN instead of -advertise address.
    #[arg(long, value_name = "ADDR")]
    pub advertise_wan: Option<String>,
    /// Address to bind Serf LAN listeners to.
    #[arg(long, value_name = "ADDR")]
    pub serf_lan_bind: Option<String>,
    /// Address to bind Serf WAN listeners to.
    #[arg(long, value_name = "ADDR")]
    pub serf_wan_bind: Option<String>,
    /// Sets the HTTP API port to listen on.
    #[arg(long, value_name = "PORT", allow_negative_numbers = true)]
    pub http_port: Option<i64>,
    /// Sets the HTTPS API port to listen on.
    #[arg(long, value_name = "PORT", allow_negative_numbers = true)]
    pub https_port: Option<i64>,
    /// DNS port to use.
    #[arg(long, value_name = "PORT", allow_negative_numbers = true)]
    pub dns_port: Option<i64>,
    /// Sets the gRPC API port to listen on.
    #[arg(long, value_name = "PORT", allow_negative_numbers = true)]
    pub grpc_port: Option<i64>,
    /// Sets the gRPC-TLS API port to listen on.
    #[arg(long, value_name = "PORT", allow_negative_numbers = true)]
    pub grpc_tls_port: Option<i64>,
    /// Sets the Serf LAN port to listen on.
    #[arg(long, value_name = "PORT", allow_negative_numbers = true)]
    pub serf_lan_port: Option<i64>,
    /// Sets the Serf WAN port to listen on.
    #[arg(long, value_name = "PORT", allow_negative_numbers = true)]
    pub serf_wan_port: Option<i64>,
    /// Sets the server port to listen on.
    #[arg(long, value_name = "PORT", allow_negative_numbers = true)]
    pub server_port: Option<i64>,
    /// Log level of the agent.
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// Output logs in JSON format.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", require_equals = true, value_parser = parse_go_bool)]
    pub log_json: Option<bool>,
    /// Path to the file the logs get written to.
    #[arg(long, value_name = "PATH")]
    pub log_file: Option<String>,
    /// Maximum number of bytes that should be written to a log file.
    #[arg(long, value_name = "INT", allow_negative_numbers = true)]
    pub log_rotate_bytes: Option<i64>,
    /// Time after which log rotation needs to be performed.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_flag)]
    pub log_rotate_duration: Option<String>,
    /// Maximum number of log file archives to keep.
    #[arg(long, value_name = "INT", allow_negative_numbers = true)]
    pub log_rotate_max_files: Option<i64>,
    /// Enables logging to syslog.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", require_equals = true, value_parser = parse_go_bool)]
    pub syslog: Option<bool>,
    /// Enables the built-in web UI.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", require_equals = true, value_parser = parse_go_bool)]
    pub ui: Option<bool>,
    /// Path to a directory containing the web UI resources.
    #[arg(long, value_name = "PATH")]
    pub ui_dir: Option<String>,
    /// Sets the external UI path. Defaults to /ui/.
    #[arg(long, value_name = "PATH")]
    pub ui_content_path: Option<String>,
    /// Address of an agent to join at start time with retries. Repeatable.
    #[arg(long, value_name = "ADDR", action = ArgAction::Append)]
    pub retry_join: Vec<String>,
    /// Address of an agent to join at start time. Repeatable.
    #[arg(long, value_name = "ADDR", action = ArgAction::Append)]
    pub join: Vec<String>,
    /// Address of a WAN agent to join at start time. Repeatable.
    #[arg(long, value_name = "ADDR", action = ArgAction::Append)]
    pub join_wan: Vec<String>,
    /// Address of a WAN agent to join with retries. Repeatable.
    #[arg(long, value_name = "ADDR", action = ArgAction::Append)]
    pub retry_join_wan: Vec<String>,
    /// Time to wait between join attempts.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_flag)]
    pub retry_interval: Option<String>,
    /// Time to wait between WAN join attempts.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_flag)]
    pub retry_interval_wan: Option<String>,
    /// Maximum number of join attempts (0 retries forever).
    #[arg(long, value_name = "INT", allow_negative_numbers = true)]
    pub retry_max: Option<i64>,
    /// Maximum number of WAN join attempts (0 retries forever).
    #[arg(long, value_name = "INT", allow_negative_numbers = true)]
    pub retry_max_wan: Option<i64>,
    /// Ignores a previous leave and attempts to rejoin the cluster.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", require_equals = true, value_parser = parse_go_bool)]
    pub rejoin: Option<bool>,
    /// Provides the gossip encryption key.
    #[arg(long, value_name = "KEY")]
    pub encrypt: Option<String>,
    /// Address of an upstream DNS server. Repeatable.
    #[arg(long, value_name = "ADDR", action = ArgAction::Append)]
    pub recursor: Vec<String>,
    /// Enables health check scripts.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", require_equals = true, value_parser = parse_go_bool)]
    pub enable_script_checks: Option<bool>,
    /// Enables health check scripts from configuration files only.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", require_equals = true, value_parser = parse_go_bool)]
    pub enable_local_script_checks: Option<bool>,
    /// Generate a random node ID instead of one derived from the host.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", require_equals = true, value_parser = parse_go_bool)]
    pub disable_host_node_id: Option<bool>,
    /// Disables the backing up of the keyring to a file.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", require_equals = true, value_parser = parse_go_bool)]
    pub disable_keyring_file: Option<bool>,
    /// Watches config files for changes and reloads them.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", require_equals = true, value_parser = parse_go_bool)]
    pub auto_reload_config: Option<bool>,
    /// Path to file to store agent PID.
    #[arg(long, value_name = "PATH")]
    pub pid_file: Option<String>,
    /// Sets the Raft protocol version.
    #[arg(long, value_name = "INT", allow_negative_numbers = true)]
    pub raft_protocol: Option<i64>,
    /// Sets the RPC protocol version.
    #[arg(long, value_name = "INT", allow_negative_numbers = true)]
    pub protocol: Option<i64>,
    /// Time a blocking query waits before answering when no wait is given.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_flag)]
    pub default_query_time: Option<String>,
    /// Maximum time a blocking query can wait.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_flag)]
    pub max_query_time: Option<String>,
    /// Sets the maximum output size for checks on this agent.
    #[arg(
        long = "check_output_max_size",
        value_name = "INT",
        allow_negative_numbers = true
    )]
    pub check_output_max_size: Option<i64>,
    /// Only allow write endpoint calls from these CIDRs. Repeatable.
    #[arg(long, value_name = "CIDR", action = ArgAction::Append)]
    pub allow_write_http_from: Vec<String>,
    /// Mesh gateway in the primary datacenter for WAN federation. Repeatable.
    #[arg(long, value_name = "ADDR", action = ArgAction::Append)]
    pub primary_gateway: Vec<String>,
    /// Networks allowed for Serf LAN. Repeatable.
    #[arg(long, value_name = "CIDR", action = ArgAction::Append)]
    pub serf_lan_allowed_cidrs: Vec<String>,
    /// Networks allowed for Serf WAN. Repeatable.
    #[arg(long, value_name = "CIDR", action = ArgAction::Append)]
    pub serf_wan_allowed_cidrs: Vec<String>,
    /// (Enterprise) Deprecated alias of -read-replica.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", require_equals = true, value_parser = parse_go_bool)]
    pub non_voting_server: Option<bool>,
    /// (Enterprise) Do not take part in the Raft quorum.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", require_equals = true, value_parser = parse_go_bool)]
    pub read_replica: Option<bool>,
    /// (Enterprise) Network segment to join.
    #[arg(long, value_name = "NAME")]
    pub segment: Option<String>,
}

/// One `-config-file` or `-config-dir` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigPath {
    File(PathBuf),
    Dir(PathBuf),
}

impl ConfigPath {
    pub fn path(&self) -> &std::path::Path {
        match self {
            ConfigPath::File(p) | ConfigPath::Dir(p) => p,
        }
    }
}

/// `-config-file` and `-config-dir` in the order they appeared on the
/// command line: Consul loads them in that interleaved order, which two
/// separate clap lists would lose, hence the hand-written clap impls.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigPaths {
    pub paths: Vec<ConfigPath>,
}

const CONFIG_FILE_ID: &str = "config_file";
const CONFIG_DIR_ID: &str = "config_dir";

impl FromArgMatches for ConfigPaths {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut out = ConfigPaths::default();
        out.update_from_arg_matches(matches)?;
        Ok(out)
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        let mut indexed: Vec<(usize, ConfigPath)> = Vec::new();
        for (id, make) in [
            (
                CONFIG_FILE_ID,
                ConfigPath::File as fn(PathBuf) -> ConfigPath,
            ),
            (CONFIG_DIR_ID, ConfigPath::Dir as fn(PathBuf) -> ConfigPath),
        ] {
            let values = matches.get_many::<PathBuf>(id);
            let indices = matches.indices_of(id);
            if let (Some(values), Some(indices)) = (values, indices) {
                for (value, index) in values.zip(indices) {
                    indexed.push((index, make(value.clone())));
                }
            }
        }
        if !indexed.is_empty() {
            indexed.sort_by_key(|(i, _)| *i);
            self.paths = indexed.into_iter().map(|(_, p)| p).collect();
        }
        Ok(())
    }
}

impl Args for ConfigPaths {
    fn augment_args(cmd: Command) -> Command {
        cmd.arg(
            Arg::new(CONFIG_FILE_ID)
                .long("config-file")
                .value_name("PATH")
                .action(ArgAction::Append)
                .value_parser(clap::value_parser!(PathBuf))
                .help("Path to a JSON or HCL config file. Can be specified multiple times."),
        )
        .arg(
            Arg::new(CONFIG_DIR_ID)
                .long("config-dir")
                .value_name("PATH")
                .action(ArgAction::Append)
                .value_parser(clap::value_parser!(PathBuf))
                .help("Path to a directory of .json/.hcl config files, read in lexical order. Can be specified multiple times."),
        )
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

fn put(obj: &mut JsonMap<String, Value>, path: &[&str], v: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = obj;
    for key in parents {
        let entry = cur
            .entry((*key).to_string())
            .or_insert_with(|| Value::Object(JsonMap::new()));
        if !entry.is_object() {
            *entry = Value::Object(JsonMap::new());
        }
        let Value::Object(next) = entry else {
            return;
        };
        cur = next;
    }
    cur.insert((*last).to_string(), v);
}

fn put_opt<T: Into<Value> + Clone>(obj: &mut JsonMap<String, Value>, path: &[&str], v: &Option<T>) {
    if let Some(v) = v {
        put(obj, path, v.clone().into());
    }
}

fn put_list(obj: &mut JsonMap<String, Value>, key: &str, v: &[String]) {
    if !v.is_empty() {
        obj.insert(key.to_string(), Value::from(v.to_vec()));
    }
}

impl AgentFlags {
    /// Whether `-dev` was given (and not `-dev=false`).
    pub fn is_dev(&self) -> bool {
        self.dev == Some(true)
    }

    /// Translates the flags into two config sources, as Consul does: list
    /// flags (`-retry-join`, `-join`, `-recursor`, ...) are merged *before*
    /// the config files so that file entries append after them, and all
    /// other flags are merged *after* the files so that they win.
    pub fn to_sources(&self) -> (JsonMap<String, Value>, JsonMap<String, Value>) {
        let mut slices = JsonMap::new();
        put_list(&mut slices, "retry_join", &self.retry_join);
        put_list(&mut slices, "start_join", &self.join);
        put_list(&mut slices, "start_join_wan", &self.join_wan);
        put_list(&mut slices, "retry_join_wan", &self.retry_join_wan);
        put_list(&mut slices, "recursors", &self.recursor);
        put_list(&mut slices, "primary_gateways", &self.primary_gateway);
        put_list(
            &mut slices,
            "serf_lan_allowed_cidrs",
            &self.serf_lan_allowed_cidrs,
        );
        put_list(
            &mut slices,
            "serf_wan_allowed_cidrs",
            &self.serf_wan_allowed_cidrs,
        );

        let mut v = JsonMap::new();
        put_opt(&mut v, &["server"], &self.server);
        put_opt(&mut v, &["bootstrap"], &self.bootstrap);
        put_opt(&mut v, &["bootstrap_expect"], &self.bootstrap_expect);
        let data_dir = self
            .data_dir
            .as_ref()
            .map(|p| p.to_string_lossy().into_owned());
        put_opt(&mut v, &["data_dir"], &data_dir);
        put_opt(&mut v, &["node_name"], &self.node_name);
        put_opt(&mut v, &["node_id"], &self.node_id);
        if !self.node_meta.is_empty() {
            let mut meta = JsonMap::new();
            for pair in &self.node_meta {
                // Consul splits at the first ':'; a missing value is empty.
                let (k, val) = pair.split_once(':').unwrap_or((pair.as_str(), ""));
                meta.insert(k.to_string(), Value::from(val));
            }
            v.insert("node_meta".to_string(), Value::Object(meta));
        }
        put_opt(&mut v, &["datacenter"], &self.datacenter);
        put_opt(&mut v, &["primary_datacenter"], &self.primary_datacenter);
        put_opt(&mut v, &["domain"], &self.domain);
        put_opt(&mut v, &["alt_domain"], &self.alt_domain);
        put_opt(&mut v, &["bind_addr"], &self.bind);
        put_opt(&mut v, &["client_addr"], &self.client);
        put_opt(&mut v, &["advertise_addr"], &self.advertise);
        put_opt(&mut v, &["advertise_addr_wan"], &self.advertise_wan);
        put_opt(&mut v, &["serf_lan"], &self.serf_lan_bind);
        put_opt(&mut v, &["serf_wan"], &self.serf_wan_bind);
        put_opt(&mut v, &["ports", "http"], &self.http_port);
        put_opt(&mut v, &["ports", "https"], &self.https_port);
        put_opt(&mut v, &["ports", "dns"], &self.dns_port);
        put_opt(&mut v, &["ports", "grpc"], &self.grpc_port);
        put_opt(&mut v, &["ports", "grpc_tls"], &self.grpc_tls_port);
        put_opt(&mut v, &["ports", "serf_lan"], &self.serf_lan_port);
        put_opt(&mut v, &["ports", "serf_wan"], &self.serf_wan_port);
        put_opt(&mut v, &["ports", "server"], &self.server_port);
        put_opt(&mut v, &["log_level"], &self.log_level);
        put_opt(&mut v, &["log_json"], &self.log_json);
        put_opt(&mut v, &["log_file"], &self.log_file);
        put_opt(&mut v, &["log_rotate_bytes"], &self.log_rotate_bytes);
        put_opt(&mut v, &["log_rotate_duration"], &self.log_rotate_duration);
        put_opt(
            &mut v,
            &["log_rotate_max_files"],
            &self.log_rotate_max_files,
        );
        put_opt(&mut v, &["enable_syslog"], &self.syslog);
        put_opt(&mut v, &["ui_config", "enabled"], &self.ui);
        put_opt(&mut v, &["ui_config", "dir"], &self.ui_dir);
        put_opt(
            &mut v,
            &["ui_config", "content_path"],
            &self.ui_content_path,
        );
        put_opt(&mut v, &["retry_interval"], &self.retry_interval);
        put_opt(&mut v, &["retry_interval_wan"], &self.retry_interval_wan);
        put_opt(&mut v, &["retry_max"], &self.retry_max);
        put_opt(&mut v, &["retry_max_wan"], &self.retry_max_wan);
        put_opt(&mut v, &["rejoin_after_leave"], &self.rejoin);
        put_opt(&mut v, &["encrypt"], &self.encrypt);
        put_opt(
            &mut v,
            &["enable_script_checks"],
            &self.enable_script_checks,
        );
        put_opt(
            &mut v,
            &["enable_local_script_checks"],
            &self.enable_local_script_checks,
        );
        put_opt(
            &mut v,
            &["disable_host_node_id"],
            &self.disable_host_node_id,
        );
        put_opt(
            &mut v,
            &["disable_keyring_file"],
            &self.disable_keyring_file,
        );
        put_opt(&mut v, &["auto_reload_config"], &self.auto_reload_config);
        put_opt(&mut v, &["pid_file"], &self.pid_file);
        put_opt(&mut v, &["raft_protocol"], &self.raft_protocol);
        put_opt(&mut v, &["protocol"], &self.protocol);
        put_opt(&mut v, &["default_query_time"], &self.default_query_time);
        put_opt(&mut v, &["max_query_time"], &self.max_query_time);
        put_opt(
            &mut v,
            &["check_output_max_size"],
            &self.check_output_max_size,
        );
        if !self.allow_write_http_from.is_empty() {
            put(
                &mut v,
                &["http_config", "allow_write_http_from"],
                Value::from(self.allow_write_http_from.clone()),
            );
        }
        // -read-replica wins over its deprecated alias.
        put_opt(
            &mut v,
            &["read_replica"],
            &self.read_replica.or(self.non_voting_server),
        );
        put_opt(&mut v, &["segment"], &self.segment);
        (slices, v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        agent: AgentFlags,
    }

    fn parse(args: &[&str]) -> Result<AgentFlags, clap::Error> {
        let mut argv = vec!["agent"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).map(|c| c.agent)
    }

    #[test]
    fn go_style_booleans() {
        let f = parse(&["--dev"]).expect("parse");
        assert_eq!(f.dev, Some(true));
        let f = parse(&["--dev=false", "--server=true", "--ui=1", "--bootstrap=F"]).expect("parse");
        assert_eq!(f.dev, Some(false));
        assert_eq!(f.server, Some(true));
        assert_eq!(f.ui, Some(true));
        assert_eq!(f.bootstrap, Some(false));
        assert!(!f.is_dev());
        assert!(parse(&["--dev=maybe"]).is_err());
        assert_eq!(parse(&[]).expect("parse").dev, None);
    }

    #[test]
    fn values_and_repeatable_flags() {
        let f = parse(&[
            "--http-port",
            "-1",
            "--dns-port=8601",
            "--retry-join=a",
            "--retry-join",
            "b",
            "--node-meta=rack:r1",
            "--node-meta",
            "zone:z:1",
            "--hcl",
            "ports { grpc = 1 }",
            "--hcl=log_level = \"warn\"",
            "--node",
            "n1",
            "--check_output_max_size=10",
            "--retry-interval=5s",
        ])
        .expect("parse");
        assert_eq!(f.http_port, Some(-1));
        assert_eq!(f.dns_port, Some(8601));
        assert_eq!(f.retry_join, vec!["a", "b"]);
        assert_eq!(f.node_meta, vec!["rack:r1", "zone:z:1"]);
        assert_eq!(f.hcl.len(), 2);
        assert_eq!(f.node_name.as_deref(), Some("n1"));
        assert_eq!(f.check_output_max_size, Some(10));
        let (slices, values) = f.to_sources();
        assert_eq!(slices["retry_join"], serde_json::json!(["a", "b"]));
        assert_eq!(values["ports"]["http"], serde_json::json!(-1));
        assert_eq!(
            values["node_meta"],
            serde_json::json!({"rack": "r1", "zone": "z:1"})
        );
        assert_eq!(values["retry_interval"], serde_json::json!("5s"));
    }

    #[test]
    fn bad_duration_flag_is_rejected() {
        let err = parse(&["--retry-interval=5"]).expect_err("must fail");
        assert!(err.to_string().contains("missing unit"), "{err}");
    }

    #[test]
    fn config_paths_keep_command_line_order() {
        let f = parse(&[
            "--config-file",
            "a.json",
            "--config-dir=d1",
            "--config-file=b.hcl",
            "--config-dir",
            "d2",
        ])
        .expect("parse");
        assert_eq!(
            f.config.paths,
            vec![
                ConfigPath::File("a.json".into()),
                ConfigPath::Dir("d1".into()),
                ConfigPath::File("b.hcl".into()),
                ConfigPath::Dir("d2".into()),
            ]
        );
    }
}
