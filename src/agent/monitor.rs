//! `/v1/agent/monitor`: streams the agent's log lines as they happen, in hclog's text
//! form (`<time> [LEVEL] <module>: <message>: k=v`) or, with `?logjson`, as JSON
//! objects. A tracing layer feeds a broadcast channel and formats nothing while
//! nobody is listening.

use std::fmt::Write as _;
use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use axum::routing::get;
use tokio::sync::broadcast;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

use super::Agent;
use crate::acl::Access;
use crate::http::endpoint;
use crate::http::error::{ApiError, ApiResult};
use crate::http::query::QueryOptions;

#[derive(Clone, Debug)]
pub struct LogLine {
    pub level: Level,
    pub text: String,
    pub json: String,
}

fn channel() -> &'static broadcast::Sender<LogLine> {
    static TX: OnceLock<broadcast::Sender<LogLine>> = OnceLock::new();
    TX.get_or_init(|| broadcast::channel(1024).0)
}

/// The layer to install next to the console logger.
pub struct MonitorLayer;

#[derive(Default)]
struct Fields {
    message: String,
    pairs: Vec<(String, String)>,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            self.pairs
                .push((field.name().to_string(), format!("{value:?}")));
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            self.pairs
                .push((field.name().to_string(), value.to_string()));
        }
    }
}

fn hclog_level(level: &Level) -> &'static str {
    match *level {
        Level::TRACE => "TRACE",
        Level::DEBUG => "DEBUG",
        Level::INFO => "INFO",
        Level::WARN => "WARN",
        Level::ERROR => "ERROR",
    }
}

impl<S: Subscriber> Layer<S> for MonitorLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let tx = channel();
        if tx.receiver_count() == 0 {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        let meta = event.metadata();
        let module = meta
            .target()
            .trim_start_matches("concord::")
            .replace("::", ".");
        let now = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let level = hclog_level(meta.level());
        let mut text = format!("{now} [{level}] {module}: {}", fields.message);
        for (i, (k, v)) in fields.pairs.iter().enumerate() {
            text.push_str(if i == 0 { ": " } else { " " });
            let _ = write!(text, "{k}={v}");
        }
        let mut obj = serde_json::Map::new();
        obj.insert("@level".into(), level.to_lowercase().into());
        obj.insert("@message".into(), fields.message.clone().into());
        obj.insert("@module".into(), module.into());
        obj.insert("@timestamp".into(), now.into());
        for (k, v) in fields.pairs {
            obj.insert(k, v.into());
        }
        let json = serde_json::Value::Object(obj).to_string();
        let _ = tx.send(LogLine {
            level: *meta.level(),
            text,
            json,
        });
    }
}

pub fn router() -> Router<Arc<Agent>> {
    Router::new().route("/v1/agent/monitor", endpoint(&["GET"], get(monitor)))
}

fn parse_level(s: &str) -> Option<Level> {
    match s.to_ascii_lowercase().as_str() {
        "trace" => Some(Level::TRACE),
        "debug" => Some(Level::DEBUG),
        "" | "info" => Some(Level::INFO),
        "warn" => Some(Level::WARN),
        "err" | "error" => Some(Level::ERROR),
        _ => None,
    }
}

async fn monitor(State(agent): State<Arc<Agent>>, opts: QueryOptions) -> ApiResult<Response> {
    agent.authorize(&opts.token, Access::AgentRead)?;
    let raw_level = opts.params.get("loglevel").unwrap_or("INFO").to_string();
    let Some(min) = parse_level(&raw_level) else {
        return Err(ApiError::bad_request(format!(
            "Unknown log level: {raw_level}"
        )));
    };
    let as_json = opts.params.has("logjson");
    let rx = channel().subscribe();
    let stop = agent.shutdown.clone();
    let stream = futures::stream::unfold((rx, stop), move |(mut rx, stop)| async move {
        loop {
            let line = tokio::select! {
                _ = stop.cancelled() => return None,
                r = rx.recv() => r,
            };
            match line {
                // A higher verbosity means a "larger" level in tracing's ordering.
                Ok(l) if l.level <= min => {
                    let mut s = if as_json { l.json } else { l.text };
                    s.push('\n');
                    return Some((Ok::<Bytes, std::io::Error>(Bytes::from(s)), (rx, stop)));
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    let mut r = Response::new(Body::from_stream(stream));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Ok(r)
}
