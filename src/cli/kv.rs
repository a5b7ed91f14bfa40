//! `consul kv get|put|delete|export|import` (Consul's `command/kv`), including
//! the JSON format of `export`/`import` that moves trees between clusters.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use clap::{ArgAction, Args, Subcommand};
use serde::{Deserialize, Serialize};

use super::client::{ApiError, Client};
use super::http_flags::{ClientFlags, ServerFlags};
use super::ui::{self, fail, go_os_error};
use crate::config::flags::parse_go_bool;

#[derive(Subcommand, Debug)]
pub enum KvCommand {
    /// Retrieves or lists data from the KV store.
    Get(GetArgs),
    /// Sets or updates data in the KV store.
    Put(PutArgs),
    /// Removes data from the KV store.
    Delete(DeleteArgs),
    /// Exports a tree from the KV store as JSON.
    Export(ExportArgs),
    /// Imports a tree stored as JSON to the KV store.
    Import(ImportArgs),
}

pub async fn run(cmd: &KvCommand) -> i32 {
    match cmd {
        KvCommand::Get(a) => get(a).await,
        KvCommand::Put(a) => put(a).await,
        KvCommand::Delete(a) => delete(a).await,
        KvCommand::Export(a) => export(a).await,
        KvCommand::Import(a) => import(a).await,
    }
}

/// A KV entry as `/v1/kv` returns it; `kv`, `lock` and `watch` all read this.
#[derive(Deserialize, Clone, Default)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct KvPair {
    pub key: String,
    #[serde(default)]
    pub create_index: u64,
    #[serde(default)]
    pub modify_index: u64,
    #[serde(default)]
    pub lock_index: u64,
    #[serde(default)]
    pub flags: u64,
    /// Base64, as on the wire.
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default)]
    pub session: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub partition: Option<String>,
}

impl KvPair {
    /// The holding session's ID, `""` when the key is not locked.
    pub fn session(&self) -> &str {
        self.session.as_deref().unwrap_or("")
    }

    fn value(&self) -> Vec<u8> {
        self.value
            .as_deref()
            .and_then(|v| B64.decode(v).ok())
            .unwrap_or_default()
    }
}

/// The key argument of get/delete/export: optional, leading `/` dropped (keys
/// cannot start with one, and users type it).
fn key_arg(args: &[String]) -> Result<String, i32> {
    match args {
        [] => Ok(String::new()),
        [k] => Ok(k.strip_prefix('/').unwrap_or(k).to_string()),
        _ => Err(fail(format!(
            "Too many arguments (expected 1, got {})",
            args.len()
        ))),
    }
}

fn connect(http: &ClientFlags, server: &ServerFlags) -> Result<Client, i32> {
    Client::new(http, Some(server))
        .map_err(|e| fail(format!("Error connecting to Consul agent: {e}")))
}

/// `GET /v1/kv/<prefix>?recurse`; a missing prefix is an empty list.
async fn list(client: &Client, prefix: &str, stale: bool) -> Result<Vec<KvPair>, ApiError> {
    let resp = client
        .get(&format!("/v1/kv/{prefix}"))
        .param("recurse", "")
        .param_if(stale, "stale", "")
        .send()
        .await?;
    if resp.status == 404 {
        return Ok(Vec::new());
    }
    resp.require_ok()?.decode()
}

#[derive(Args, Debug)]
pub struct GetArgs {
    /// Base64 encode the value.
    #[arg(long, action = ArgAction::Set, default_value = "false", num_args = 0..=1,
          default_missing_value = "true", require_equals = true, value_parser = parse_go_bool,
          value_name = "BOOL")]
    base64: bool,
    /// Show the key's metadata (indexes, flags, session) with the value.
    #[arg(long, action = ArgAction::Set, default_value = "false", num_args = 0..=1,
          default_missing_value = "true", require_equals = true, value_parser = parse_go_bool,
          value_name = "BOOL")]
    detailed: bool,
    /// List keys which start with the given prefix, not their values.
    #[arg(long, action = ArgAction::Set, default_value = "false", num_args = 0..=1,
          default_missing_value = "true", require_equals = true, value_parser = parse_go_bool,
          value_name = "BOOL")]
    keys: bool,
    /// Recursively look at all keys prefixed with the given path.
    #[arg(long, action = ArgAction::Set, default_value = "false", num_args = 0..=1,
          default_missing_value = "true", require_equals = true, value_parser = parse_go_bool,
          value_name = "BOOL")]
    recurse: bool,
    /// Separator between keys for -keys.
    #[arg(long, default_value = "/", value_name = "VALUE")]
    separator: String,
    #[command(flatten)]
    http: ClientFlags,
    #[command(flatten)]
    server: ServerFlags,
    #[arg(value_name = "KEY_OR_PREFIX")]
    key: Vec<String>,
}

/// `-detailed`: the metadata lines, aligned by Go's tabwriter.
fn pretty_pair(pair: &KvPair, base64: bool, keys_only: bool) -> Vec<u8> {
    let mut text = format!(
        "CreateIndex\t{}\nFlags\t{}\nKey\t{}\nLockIndex\t{}\nModifyIndex\t{}\n",
        pair.create_index, pair.flags, pair.key, pair.lock_index, pair.modify_index
    );
    match pair.session.as_deref() {
        None | Some("") => text.push_str("Session\t-\n"),
        Some(s) => text.push_str(&format!("Session\t{s}\n")),
    }
    if let Some(p) = pair.partition.as_deref().filter(|p| !p.is_empty()) {
        text.push_str(&format!("Partition\t{p}\n"));
    }
    if let Some(n) = pair.namespace.as_deref().filter(|n| !n.is_empty()) {
        text.push_str(&format!("Namespace\t{n}\n"));
    }
    if keys_only {
        return ui::tabwrite(&text, 0, 6).into_bytes();
    }
    // The value is the last cell of the last line: it is not aligned, so any bytes
    // go through untouched after the aligned label.
    text.push_str("Value\t");
    let mut out = ui::tabwrite(&text, 0, 6).into_bytes();
    if base64 {
        out.extend(B64.encode(pair.value()).into_bytes());
    } else {
        out.extend(pair.value());
    }
    out
}

async fn get(args: &GetArgs) -> i32 {
    let key = match key_arg(&args.key) {
        Ok(k) => k,
        Err(code) => return code,
    };
    if key.is_empty() && !(args.recurse || args.keys) {
        return fail("Error! Missing KEY argument");
    }
    let client = match connect(&args.http, &args.server) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let stale = args.server.stale;

    if args.keys && !args.recurse {
        let resp = client
            .get(&format!("/v1/kv/{key}"))
            .param("keys", "")
            .param_if(!args.separator.is_empty(), "separator", &args.separator)
            .param_if(stale, "stale", "")
            .send()
            .await;
        let keys: Vec<String> = match resp {
            Ok(r) if r.status == 404 => Vec::new(),
            Ok(r) => match r.require_ok().and_then(|r| r.decode()) {
                Ok(k) => k,
                Err(e) => return fail(format!("Error querying Consul agent: {e}")),
            },
            Err(e) => return fail(format!("Error querying Consul agent: {e}")),
        };
        for k in keys {
            ui::output(&k);
        }
        return 0;
    }

    if args.recurse {
        let pairs = match list(&client, &key, stale).await {
            Ok(p) => p,
            Err(e) => return fail(format!("Error querying Consul agent: {e}")),
        };
        for (i, pair) in pairs.iter().enumerate() {
            if args.detailed {
                // With -keys only the metadata is shown.
                ui::output_bytes(&pretty_pair(pair, args.base64, args.keys));
                if i + 1 < pairs.len() {
                    ui::output("");
                }
            } else if args.keys {
                ui::output(&pair.key);
            } else {
                let mut line = format!("{}:", pair.key).into_bytes();
                if args.base64 {
                    line.extend(B64.encode(pair.value()).into_bytes());
                } else {
                    line.extend(pair.value());
                }
                ui::output_bytes(&line);
            }
        }
        return 0;
    }

    let resp = client
        .get(&format!("/v1/kv/{key}"))
        .param_if(stale, "stale", "")
        .send()
        .await;
    let pair = match resp {
        Ok(r) if r.status == 404 => None,
        Ok(r) => match r.require_ok().and_then(|r| r.decode::<Vec<KvPair>>()) {
            Ok(mut pairs) => pairs.pop(),
            Err(e) => return fail(format!("Error querying Consul agent: {e}")),
        },
        Err(e) => return fail(format!("Error querying Consul agent: {e}")),
    };
    let Some(pair) = pair else {
        return fail(format!("Error! No key exists at: {key}"));
    };
    if args.detailed {
        ui::output_bytes(&pretty_pair(&pair, args.base64, false));
    } else if args.base64 {
        ui::output(&B64.encode(pair.value()));
    } else {
        ui::output_bytes(&pair.value());
    }
    0
}

#[derive(Args, Debug)]
pub struct PutArgs {
    /// Perform a Check-And-Set operation (with -modify-index).
    #[arg(long, action = ArgAction::Set, default_value = "false", num_args = 0..=1,
          default_missing_value = "true", require_equals = true, value_parser = parse_go_bool,
          value_name = "BOOL")]
    cas: bool,
    /// Unsigned integer value to assign to this key-value pair.
    #[arg(long, default_value = "0", value_name = "VALUE")]
    flags: u64,
    /// Treat the data as base 64 encoded.
    #[arg(long, action = ArgAction::Set, default_value = "false", num_args = 0..=1,
          default_missing_value = "true", require_equals = true, value_parser = parse_go_bool,
          value_name = "BOOL")]
    base64: bool,
    /// The ModifyIndex of the key, for -cas.
    #[arg(long = "modify-index", default_value = "0", value_name = "VALUE")]
    modify_index: u64,
    /// Session to acquire or release the lock with (or to set on the key).
    #[arg(
        long,
        default_value = "",
        hide_default_value = true,
        value_name = "VALUE"
    )]
    session: String,
    /// Obtain a lock on the key for -session, creating the key if needed.
    #[arg(long, action = ArgAction::Set, default_value = "false", num_args = 0..=1,
          default_missing_value = "true", require_equals = true, value_parser = parse_go_bool,
          value_name = "BOOL")]
    acquire: bool,
    /// Forfeit -session's lock on the key.
    #[arg(long, action = ArgAction::Set, default_value = "false", num_args = 0..=1,
          default_missing_value = "true", require_equals = true, value_parser = parse_go_bool,
          value_name = "BOOL")]
    release: bool,
    #[command(flatten)]
    http: ClientFlags,
    #[command(flatten)]
    server: ServerFlags,
    /// KEY [DATA]: DATA may be `@file` or `-` for stdin.
    #[arg(value_name = "KEY [DATA]")]
    args: Vec<String>,
}

/// Consul's `helpers.LoadDataSource`: `@path` reads a file, `-` reads stdin,
/// anything else is the data itself. `file_verb` words a file failure as the
/// calling command does ("open" for put, "read" for import).
fn load_data(arg: &str, file_verb: &str) -> Result<Vec<u8>, String> {
    use std::io::Read;
    if arg == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .map_err(|e| format!("Failed to read stdin: {}", go_os_error(&e)))?;
        return Ok(buf);
    }
    match arg.strip_prefix('@') {
        Some(path) => std::fs::read(path).map_err(|e| {
            format!(
                "Failed to {file_verb} file: open {path}: {}",
                go_os_error(&e)
            )
        }),
        None => Ok(arg.as_bytes().to_vec()),
    }
}

async fn put(args: &PutArgs) -> i32 {
    let (key, data) = match args.args.as_slice() {
        [] => return fail("Error! Missing KEY argument"),
        [k] => (k.clone(), Vec::new()),
        [k, d] => match load_data(d, "open") {
            Ok(data) => (k.clone(), data),
            Err(e) => return fail(format!("Error! {e}")),
        },
        more => {
            return fail(format!(
                "Error! Too many arguments (expected 1 or 2, got {})",
                more.len()
            ));
        }
    };
    let data = if args.base64 {
        match B64.decode(String::from_utf8_lossy(&data).as_bytes()) {
            Ok(d) => d,
            Err(e) => return fail(format!("Error! Cannot base 64 decode data: {e}")),
        }
    } else {
        data
    };
    if (args.release || args.acquire) && args.session.is_empty() {
        return fail("Error! Missing -session (required with -acquire and -release)");
    }
    let client = match connect(&args.http, &args.server) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if key.starts_with('/') {
        let e = format!("Invalid key. Key must not begin with a '/': {key}");
        return fail(if args.cas {
            format!("Error! Did not write to {key}: {e}")
        } else {
            format!("Error! Failed writing data: {e}")
        });
    }
    let req = client
        .put(&format!("/v1/kv/{key}"))
        .param_if(args.flags != 0, "flags", args.flags.to_string())
        .bytes(data);
    if args.cas {
        let res = req
            .param("cas", args.modify_index.to_string())
            .send_ok()
            .await;
        return match res {
            Err(e) => fail(format!("Error! Did not write to {key}: {e}")),
            Ok(r) if r.says_true() => {
                ui::output(&format!("Success! Data written to: {key}"));
                0
            }
            Ok(_) if args.modify_index == 0 => fail(format!(
                "Error! Did not write to {key}: CAS performed with index=0 and key already exists."
            )),
            Ok(_) => fail(format!("Error! Did not write to {key}: CAS failed")),
        };
    }
    if args.acquire {
        return match req.param("acquire", &args.session).send_ok().await {
            Err(e) => fail(format!("Error! Failed writing data: {e}")),
            Ok(r) if r.says_true() => {
                ui::output(&format!("Success! Lock acquired on: {key}"));
                0
            }
            Ok(_) => fail("Error! Did not acquire lock"),
        };
    }
    if args.release {
        return match req.param("release", &args.session).send_ok().await {
            // Consul names the key here, not the error.
            Err(_) => fail(format!("Error! Failed writing data: {key}")),
            Ok(r) if r.says_true() => {
                ui::output(&format!("Success! Lock released on: {key}"));
                0
            }
            Ok(_) => fail("Error! Did not release lock"),
        };
    }
    match req.send_ok().await {
        Ok(_) => {
            ui::output(&format!("Success! Data written to: {key}"));
            0
        }
        Err(e) => fail(format!("Error! Failed writing data: {e}")),
    }
}

#[derive(Args, Debug)]
pub struct DeleteArgs {
    /// Perform a Check-And-Set operation (with -modify-index).
    #[arg(long, action = ArgAction::Set, default_value = "false", num_args = 0..=1,
          default_missing_value = "true", require_equals = true, value_parser = parse_go_bool,
          value_name = "BOOL")]
    cas: bool,
    /// The ModifyIndex of the key, for -cas.
    #[arg(long = "modify-index", default_value = "0", value_name = "VALUE")]
    modify_index: u64,
    /// Recursively delete all keys with the path.
    #[arg(long, action = ArgAction::Set, default_value = "false", num_args = 0..=1,
          default_missing_value = "true", require_equals = true, value_parser = parse_go_bool,
          value_name = "BOOL")]
    recurse: bool,
    #[command(flatten)]
    http: ClientFlags,
    #[command(flatten)]
    server: ServerFlags,
    #[arg(value_name = "KEY_OR_PREFIX")]
    key: Vec<String>,
}

async fn delete(args: &DeleteArgs) -> i32 {
    let key = match key_arg(&args.key) {
        Ok(k) => k,
        Err(code) => return code,
    };
    if key.is_empty() && !args.recurse {
        return fail("Error! Missing KEY argument");
    }
    if args.cas && args.modify_index == 0 {
        return fail(
            "Cannot delete a key that does not exist. Provide a -modify-index greater than than 0.",
        );
    }
    if args.modify_index != 0 && !args.cas {
        return fail("Cannot specify -modify-index without -cas!");
    }
    if args.recurse && args.cas {
        return fail("Cannot specify both -cas and -recurse!");
    }
    let client = match connect(&args.http, &args.server) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let req = client.delete(&format!("/v1/kv/{key}"));
    if args.recurse {
        return match req.param("recurse", "").send_ok().await {
            Ok(_) => {
                ui::output(&format!("Success! Deleted keys with prefix: {key}"));
                0
            }
            Err(e) => fail(format!("Error! Did not delete prefix {key}: {e}")),
        };
    }
    if args.cas {
        let res = req
            .param("cas", args.modify_index.to_string())
            .send_ok()
            .await;
        return match res {
            Ok(r) if r.says_true() => {
                ui::output(&format!("Success! Deleted key: {key}"));
                0
            }
            Ok(_) => fail(format!("Error! Did not delete key {key}: CAS failed")),
            Err(e) => fail(format!("Error! Did not delete key {key}: {e}")),
        };
    }
    match req.send_ok().await {
        Ok(_) => {
            ui::output(&format!("Success! Deleted key: {key}"));
            0
        }
        Err(e) => fail(format!("Error deleting key {key}: {e}")),
    }
}

/// One entry of the export format.
#[derive(Serialize, Deserialize, Debug, PartialEq, Eq)]
struct Entry {
    #[serde(alias = "Key")]
    key: String,
    #[serde(alias = "Flags", default)]
    flags: u64,
    #[serde(alias = "Value", default)]
    value: String,
    #[serde(alias = "Namespace", default, skip_serializing_if = "String::is_empty")]
    namespace: String,
    #[serde(alias = "Partition", default, skip_serializing_if = "String::is_empty")]
    partition: String,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    #[command(flatten)]
    http: ClientFlags,
    #[command(flatten)]
    server: ServerFlags,
    #[arg(value_name = "KEY_OR_PREFIX")]
    prefix: Vec<String>,
}

async fn export(args: &ExportArgs) -> i32 {
    let prefix = match key_arg(&args.prefix) {
        Ok(k) => k,
        Err(code) => return code,
    };
    let client = match connect(&args.http, &args.server) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let pairs = match list(&client, &prefix, args.server.stale).await {
        Ok(p) => p,
        Err(e) => return fail(format!("Error querying Consul agent: {e}")),
    };
    let entries: Vec<Entry> = pairs
        .iter()
        .map(|p| Entry {
            key: p.key.clone(),
            flags: p.flags,
            value: B64.encode(p.value()),
            namespace: p.namespace.clone().unwrap_or_default(),
            partition: p.partition.clone().unwrap_or_default(),
        })
        .collect();
    ui::output(&ui::go_json_indent(&entries, "\t"));
    0
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// Key prefix for imported data.
    #[arg(
        long,
        default_value = "",
        hide_default_value = true,
        value_name = "VALUE"
    )]
    prefix: String,
    #[command(flatten)]
    http: ClientFlags,
    #[command(flatten)]
    server: ServerFlags,
    /// `@file`, `-` for stdin, or the JSON itself.
    #[arg(value_name = "DATA")]
    data: Vec<String>,
}

/// Go's `path.Clean`: the shortest equivalent slash path.
pub(crate) fn path_clean(p: &str) -> String {
    if p.is_empty() {
        return ".".to_string();
    }
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// The key an entry is imported under: Go's `path.Join(prefix, key)`, keeping a
/// trailing `/` (a "folder" key).
fn import_key(prefix: &str, key: &str) -> String {
    let joined = match (prefix.is_empty(), key.is_empty()) {
        (true, true) => String::new(),
        (true, false) => path_clean(key),
        (false, true) => path_clean(prefix),
        (false, false) => path_clean(&format!("{prefix}/{key}")),
    };
    if key.ends_with('/') {
        format!("{joined}/")
    } else {
        joined
    }
}

async fn import(args: &ImportArgs) -> i32 {
    let data = match args.data.as_slice() {
        [] => return fail("Error! Missing DATA argument"),
        [d] if d.is_empty() => return fail("Error! Empty DATA argument"),
        [d] => match load_data(d, "read") {
            Ok(data) => data,
            Err(e) => return fail(format!("Error! {e}")),
        },
        more => {
            return fail(format!(
                "Error! Too many arguments (expected 1, got {})",
                more.len()
            ));
        }
    };
    let client = match connect(&args.http, &args.server) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let entries: Vec<Entry> = match serde_json::from_slice(&data) {
        Ok(e) => e,
        Err(e) => return fail(format!("Cannot unmarshal data: {e}")),
    };
    for entry in entries {
        let value = match B64.decode(entry.value.as_bytes()) {
            Ok(v) => v,
            Err(e) => {
                return fail(format!(
                    "Error base 64 decoding value for key {}: {e}",
                    entry.key
                ));
            }
        };
        let key = import_key(&args.prefix, &entry.key);
        let res = client
            .put(&format!("/v1/kv/{key}"))
            .param_if(entry.flags != 0, "flags", entry.flags.to_string())
            .bytes(value)
            .send_ok()
            .await;
        if let Err(e) = res {
            return fail(format!("Error! Failed writing data for key {key}: {e}"));
        }
        ui::output(&format!("Imported: {key}"));
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(value: &[u8]) -> KvPair {
        KvPair {
            key: "foo".into(),
            create_index: 5,
            modify_index: 7,
            lock_index: 0,
            flags: 42,
            value: Some(B64.encode(value)),
            session: None,
            namespace: None,
            partition: None,
        }
    }

    #[test]
    fn detailed_layout_matches_consul() {
        let out = String::from_utf8(pretty_pair(&pair(b"bar"), false, false)).unwrap();
        assert_eq!(
            out,
            "CreateIndex      5\nFlags            42\nKey              foo\nLockIndex        0\nModifyIndex      7\nSession          -\nValue            bar"
        );
        let out = String::from_utf8(pretty_pair(&pair(b"bar"), true, false)).unwrap();
        assert!(out.ends_with("Value            YmFy"));
        let out = String::from_utf8(pretty_pair(&pair(b"bar"), false, true)).unwrap();
        assert!(out.ends_with("Session          -\n"));
    }

    #[test]
    fn import_keys_join_like_go_path() {
        assert_eq!(import_key("", "a//b/"), "a/b/");
        assert_eq!(import_key("", "a/./b"), "a/b");
        assert_eq!(import_key("p", "a"), "p/a");
        assert_eq!(import_key("p/", "/a/"), "p/a/");
        assert_eq!(import_key("", ""), "");
        assert_eq!(path_clean("a/../../b"), "../b");
        assert_eq!(path_clean("/../a"), "/a");
    }

    #[test]
    fn export_format_is_consuls() {
        let entries = vec![Entry {
            key: "a".into(),
            flags: 0,
            value: "dg==".into(),
            namespace: String::new(),
            partition: String::new(),
        }];
        assert_eq!(
            ui::go_json_indent(&entries, "\t"),
            "[\n\t{\n\t\t\"key\": \"a\",\n\t\t\"flags\": 0,\n\t\t\"value\": \"dg==\"\n\t}\n]"
        );
        let back: Vec<Entry> =
            serde_json::from_str(r#"[{"Key":"a","Flags":1,"Value":"dg=="}]"#).unwrap();
        assert_eq!(back[0].flags, 1);
    }
}
