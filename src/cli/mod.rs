//! The command line: Consul's subcommands and single-dash flags. Go's flag package
//! accepts `-flag`, `--flag`, `-flag=value` and `-flag value`; clap only knows the
//! double-dash form, so argv is normalised first.

pub mod version;

use clap::{Parser, Subcommand};

use crate::config::AgentFlags;

#[derive(Parser)]
#[command(
    name = "concord",
    about = "A drop-in, wire-compatible replacement for the Consul agent",
    disable_version_flag = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Runs an agent (server or client).
    Agent(Box<AgentFlags>),
    /// Prints the version.
    Version(version::VersionArgs),
}

/// Rewrites Go-style `-flag` arguments to clap's `--flag`. Stops at `--`; leaves
/// `-` alone, as well as negative numbers and values that follow a flag.
pub fn normalize_args(args: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut out = Vec::new();
    let mut passthrough = false;
    for arg in args {
        if passthrough {
            out.push(arg);
            continue;
        }
        if arg == "--" {
            passthrough = true;
            out.push(arg);
            continue;
        }
        let is_single_dash_flag = arg.starts_with('-')
            && !arg.starts_with("--")
            && arg.len() > 2
            && !arg[1..].starts_with(|c: char| c.is_ascii_digit());
        if is_single_dash_flag {
            out.push(format!("-{arg}"));
        } else {
            out.push(arg);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(args: &[&str]) -> Vec<String> {
        normalize_args(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn single_dash_long_flags_become_double_dash() {
        assert_eq!(
            norm(&[
                "concord",
                "agent",
                "-dev",
                "-http-port=8501",
                "-config-file",
                "a.json",
                "-h",
                "--",
                "-x"
            ]),
            vec![
                "concord",
                "agent",
                "--dev",
                "--http-port=8501",
                "--config-file",
                "a.json",
                "-h",
                "--",
                "-x"
            ]
        );
    }

    #[test]
    fn negative_numbers_are_values() {
        assert_eq!(
            norm(&["agent", "-dns-port", "-1"]),
            vec!["agent", "--dns-port", "-1"]
        );
    }
}
