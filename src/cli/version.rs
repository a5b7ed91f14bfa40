//! `concord version`: Consul's text and `-format=json` output (the Go test harness
//! parses the JSON), plus concord's own version.

use clap::Args;
use serde_json::json;

use crate::agent::{CONCORD_VERSION, CONSUL_VERSION};

#[derive(Args)]
pub struct VersionArgs {
    /// Output format: `pretty` or `json`.
    #[arg(long, default_value = "pretty")]
    pub format: String,
}

pub fn run(args: &VersionArgs) -> i32 {
    match args.format.as_str() {
        "json" => {
            let v = json!({
                "Version": CONSUL_VERSION,
                "Revision": "",
                "Prerelease": "",
                "FIPS": "",
                "BuildDate": "1970-01-01T00:00:00Z",
                "Protocol": { "Min": 2, "Max": 3 },
                "Concord": CONCORD_VERSION,
            });
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            0
        }
        "pretty" => {
            println!("Consul v{CONSUL_VERSION}");
            println!("concord v{CONCORD_VERSION}");
            println!(
                "Protocol 2 spoken by default, understands 2 to 3 (agent will automatically use protocol >2 when speaking to compatible agents)"
            );
            0
        }
        other => {
            eprintln!("Invalid format: {other}");
            1
        }
    }
}
