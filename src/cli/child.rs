//! Child processes of `lock` and `watch`: started as Consul's `exec.Script`
//! (`$SHELL -c`, default `/bin/sh`) or `exec.Subprocess` (the words as they
//! are), with Go's texts for start failures and exit statuses.

use std::process::Stdio;
use std::sync::{Arc, Mutex};

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

use super::ui::{self, go_os_error, go_quote};

/// The pid of the child a command is running, if any: where signals go.
pub type RunningChild = Arc<Mutex<Option<u32>>>;

/// Installs SIGINT and SIGTERM handling for `lock` and `watch`: each signal is
/// passed on to the running child (as Consul's commands do) and cancels the
/// returned token, which ends the command.
pub fn forward_signals() -> std::io::Result<(CancellationToken, RunningChild)> {
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let shutdown = CancellationToken::new();
    let child_pid = RunningChild::default();
    let (token, pid_slot) = (shutdown.clone(), child_pid.clone());
    tokio::spawn(async move {
        loop {
            let sig = tokio::select! {
                Some(()) = interrupt.recv() => libc::SIGINT,
                Some(()) = terminate.recv() => libc::SIGTERM,
                else => return,
            };
            let pid = pid_slot.lock().ok().and_then(|p| *p);
            if let Some(pid) = pid
                && let Err(e) = send_signal(pid, sig)
            {
                ui::error(&format!(
                    "Warning, could not forward signal: failed to send signal {:?}: {e}",
                    signal_name(sig)
                ));
            }
            token.cancel();
        }
    });
    Ok((shutdown, child_pid))
}

/// Starts `args` with `stdin`, the terminal's stdout and stderr, and one extra
/// environment variable.
pub fn start_child(
    args: &[String],
    shell: bool,
    stdin: Stdio,
    env: (&str, &str),
) -> Result<tokio::process::Child, String> {
    let program = if shell {
        std::env::var("SHELL")
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "/bin/sh".into())
    } else {
        match args.first() {
            Some(p) => p.clone(),
            None => return Err("need an executable to run".into()),
        }
    };
    let mut cmd = tokio::process::Command::new(&program);
    if shell {
        cmd.arg("-c").arg(args.join(" "));
    } else {
        cmd.args(&args[1..]);
    }
    cmd.env(env.0, env.1)
        .stdin(stdin)
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit());
    cmd.spawn().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound && !program.contains('/') {
            format!(
                "exec: {}: executable file not found in $PATH",
                go_quote(&program)
            )
        } else {
            format!("fork/exec {program}: {}", go_os_error(&e))
        }
    })
}

/// Go's `ProcessState.String()` for a child that did not exit 0.
pub fn exit_text(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    if let Some(code) = status.code() {
        return format!("exit status {code}");
    }
    match status.signal() {
        Some(libc::SIGINT) => "signal: interrupt".into(),
        Some(libc::SIGTERM) => "signal: terminated".into(),
        Some(libc::SIGKILL) => "signal: killed".into(),
        Some(libc::SIGHUP) => "signal: hangup".into(),
        Some(libc::SIGQUIT) => "signal: quit".into(),
        Some(libc::SIGABRT) => "signal: aborted".into(),
        Some(libc::SIGSEGV) => "signal: segmentation fault".into(),
        Some(libc::SIGPIPE) => "signal: broken pipe".into(),
        Some(n) => format!("signal: signal {n}"),
        None => "exit status unknown".into(),
    }
}

/// kill(2), with Go's wording of a failure.
pub fn send_signal(pid: u32, sig: libc::c_int) -> Result<(), String> {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return Err("no such process".into());
    };
    // SAFETY: kill(2) has no memory effects; the pid is our own child's.
    if unsafe { libc::kill(pid, sig) } == 0 {
        Ok(())
    } else {
        Err(go_os_error(&std::io::Error::last_os_error()))
    }
}

/// Go's name of a forwarded signal (`os.Signal.String()`).
pub fn signal_name(sig: libc::c_int) -> &'static str {
    match sig {
        libc::SIGINT => "interrupt",
        libc::SIGTERM => "terminated",
        _ => "signal",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_statuses_read_like_go() {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            exit_text(std::process::ExitStatus::from_raw(3 << 8)),
            "exit status 3"
        );
        assert_eq!(
            exit_text(std::process::ExitStatus::from_raw(libc::SIGTERM)),
            "signal: terminated"
        );
    }

    #[tokio::test]
    async fn start_failures_read_like_go() {
        let err = start_child(&["no-such-cmd".into()], false, Stdio::null(), ("A", "b"))
            .err()
            .unwrap();
        assert_eq!(
            err,
            "exec: \"no-such-cmd\": executable file not found in $PATH"
        );
        let err = start_child(&["/nonexistent/x".into()], false, Stdio::null(), ("A", "b"))
            .err()
            .unwrap();
        assert_eq!(err, "fork/exec /nonexistent/x: no such file or directory");
    }
}
