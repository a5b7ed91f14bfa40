//! The per-check loop: a random first delay within the interval (Consul staggers
//! checks so they do not all fire together), then one probe every `interval` after the
//! previous one finished, each bounded by the timeout, with Consul's success/failure
//! thresholds (its `StatusHandler`) between the probe and the sink.
//!
//! Like Consul, every result that clears the thresholds is handed to the sink, not
//! only changes: the agent's local state ignores an update that changes neither status
//! nor output.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::sleep;
use tokio_util::sync::CancellationToken;

use super::support::{Health, Outcome, go_duration};
use super::{CheckSink, CheckSpec, Probe};
use super::{docker, grpc, h2ping, http, script, tcp, udp};

/// Consul's `MinInterval`: the agent raises shorter intervals to this when it registers
/// a check; here it only replaces an interval of zero, which would spin.
const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// Consul's `DefaultBufSize`, used when no output limit is configured.
const DEFAULT_OUTPUT_MAX_SIZE: usize = 4 * 1024;

/// Consul's script checks default to 30s rather than the 10s other probes use.
const SCRIPT_DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest timeout honoured (a year); anything longer is the same in practice.
const MAX_TIMEOUT: Duration = Duration::from_secs(365 * 24 * 3600);

/// Each probe enforces its own timeout so that it can word the failure; this extra
/// margin only guards against a probe that fails to.
const BACKSTOP_GRACE: Duration = Duration::from_secs(2);

pub(super) fn spawn(
    spec: CheckSpec,
    sink: Arc<dyn CheckSink>,
    stop: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(run(spec, sink, stop))
}

async fn run(spec: CheckSpec, sink: Arc<dyn CheckSink>, stop: CancellationToken) {
    let interval = if spec.interval.is_zero() {
        MIN_INTERVAL
    } else {
        spec.interval
    };
    let timeout = effective_timeout(&spec);
    let max_output = if spec.output_max_size == 0 {
        DEFAULT_OUTPUT_MAX_SIZE
    } else {
        spec.output_max_size
    };
    let prober = Prober::new(&spec.probe, max_output);
    let mut status = StatusHandler::new(
        spec.success_before_passing,
        spec.failures_before_warning,
        spec.failures_before_critical,
    );

    let stagger = random_stagger(interval);
    tokio::select! {
        biased;
        _ = stop.cancelled() => return,
        _ = sleep(stagger) => {}
    }
    loop {
        // A stopped check must not report again, so the probe is dropped (which
        // also kills a running script) rather than awaited.
        let outcome = tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            outcome = tokio::time::timeout(timeout.saturating_add(BACKSTOP_GRACE), prober.check(timeout)) => {
                outcome.unwrap_or_else(|_| {
                    Outcome::critical(format!("Timed out ({}) running check", go_duration(timeout)))
                })
            }
        };
        if let Some((health, output)) = status.update(outcome) {
            tracing::debug!(check = %spec.check_id, status = health.as_str(), "check updated");
            sink.update(&spec.check_id, health.as_str(), output);
        }
        tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            _ = sleep(interval) => {}
        }
    }
}

/// The spec's timeout, or Consul's default for the probe kind when it is zero. An
/// absurdly long one is capped so that deadline arithmetic cannot overflow.
fn effective_timeout(spec: &CheckSpec) -> Duration {
    let timeout = match (&spec.probe, spec.timeout.is_zero()) {
        (_, false) => spec.timeout,
        (Probe::Script { .. }, true) => SCRIPT_DEFAULT_TIMEOUT,
        (_, true) => super::DEFAULT_TIMEOUT,
    };
    timeout.min(MAX_TIMEOUT)
}

/// A uniformly random delay in `[0, interval)`, like Consul's `lib.RandomStagger`.
fn random_stagger(interval: Duration) -> Duration {
    let nanos = u64::try_from(interval.as_nanos()).unwrap_or(u64::MAX);
    if nanos == 0 {
        return Duration::ZERO;
    }
    Duration::from_nanos(rand::random_range(0..nanos))
}

/// One check's probe with whatever it keeps between runs (an HTTP client, TLS settings).
enum Prober {
    Http(http::HttpProbe),
    Tcp(tcp::TcpProbe),
    Udp(udp::UdpProbe),
    Script(script::ScriptProbe),
    Grpc(grpc::GrpcProbe),
    H2Ping(h2ping::H2PingProbe),
    Docker(docker::DockerProbe),
}

impl Prober {
    fn new(probe: &Probe, max_output: usize) -> Self {
        match probe {
            Probe::Http {
                url,
                method,
                headers,
                body,
                tls_skip_verify,
                tls_server_name,
                disable_redirects,
            } => Prober::Http(http::HttpProbe::new(http::HttpSettings {
                url: url.clone(),
                method: method.clone(),
                headers: headers.clone(),
                body: body.clone(),
                tls_skip_verify: *tls_skip_verify,
                tls_server_name: tls_server_name.clone(),
                disable_redirects: *disable_redirects,
                max_output,
            })),
            Probe::Tcp {
                addr,
                use_tls,
                tls_skip_verify,
            } => Prober::Tcp(tcp::TcpProbe::new(addr, *use_tls, *tls_skip_verify)),
            Probe::Udp { addr } => Prober::Udp(udp::UdpProbe::new(addr)),
            Probe::Script { args } => {
                Prober::Script(script::ScriptProbe::new(args.clone(), max_output))
            }
            Probe::Grpc {
                target,
                use_tls,
                tls_skip_verify,
            } => Prober::Grpc(grpc::GrpcProbe::new(target, *use_tls, *tls_skip_verify)),
            Probe::H2Ping {
                addr,
                use_tls,
                tls_skip_verify,
            } => Prober::H2Ping(h2ping::H2PingProbe::new(addr, *use_tls, *tls_skip_verify)),
            Probe::Docker {
                container_id,
                shell,
                args,
            } => Prober::Docker(docker::DockerProbe::new(
                container_id.clone(),
                shell.clone(),
                args.clone(),
                max_output,
            )),
        }
    }

    async fn check(&self, timeout: Duration) -> Outcome {
        match self {
            Prober::Http(p) => p.check(timeout).await,
            Prober::Tcp(p) => p.check(timeout).await,
            Prober::Udp(p) => p.check(timeout).await,
            Prober::Script(p) => p.check(timeout).await,
            Prober::Grpc(p) => p.check(timeout).await,
            Prober::H2Ping(p) => p.check(timeout).await,
            Prober::Docker(p) => p.check(timeout).await,
        }
    }
}

/// Consul's `StatusHandler`: counts consecutive successes and failures and lets a
/// result through only once its threshold is met.
///
/// - Passing and warning results both count as successes (an HTTP 429 is a
///   "success" that reports warning); a success resets the failure count and is
///   reported once `success_before_passing` successes are in a row.
/// - A critical result resets the success count; at `failures_before_critical`
///   failures in a row it is reported critical, else at `failures_before_warning` it
///   is reported as warning, else nothing is reported.
/// - The counters start at their thresholds, so the very first result is reported
///   whatever it is.
/// - `failures_before_warning` of 0 takes the value of `failures_before_critical`, as
///   the Consul agent does when it registers the check.
#[derive(Debug)]
struct StatusHandler {
    success_before_passing: u32,
    failures_before_warning: u32,
    failures_before_critical: u32,
    successes: u32,
    failures: u32,
}

impl StatusHandler {
    fn new(
        success_before_passing: u32,
        failures_before_warning: u32,
        failures_before_critical: u32,
    ) -> Self {
        let failures_before_warning = if failures_before_warning == 0 {
            failures_before_critical
        } else {
            failures_before_warning
        };
        StatusHandler {
            success_before_passing,
            failures_before_warning,
            failures_before_critical,
            successes: success_before_passing,
            failures: failures_before_critical,
        }
    }

    /// The status and output to report for `outcome`, if any.
    fn update(&mut self, outcome: Outcome) -> Option<(Health, String)> {
        if outcome.bypass_thresholds {
            return Some((outcome.health, outcome.output));
        }
        match outcome.health {
            Health::Passing | Health::Warning => {
                self.successes = self.successes.saturating_add(1);
                self.failures = 0;
                (self.successes >= self.success_before_passing)
                    .then_some((outcome.health, outcome.output))
            }
            Health::Critical => {
                self.failures = self.failures.saturating_add(1);
                self.successes = 0;
                if self.failures >= self.failures_before_critical {
                    Some((Health::Critical, outcome.output))
                } else if self.failures >= self.failures_before_warning {
                    Some((Health::Warning, outcome.output))
                } else {
                    None
                }
            }
        }
    }
}

#[cfg(test)]
pub(super) mod testing {
    //! A sink that records every update, for the probes' end-to-end tests.

    use std::sync::Mutex;
    use std::time::Duration;

    use super::super::CheckSink;

    #[derive(Debug, Default)]
    pub(in crate::agent::checks) struct CollectingSink {
        pub(in crate::agent::checks) updates: Mutex<Vec<(String, String, String)>>,
    }

    impl CheckSink for CollectingSink {
        fn update(&self, check_id: &str, status: &str, output: String) {
            self.updates
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((check_id.to_string(), status.to_string(), output));
        }
    }

    impl CollectingSink {
        pub(in crate::agent::checks) fn snapshot(&self) -> Vec<(String, String, String)> {
            self.updates
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
        }

        /// Waits until at least `n` updates arrived (or `limit` passed) and returns them.
        pub(in crate::agent::checks) async fn wait_for(
            &self,
            n: usize,
            limit: Duration,
        ) -> Vec<(String, String, String)> {
            self.wait_until(|seen| seen.len() >= n, limit).await
        }

        /// Waits until `done` holds for the updates so far (or `limit` passed) and
        /// returns them.
        pub(in crate::agent::checks) async fn wait_until(
            &self,
            done: impl Fn(&[(String, String, String)]) -> bool,
            limit: Duration,
        ) -> Vec<(String, String, String)> {
            let deadline = tokio::time::Instant::now() + limit;
            loop {
                let seen = self.snapshot();
                if done(&seen) || tokio::time::Instant::now() >= deadline {
                    return seen;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU16, Ordering};

    use axum::Router;
    use axum::extract::State;
    use axum::http::StatusCode;
    use axum::routing::get;

    use super::testing::CollectingSink;
    use super::*;

    fn out(health: Health) -> Outcome {
        Outcome::new(health, health.as_str())
    }

    fn statuses(h: &mut StatusHandler, seq: &[Health]) -> Vec<Option<Health>> {
        seq.iter()
            .map(|s| h.update(out(*s)).map(|(h, _)| h))
            .collect()
    }

    use Health::{Critical as C, Passing as P, Warning as W};

    #[test]
    fn zero_thresholds_report_every_result() {
        let mut h = StatusHandler::new(0, 0, 0);
        assert_eq!(
            statuses(&mut h, &[P, C, P, W, C]),
            vec![Some(P), Some(C), Some(P), Some(W), Some(C)]
        );
    }

    #[test]
    fn first_result_is_reported_at_once_then_thresholds_apply() {
        let mut h = StatusHandler::new(2, 0, 3);
        // First critical goes through (counters start at their thresholds).
        assert_eq!(statuses(&mut h, &[C]), vec![Some(C)]);
        // Needs two successes in a row; a failure in between resets the count.
        assert_eq!(
            statuses(&mut h, &[P, C, P, P]),
            vec![None, None, None, Some(P)]
        );
        // Needs three failures (warning threshold defaults to the critical one).
        assert_eq!(
            statuses(&mut h, &[C, C, P, C, C, C]),
            vec![None, None, None, None, None, Some(C)]
        );
    }

    #[test]
    fn warning_between_warning_and_critical_thresholds() {
        let mut h = StatusHandler::new(0, 1, 3);
        assert_eq!(statuses(&mut h, &[P]), vec![Some(P)]);
        assert_eq!(
            statuses(&mut h, &[C, C, C, C]),
            vec![Some(W), Some(W), Some(C), Some(C)]
        );
        // A success (even a warning result) resets the failure count.
        assert_eq!(statuses(&mut h, &[W, C]), vec![Some(W), Some(W)]);
    }

    #[test]
    fn warning_results_count_as_successes() {
        let mut h = StatusHandler::new(2, 0, 0);
        assert_eq!(
            statuses(&mut h, &[W, C, W, W]),
            vec![Some(W), Some(C), None, Some(W)]
        );
    }

    #[test]
    fn bypassing_outcomes_skip_the_counters() {
        let mut h = StatusHandler::new(0, 0, 3);
        assert_eq!(statuses(&mut h, &[P]), vec![Some(P)]);
        let timed_out = Outcome::critical("Timed out (1s) running check").bypassing_thresholds();
        assert_eq!(h.update(timed_out).map(|(h, _)| h), Some(C));
        assert_eq!(statuses(&mut h, &[C, C]), vec![None, None]);
    }

    #[test]
    fn stagger_stays_within_the_interval() {
        for _ in 0..100 {
            assert!(random_stagger(Duration::from_millis(5)) < Duration::from_millis(5));
        }
        assert_eq!(random_stagger(Duration::ZERO), Duration::ZERO);
    }

    /// The loop end to end: an HTTP target whose status flips, with thresholds.
    #[tokio::test]
    async fn runner_applies_thresholds_to_a_flipping_http_target() {
        let code = Arc::new(AtomicU16::new(200));
        let app = Router::new()
            .route(
                "/health",
                get(|State(code): State<Arc<AtomicU16>>| async move {
                    let c =
                        StatusCode::from_u16(code.load(Ordering::SeqCst)).unwrap_or(StatusCode::OK);
                    (c, "body")
                }),
            )
            .with_state(code.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });

        let sink = Arc::new(CollectingSink::default());
        let stop = CancellationToken::new();
        let url = format!("http://{addr}/health");
        let handle = spawn(
            CheckSpec {
                check_id: "web".into(),
                probe: Probe::Http {
                    url: url.clone(),
                    method: String::new(),
                    headers: BTreeMap::new(),
                    body: String::new(),
                    tls_skip_verify: false,
                    tls_server_name: String::new(),
                    disable_redirects: false,
                },
                interval: Duration::from_millis(40),
                timeout: Duration::from_secs(2),
                success_before_passing: 2,
                failures_before_warning: 1,
                failures_before_critical: 3,
                output_max_size: 4096,
            },
            sink.clone(),
            stop.clone(),
        );

        let seen = sink.wait_for(1, Duration::from_secs(5)).await;
        assert_eq!(seen[0].1, "passing");
        assert_eq!(seen[0].2, format!("HTTP GET {url}: 200 OK Output: body"));

        code.store(500, Ordering::SeqCst);
        let seen = sink.wait_for(100, Duration::from_millis(600)).await;
        let after: Vec<&str> = seen
            .iter()
            .map(|u| u.1.as_str())
            .skip_while(|s| *s == "passing")
            .collect();
        // One failure → warning (failures_before_warning = 1), three → critical.
        assert!(after.len() >= 3, "{seen:?}");
        assert_eq!(&after[..3], ["warning", "warning", "critical"], "{seen:?}");

        code.store(429, Ordering::SeqCst);
        // 429 counts as a success, so it needs success_before_passing (2) results in
        // a row and is then reported as warning.
        let seen = sink
            .wait_until(
                |seen| seen.last().is_some_and(|u| u.2.contains(": 429 ")),
                Duration::from_secs(5),
            )
            .await;
        let last = seen.last().expect("an update");
        assert_eq!(last.1, "warning");
        assert_eq!(
            last.2,
            format!("HTTP GET {url}: 429 Too Many Requests Output: body")
        );

        stop.cancel();
        let _ = handle.await;
        let n = sink.snapshot().len();
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert_eq!(sink.snapshot().len(), n, "no updates after stop");
    }
}
