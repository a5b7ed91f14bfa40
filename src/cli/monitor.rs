//! `consul monitor`: streams the agent's log lines from `/v1/agent/monitor` until
//! interrupted (exit 0) or until the agent ends the stream (exit 1) (Consul's
//! `command/monitor`).

use clap::{ArgAction, Args};
use tokio::signal::unix::{SignalKind, signal};

use super::client::{ApiError, Client, Stream};
use super::http_flags::ClientFlags;
use super::ui::{self, fail};
use crate::config::flags::parse_go_bool;

#[derive(Args, Debug)]
pub struct MonitorArgs {
    /// Log level of the agent.
    #[arg(long = "log-level", default_value = "INFO", value_name = "VALUE")]
    log_level: String,
    /// Output logs in JSON format.
    #[arg(long = "log-json", action = ArgAction::Set, default_value = "false", num_args = 0..=1,
          default_missing_value = "true", require_equals = true, value_parser = parse_go_bool,
          value_name = "BOOL")]
    log_json: bool,
    #[command(flatten)]
    http: ClientFlags,
    /// Go's flag package leaves arguments after the flags to the command, which
    /// ignores them.
    #[arg(hide = true)]
    extra: Vec<String>,
}

/// Splits a byte stream into lines as Go's `bufio.ScanLines` does: `\n` ends a
/// line, a `\r` before it is dropped, and text after the last newline is a line
/// once the stream ends.
#[derive(Default)]
struct Lines {
    pending: Vec<u8>,
}

impl Lines {
    fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        self.pending.extend_from_slice(bytes);
        let mut lines = Vec::new();
        while let Some(i) = self.pending.iter().position(|b| *b == b'\n') {
            let mut line: Vec<u8> = self.pending.drain(..=i).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            lines.push(String::from_utf8_lossy(&line).into_owned());
        }
        lines
    }

    fn finish(&mut self) -> Option<String> {
        if self.pending.is_empty() {
            return None;
        }
        let mut line = std::mem::take(&mut self.pending);
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        Some(String::from_utf8_lossy(&line).into_owned())
    }
}

/// Prints a line as the Go client hands it over: an empty line comes through as
/// a single space, since an empty string means the stream ended.
fn show(line: &str) {
    ui::output(if line.is_empty() { " " } else { line });
}

/// Prints lines until the agent ends the stream or the connection fails.
async fn follow(mut stream: Stream) {
    let mut lines = Lines::default();
    // A transport error ends the stream as the end of the body does.
    while let Ok(Some(bytes)) = stream.chunk().await {
        for line in lines.push(&bytes) {
            show(&line);
        }
    }
    if let Some(line) = lines.finish() {
        show(&line);
    }
}

pub async fn run(args: &MonitorArgs) -> i32 {
    let client = match Client::new(&args.http, None) {
        Ok(c) => c,
        Err(e) => return fail(format!("Error connecting to Consul agent: {e}")),
    };
    // Signals are caught from the start, so an interrupt while connecting is a
    // clean exit too.
    let (mut interrupt, mut terminate) = match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(i), Ok(t)) => (i, t),
        (Err(e), _) | (_, Err(e)) => return fail(format!("Error starting monitor: {e}")),
    };
    let req = client
        .get("/v1/agent/monitor")
        .param_if(!args.log_level.is_empty(), "loglevel", &args.log_level)
        .param_if(args.log_json, "logjson", "true");
    let started: Result<Stream, ApiError> = tokio::select! {
        r = req.stream_ok() => r,
        _ = interrupt.recv() => return 0,
        _ = terminate.recv() => return 0,
    };
    let stream = match started {
        Ok(s) => s,
        Err(e) => return fail(format!("Error starting monitor: {e}")),
    };
    tokio::select! {
        _ = follow(stream) => {
            ui::output("");
            ui::output(
                "Remote side ended the monitor! This usually means that the\n\
                 remote side has exited or crashed.",
            );
            1
        }
        _ = interrupt.recv() => 0,
        _ = terminate.recv() => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_like_bufio_scanlines() {
        let mut l = Lines::default();
        assert_eq!(l.push(b"a\r\nb"), vec!["a"]);
        assert_eq!(l.push(b"c\n\nd"), vec!["bc", ""]);
        assert_eq!(l.finish().as_deref(), Some("d"));
        assert_eq!(l.finish(), None);
    }
}
