//! The DNS interface: Consul's `.consul` names (services, nodes, `.addr`,
//! prepared queries, SOA/NS), reverse lookups and forwarding to `recursors`,
//! served over UDP and TCP on `ports.dns` by a hickory-server [`Server`].

mod answer;
mod handler;
mod health;
mod lookup;
mod name;
mod recursor;
mod settings;
mod trim;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hickory_server::Server;

use crate::agent::Agent;

/// How long an idle TCP connection is kept.
const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(8);
/// Replies queued per TCP connection.
const TCP_RESPONSE_BUFFER: usize = 32;

/// Binds the DNS listeners (UDP and TCP on every address of `addresses.dns`, else
/// `client_addr`) and serves until the agent shuts down. `None` when `ports.dns`
/// disables DNS.
pub async fn listen(agent: &Arc<Agent>) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
    let Ok(port) = u16::try_from(agent.config.ports.dns) else {
        return Ok(None);
    };
    if port == 0 {
        return Ok(None);
    }
    let addrs: Vec<IpAddr> = match agent.config.addresses.dns.as_deref() {
        Some(list) => list
            .split_whitespace()
            .filter_map(|s| s.trim_start_matches('[').trim_end_matches(']').parse().ok())
            .collect(),
        None => agent.config.client_addrs.clone(),
    };
    let mut server = Server::new(handler::DnsHandler::new(agent.clone()));
    for ip in addrs {
        let addr = SocketAddr::new(ip, port);
        let udp = tokio::net::UdpSocket::bind(addr)
            .await
            .with_context(|| format!("binding DNS (UDP) on {addr}"))?;
        let tcp = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding DNS (TCP) on {addr}"))?;
        server.register_socket(udp);
        server.register_listener(tcp, TCP_IDLE_TIMEOUT, TCP_RESPONSE_BUFFER);
        tracing::info!(%addr, "DNS listening (UDP and TCP)");
    }
    let stop = server.shutdown_token().clone();
    let agent_stop = agent.shutdown.clone();
    tokio::spawn(async move {
        agent_stop.cancelled().await;
        stop.cancel();
    });
    Ok(Some(tokio::spawn(async move {
        if let Err(e) = server.block_until_done().await {
            tracing::error!(error = %e, "DNS server failed");
        }
    })))
}
