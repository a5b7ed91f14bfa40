//! Agent-local commands: `info` prints the agent's stats sections from
//! `/v1/agent/self`, `reload` asks it to reread its configuration (Consul's
//! `command/info`, `command/reload`).

use std::collections::BTreeMap;

use clap::Args;
use serde_json::Value;

use super::client::Client;
use super::http_flags::ClientFlags;
use super::ui::{self, fail};

#[derive(Args, Debug)]
pub struct InfoArgs {
    #[command(flatten)]
    http: ClientFlags,
}

pub async fn info(args: &InfoArgs) -> i32 {
    let client = match Client::new(&args.http, None) {
        Ok(c) => c,
        Err(e) => return fail(format!("Error connecting to Consul agent: {e}")),
    };
    let me: BTreeMap<String, Value> = match client.get("/v1/agent/self").json_ok().await {
        Ok(v) => v,
        Err(e) => return fail(format!("Error querying agent: {e}")),
    };
    let Some(Value::Object(stats)) = me.get("Stats") else {
        return fail("Agent response did not contain 'Stats' key");
    };
    // serde_json's map is ordered by key, which is the order Consul sorts into.
    match render(stats) {
        Ok(text) => {
            ui::output(&text);
            0
        }
        Err(e) => fail(e),
    }
}

/// `section:` lines, each followed by its `\tkey = value` lines.
fn render(stats: &serde_json::Map<String, Value>) -> Result<String, String> {
    let mut lines = Vec::new();
    for (section, values) in stats {
        lines.push(format!("{section}:"));
        let Value::Object(values) = values else {
            return Err(format!("Got invalid subkey in stats: {values}"));
        };
        for (k, v) in values {
            let v = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            lines.push(format!("\t{k} = {v}"));
        }
    }
    Ok(lines.join("\n"))
}

#[derive(Args, Debug)]
pub struct ReloadArgs {
    #[command(flatten)]
    http: ClientFlags,
}

pub async fn reload(args: &ReloadArgs) -> i32 {
    let client = match Client::new(&args.http, None) {
        Ok(c) => c,
        Err(e) => return fail(format!("Error connecting to Consul agent: {e}")),
    };
    match client.put("/v1/agent/reload").send_ok().await {
        Ok(_) => {
            ui::output("Configuration reload triggered");
            0
        }
        Err(e) => fail(format!("Error reloading: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_and_keys_are_sorted() {
        let stats = serde_json::json!({
            "raft": {"state": "Leader"},
            "agent": {"services": "1", "checks": "0"}
        });
        assert_eq!(
            render(stats.as_object().unwrap()).unwrap(),
            "agent:\n\tchecks = 0\n\tservices = 1\nraft:\n\tstate = Leader"
        );
    }
}
