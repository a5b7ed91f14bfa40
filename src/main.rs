//! concord: a drop-in, wire-compatible replacement for the Consul agent.

mod acl;
mod agent;
mod archive;
mod cli;
mod config;
mod connect;
mod dns;
mod filter;
mod fsm;
mod gossip;
mod http;
mod listen;
mod raft;
mod rpc;
mod state;
mod structs;

use clap::Parser;

fn init_logging(level: &str, json: bool) {
    use std::io::IsTerminal;
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let level = match level {
        "trace" => "trace",
        "debug" => "debug",
        "warn" => "warn",
        "err" | "error" => "error",
        _ => "info",
    };
    let console_filter = tracing_subscriber::EnvFilter::try_from_env("CONCORD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("{level},openraft=warn")));
    let console = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let console = if json {
        console.json().with_filter(console_filter).boxed()
    } else {
        console.with_filter(console_filter).boxed()
    };
    // `/v1/agent/monitor` can ask for debug lines whatever the console level is; the
    // chatty libraries stay at info so their hot paths are not slowed.
    let monitor_filter = tracing_subscriber::filter::Targets::new()
        .with_default(tracing::Level::DEBUG)
        .with_target("openraft", tracing::Level::INFO)
        .with_target("hyper", tracing::Level::INFO)
        .with_target("h2", tracing::Level::INFO)
        .with_target("reqwest", tracing::Level::INFO);
    tracing_subscriber::registry()
        .with(console)
        .with(agent::monitor::MonitorLayer.with_filter(monitor_filter))
        .init();
}

fn main() {
    // One TLS crypto provider for every rustls user (HTTP/gRPC checks, TLS listeners).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = cli::normalize_args(std::env::args());
    let cli = match cli::Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    let code = match cli.command {
        cli::Command::Version(v) => cli::version::run(&v),
        cli::Command::Agent(flags) => {
            let config = match config::load(&flags) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("==> {e}");
                    std::process::exit(1);
                }
            };
            init_logging(&config.log_level, config.log_json);
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("==> cannot start the runtime: {e}");
                    std::process::exit(1);
                }
            };
            match runtime.block_on(agent::run(*flags, config)) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("==> {e:#}");
                    1
                }
            }
        }
        client_command => cli::run(client_command),
    };
    std::process::exit(code);
}
