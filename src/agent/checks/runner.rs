//! TEMPORARY: replaced by the real runner loop (thresholds, probes).
use std::sync::Arc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{CheckSink, CheckSpec};

pub fn spawn(spec: CheckSpec, sink: Arc<dyn CheckSink>, stop: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(async move {
        let _ = (&spec, &sink);
        stop.cancelled().await;
    })
}
