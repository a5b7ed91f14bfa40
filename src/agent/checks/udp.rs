//! The UDP probe (Consul's `CheckUDP`): sends a datagram (Consul's message is empty)
//! and waits for one back. A reply is passing, and so is silence until the timeout —
//! UDP has no handshake, so only an ICMP "port unreachable" (seen as a refused read)
//! or a socket error is critical. Output `UDP connect <addr>: Success`, or Go's text
//! for the failure (`read udp <local>-><remote>: read: connection refused`).
//!
//! Consul itself sets no read deadline, so against a silent port its check blocks
//! for good (hashicorp/consul#22068); here the wait ends at the check's timeout and
//! counts as the "i/o timeout" Consul treats as success.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::time::{Instant, timeout_at};

use super::net::split_host_port;
use super::support::{Outcome, errno_text};

#[derive(Debug)]
pub(super) struct UdpProbe {
    addr: String,
}

impl UdpProbe {
    pub(super) fn new(addr: &str) -> Self {
        UdpProbe {
            addr: addr.to_string(),
        }
    }

    pub(super) async fn check(&self, timeout: Duration) -> Outcome {
        let deadline = Instant::now() + timeout;
        let success = || Outcome::passing(format!("UDP connect {}: Success", self.addr));
        let socket = match self.dial(deadline).await {
            Ok(socket) => socket,
            Err(e) => return Outcome::critical(e),
        };
        let pair = match (socket.local_addr(), socket.peer_addr()) {
            (Ok(local), Ok(remote)) => format!("{local}->{remote}"),
            _ => self.addr.clone(),
        };
        if let Err(e) = socket.send(&[]).await {
            return Outcome::critical(format!("write udp {pair}: write: {}", errno_text(&e)));
        }
        let mut buf = [0u8; 1];
        match timeout_at(deadline, socket.recv(&mut buf)).await {
            Ok(Ok(_)) | Err(_) => success(),
            Ok(Err(e)) => Outcome::critical(format!("read udp {pair}: read: {}", errno_text(&e))),
        }
    }

    /// Go's `Dial("udp", addr)`: resolve, then a socket connected to the first address.
    async fn dial(&self, deadline: Instant) -> Result<UdpSocket, String> {
        let (host, port) = split_host_port(&self.addr).map_err(|e| format!("dial udp: {e}"))?;
        if port.parse::<u16>().is_err() {
            return Err(format!("dial udp: lookup udp/{port}: unknown port"));
        }
        let target: SocketAddr =
            match timeout_at(deadline, tokio::net::lookup_host(&self.addr)).await {
                Ok(Ok(mut addrs)) => match addrs.next() {
                    Some(a) => a,
                    None => return Err(format!("dial udp: lookup {host}: no such host")),
                },
                Ok(Err(_)) => return Err(format!("dial udp: lookup {host}: no such host")),
                Err(_) => return Err(format!("dial udp: lookup {host}: i/o timeout")),
            };
        let local: SocketAddr = if target.is_ipv4() {
            SocketAddr::from(([0, 0, 0, 0], 0))
        } else {
            SocketAddr::from(([0u16; 8], 0))
        };
        let socket = UdpSocket::bind(local)
            .await
            .map_err(|e| format!("dial udp {target}: socket: {}", errno_text(&e)))?;
        socket
            .connect(target)
            .await
            .map_err(|e| format!("dial udp {target}: connect: {}", errno_text(&e)))?;
        Ok(socket)
    }
}

#[cfg(test)]
mod tests {
    use super::super::support::Health;
    use super::*;

    #[tokio::test]
    async fn echoing_server_passes() {
        let server = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let addr = server.local_addr().expect("addr").to_string();
        tokio::spawn(async move {
            let mut buf = [0u8; 64];
            while let Ok((n, from)) = server.recv_from(&mut buf).await {
                let _ = server.send_to(&buf[..n], from).await;
            }
        });
        let out = UdpProbe::new(&addr).check(Duration::from_secs(2)).await;
        assert_eq!(
            out,
            Outcome::passing(format!("UDP connect {addr}: Success"))
        );
    }

    #[tokio::test]
    async fn silent_server_passes_at_the_timeout() {
        let server = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let addr = server.local_addr().expect("addr").to_string();
        let started = Instant::now();
        let out = UdpProbe::new(&addr).check(Duration::from_millis(200)).await;
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert_eq!(
            out,
            Outcome::passing(format!("UDP connect {addr}: Success"))
        );
        drop(server);
    }

    #[tokio::test]
    async fn closed_port_is_refused() {
        let server = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let addr = server.local_addr().expect("addr");
        drop(server);
        let out = UdpProbe::new(&addr.to_string())
            .check(Duration::from_secs(2))
            .await;
        assert_eq!(out.health, Health::Critical);
        assert!(
            out.output.starts_with("read udp 127.0.0.1:")
                && out
                    .output
                    .ends_with(&format!("->{addr}: read: connection refused")),
            "{out:?}"
        );
    }
}
