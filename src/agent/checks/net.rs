//! Connection set-up shared by the socket probes (TCP, gRPC, H2PING): a TCP dial bounded
//! by a deadline whose failures are worded like Go's `net.Dial` errors ("dial tcp
//! 127.0.0.1:1: connect: connection refused"), an optional TLS handshake, and a stream
//! type that is either.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::support::{errno_text, root_cause_text};

/// Splits `host:port` (`[v6]:port` too) as Go's `net.SplitHostPort` does, with its
/// error texts.
pub(super) fn split_host_port(addr: &str) -> Result<(String, String), String> {
    let missing_port = || format!("address {addr}: missing port in address");
    if let Some(rest) = addr.strip_prefix('[') {
        let Some((host, after)) = rest.split_once(']') else {
            return Err(format!("address {addr}: missing ']' in address"));
        };
        let Some(port) = after.strip_prefix(':') else {
            return Err(missing_port());
        };
        return Ok((host.to_string(), port.to_string()));
    }
    let Some((host, port)) = addr.rsplit_once(':') else {
        return Err(missing_port());
    };
    if host.contains(':') {
        return Err(format!("address {addr}: too many colons in address"));
    }
    Ok((host.to_string(), port.to_string()))
}

/// Resolves `addr` and connects to the first address that answers, before `deadline`.
/// Like Go, a failure names the first address tried.
pub(super) async fn dial_tcp(addr: &str, deadline: Instant) -> Result<TcpStream, String> {
    let (host, port) = split_host_port(addr).map_err(|e| format!("dial tcp: {e}"))?;
    // Go also resolves service names ("http") here; only numeric ports are supported.
    if port.parse::<u16>().is_err() {
        return Err(format!("dial tcp: lookup tcp/{port}: unknown port"));
    }
    let resolved: Vec<SocketAddr> = match timeout_at(deadline, tokio::net::lookup_host(addr)).await
    {
        Err(_) => return Err(format!("dial tcp: lookup {host}: i/o timeout")),
        // getaddrinfo failures carry no errno; Go words a name that does not resolve
        // as "no such host".
        Ok(Err(_)) => return Err(format!("dial tcp: lookup {host}: no such host")),
        Ok(Ok(addrs)) => addrs.collect(),
    };
    let mut first_error = None;
    for target in &resolved {
        match timeout_at(deadline, TcpStream::connect(target)).await {
            Ok(Ok(stream)) => return Ok(stream),
            Ok(Err(e)) => {
                first_error.get_or_insert_with(|| {
                    format!("dial tcp {target}: connect: {}", errno_text(&e))
                });
            }
            Err(_) => {
                return Err(
                    first_error.unwrap_or_else(|| format!("dial tcp {target}: i/o timeout"))
                );
            }
        }
    }
    Err(first_error.unwrap_or_else(|| format!("dial tcp: lookup {host}: no such host")))
}

/// The name a TLS connection to `addr` presents and checks: `server_name` when given,
/// else the host part of the address (an IP literal is checked against IP SANs).
pub(super) fn tls_name(
    addr: &str,
    server_name: Option<&str>,
) -> Result<ServerName<'static>, String> {
    let host = match server_name.filter(|n| !n.is_empty()) {
        Some(name) => name.to_string(),
        None => split_host_port(addr)
            .map(|(h, _)| h)
            .unwrap_or_else(|_| addr.to_string()),
    };
    ServerName::try_from(host.clone()).map_err(|_| format!("tls: invalid server name {host:?}"))
}

/// Runs a TLS handshake over `tcp` before `deadline`.
pub(super) async fn tls_handshake(
    tcp: TcpStream,
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
    deadline: Instant,
) -> Result<TlsStream<TcpStream>, String> {
    match timeout_at(deadline, TlsConnector::from(config).connect(name, tcp)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => Err(root_cause_text(&e)),
        Err(_) => Err("tls: handshake: i/o timeout".into()),
    }
}

/// A probe's connection: plain TCP or TLS over TCP.
#[derive(Debug)]
pub(super) enum Conn {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_splitting_matches_go() {
        assert_eq!(split_host_port("a:1"), Ok(("a".into(), "1".into())));
        assert_eq!(split_host_port("[::1]:8"), Ok(("::1".into(), "8".into())));
        assert_eq!(
            split_host_port("localhost"),
            Err("address localhost: missing port in address".into())
        );
        assert_eq!(
            split_host_port("::1:8"),
            Err("address ::1:8: too many colons in address".into())
        );
    }

    #[tokio::test]
    async fn refused_dial_reads_like_go() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let err = dial_tcp(
            &addr.to_string(),
            Instant::now() + std::time::Duration::from_secs(2),
        )
        .await
        .expect_err("refused");
        assert_eq!(err, format!("dial tcp {addr}: connect: connection refused"));
    }
}
