//! `consul maint`: puts the agent's node or one of its services into maintenance
//! mode and takes it out again, or lists what is under maintenance (Consul's
//! `command/maint`).

use std::collections::BTreeMap;

use clap::{ArgAction, Args};
use serde::Deserialize;

use super::client::{ApiError, Client};
use super::http_flags::ClientFlags;
use super::ui::{self, fail};
use crate::config::flags::parse_go_bool;

/// The check the agent registers for node maintenance.
const NODE_MAINT_CHECK: &str = "_node_maintenance";
/// The prefix of a service maintenance check's ID.
const SERVICE_MAINT_PREFIX: &str = "_service_maintenance:";

#[derive(Args, Debug)]
pub struct MaintArgs {
    /// Enable maintenance mode.
    #[arg(long, action = ArgAction::Set, default_value = "false", num_args = 0..=1,
          default_missing_value = "true", require_equals = true, value_parser = parse_go_bool,
          value_name = "BOOL")]
    enable: bool,
    /// Disable maintenance mode.
    #[arg(long, action = ArgAction::Set, default_value = "false", num_args = 0..=1,
          default_missing_value = "true", require_equals = true, value_parser = parse_go_bool,
          value_name = "BOOL")]
    disable: bool,
    /// Text describing the maintenance reason.
    #[arg(
        long,
        default_value = "",
        hide_default_value = true,
        value_name = "VALUE"
    )]
    reason: String,
    /// Control maintenance mode for a specific service ID.
    #[arg(
        long,
        default_value = "",
        hide_default_value = true,
        value_name = "VALUE"
    )]
    service: String,
    #[command(flatten)]
    http: ClientFlags,
    /// Go's flag package leaves arguments after the flags to the command, which
    /// ignores them.
    #[arg(hide = true)]
    extra: Vec<String>,
}

/// The fields of `/v1/agent/checks` entries the listing shows.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Check {
    #[serde(rename = "CheckID", default)]
    check_id: String,
    #[serde(rename = "ServiceID", default)]
    service_id: String,
    #[serde(default)]
    notes: String,
}

/// `/v1/agent/self`'s `Config.NodeName`, as the Go client's `Agent.NodeName`.
pub(crate) async fn node_name(client: &Client) -> Result<String, ApiError> {
    #[derive(Deserialize)]
    struct SelfConfig {
        #[serde(rename = "NodeName", default)]
        node_name: String,
    }
    #[derive(Deserialize)]
    struct AgentSelf {
        #[serde(rename = "Config")]
        config: SelfConfig,
    }
    let me: AgentSelf = client.get("/v1/agent/self").json_ok().await?;
    Ok(me.config.node_name)
}

pub async fn run(args: &MaintArgs) -> i32 {
    if args.enable && args.disable {
        return fail("Only one of -enable or -disable may be provided");
    }
    if !args.enable && !args.reason.is_empty() {
        return fail("Reason may only be provided with -enable");
    }
    if !args.enable && !args.disable && !args.service.is_empty() {
        return fail("Service requires either -enable or -disable");
    }
    let client = match Client::new(&args.http, None) {
        Ok(c) => c,
        Err(e) => return fail(format!("Error connecting to Consul agent: {e}")),
    };
    let node = match node_name(&client).await {
        Ok(n) => n,
        Err(e) => return fail(format!("Error querying Consul agent: {e}")),
    };

    if !args.enable && !args.disable {
        let checks: BTreeMap<String, Check> = match client.get("/v1/agent/checks").json_ok().await {
            Ok(c) => c,
            Err(e) => return fail(format!("Error getting checks: {e}")),
        };
        for check in checks.values() {
            if check.check_id == NODE_MAINT_CHECK {
                ui::output("Node:");
                ui::output(&format!("  Name:   {node}"));
                ui::output(&format!("  Reason: {}", check.notes));
                ui::output("");
            } else if check.check_id.starts_with(SERVICE_MAINT_PREFIX) {
                ui::output("Service:");
                ui::output(&format!("  ID:     {}", check.service_id));
                ui::output(&format!("  Reason: {}", check.notes));
                ui::output("");
            }
        }
        return 0;
    }

    // As the Go client: `enable` always, `reason` only when enabling (possibly empty).
    let (path, what) = if args.service.is_empty() {
        ("/v1/agent/maintenance".to_string(), "node")
    } else {
        (
            format!("/v1/agent/service/maintenance/{}", args.service),
            "service",
        )
    };
    let req = client
        .put(&path)
        .param("enable", if args.enable { "true" } else { "false" })
        .param_if(args.enable, "reason", &args.reason);
    let verb = if args.enable { "enabl" } else { "disabl" };
    if let Err(e) = req.send_ok().await {
        return fail(format!("Error {verb}ing {what} maintenance: {e}"));
    }
    if args.service.is_empty() {
        ui::output(&format!("Node maintenance is now {verb}ed"));
    } else {
        ui::output(&format!(
            "Service maintenance is now {verb}ed for {}",
            ui::go_quote(&args.service)
        ));
    }
    0
}
