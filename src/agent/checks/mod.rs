//! Active health-check runners (HTTP, TCP, UDP, script, gRPC, H2PING, Docker). Each
//! check runs in its own task at its interval and reports every status change to a
//! [`CheckSink`]; the agent's local state owns the check and decides what to do with
//! the result. TTL and alias checks are not runners: the local state handles them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Default probe timeout when a check gives none (Consul's is 10s).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// What to probe.
#[derive(Debug, Clone, PartialEq)]
pub enum Probe {
    Http {
        url: String,
        method: String,
        headers: BTreeMap<String, Vec<String>>,
        body: String,
        tls_skip_verify: bool,
        tls_server_name: String,
        disable_redirects: bool,
    },
    Tcp {
        addr: String,
        use_tls: bool,
        tls_skip_verify: bool,
    },
    Udp {
        addr: String,
    },
    /// `args` (exec directly) or a `script` run through `sh -c`.
    Script {
        args: Vec<String>,
    },
    Grpc {
        /// `host:port` optionally followed by `/service`.
        target: String,
        use_tls: bool,
        tls_skip_verify: bool,
    },
    H2Ping {
        addr: String,
        use_tls: bool,
        tls_skip_verify: bool,
    },
    Docker {
        container_id: String,
        shell: String,
        args: Vec<String>,
    },
}

/// One check's runner settings.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckSpec {
    pub check_id: String,
    pub probe: Probe,
    pub interval: Duration,
    pub timeout: Duration,
    /// Consecutive successes needed before reporting passing (0 = at once).
    pub success_before_passing: u32,
    /// Consecutive failures before reporting warning (0 = at once).
    pub failures_before_warning: u32,
    /// Consecutive failures before reporting critical (0 = at once).
    pub failures_before_critical: u32,
    /// Output is truncated to this many bytes (Consul's `check_output_max_size`).
    pub output_max_size: usize,
}

/// Where runners report: status is `passing`, `warning` or `critical`.
pub trait CheckSink: Send + Sync + 'static {
    fn update(&self, check_id: &str, status: &str, output: String);
}

/// Starts a runner task for `spec`; it stops when `stop` is cancelled.
pub fn spawn(spec: CheckSpec, sink: Arc<dyn CheckSink>, stop: CancellationToken) -> JoinHandle<()> {
    runner::spawn(spec, sink, stop)
}

mod docker;
mod grpc;
mod h2ping;
mod http;
mod net;
mod runner;
mod script;
mod support;
mod tcp;
mod tls;
mod udp;
