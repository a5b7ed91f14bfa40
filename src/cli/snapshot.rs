//! `consul snapshot save|restore|inspect` (Consul's `command/snapshot`). The
//! archive is Consul's envelope around concord's own state format, so `inspect`
//! reports concord's tables where Consul reports its message types.

use std::collections::BTreeMap;
use std::path::Path;

use clap::{ArgAction, Args, Subcommand};
use serde::{Deserialize, Serialize};

use super::client::Client;
use super::http_flags::{ClientFlags, ServerFlags};
use super::ui::{self, fail, go_os_error, go_quote};
use crate::config::flags::parse_go_bool;
use crate::state::snapshot::records;

#[derive(Subcommand, Debug)]
pub enum SnapshotCommand {
    /// Saves snapshot of Consul server state.
    Save(SaveArgs),
    /// Restores snapshot of Consul server state.
    Restore(RestoreArgs),
    /// Displays information about a Consul snapshot file.
    Inspect(InspectArgs),
}

pub async fn run(cmd: &SnapshotCommand) -> i32 {
    match cmd {
        SnapshotCommand::Save(a) => save(a).await,
        SnapshotCommand::Restore(a) => restore(a).await,
        SnapshotCommand::Inspect(a) => inspect(a),
    }
}

/// The one FILE argument every snapshot command takes.
fn one_file(args: &[String]) -> Result<&str, i32> {
    match args {
        [] => Err(fail("Missing FILE argument")),
        [f] => Ok(f),
        _ => Err(fail(format!(
            "Too many arguments (expected 1, got {})",
            args.len()
        ))),
    }
}

#[derive(Args, Debug)]
pub struct SaveArgs {
    /// Append the agent's `version`, `dc`, `node` and/or `status` (comma-separated)
    /// to the file name, before its extension.
    #[arg(
        long = "append-filename",
        default_value = "",
        hide_default_value = true,
        value_name = "VALUE"
    )]
    append_filename: String,
    #[command(flatten)]
    http: ClientFlags,
    #[command(flatten)]
    server: ServerFlags,
    #[arg(value_name = "FILE")]
    file: Vec<String>,
}

/// Go's `filepath.Ext`: from the last dot of the last path element.
fn go_ext(path: &str) -> &str {
    let name_start = path.rfind('/').map_or(0, |i| i + 1);
    match path[name_start..].rfind('.') {
        Some(i) => &path[name_start + i..],
        None => "",
    }
}

async fn save(args: &SaveArgs) -> i32 {
    let mut file = match one_file(&args.file) {
        Ok(f) => f.to_string(),
        Err(code) => return code,
    };
    let client = match Client::new(&args.http, Some(&args.server)) {
        Ok(c) => c,
        Err(e) => return fail(format!("Error connecting to Consul agent: {e}")),
    };
    if !args.append_filename.is_empty() {
        let wanted: Vec<&str> = args.append_filename.split(',').collect();
        let me: serde_json::Value = match client.get("/v1/agent/self").json_ok().await {
            Ok(v) => v,
            Err(e) => {
                return fail(format!(
                    "Error connecting to Consul agent and fetching datacenter/version: {e}"
                ));
            }
        };
        let ext = go_ext(&file).to_string();
        let mut stem = file[..file.len() - ext.len()].to_string();
        for (flag, field) in [
            ("version", "Version"),
            ("dc", "Datacenter"),
            ("node", "NodeName"),
        ] {
            if wanted.contains(&flag)
                && let Some(v) = me["Config"][field].as_str()
            {
                stem = format!("{stem}-{v}");
            }
        }
        if wanted.contains(&"status")
            && let Some(leader) = me["Stats"]["consul"]["leader"].as_str()
        {
            let role = if leader == "true" {
                "leader"
            } else {
                "follower"
            };
            stem = format!("{stem}-{role}");
        }
        file = format!("{stem}{ext}");
    }

    let resp = match client
        .get("/v1/snapshot")
        .param_if(args.server.stale, "stale", "")
        .send_ok()
        .await
    {
        Ok(r) => r,
        Err(e) => return fail(format!("Error saving snapshot: {e}")),
    };
    // Written aside and verified before it takes the real name, so a bad download
    // never replaces a good backup.
    let unverified = format!("{file}.unverified");
    if let Err(e) = write_private(&unverified, &resp.body) {
        return fail(format!("Error writing unverified snapshot file: {e}"));
    }
    let verified = std::fs::read(&unverified)
        .map_err(|e| {
            format!(
                "Error opening snapshot file for verify: {}",
                go_os_error(&e)
            )
        })
        .and_then(|data| {
            crate::archive::read(&data)
                .map(|_| ())
                .map_err(|e| format!("Error verifying snapshot file: {e}"))
        });
    if let Err(msg) = verified {
        let _ = std::fs::remove_file(&unverified);
        return fail(msg);
    }
    if let Err(e) = std::fs::rename(&unverified, &file) {
        let _ = std::fs::remove_file(&unverified);
        return fail(format!(
            "Error renaming {} to {}: {}",
            go_quote(&unverified),
            go_quote(&file),
            go_os_error(&e)
        ));
    }
    ui::output(&format!(
        "Saved and verified snapshot to index {}",
        resp.index()
    ));
    0
}

/// Writes a file readable by its owner only, synced to disk (a backup).
fn write_private(path: &str, data: &[u8]) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("open {path}: {}", go_os_error(&e)))?;
    f.write_all(data)
        .and_then(|_| f.sync_all())
        .map_err(|e| format!("write {path}: {}", go_os_error(&e)))
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    #[command(flatten)]
    http: ClientFlags,
    #[command(flatten)]
    server: ServerFlags,
    #[arg(value_name = "FILE")]
    file: Vec<String>,
}

async fn restore(args: &RestoreArgs) -> i32 {
    let file = match one_file(&args.file) {
        Ok(f) => f,
        Err(code) => return code,
    };
    let client = match Client::new(&args.http, Some(&args.server)) {
        Ok(c) => c,
        Err(e) => return fail(format!("Error connecting to Consul agent: {e}")),
    };
    let data = match std::fs::read(file) {
        Ok(d) => d,
        Err(e) => {
            return fail(format!(
                "Error opening snapshot file: open {file}: {}",
                go_os_error(&e)
            ));
        }
    };
    match client.put("/v1/snapshot").bytes(data).send_ok().await {
        Ok(_) => {
            ui::output("Restored snapshot");
            0
        }
        Err(e) => fail(format!("Error restoring snapshot: {e}")),
    }
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Break the KV data down by key prefix.
    #[arg(long, action = ArgAction::Set, default_value = "false", num_args = 0..=1,
          default_missing_value = "true", require_equals = true, value_parser = parse_go_bool,
          value_name = "BOOL")]
    kvdetails: bool,
    /// With -kvdetails: the key prefix depth of the breakdown.
    #[arg(
        long,
        default_value = "2",
        value_name = "VALUE",
        allow_negative_numbers = true
    )]
    kvdepth: i64,
    /// With -kvdetails: only keys with this prefix.
    #[arg(
        long,
        default_value = "",
        hide_default_value = true,
        value_name = "VALUE"
    )]
    kvfilter: String,
    /// Output format {pretty|json}.
    #[arg(long, default_value = "pretty", value_name = "VALUE")]
    format: String,
    #[arg(value_name = "FILE")]
    file: Vec<String>,
}

/// `meta.json` as Consul (raft's `SnapshotMeta`) and concord write it.
#[derive(Deserialize, Serialize, Default)]
#[serde(rename_all = "PascalCase")]
struct Meta {
    #[serde(rename = "ID", default)]
    id: String,
    #[serde(default)]
    size: i64,
    #[serde(default)]
    index: u64,
    #[serde(default)]
    term: u64,
    #[serde(default)]
    version: i64,
}

/// Records of one kind: a table, or a KV key prefix.
#[derive(Serialize, Debug, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
struct TypeStats {
    name: String,
    sum: usize,
    count: usize,
}

/// The `-format=json` document, in the Go struct's field order.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Report {
    meta: Meta,
    stats: Vec<TypeStats>,
    #[serde(rename = "StatsKV")]
    stats_kv: Option<Vec<TypeStats>>,
    total_size: usize,
    #[serde(rename = "TotalSizeKV")]
    total_size_kv: usize,
}

fn inspect(args: &InspectArgs) -> i32 {
    let file = match one_file(&args.file) {
        Ok(f) => f,
        Err(code) => return code,
    };
    let data = match std::fs::read(file) {
        Ok(d) => d,
        Err(e) => {
            return fail(format!(
                "Error opening snapshot file: open {file}: {}",
                go_os_error(&e)
            ));
        }
    };
    // A `state.bin` straight out of a data directory or an unpacked archive is
    // read with the `meta.json` beside it, as Consul does.
    let is_raw = Path::new(file)
        .file_name()
        .is_some_and(|n| n.to_string_lossy().to_lowercase() == "state.bin");
    let (meta_json, state) = if is_raw {
        let meta_path = Path::new(file).with_file_name("meta.json");
        match std::fs::read(&meta_path) {
            Ok(m) => (m, data),
            Err(e) => {
                return fail(format!(
                    "Error reading meta.json from internal snapshot dir: open {}: {}",
                    meta_path.display(),
                    go_os_error(&e)
                ));
            }
        }
    } else {
        match crate::archive::read(&data) {
            Ok(a) => (a.meta_json, a.state),
            Err(e) => return fail(format!("Error reading snapshot: {e}")),
        }
    };
    let meta: Meta = match serde_json::from_slice(&meta_json) {
        Ok(m) => m,
        Err(e) => return fail(format!("Error parsing meta.json: {e}")),
    };
    let report = match report(meta, &state, args) {
        Ok(r) => r,
        Err(e) => return fail(format!("Error extracting snapshot data: {e}")),
    };
    match args.format.as_str() {
        "pretty" => ui::output(&pretty(&report)),
        "json" => ui::output(&ui::go_json_indent(&report, "   ")),
        other => {
            return fail(format!(
                "Error outputting enhanced snapshot data: Unknown format: {other}"
            ));
        }
    }
    0
}

/// Largest first; equal sizes by name.
fn sorted(stats: BTreeMap<String, TypeStats>) -> Vec<TypeStats> {
    let mut v: Vec<TypeStats> = stats.into_values().collect();
    v.sort_by(|a, b| b.sum.cmp(&a.sum).then_with(|| a.name.cmp(&b.name)));
    v
}

fn report(meta: Meta, state: &[u8], args: &InspectArgs) -> Result<Report, String> {
    let mut by_table: BTreeMap<String, TypeStats> = BTreeMap::new();
    let mut by_prefix: BTreeMap<String, TypeStats> = BTreeMap::new();
    let mut total = 0;
    let mut total_kv = 0;
    for r in records(state)? {
        let s = by_table.entry(r.table.to_string()).or_insert(TypeStats {
            name: r.table.to_string(),
            sum: 0,
            count: 0,
        });
        s.sum += r.size;
        s.count += 1;
        total += r.size;
        if args.kvdetails && r.table == "kv" {
            let key = String::from_utf8_lossy(r.key);
            if !key.starts_with(&args.kvfilter) {
                continue;
            }
            let parts: Vec<&str> = key.split('/').collect();
            let depth = (args.kvdepth.max(0) as usize).min(parts.len());
            let prefix = parts[..depth].join("/");
            let s = by_prefix.entry(prefix.clone()).or_insert(TypeStats {
                name: prefix,
                sum: 0,
                count: 0,
            });
            s.sum += r.size;
            s.count += 1;
            total_kv += r.size;
        }
    }
    Ok(Report {
        meta,
        stats: sorted(by_table),
        stats_kv: args.kvdetails.then(|| sorted(by_prefix)),
        total_size: total,
        total_size_kv: total_kv,
    })
}

/// Consul's `ByteSize`: binary units, one decimal unless it is `.0`.
fn byte_size(bytes: usize) -> String {
    const UNITS: [(usize, &str); 4] = [
        (1 << 40, "TB"),
        (1 << 30, "GB"),
        (1 << 20, "MB"),
        (1 << 10, "KB"),
    ];
    if bytes == 0 {
        return "0".to_string();
    }
    let (div, unit) = UNITS
        .iter()
        .find(|(size, _)| bytes >= *size)
        .copied()
        .unwrap_or((1, "B"));
    let text = format!("{:.1}", bytes as f64 / div as f64);
    format!("{}{unit}", text.strip_suffix(".0").unwrap_or(&text))
}

/// The `-format=pretty` table, laid out by Go's tabwriter as Consul's formatter.
fn pretty(r: &Report) -> String {
    let mut t = format!(
        " ID\t{}\n Size\t{}\n Index\t{}\n Term\t{}\n Version\t{}\n",
        r.meta.id, r.meta.size, r.meta.index, r.meta.term, r.meta.version
    );
    t.push_str("\n Type\tCount\tSize\n ----\t----\t----");
    for s in &r.stats {
        t.push_str(&format!("\n {}\t{}\t{}", s.name, s.count, byte_size(s.sum)));
    }
    t.push_str(&format!(
        "\n ----\t----\t----\n Total\t\t{}",
        byte_size(r.total_size)
    ));
    if let Some(kv) = &r.stats_kv {
        t.push_str("\n\n Key Name\tCount\tSize\n ----\t----\t----");
        for s in kv {
            t.push_str(&format!("\n {}\t{}\t{}", s.name, s.count, byte_size(s.sum)));
        }
        t.push_str(&format!(
            "\n ----\t----\t----\n Total\t\t{}",
            byte_size(r.total_size_kv)
        ));
    }
    ui::tabwrite(&t, 8, 6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes_like_consul() {
        assert_eq!(byte_size(0), "0");
        assert_eq!(byte_size(12), "12B");
        assert_eq!(byte_size(2048), "2KB");
        assert_eq!(byte_size(12_595), "12.3KB");
        assert_eq!(byte_size(3 << 20), "3MB");
    }

    #[test]
    fn extensions_like_go() {
        assert_eq!(go_ext("backup.snap"), ".snap");
        assert_eq!(go_ext("dir.d/backup"), "");
        assert_eq!(go_ext("a.tar.gz"), ".gz");
    }

    #[test]
    fn pretty_report_layout() {
        let r = Report {
            meta: Meta {
                id: "2-15-concord".into(),
                size: 300,
                index: 15,
                term: 2,
                version: 1,
            },
            stats: vec![
                TypeStats {
                    name: "kv".into(),
                    sum: 200,
                    count: 4,
                },
                TypeStats {
                    name: "nodes".into(),
                    sum: 100,
                    count: 1,
                },
            ],
            stats_kv: None,
            total_size: 300,
            total_size_kv: 0,
        };
        assert_eq!(
            pretty(&r),
            " ID           2-15-concord\n Size         300\n Index        15\n Term         2\n Version      1\n\n Type       Count      Size\n ----       ----       ----\n kv         4          200B\n nodes      1          100B\n ----       ----       ----\n Total                 300B"
        );
    }
}
