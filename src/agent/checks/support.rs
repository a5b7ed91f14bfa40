//! Shared pieces of the probes: the probe result type, Consul's output capture (a ring
//! buffer that keeps the newest bytes) and Go-style texts for durations and socket
//! errors, so that outputs read like the ones a Consul agent writes.

use std::collections::VecDeque;
use std::error::Error as StdError;
use std::io;
use std::time::Duration;

/// A check status as Consul spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Health {
    Passing,
    Warning,
    Critical,
}

impl Health {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Health::Passing => "passing",
            Health::Warning => "warning",
            Health::Critical => "critical",
        }
    }
}

/// What one probe run found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Outcome {
    pub(super) health: Health,
    pub(super) output: String,
    /// Consul's script runner reports a command that cannot start, or that times out,
    /// straight to the agent, past the success/failure thresholds (and without
    /// touching their counters); such outcomes set this.
    pub(super) bypass_thresholds: bool,
}

impl Outcome {
    pub(super) fn new(health: Health, output: impl Into<String>) -> Self {
        Outcome {
            health,
            output: output.into(),
            bypass_thresholds: false,
        }
    }

    pub(super) fn passing(output: impl Into<String>) -> Self {
        Self::new(Health::Passing, output)
    }

    pub(super) fn critical(output: impl Into<String>) -> Self {
        Self::new(Health::Critical, output)
    }

    pub(super) fn bypassing_thresholds(mut self) -> Self {
        self.bypass_thresholds = true;
        self
    }
}

/// Keeps the last `cap` bytes written while counting all of them, like the circular
/// buffer (armon/circbuf) Consul captures HTTP bodies and script output with: a long
/// output keeps its end, which is where scripts usually print their verdict.
#[derive(Debug)]
pub(super) struct TailBuffer {
    cap: usize,
    buf: VecDeque<u8>,
    total: u64,
}

impl TailBuffer {
    pub(super) fn new(cap: usize) -> Self {
        TailBuffer {
            cap,
            buf: VecDeque::with_capacity(cap.min(64 * 1024)),
            total: 0,
        }
    }

    pub(super) fn write(&mut self, data: &[u8]) {
        self.total = self.total.saturating_add(data.len() as u64);
        if data.len() >= self.cap {
            self.buf.clear();
            self.buf.extend(&data[data.len() - self.cap..]);
            return;
        }
        let overflow = (self.buf.len() + data.len()).saturating_sub(self.cap);
        self.buf.drain(..overflow);
        self.buf.extend(data);
    }

    #[cfg(test)]
    pub(super) fn total(&self) -> u64 {
        self.total
    }

    fn truncated(&self) -> bool {
        self.total > self.cap as u64
    }

    /// The kept bytes as text. When the front was cut away the kept part may start in
    /// the middle of a UTF-8 sequence; those stray continuation bytes are dropped so
    /// the text starts on a character boundary. Other invalid bytes become U+FFFD
    /// (Go keeps them raw, but its JSON encoder replaces them the same way).
    pub(super) fn text(&self) -> String {
        let (a, b) = self.buf.as_slices();
        let mut bytes = Vec::with_capacity(a.len() + b.len());
        bytes.extend_from_slice(a);
        bytes.extend_from_slice(b);
        let mut start = 0;
        if self.truncated() {
            while start < bytes.len().min(3) && (bytes[start] & 0b1100_0000) == 0b1000_0000 {
                start += 1;
            }
        }
        String::from_utf8_lossy(&bytes[start..]).into_owned()
    }

    /// Consul's form for script and Docker output: the kept text, preceded by
    /// `Captured <cap> of <total> bytes\n...\n` when the output was longer.
    pub(super) fn captured_text(&self) -> String {
        let text = self.text();
        if self.truncated() {
            format!(
                "Captured {} of {} bytes\n...\n{}",
                self.cap, self.total, text
            )
        } else {
            text
        }
    }
}

/// Formats a duration the way Go's `time.Duration.String` does ("30s", "1m0s",
/// "1.5s", "250ms"), because Consul puts it in its timeout message.
pub(super) fn go_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".into();
    }
    if nanos < 1_000 {
        return format!("{nanos}ns");
    }
    if nanos < 1_000_000 {
        return format!("{}µs", decimal(nanos, 1_000));
    }
    if nanos < 1_000_000_000 {
        return format!("{}ms", decimal(nanos, 1_000_000));
    }
    let hours = nanos / 3_600_000_000_000;
    let rest = nanos % 3_600_000_000_000;
    let minutes = rest / 60_000_000_000;
    let secs = decimal(rest % 60_000_000_000, 1_000_000_000);
    if hours > 0 {
        format!("{hours}h{minutes}m{secs}s")
    } else if minutes > 0 {
        format!("{minutes}m{secs}s")
    } else {
        format!("{secs}s")
    }
}

/// `value / unit` with the fraction written out and trailing zeros dropped.
fn decimal(value: u128, unit: u128) -> String {
    let whole = value / unit;
    let frac = value % unit;
    if frac == 0 {
        return whole.to_string();
    }
    let width = unit.to_string().len() - 1;
    let digits = format!("{frac:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// An OS error as Go's syscall package words it: the C library text in lower case
/// ("connection refused", "no such file or directory"), without Rust's
/// " (os error N)" suffix.
pub(super) fn errno_text(err: &io::Error) -> String {
    if err.kind() == io::ErrorKind::TimedOut {
        return "i/o timeout".into();
    }
    let text = err.to_string();
    let text = match text.find(" (os error ") {
        Some(at) => &text[..at],
        None => &text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A TLS failure in the words of Go's crypto/tls where there is an obvious
/// counterpart, otherwise rustls' own description.
pub(super) fn tls_error_text(err: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    match err {
        rustls::Error::InvalidCertificate(cert) => {
            let why = match cert {
                C::UnknownIssuer => "certificate signed by unknown authority".to_string(),
                C::Expired
                | C::ExpiredContext { .. }
                | C::NotValidYet
                | C::NotValidYetContext { .. } => {
                    "certificate has expired or is not yet valid".to_string()
                }
                C::NotValidForName | C::NotValidForNameContext { .. } => {
                    "certificate is not valid for the requested name".to_string()
                }
                other => format!("{other:?}"),
            };
            format!("tls: failed to verify certificate: x509: {why}")
        }
        other => format!("tls: {other}"),
    }
}

/// The most specific description in an error chain: a TLS error or an OS error in Go's
/// words when one is found, else the innermost message.
pub(super) fn root_cause_text(err: &(dyn StdError + 'static)) -> String {
    let mut current: Option<&(dyn StdError + 'static)> = Some(err);
    let mut innermost = err.to_string();
    while let Some(e) = current {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return tls_error_text(tls);
        }
        if let Some(io_err) = e.downcast_ref::<io::Error>() {
            return io_error_text(io_err);
        }
        innermost = e.to_string();
        current = e.source();
    }
    innermost
}

/// An I/O error, looking through the errors it wraps (TLS failures arrive as an
/// `io::Error` around the rustls error, sometimes wrapped twice). `io::Error::source`
/// skips the wrapped error itself, so the nesting is walked here.
fn io_error_text(err: &io::Error) -> String {
    if err.raw_os_error().is_some() || err.kind() == io::ErrorKind::TimedOut {
        return errno_text(err);
    }
    match err.get_ref() {
        Some(inner) => {
            if let Some(tls) = inner.downcast_ref::<rustls::Error>() {
                tls_error_text(tls)
            } else if let Some(nested) = inner.downcast_ref::<io::Error>() {
                io_error_text(nested)
            } else {
                root_cause_text(inner)
            }
        }
        None => err.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_go() {
        assert_eq!(go_duration(Duration::ZERO), "0s");
        assert_eq!(go_duration(Duration::from_secs(30)), "30s");
        assert_eq!(go_duration(Duration::from_secs(60)), "1m0s");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(go_duration(Duration::from_micros(1500)), "1.5ms");
        assert_eq!(go_duration(Duration::from_secs(3723)), "1h2m3s");
        assert_eq!(go_duration(Duration::from_nanos(42)), "42ns");
    }

    #[test]
    fn tail_buffer_keeps_the_end_on_a_char_boundary() {
        let mut b = TailBuffer::new(4);
        b.write(b"ab");
        assert_eq!(b.captured_text(), "ab");
        // "cdé" is four bytes: it replaces everything kept so far.
        b.write("cdé".as_bytes());
        assert_eq!(b.total(), 6);
        assert_eq!(b.text(), "cdé");
        b.write(b"x");
        assert_eq!(b.text(), "déx");
        // Now the kept bytes start with the second byte of "é": it is dropped.
        b.write(b"yz");
        assert_eq!(b.text(), "xyz");
        assert_eq!(b.captured_text(), "Captured 4 of 9 bytes\n...\nxyz");
    }

    #[test]
    fn errno_texts_are_lower_case_without_suffix() {
        let e = io::Error::from_raw_os_error(libc::ECONNREFUSED);
        assert_eq!(errno_text(&e), "connection refused");
        let e = io::Error::from_raw_os_error(libc::ENOENT);
        assert_eq!(errno_text(&e), "no such file or directory");
    }
}
