//! The script probe (Consul's `CheckMonitor`): runs `args` directly (no shell; a
//! `script` check arrives here already as `["/bin/sh", "-c", script]`) in its own
//! process group, with stdout and stderr captured together. Exit 0 is passing, 1
//! warning, anything else (or death by a signal) critical; the output is the last
//! `output_max_size` bytes, prefixed with `Captured <n> of <total> bytes\n...\n` when
//! cut. At the timeout the whole process group is killed and the result is
//! `Timed out (<timeout>) running check`, followed by `\n\n<output so far>` if any.
//!
//! As in Consul, a command that cannot start and a timeout are reported at once,
//! without going through the success/failure thresholds.

use std::io;
use std::os::fd::OwnedFd;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::process::Command;
use tokio::time::{Instant, timeout_at};

use super::support::{Health, Outcome, TailBuffer, errno_text, go_duration};

#[derive(Debug)]
pub(super) struct ScriptProbe {
    args: Vec<String>,
    max_output: usize,
}

impl ScriptProbe {
    pub(super) fn new(args: Vec<String>, max_output: usize) -> Self {
        ScriptProbe { args, max_output }
    }

    pub(super) async fn check(&self, timeout: Duration) -> Outcome {
        let deadline = Instant::now() + timeout;
        let Some((program, rest)) = self.args.split_first() else {
            return Outcome::critical("need an executable to run").bypassing_thresholds();
        };
        let (mut child, reader) = match start(program, rest) {
            Ok(started) => started,
            Err(e) => return Outcome::critical(e).bypassing_thresholds(),
        };
        // Armed until the command has finished normally: a timeout, or the runner
        // being stopped mid-run (this future dropped), kills the whole group.
        let mut group = GroupKiller(child.id().and_then(|pid| i32::try_from(pid).ok()));

        let mut output = TailBuffer::new(self.max_output);
        // Like Go's `cmd.Wait`, the run ends when the process has exited and its
        // output pipe is closed (a background child still holding it keeps it open).
        let finished = timeout_at(deadline, async {
            let (_, status) = tokio::join!(drain(reader, &mut output), child.wait());
            status
        })
        .await;

        match finished {
            Err(_) => {
                group.kill();
                // Wait for the exit so that no two runs of a check ever overlap.
                let _ = child.wait().await;
                let mut message = format!("Timed out ({}) running check", go_duration(timeout));
                let captured = output.captured_text();
                if !captured.is_empty() {
                    message.push_str("\n\n");
                    message.push_str(&captured);
                }
                Outcome::critical(message).bypassing_thresholds()
            }
            Ok(status) => {
                group.disarm();
                match status {
                    Ok(status) => Outcome::new(health_of(status), output.captured_text()),
                    Err(e) => Outcome::critical(errno_text(&e)),
                }
            }
        }
    }
}

/// Nagios plugin convention, as Consul reads it.
fn health_of(status: ExitStatus) -> Health {
    match status.code() {
        Some(0) => Health::Passing,
        Some(1) => Health::Warning,
        _ => Health::Critical,
    }
}

/// Starts the command in a new process group with one pipe for stdout and stderr.
/// Errors are worded like Go's `exec` package.
fn start(
    program: &str,
    args: &[String],
) -> Result<(tokio::process::Child, pipe::Receiver), String> {
    let (reader, writer) = io::pipe().map_err(|e| format!("pipe: {}", errno_text(&e)))?;
    let writer_too = writer
        .try_clone()
        .map_err(|e| format!("pipe: {}", errno_text(&e)))?;
    let child = {
        let mut command = Command::new(program);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(writer)
            .stderr(writer_too)
            .process_group(0)
            .kill_on_drop(true);
        command.spawn()
        // `command` is dropped here, closing this side's copies of the write end, so
        // the reader sees end-of-file once the command's own copies are gone.
    };
    let child = child.map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound && !program.contains('/') {
            format!("exec: {program:?}: executable file not found in $PATH")
        } else {
            format!("fork/exec {program}: {}", errno_text(&e))
        }
    })?;
    let reader = match pipe::Receiver::from_owned_fd(OwnedFd::from(reader)) {
        Ok(reader) => reader,
        Err(e) => return Err(format!("pipe: {}", errno_text(&e))),
    };
    Ok((child, reader))
}

/// Reads the pipe to its end into `output`.
async fn drain(mut reader: pipe::Receiver, output: &mut TailBuffer) {
    let mut buf = [0u8; 8192];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => output.write(&buf[..n]),
        }
    }
}

/// Kills a process group (SIGKILL to every member) when dropped, unless disarmed.
struct GroupKiller(Option<i32>);

impl GroupKiller {
    fn kill(&mut self) {
        if let Some(pgid) = self.0.take() {
            // SAFETY: kill(2) takes plain integers and touches no memory of ours; a
            // negative pid addresses the group the command leads (it was started with
            // process_group(0), so its pgid is its pid).
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
    }

    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for GroupKiller {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> ScriptProbe {
        ScriptProbe::new(vec!["/bin/sh".into(), "-c".into(), script.into()], 4096)
    }

    #[tokio::test]
    async fn exit_codes_map_to_health() {
        let out = sh("echo all good; exit 0")
            .check(Duration::from_secs(5))
            .await;
        assert_eq!(out, Outcome::passing("all good\n"));

        let out = sh("echo out; echo err >&2; exit 1")
            .check(Duration::from_secs(5))
            .await;
        assert_eq!(out, Outcome::new(Health::Warning, "out\nerr\n"));

        let out = sh("echo bad; exit 2").check(Duration::from_secs(5)).await;
        assert_eq!(out, Outcome::critical("bad\n"));

        let out = sh("kill -9 $$").check(Duration::from_secs(5)).await;
        assert_eq!(out, Outcome::critical(""));
    }

    #[tokio::test]
    async fn args_are_not_run_through_a_shell() {
        let probe = ScriptProbe::new(vec!["/bin/echo".into(), "$HOME".into(), "a;b".into()], 4096);
        let out = probe.check(Duration::from_secs(5)).await;
        assert_eq!(out, Outcome::passing("$HOME a;b\n"));
    }

    #[tokio::test]
    async fn long_output_keeps_its_end_with_consul_marker() {
        let probe = ScriptProbe::new(
            vec![
                "/bin/sh".into(),
                "-c".into(),
                "printf '%0100d' 0; echo END".into(),
            ],
            10,
        );
        let out = probe.check(Duration::from_secs(5)).await;
        assert_eq!(
            out,
            Outcome::passing("Captured 10 of 104 bytes\n...\n000000END\n")
        );
    }

    #[tokio::test]
    async fn commands_that_cannot_start_bypass_thresholds() {
        let out = ScriptProbe::new(vec!["/nonexistent/check".into()], 4096)
            .check(Duration::from_secs(5))
            .await;
        assert_eq!(
            out,
            Outcome::critical("fork/exec /nonexistent/check: no such file or directory")
                .bypassing_thresholds()
        );
        let out = ScriptProbe::new(vec!["no-such-check-command-xyz".into()], 4096)
            .check(Duration::from_secs(5))
            .await;
        assert_eq!(
            out.output,
            "exec: \"no-such-check-command-xyz\": executable file not found in $PATH"
        );
        let out = ScriptProbe::new(Vec::new(), 4096)
            .check(Duration::from_secs(5))
            .await;
        assert_eq!(out.output, "need an executable to run");
    }

    fn alive(pid: i32) -> bool {
        // A zombie (state Z) has already died; only its exit status is left.
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => !stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
            Err(_) => false,
        }
    }

    #[tokio::test]
    async fn timeout_kills_the_whole_process_group() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pidfile = dir.path().join("pid");
        let script = format!(
            "echo started; sleep 30 & echo $! > {}; wait",
            pidfile.display()
        );
        let started = Instant::now();
        let out = sh(&script).check(Duration::from_millis(500)).await;
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(
            out,
            Outcome::critical("Timed out (500ms) running check\n\nstarted\n")
                .bypassing_thresholds()
        );
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .expect("pidfile")
            .trim()
            .parse()
            .expect("pid");
        let deadline = Instant::now() + Duration::from_secs(3);
        while alive(pid) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(!alive(pid), "background child {pid} survived the timeout");
    }

    /// Stopping the runner while a script runs kills the script's process group.
    #[tokio::test]
    async fn stopping_the_runner_kills_a_running_script() {
        use std::sync::Arc;

        use tokio_util::sync::CancellationToken;

        use super::super::runner::testing::CollectingSink;
        use super::super::{CheckSpec, Probe};

        let dir = tempfile::tempdir().expect("tempdir");
        let pidfile = dir.path().join("pid");
        let script = format!("sleep 30 & echo $! > {}; wait", pidfile.display());
        let sink = Arc::new(CollectingSink::default());
        let stop = CancellationToken::new();
        let handle = super::super::spawn(
            CheckSpec {
                check_id: "script".into(),
                probe: Probe::Script {
                    args: vec!["/bin/sh".into(), "-c".into(), script],
                },
                interval: Duration::from_millis(10),
                timeout: Duration::from_secs(30),
                success_before_passing: 0,
                failures_before_warning: 0,
                failures_before_critical: 0,
                output_max_size: 4096,
            },
            sink.clone(),
            stop.clone(),
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        let pid = loop {
            let text = std::fs::read_to_string(&pidfile).unwrap_or_default();
            if let Ok(pid) = text.trim().parse::<i32>() {
                break pid;
            }
            assert!(Instant::now() < deadline, "script never started");
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        stop.cancel();
        let _ = handle.await;
        let deadline = Instant::now() + Duration::from_secs(3);
        while alive(pid) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(!alive(pid), "background child {pid} survived the stop");
        assert!(sink.snapshot().is_empty(), "a stopped check reported");
    }

    #[tokio::test]
    async fn timeout_without_output() {
        let out = sh("exec sleep 30").check(Duration::from_millis(200)).await;
        assert_eq!(
            out,
            Outcome::critical("Timed out (200ms) running check").bypassing_thresholds()
        );
    }
}
