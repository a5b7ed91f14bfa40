//! `consul validate`: loads config files and directories exactly as `concord agent
//! -config-file` would, runs the agent's validation and reports the first problem
//! (Consul's `command/validate`). Nothing is written: the node ID is not settled.

use std::path::PathBuf;

use clap::{ArgAction, Args};

use super::ui::{self, fail};
use crate::config::flags::{ConfigPath, ConfigPaths, parse_go_bool};
use crate::config::{AgentFlags, RuntimeConfig, build_from_flags};
use crate::structs::{CheckDefinition, ServiceDefinition, decode};

#[derive(Args, Debug)]
pub struct ValidateArgs {
    /// Config files are in this format irrespective of their extension. Must be
    /// 'hcl' or 'json'.
    #[arg(
        long = "config-format",
        default_value = "",
        hide_default_value = true,
        value_name = "VALUE"
    )]
    config_format: String,
    /// When given, a successful run will produce no output.
    #[arg(long, action = ArgAction::Set, default_value = "false", num_args = 0..=1,
          default_missing_value = "true", require_equals = true, value_parser = parse_go_bool,
          value_name = "BOOL")]
    quiet: bool,
    /// Config files or directories.
    #[arg(value_name = "FILE_OR_DIRECTORY")]
    paths: Vec<PathBuf>,
}

pub fn run(args: &ValidateArgs) -> i32 {
    if args.paths.is_empty() {
        return fail("Must specify at least one config file or directory");
    }
    if !matches!(args.config_format.as_str(), "" | "json" | "hcl") {
        // Consul's message lacks the closing quote.
        return fail("-config-format must be either 'hcl' or 'json");
    }
    let flags = AgentFlags {
        config: ConfigPaths {
            paths: args.paths.iter().cloned().map(ConfigPath::File).collect(),
        },
        config_format: Some(args.config_format.clone()).filter(|f| !f.is_empty()),
        ..Default::default()
    };
    let rt = match build_from_flags(&flags).map_err(|e| e.to_string()) {
        Ok(rt) => rt,
        Err(e) => return fail(format!("Config validation failed: {e}")),
    };
    if let Err(e) = check_definitions(&rt) {
        return fail(format!("Config validation failed: {e}"));
    }
    if !args.quiet {
        for w in &rt.warnings {
            ui::error(w);
        }
        ui::output("Configuration is valid!");
    }
    0
}

/// The service and check definitions decoded as the agent decodes them when it
/// registers them at startup, so a definition the agent would refuse fails here.
fn check_definitions(rt: &RuntimeConfig) -> Result<(), String> {
    for raw in &rt.services {
        decode::from_value::<ServiceDefinition>(raw.clone())
            .map_err(|e| format!("invalid service definition: {e}"))?;
    }
    for raw in &rt.checks {
        decode::from_value::<CheckDefinition>(raw.clone())
            .map_err(|e| format!("invalid check definition: {e}"))?;
    }
    Ok(())
}
