//! `consul watch`: follows a view of the cluster with blocking queries (Consul's
//! `command/watch` over the Go api's `watch` plans). Without a handler the first
//! result is printed as indented JSON and the command exits; with one, the handler
//! runs on every change with the result as JSON on its stdin and `CONSUL_INDEX` in
//! its environment, until interrupted.
//!
//! The JSON is the agent's answer with its fields in the agent's order, laid out
//! as Go's `json.MarshalIndent` and `json.Encoder` write it; KV entries are put in
//! the Go api's `KVPair` order, as Consul's output shows them.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use clap::{ArgAction, Args};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use super::child::{exit_text, forward_signals, start_child};
use super::client::{ApiError, Client};
use super::http_flags::{ClientFlags, ServerFlags};
use super::kv::KvPair;
use super::ui::{self, fail, go_json_escape, go_quote};
use crate::config::flags::parse_go_bool;
use crate::config::format_go_duration;

/// The first pause after a failed query; it grows with the square of the
/// failures in a row.
const RETRY_INTERVAL: Duration = Duration::from_secs(5);
const MAX_BACKOFF: Duration = Duration::from_secs(180);

#[derive(Args, Debug)]
pub struct WatchArgs {
    /// Specifies the watch type. One of key, keyprefix, services, nodes, service,
    /// checks, or event.
    #[arg(
        long = "type",
        default_value = "",
        hide_default_value = true,
        value_name = "VALUE"
    )]
    watch_type: String,
    /// Specifies the key to watch. Only for 'key' type.
    #[arg(
        long,
        default_value = "",
        hide_default_value = true,
        value_name = "VALUE"
    )]
    key: String,
    /// Specifies the key prefix to watch. Only for 'keyprefix' type.
    #[arg(
        long,
        default_value = "",
        hide_default_value = true,
        value_name = "VALUE"
    )]
    prefix: String,
    /// Specifies the service to watch. Required for 'service' type, optional for
    /// 'checks' type.
    #[arg(
        long,
        default_value = "",
        hide_default_value = true,
        value_name = "VALUE"
    )]
    service: String,
    /// Specifies the service tag(s) to filter on. Optional for 'service' type.
    /// May be specified multiple times.
    #[arg(long, action = ArgAction::Append, value_name = "VALUE")]
    tag: Vec<String>,
    /// Specifies if only hosts passing all checks are displayed. Optional for
    /// 'service' type, must be one of `[true|false]`. Defaults false.
    #[arg(
        long,
        default_value = "",
        hide_default_value = true,
        value_name = "[true|false]"
    )]
    passingonly: String,
    /// Specifies the states to watch. Optional for 'checks' type.
    #[arg(
        long,
        default_value = "",
        hide_default_value = true,
        value_name = "VALUE"
    )]
    state: String,
    /// Specifies an event name to watch. Only for 'event' type.
    #[arg(
        long,
        default_value = "",
        hide_default_value = true,
        value_name = "VALUE"
    )]
    name: String,
    /// Use a shell to run the command (can set a custom shell via the SHELL
    /// environment variable).
    #[arg(long, action = ArgAction::Set, default_value = "true", num_args = 0..=1,
          default_missing_value = "true", require_equals = true, value_parser = parse_go_bool,
          value_name = "BOOL")]
    shell: bool,
    /// Filter to use with the request.
    #[arg(
        long,
        default_value = "",
        hide_default_value = true,
        value_name = "VALUE"
    )]
    filter: String,
    #[command(flatten)]
    http: ClientFlags,
    #[command(flatten)]
    server: ServerFlags,
    /// The handler to run on every change.
    #[arg(value_name = "CHILD")]
    child: Vec<String>,
}

/// A watch parameter as the Go api's plan parser receives it.
#[derive(Debug, Clone, PartialEq)]
enum Param {
    Str(String),
    Bool(bool),
    List(Vec<String>),
}

/// What a plan queries.
#[derive(Debug, Clone, PartialEq)]
enum Query {
    Key(String),
    KeyPrefix(String),
    Services,
    Nodes,
    Service {
        service: String,
        tags: Vec<String>,
        passing: bool,
    },
    Checks {
        service: String,
        state: String,
        tags: Vec<String>,
    },
    Event(String),
    /// Types the plan parser knows but the CLI refuses.
    Unsupported(String),
}

/// A parsed watch: the query and its common options.
#[derive(Debug, PartialEq)]
struct Plan {
    query: Query,
    stale: bool,
    filter: String,
}

/// The Go api's `watch.Parse`: every parameter must be used by the type, and
/// the type-specific checks run in its order, with its messages.
fn parse_plan(mut params: BTreeMap<&'static str, Param>) -> Result<Plan, String> {
    let take_str = |params: &mut BTreeMap<&str, Param>, name: &str| -> Result<String, String> {
        match params.remove(name) {
            None => Ok(String::new()),
            Some(Param::Str(s)) => Ok(s),
            Some(_) => Err(format!("Expecting {name} to be a string")),
        }
    };
    let take_bool = |params: &mut BTreeMap<&str, Param>, name: &str| -> Result<bool, String> {
        match params.remove(name) {
            None => Ok(false),
            Some(Param::Bool(b)) => Ok(b),
            Some(_) => Err(format!("Expecting {name} to be a boolean")),
        }
    };
    let take_list =
        |params: &mut BTreeMap<&str, Param>, name: &str| -> Result<Vec<String>, String> {
            match params.remove(name) {
                None => Ok(Vec::new()),
                Some(Param::Str(s)) => Ok(vec![s]),
                Some(Param::List(l)) => Ok(l),
                Some(_) => Err(format!("Expecting {name} to be a string or []string")),
            }
        };
    // Generic parameters; the datacenter and token travel with the client.
    take_str(&mut params, "datacenter")?;
    take_str(&mut params, "token")?;
    let watch_type = take_str(&mut params, "type")?;
    if watch_type.is_empty() {
        return Err("Watch type must be specified".into());
    }
    let mut stale = false;
    let mut filter = String::new();
    let query = match watch_type.as_str() {
        "key" => {
            stale = take_bool(&mut params, "stale")?;
            let key = take_str(&mut params, "key")?;
            if key.is_empty() {
                return Err("Must specify a single key to watch".into());
            }
            Query::Key(key)
        }
        "keyprefix" => {
            stale = take_bool(&mut params, "stale")?;
            let prefix = take_str(&mut params, "prefix")?;
            if prefix.is_empty() {
                return Err("Must specify a single prefix to watch".into());
            }
            Query::KeyPrefix(prefix)
        }
        "services" | "nodes" => {
            stale = take_bool(&mut params, "stale")?;
            filter = take_str(&mut params, "filter")?;
            if watch_type == "services" {
                Query::Services
            } else {
                Query::Nodes
            }
        }
        "service" => {
            stale = take_bool(&mut params, "stale")?;
            let service = take_str(&mut params, "service")?;
            if service.is_empty() {
                return Err("Must specify a single service to watch".into());
            }
            let tags = take_list(&mut params, "tag")?;
            let passing = take_bool(&mut params, "passingonly")?;
            filter = take_str(&mut params, "filter")?;
            Query::Service {
                service,
                tags,
                passing,
            }
        }
        "checks" => {
            stale = take_bool(&mut params, "stale")?;
            let service = take_str(&mut params, "service")?;
            let mut state = take_str(&mut params, "state")?;
            if !service.is_empty() && !state.is_empty() {
                return Err("Cannot specify service and state".into());
            }
            if service.is_empty() && state.is_empty() {
                state = "any".into();
            }
            let tags = take_list(&mut params, "tag")?;
            filter = take_str(&mut params, "filter")?;
            Query::Checks {
                service,
                state,
                tags,
            }
        }
        "event" => Query::Event(take_str(&mut params, "name")?),
        "connect_roots" => Query::Unsupported(watch_type.clone()),
        "connect_leaf" => {
            take_str(&mut params, "service")?;
            Query::Unsupported(watch_type.clone())
        }
        "agent_service" => {
            take_str(&mut params, "service_id")?;
            Query::Unsupported(watch_type.clone())
        }
        other => return Err(format!("Unsupported watch type: {other}")),
    };
    if !params.is_empty() {
        let bad: Vec<&str> = params.keys().copied().collect();
        return Err(format!("Invalid parameters: [{}]", bad.join(" ")));
    }
    Ok(Plan {
        query,
        stale,
        filter,
    })
}

/// Reformats JSON text as Go writes it, keeping the order of object keys:
/// `indent` set is `json.MarshalIndent(v, "", indent)`, unset is compact
/// (`json.Marshal`). Strings get Go's HTML-safe escapes.
fn go_layout(text: &str, indent: Option<&str>) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    let mut depth = 0usize;
    let chars: Vec<char> = text.chars().collect();
    let newline = |out: &mut String, depth: usize| {
        if let Some(ind) = indent {
            out.push('\n');
            for _ in 0..depth {
                out.push_str(ind);
            }
        }
    };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' => {
                // Copy the string through its closing quote.
                out.push('"');
                i += 1;
                while i < chars.len() {
                    let s = chars[i];
                    out.push(s);
                    i += 1;
                    if s == '\\' {
                        if let Some(&n) = chars.get(i) {
                            out.push(n);
                            i += 1;
                        }
                    } else if s == '"' {
                        break;
                    }
                }
                continue;
            }
            '{' | '[' => {
                let close = if c == '{' { '}' } else { ']' };
                let mut j = i + 1;
                while j < chars.len() && chars[j].is_ascii_whitespace() {
                    j += 1;
                }
                out.push(c);
                if chars.get(j) == Some(&close) {
                    out.push(close);
                    i = j + 1;
                    continue;
                }
                depth += 1;
                newline(&mut out, depth);
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(',');
                newline(&mut out, depth);
            }
            ':' => {
                out.push(':');
                if indent.is_some() {
                    out.push(' ');
                }
            }
            c if c.is_ascii_whitespace() => {}
            c => out.push(c),
        }
        i += 1;
    }
    go_json_escape(&out)
}

/// The Go api's `KVPair`, in its field order.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ApiPair {
    key: String,
    create_index: u64,
    modify_index: u64,
    lock_index: u64,
    flags: u64,
    value: Option<String>,
    session: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    namespace: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    partition: String,
}

impl From<KvPair> for ApiPair {
    fn from(p: KvPair) -> Self {
        ApiPair {
            key: p.key,
            create_index: p.create_index,
            modify_index: p.modify_index,
            lock_index: p.lock_index,
            flags: p.flags,
            value: p.value,
            session: p.session.unwrap_or_default(),
            namespace: p.namespace.unwrap_or_default(),
            partition: p.partition.unwrap_or_default(),
        }
    }
}

/// One answer of a watch query: its blocking index and its data as compact JSON
/// text in the order to show it.
struct Answer {
    index: u64,
    json: String,
}

/// The Go api's `Event.IDToIndex`: a UUID folded into the event list's index.
fn event_id_to_index(id: &str) -> Option<u64> {
    let b = id.as_bytes();
    if b.len() < 36 || !id.is_char_boundary(36) {
        return None;
    }
    let lower = format!("{}{}{}", &id[0..8], &id[9..13], &id[14..18]);
    let upper = format!("{}{}", &id[19..23], &id[24..36]);
    let low = u64::from_str_radix(&lower, 16).ok()?;
    let high = u64::from_str_radix(&upper, 16).ok()?;
    Some(low ^ high)
}

/// Runs the plan's query once, blocking on `index` when given.
async fn query(client: &Client, plan: &Plan, index: Option<u64>) -> Result<Answer, ApiError> {
    let (path, list_kv, single_kv) = match &plan.query {
        Query::Key(k) => (format!("/v1/kv/{k}"), false, true),
        Query::KeyPrefix(p) => (format!("/v1/kv/{p}"), true, false),
        Query::Services => ("/v1/catalog/services".into(), false, false),
        Query::Nodes => ("/v1/catalog/nodes".into(), false, false),
        Query::Service { service, .. } => (format!("/v1/health/service/{service}"), false, false),
        Query::Checks { state, .. } if !state.is_empty() => {
            if !matches!(state.as_str(), "any" | "warning" | "critical" | "passing") {
                return Err(ApiError::Decode(format!("Unsupported state: {state}")));
            }
            (format!("/v1/health/state/{state}"), false, false)
        }
        Query::Checks { service, .. } => (format!("/v1/health/checks/{service}"), false, false),
        Query::Event(_) => ("/v1/event/list".into(), false, false),
        Query::Unsupported(_) => return Err(ApiError::Decode("unsupported watch".into())),
    };
    let mut req = client
        .get(&path)
        .param_if(list_kv, "recurse", "")
        .param_if(plan.stale, "stale", "")
        .param_if(!plan.filter.is_empty(), "filter", &plan.filter);
    if let Some(i) = index.filter(|i| *i > 0) {
        req = req.param("index", i.to_string());
    }
    match &plan.query {
        Query::Service { tags, passing, .. } => {
            for t in tags {
                req = req.add_param("tag", t);
            }
            req = req.param_if(*passing, "passing", "1");
        }
        Query::Checks { tags, .. } => {
            for t in tags {
                req = req.add_param("tag", t);
            }
        }
        Query::Event(name) => req = req.param_if(!name.is_empty(), "name", name),
        _ => {}
    }
    let resp = req.send().await?;
    let idx = resp.index();
    if (single_kv || list_kv) && resp.status == 404 {
        return Ok(Answer {
            index: idx,
            json: "null".into(),
        });
    }
    let resp = resp.require_ok()?;
    let json = if single_kv || list_kv {
        let pairs: Vec<KvPair> = resp.decode()?;
        let api: Vec<ApiPair> = pairs.into_iter().map(ApiPair::from).collect();
        let text = if single_kv {
            match api.first() {
                Some(p) => serde_json::to_string(p),
                None => Ok("null".to_string()),
            }
        } else {
            serde_json::to_string(&api)
        };
        text.map_err(|e| ApiError::Decode(e.to_string()))?
    } else {
        // Validate it, then keep the agent's text (and so its field order).
        serde_json::from_slice::<serde::de::IgnoredAny>(&resp.body)
            .map_err(|e| ApiError::Decode(e.to_string()))?;
        String::from_utf8_lossy(&resp.body).into_owned()
    };
    Ok(Answer { index: idx, json })
}

/// Only the events after the one the previous index stands for, as the Go api
/// prunes them.
fn prune_events(json: &str, last: Option<u64>) -> String {
    let Some(last) = last else {
        return json.to_string();
    };
    let Ok(events) = serde_json::from_str::<Vec<Box<serde_json::value::RawValue>>>(json) else {
        return json.to_string();
    };
    #[derive(Deserialize)]
    struct Id {
        #[serde(rename = "ID", default)]
        id: String,
    }
    let cut = events.iter().position(|e| {
        serde_json::from_str::<Id>(e.get())
            .ok()
            .and_then(|i| event_id_to_index(&i.id))
            == Some(last)
    });
    match cut {
        Some(i) => {
            let rest: Vec<&str> = events[i + 1..].iter().map(|e| e.get()).collect();
            format!("[{}]", rest.join(","))
        }
        None => json.to_string(),
    }
}

/// hclog's line for a failed query, on stderr.
fn log_error(watch_type: &str, err: &ApiError, retry: Duration) {
    let now = time::OffsetDateTime::now_utc();
    let stamp = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second(),
        now.millisecond()
    );
    let text = err.to_string();
    let quoted = if text.contains([' ', '\t', '\n', '"']) {
        go_quote(&text)
    } else {
        text
    };
    ui::error(&format!(
        "{stamp} [ERROR] watch: Watch errored: type={watch_type} error={quoted} retry={}",
        format_go_duration(retry)
    ));
}

/// Runs the handler with `json` on its stdin; an error ends the watch.
async fn run_handler(
    args: &WatchArgs,
    index: u64,
    json: &str,
    child_pid: &Mutex<Option<u32>>,
) -> Result<(), ()> {
    let index = index.to_string();
    let mut child = match start_child(
        &args.child,
        args.shell,
        Stdio::piped(),
        ("CONSUL_INDEX", &index),
    ) {
        Ok(c) => c,
        Err(e) => {
            ui::error(&format!("Error starting handler: {e}"));
            return Err(());
        }
    };
    if let Ok(mut p) = child_pid.lock() {
        *p = child.id();
    }
    if let Some(mut stdin) = child.stdin.take() {
        let mut input = json.as_bytes().to_vec();
        input.push(b'\n');
        // A handler that does not read its input is not an error.
        let _ = stdin.write_all(&input).await;
    }
    let status = child.wait().await;
    if let Ok(mut p) = child_pid.lock() {
        *p = None;
    }
    match status {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => {
            ui::error(&format!("Error executing handler: {}", exit_text(s)));
            Err(())
        }
        Err(e) => {
            ui::error(&format!("Error executing handler: {e}"));
            Err(())
        }
    }
}

/// The plan loop (the Go api's `Plan.Run`): block on the last index, skip
/// answers whose index or data did not change, back off after errors.
async fn follow(
    client: &Client,
    plan: &Plan,
    args: &WatchArgs,
    child_pid: &Mutex<Option<u32>>,
) -> i32 {
    let mut last_index: Option<u64> = None;
    let mut last_result: Option<serde_json::Value> = None;
    let mut failures: u32 = 0;
    loop {
        let answer = query(client, plan, last_index).await;
        let mut answer = match answer {
            Ok(a) => a,
            Err(e) => {
                failures += 1;
                last_index = None;
                let retry = (RETRY_INTERVAL * failures.saturating_mul(failures)).min(MAX_BACKOFF);
                log_error(&args.watch_type, &e, retry);
                tokio::time::sleep(retry).await;
                continue;
            }
        };
        failures = 0;
        if matches!(plan.query, Query::Event(_)) {
            answer.json = prune_events(&answer.json, last_index);
        }
        if last_index == Some(answer.index) {
            continue;
        }
        let old = last_index;
        // An index equal to the previous one restarts from 0 (Go's WaitIndexVal.Next).
        last_index = Some(if old == Some(answer.index) {
            0
        } else {
            answer.index
        });
        let value: Option<serde_json::Value> = serde_json::from_str(&answer.json).ok();
        if old.is_some() && value == last_result {
            continue;
        }
        last_result = value;
        if args.child.is_empty() {
            ui::output(&go_layout(&answer.json, Some("    ")));
            return 0;
        }
        let compact = go_layout(&answer.json, None);
        if run_handler(args, answer.index, &compact, child_pid)
            .await
            .is_err()
        {
            return 1;
        }
    }
}

pub async fn run(args: &WatchArgs) -> i32 {
    if args.watch_type.is_empty() {
        return ui::fail_with_usage("Watch type must be specified", &["watch"]);
    }
    let client = match Client::new(&args.http, Some(&args.server)) {
        Ok(c) => c,
        // Consul resolves the token (file) first and prints that error bare.
        Err(e) => return fail(e),
    };
    let mut params: BTreeMap<&'static str, Param> = BTreeMap::new();
    params.insert("type", Param::Str(args.watch_type.clone()));
    if let Some(dc) = args.server.datacenter.as_ref().filter(|d| !d.is_empty()) {
        params.insert("datacenter", Param::Str(dc.clone()));
    }
    for (name, value) in [
        ("key", &args.key),
        ("prefix", &args.prefix),
        ("service", &args.service),
        ("filter", &args.filter),
    ] {
        if !value.is_empty() {
            params.insert(name, Param::Str(value.clone()));
        }
    }
    if !args.tag.is_empty() {
        params.insert("tag", Param::List(args.tag.clone()));
    }
    if args.server.stale {
        params.insert("stale", Param::Bool(true));
    }
    for (name, value) in [("state", &args.state), ("name", &args.name)] {
        if !value.is_empty() {
            params.insert(name, Param::Str(value.clone()));
        }
    }
    if !args.passingonly.is_empty() {
        match parse_go_bool(&args.passingonly) {
            Ok(b) => {
                params.insert("passingonly", Param::Bool(b));
            }
            Err(_) => {
                return fail(format!(
                    "Failed to parse passingonly flag: strconv.ParseBool: parsing {}: invalid syntax",
                    go_quote(&args.passingonly)
                ));
            }
        }
    }
    let plan = match parse_plan(params) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    if let Query::Unsupported(t) = &plan.query {
        return fail(format!("Type {t} is not supported in the CLI tool"));
    }
    if let Err(e) = client.get("/v1/status/leader").send_ok().await {
        return fail(format!("Error querying Consul agent: {e}"));
    }

    // An interrupt or SIGTERM ends the watch at once (exit 0); a running
    // handler gets the signal too.
    let (shutdown, child_pid) = match forward_signals() {
        Ok(s) => s,
        Err(e) => return fail(format!("Error querying Consul agent: {e}")),
    };
    tokio::select! {
        code = follow(&client, &plan, args, &child_pid) => code,
        _ = shutdown.cancelled() => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&'static str, Param)]) -> BTreeMap<&'static str, Param> {
        pairs.iter().cloned().collect()
    }

    fn s(v: &str) -> Param {
        Param::Str(v.into())
    }

    #[test]
    fn plans_take_only_their_own_parameters() {
        let p = parse_plan(params(&[("type", s("key")), ("key", s("a/b"))])).unwrap();
        assert_eq!(p.query, Query::Key("a/b".into()));
        assert_eq!(
            parse_plan(params(&[("type", s("key"))])).unwrap_err(),
            "Must specify a single key to watch"
        );
        assert_eq!(
            parse_plan(params(&[
                ("type", s("key")),
                ("key", s("a")),
                ("prefix", s("b")),
                ("filter", s("x")),
            ]))
            .unwrap_err(),
            "Invalid parameters: [filter prefix]"
        );
        assert_eq!(
            parse_plan(params(&[
                ("type", s("event")),
                ("stale", Param::Bool(true))
            ]))
            .unwrap_err(),
            "Invalid parameters: [stale]"
        );
        assert_eq!(
            parse_plan(params(&[("type", s("bogus"))])).unwrap_err(),
            "Unsupported watch type: bogus"
        );
        assert_eq!(
            parse_plan(params(&[
                ("type", s("checks")),
                ("service", s("a")),
                ("state", s("any"))
            ]))
            .unwrap_err(),
            "Cannot specify service and state"
        );
        let p = parse_plan(params(&[("type", s("checks"))])).unwrap();
        assert_eq!(
            p.query,
            Query::Checks {
                service: String::new(),
                state: "any".into(),
                tags: vec![]
            }
        );
        let p = parse_plan(params(&[
            ("type", s("service")),
            ("service", s("web")),
            ("tag", Param::List(vec!["a".into(), "b".into()])),
            ("passingonly", Param::Bool(true)),
            ("filter", s("Service.Port > 0")),
            ("stale", Param::Bool(true)),
        ]))
        .unwrap();
        assert!(p.stale);
        assert_eq!(p.filter, "Service.Port > 0");
        assert_eq!(
            parse_plan(params(&[("type", s("connect_leaf")), ("service", s("w"))]))
                .unwrap()
                .query,
            Query::Unsupported("connect_leaf".into())
        );
    }

    #[test]
    fn json_is_laid_out_as_go_writes_it() {
        let text = r#"{"b":1,"a":[],"c":{},"d":[{"x":"<&>","y":null}],"e":"a,b:{c}"}"#;
        assert_eq!(
            go_layout(text, Some("    ")),
            "{\n    \"b\": 1,\n    \"a\": [],\n    \"c\": {},\n    \"d\": [\n        {\n            \
             \"x\": \"\\u003c\\u0026\\u003e\",\n            \"y\": null\n        }\n    ],\n    \
             \"e\": \"a,b:{c}\"\n}"
        );
        assert_eq!(
            go_layout("{ \"a\" : [ 1 , 2 ] , \"s\":\"q\\\"{\" }", None),
            r#"{"a":[1,2],"s":"q\"{"}"#
        );
        assert_eq!(go_layout("null", Some("    ")), "null");
    }

    #[test]
    fn kv_pairs_use_the_go_api_field_order() {
        let p: KvPair = serde_json::from_str(
            r#"{"LockIndex":0,"Key":"k","Flags":3,"Value":"dg==","CreateIndex":5,"ModifyIndex":6}"#,
        )
        .unwrap();
        assert_eq!(
            serde_json::to_string(&ApiPair::from(p)).unwrap(),
            r#"{"Key":"k","CreateIndex":5,"ModifyIndex":6,"LockIndex":0,"Flags":3,"Value":"dg==","Session":""}"#
        );
    }

    #[test]
    fn event_ids_fold_into_the_list_index() {
        // 0x12345678_9abc_def0 ^ 0x1122_334455667788
        assert_eq!(
            event_id_to_index("12345678-9abc-def0-1122-334455667788"),
            Some(0x123456789abcdef0 ^ 0x1122334455667788)
        );
        assert_eq!(event_id_to_index("short"), None);
        let id_a = "00000000-0000-0001-0000-000000000000";
        let id_b = "00000000-0000-0002-0000-000000000000";
        let list = format!(r#"[{{"ID":"{id_a}","Name":"x"}},{{"ID":"{id_b}","Name":"y"}}]"#);
        assert_eq!(
            prune_events(&list, Some(1)),
            format!(r#"[{{"ID":"{id_b}","Name":"y"}}]"#)
        );
        assert_eq!(prune_events(&list, Some(99)), list);
        assert_eq!(prune_events(&list, None), list);
    }
}
