//! The TCP probe (Consul's `CheckTCP`): a connection (and with `use_tls` a TLS
//! handshake) within the timeout is passing — `TCP connect <addr>: Success` or
//! `TCP+TLS connect <addr>: Success` — anything else is critical with the error text
//! alone, as Consul reports it.

use std::sync::Arc;
use std::time::Duration;

use rustls::ClientConfig;
use tokio::time::Instant;

use super::net::{dial_tcp, tls_handshake, tls_name};
use super::support::Outcome;
use super::tls;

#[derive(Debug)]
pub(super) struct TcpProbe {
    addr: String,
    /// Set when the check uses TLS; an error here is reported on every run.
    tls: Option<Result<Arc<ClientConfig>, String>>,
}

impl TcpProbe {
    pub(super) fn new(addr: &str, use_tls: bool, tls_skip_verify: bool) -> Self {
        // Go's tls.Dial offers no ALPN unless configured; neither does this.
        let tls = use_tls.then(|| tls::client_config(tls_skip_verify, None, &[]));
        TcpProbe {
            addr: addr.to_string(),
            tls,
        }
    }

    pub(super) async fn check(&self, timeout: Duration) -> Outcome {
        let deadline = Instant::now() + timeout;
        let tcp = match dial_tcp(&self.addr, deadline).await {
            Ok(tcp) => tcp,
            Err(e) => return Outcome::critical(e),
        };
        let Some(tls) = &self.tls else {
            return Outcome::passing(format!("TCP connect {}: Success", self.addr));
        };
        let config = match tls {
            Ok(config) => config.clone(),
            Err(e) => return Outcome::critical(e.clone()),
        };
        let name = match tls_name(&self.addr, None) {
            Ok(name) => name,
            Err(e) => return Outcome::critical(e),
        };
        match tls_handshake(tcp, config, name, deadline).await {
            Ok(_) => Outcome::passing(format!("TCP+TLS connect {}: Success", self.addr)),
            Err(e) => Outcome::critical(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::net::TcpListener;
    use tokio_util::sync::CancellationToken;

    use super::super::runner::testing::CollectingSink;
    use super::super::support::Health;
    use super::super::{CheckSpec, Probe};
    use super::*;

    #[tokio::test]
    async fn listener_up_then_closed() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let accepting = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                drop(stream);
            }
        });
        let probe = TcpProbe::new(&addr, false, false);
        let out = probe.check(Duration::from_secs(2)).await;
        assert_eq!(
            out,
            Outcome::passing(format!("TCP connect {addr}: Success"))
        );

        accepting.abort();
        let _ = accepting.await;
        let out = probe.check(Duration::from_secs(2)).await;
        assert_eq!(out.health, Health::Critical);
        assert_eq!(
            out.output,
            format!("dial tcp {addr}: connect: connection refused")
        );
    }

    #[tokio::test]
    async fn tls_handshake_with_skip_verify_and_without() {
        let acceptor = tls::testing::acceptor(&[]);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let _ = acceptor.accept(tcp).await;
                });
            }
        });
        let out = TcpProbe::new(&addr, true, true)
            .check(Duration::from_secs(2))
            .await;
        assert_eq!(
            out,
            Outcome::passing(format!("TCP+TLS connect {addr}: Success"))
        );

        let out = TcpProbe::new(&addr, true, false)
            .check(Duration::from_secs(2))
            .await;
        assert_eq!(out.health, Health::Critical);
        assert_eq!(
            out.output,
            "tls: failed to verify certificate: x509: certificate signed by unknown authority"
        );
    }

    #[tokio::test]
    async fn bad_addresses() {
        let out = TcpProbe::new("localhost", false, false)
            .check(Duration::from_secs(1))
            .await;
        assert_eq!(
            out.output,
            "dial tcp: address localhost: missing port in address"
        );
        let out = TcpProbe::new("no-such-host.invalid:80", false, false)
            .check(Duration::from_secs(5))
            .await;
        // Without a reachable resolver the lookup may time out instead.
        assert!(
            out.output == "dial tcp: lookup no-such-host.invalid: no such host"
                || out.output == "dial tcp: lookup no-such-host.invalid: i/o timeout",
            "{out:?}"
        );
    }

    /// Through the runner: a TCP check with failures_before_critical = 2 against a
    /// listener that is closed after the first probes.
    #[tokio::test]
    async fn runner_with_failure_threshold() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let accepting = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                drop(stream);
            }
        });
        let sink = Arc::new(CollectingSink::default());
        let stop = CancellationToken::new();
        let handle = super::super::spawn(
            CheckSpec {
                check_id: "tcp".into(),
                probe: Probe::Tcp {
                    addr: addr.clone(),
                    use_tls: false,
                    tls_skip_verify: false,
                },
                interval: Duration::from_millis(30),
                timeout: Duration::from_secs(1),
                success_before_passing: 0,
                failures_before_warning: 0,
                failures_before_critical: 2,
                output_max_size: 4096,
            },
            sink.clone(),
            stop.clone(),
        );
        let seen = sink.wait_for(2, Duration::from_secs(5)).await;
        assert!(seen.iter().all(|u| u.1 == "passing"), "{seen:?}");
        accepting.abort();
        let seen = sink
            .wait_until(
                |s| s.last().is_some_and(|u| u.1 == "critical"),
                Duration::from_secs(5),
            )
            .await;
        stop.cancel();
        let _ = handle.await;
        let last = seen.last().expect("update");
        assert_eq!(last.0, "tcp");
        assert_eq!(
            last.2,
            format!("dial tcp {addr}: connect: connection refused")
        );
        // With failures_before_warning defaulting to failures_before_critical, the
        // first failure reports nothing: no warning ever appears.
        assert!(seen.iter().all(|u| u.1 != "warning"), "{seen:?}");
    }
}
