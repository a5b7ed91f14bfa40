//! `consul event`: fires a user event through the agent (Consul's `command/event`).

use clap::Args;
use serde::Deserialize;

use super::client::Client;
use super::http_flags::ClientFlags;
use super::ui::{self, fail};

#[derive(Args, Debug)]
pub struct EventArgs {
    /// Name of the event.
    #[arg(
        long,
        default_value = "",
        hide_default_value = true,
        value_name = "VALUE"
    )]
    name: String,
    /// Regular expression to filter on node names.
    #[arg(
        long,
        default_value = "",
        hide_default_value = true,
        value_name = "VALUE"
    )]
    node: String,
    /// Regular expression to filter on service instances.
    #[arg(
        long,
        default_value = "",
        hide_default_value = true,
        value_name = "VALUE"
    )]
    service: String,
    /// Regular expression to filter on service tags. Must be used with -service.
    #[arg(
        long,
        default_value = "",
        hide_default_value = true,
        value_name = "VALUE"
    )]
    tag: String,
    #[command(flatten)]
    http: ClientFlags,
    /// Optional payload.
    #[arg(value_name = "PAYLOAD")]
    payload: Vec<String>,
}

#[derive(Deserialize)]
struct Fired {
    #[serde(rename = "ID")]
    id: String,
}

pub async fn run(args: &EventArgs) -> i32 {
    if args.name.is_empty() {
        return ui::fail_with_usage("Event name must be specified", &["event"]);
    }
    // The agent checks the filters too; checking here fails before any request,
    // with Consul's wording.
    for (what, pattern) in [
        ("node", &args.node),
        ("service", &args.service),
        ("tag", &args.tag),
    ] {
        if !pattern.is_empty()
            && let Err(e) = regex::Regex::new(pattern)
        {
            return fail(format!("Failed to compile {what} filter regexp: {e}"));
        }
    }
    if !args.tag.is_empty() && args.service.is_empty() {
        return fail("Cannot provide tag filter without service filter.");
    }
    let payload = match args.payload.as_slice() {
        [] => None,
        [p] => Some(p.as_bytes().to_vec()),
        _ => return ui::fail_with_usage("Too many command line arguments.", &["event"]),
    };
    let client = match Client::new(&args.http, None) {
        Ok(c) => c,
        Err(e) => return fail(format!("Error connecting to Consul agent: {e}")),
    };
    // Consul checks that the agent answers before firing.
    if let Err(e) = client.get("/v1/agent/self").send_ok().await {
        return fail(format!("Error querying Consul agent: {e}"));
    }
    let mut req = client
        .put(&format!("/v1/event/fire/{}", args.name))
        .param_if(!args.node.is_empty(), "node", &args.node)
        .param_if(!args.service.is_empty(), "service", &args.service)
        .param_if(!args.tag.is_empty(), "tag", &args.tag);
    req = req.bytes(payload.unwrap_or_default());
    match req.json_ok::<Fired>().await {
        Ok(fired) => {
            ui::output(&format!("Event ID: {}", fired.id));
            0
        }
        Err(e) => fail(format!("Error firing event: {e}")),
    }
}
