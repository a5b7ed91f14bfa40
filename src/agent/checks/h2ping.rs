//! The H2PING probe (Consul's `CheckH2PING`): opens an HTTP/2 connection — cleartext
//! h2c with prior knowledge, or TLS offering ALPN `h2` with `use_tls` — and sends one
//! PING frame. A PONG within the timeout is passing (`HTTP2 ping was successful`);
//! failures are critical with Consul's texts: `Failed to dial to <addr>: <error>`,
//! `Failed to create client connection <error>` and `HTTP2 ping failed: <error>`.

use std::sync::Arc;
use std::time::Duration;

use h2::Ping;
use rustls::ClientConfig;
use tokio::time::{Instant, timeout_at};

use super::net::{Conn, dial_tcp, tls_handshake, tls_name};
use super::support::Outcome;
use super::tls;

#[derive(Debug)]
pub(super) struct H2PingProbe {
    addr: String,
    tls: Option<Result<Arc<ClientConfig>, String>>,
}

impl H2PingProbe {
    pub(super) fn new(addr: &str, use_tls: bool, tls_skip_verify: bool) -> Self {
        let tls = use_tls.then(|| tls::client_config(tls_skip_verify, None, &[b"h2"]));
        H2PingProbe {
            addr: addr.to_string(),
            tls,
        }
    }

    pub(super) async fn check(&self, timeout: Duration) -> Outcome {
        let deadline = Instant::now() + timeout;
        let conn = match self.dial(deadline).await {
            Ok(conn) => conn,
            Err(e) => return Outcome::critical(format!("Failed to dial to {}: {e}", self.addr)),
        };
        let (send_request, mut connection) =
            match timeout_at(deadline, h2::client::handshake(conn)).await {
                Ok(Ok(pair)) => pair,
                Ok(Err(e)) => {
                    return Outcome::critical(format!("Failed to create client connection {e}"));
                }
                Err(_) => {
                    return Outcome::critical(
                        "Failed to create client connection context deadline exceeded",
                    );
                }
            };
        let Some(mut ping_pong) = connection.ping_pong() else {
            return Outcome::critical("Failed to create client connection ping handle unavailable");
        };
        // The connection future does the socket I/O; it has to be polled while the
        // ping waits for its PONG.
        let exchange = async {
            tokio::select! {
                pong = ping_pong.ping(Ping::opaque()) => pong.map_err(|e| e.to_string()),
                ended = &mut connection => Err(match ended {
                    Ok(()) => "connection closed".to_string(),
                    Err(e) => e.to_string(),
                }),
            }
        };
        let result = timeout_at(deadline, exchange).await;
        drop(send_request);
        match result {
            Ok(Ok(_)) => Outcome::passing("HTTP2 ping was successful"),
            Ok(Err(e)) => Outcome::critical(format!("HTTP2 ping failed: {e}")),
            Err(_) => Outcome::critical("HTTP2 ping failed: context deadline exceeded"),
        }
    }

    async fn dial(&self, deadline: Instant) -> Result<Conn, String> {
        let tcp = dial_tcp(&self.addr, deadline).await?;
        let Some(config) = &self.tls else {
            return Ok(Conn::Plain(tcp));
        };
        let config = config.clone()?;
        let name = tls_name(&self.addr, None)?;
        let stream = tls_handshake(tcp, config, name, deadline).await?;
        Ok(Conn::Tls(Box::new(stream)))
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::net::SocketAddr;

    use bytes::Bytes;
    use http_body_util::Full;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::server::conn::auto;
    use tokio::net::TcpListener;
    use tokio_rustls::TlsAcceptor;

    use super::super::support::Health;
    use super::*;

    async fn hello(
        _req: hyper::Request<hyper::body::Incoming>,
    ) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
        Ok(hyper::Response::new(Full::new(Bytes::from_static(b"hi"))))
    }

    /// An HTTP/2-only server (h2c, or TLS when given an acceptor); `http1` serves
    /// HTTP/1.1 only instead, which cannot answer a PING.
    async fn server(tls: Option<TlsAcceptor>, http1: bool) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let tls = tls.clone();
                tokio::spawn(async move {
                    let builder = auto::Builder::new(TokioExecutor::new());
                    let builder = if http1 {
                        builder.http1_only()
                    } else {
                        builder.http2_only()
                    };
                    match tls {
                        None => {
                            let _ = builder
                                .serve_connection(
                                    TokioIo::new(tcp),
                                    hyper::service::service_fn(hello),
                                )
                                .await;
                        }
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(tcp).await {
                                let _ = builder
                                    .serve_connection(
                                        TokioIo::new(stream),
                                        hyper::service::service_fn(hello),
                                    )
                                    .await;
                            }
                        }
                    }
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn h2c_ping_succeeds() {
        let addr = server(None, false).await;
        let out = H2PingProbe::new(&addr.to_string(), false, false)
            .check(Duration::from_secs(5))
            .await;
        assert_eq!(out, Outcome::passing("HTTP2 ping was successful"));
    }

    #[tokio::test]
    async fn tls_ping_with_skip_verify_and_without() {
        let addr = server(Some(tls::testing::acceptor(&[b"h2"])), false).await;
        let out = H2PingProbe::new(&addr.to_string(), true, true)
            .check(Duration::from_secs(5))
            .await;
        assert_eq!(out, Outcome::passing("HTTP2 ping was successful"));

        let out = H2PingProbe::new(&addr.to_string(), true, false)
            .check(Duration::from_secs(5))
            .await;
        assert_eq!(
            out.output,
            format!(
                "Failed to dial to {addr}: tls: failed to verify certificate: x509: certificate signed by unknown authority"
            )
        );
    }

    #[tokio::test]
    async fn http1_server_fails_the_ping() {
        let addr = server(None, true).await;
        let out = H2PingProbe::new(&addr.to_string(), false, false)
            .check(Duration::from_secs(5))
            .await;
        assert_eq!(out.health, Health::Critical);
        assert!(out.output.starts_with("HTTP2 ping failed: "), "{out:?}");
    }

    #[tokio::test]
    async fn refused_dial() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let out = H2PingProbe::new(&addr.to_string(), false, false)
            .check(Duration::from_secs(5))
            .await;
        assert_eq!(
            out,
            Outcome::critical(format!(
                "Failed to dial to {addr}: dial tcp {addr}: connect: connection refused"
            ))
        );
    }
}
