//! concord: a drop-in, wire-compatible replacement for the Consul agent.

mod acl;
mod agent;
mod cli;
mod config;
mod connect;
mod filter;
mod fsm;
mod http;
mod raft;
mod state;
mod structs;

use clap::Parser;

fn init_logging(level: &str, json: bool) {
    let level = match level {
        "trace" => "trace",
        "debug" => "debug",
        "warn" => "warn",
        "err" | "error" => "error",
        _ => "info",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("CONCORD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("{level},openraft=warn")));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
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
    };
    std::process::exit(code);
}
