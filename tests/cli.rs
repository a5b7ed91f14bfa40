//! The `consul` client commands against a real dev agent: each test runs the built
//! binary as an operator would and checks its output, exit code and effect.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::Agent;

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `concord <args>` against `agent` (through CONSUL_HTTP_ADDR, as an operator's
/// shell would), with `stdin` piped in.
fn run_with_stdin(agent: Option<&Agent>, args: &[&str], stdin: &[u8]) -> Out {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_concord"));
    cmd.args(args)
        .env_remove("CONSUL_HTTP_TOKEN")
        .env_remove("CONSUL_HTTP_TOKEN_FILE")
        .env_remove("CONSUL_HTTP_SSL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    match agent {
        Some(a) => cmd.env("CONSUL_HTTP_ADDR", format!("127.0.0.1:{}", a.port)),
        None => cmd.env_remove("CONSUL_HTTP_ADDR"),
    };
    let mut child = cmd.spawn().expect("spawn concord");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn run(agent: &Agent, args: &[&str]) -> Out {
    run_with_stdin(Some(agent), args, b"")
}

/// Runs a command that must succeed; returns its stdout.
fn ok(agent: &Agent, args: &[&str]) -> String {
    let out = run(agent, args);
    assert_eq!(
        out.code, 0,
        "{args:?} failed: stdout {:?} stderr {:?}",
        out.stdout, out.stderr
    );
    out.stdout
}

#[test]
fn members_raft_autopilot_info_and_reload() {
    let a = Agent::dev();

    let members = ok(&a, &["members"]);
    let lines: Vec<&str> = members.lines().collect();
    assert_eq!(lines.len(), 2, "{members}");
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header,
        [
            "Node",
            "Address",
            "Status",
            "Type",
            "Build",
            "Protocol",
            "DC",
            "Partition",
            "Segment"
        ]
    );
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(row[0], "it-node");
    assert_eq!(&row[2..4], ["alive", "server"]);
    assert_eq!(&row[6..], ["dc1", "default", "<all>"]);
    // Columns line up: every row has its Address where the header has it.
    let col = lines[0].find("Address").unwrap();
    assert_eq!(&lines[1][col..col + 10], "127.0.0.1:");

    let detailed = ok(&a, &["members", "-detailed"]);
    assert!(detailed.contains("role=consul"), "{detailed}");
    let none = run(&a, &["members", "-status=failed"]);
    assert_eq!((none.code, none.stdout.as_str()), (2, ""));

    let peers = ok(&a, &["operator", "raft", "list-peers"]);
    let lines: Vec<&str> = peers.lines().collect();
    assert!(
        lines[0].starts_with("Node")
            && lines[0].ends_with("RaftProtocol  Commit Index  Trails Leader By"),
        "{peers}"
    );
    assert_eq!(lines.len(), 2, "one server: {peers}");
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(row[0], "it-node");
    assert_eq!(&row[3..6], ["leader", "true", "3"]);
    assert_eq!(row[7], "-");

    let set = ok(
        &a,
        &[
            "operator",
            "autopilot",
            "set-config",
            "-cleanup-dead-servers=false",
            "-max-trailing-logs",
            "300",
            "-last-contact-threshold=1s",
        ],
    );
    assert_eq!(set, "Configuration updated!\n");
    let conf = ok(&a, &["operator", "autopilot", "get-config"]);
    assert_eq!(
        conf,
        "CleanupDeadServers = false\nLastContactThreshold = 1s\nMaxTrailingLogs = 300\n\
         MinQuorum = 0\nServerStabilizationTime = 10s\nRedundancyZoneTag = \"\"\n\
         DisableUpgradeMigration = false\nUpgradeVersionTag = \"\"\n"
    );
    let state = ok(&a, &["operator", "autopilot", "state"]);
    assert!(
        state.starts_with("Healthy:                      true\n"),
        "{state}"
    );
    assert!(
        state.contains("      Name:            it-node\n"),
        "{state}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&ok(&a, &["operator", "autopilot", "state", "-format=json"])).unwrap();
    assert_eq!(json["Voters"].as_array().unwrap().len(), 1);

    let info = ok(&a, &["info"]);
    assert!(info.contains("agent:\n\tcheck_monitors = "), "{info}");
    // Sections and keys sorted, as Consul prints them.
    assert!(info.contains("consul:\n\tacl = disabled\n"), "{info}");
    assert!(info.contains("raft:\n\tapplied_index = "), "{info}");
    assert!(info.contains("\tstate = Leader\n"), "{info}");
    assert_eq!(ok(&a, &["reload"]), "Configuration reload triggered\n");
}

#[test]
fn kv_put_get_delete_export_import() {
    let a = Agent::dev();
    // -http-addr on the command line wins over CONSUL_HTTP_ADDR.
    let addr = format!("-http-addr=http://127.0.0.1:{}", a.port);
    assert_eq!(
        ok(&a, &["kv", "put", &addr, "app/a", "hello"]),
        "Success! Data written to: app/a\n"
    );
    ok(&a, &["kv", "put", "-flags=42", "app/b/c", "<x&y>"]);
    let piped = run_with_stdin(Some(&a), &["kv", "put", "app/d", "-"], b"from stdin");
    assert_eq!(piped.code, 0, "{}", piped.stderr);

    assert_eq!(ok(&a, &["kv", "get", "app/a"]), "hello\n");
    assert_eq!(ok(&a, &["kv", "get", "-base64", "app/a"]), "aGVsbG8=\n");
    assert_eq!(
        ok(&a, &["kv", "get", "-recurse", "app"]),
        "app/a:hello\napp/b/c:<x&y>\napp/d:from stdin\n"
    );
    assert_eq!(
        ok(&a, &["kv", "get", "-keys", "app/"]),
        "app/a\napp/b/\napp/d\n"
    );
    let detailed = ok(&a, &["kv", "get", "-detailed", "app/b/c"]);
    let index = a.get("/v1/kv/app/b/c").json()[0]["ModifyIndex"]
        .as_u64()
        .unwrap();
    assert_eq!(
        detailed,
        format!(
            "CreateIndex      {index}\nFlags            42\nKey              app/b/c\n\
             LockIndex        0\nModifyIndex      {index}\nSession          -\nValue            <x&y>\n"
        )
    );

    let missing = run(&a, &["kv", "get", "nope"]);
    assert_eq!(missing.code, 1);
    assert_eq!(missing.stderr, "Error! No key exists at: nope\n");
    let cas = run(&a, &["kv", "put", "-cas", "-modify-index=1", "app/a", "x"]);
    assert_eq!(cas.code, 1);
    assert_eq!(cas.stderr, "Error! Did not write to app/a: CAS failed\n");
    let modify = a.get("/v1/kv/app/a").json()[0]["ModifyIndex"]
        .as_u64()
        .unwrap();
    ok(
        &a,
        &[
            "kv",
            "put",
            "-cas",
            &format!("-modify-index={modify}"),
            "app/a",
            "hi",
        ],
    );
    assert_eq!(ok(&a, &["kv", "get", "app/a"]), "hi\n");

    let export = ok(&a, &["kv", "export", "app"]);
    assert!(
        export.starts_with(
            "[\n\t{\n\t\t\"key\": \"app/a\",\n\t\t\"flags\": 0,\n\t\t\"value\": \"aGk=\"\n\t},"
        ),
        "{export}"
    );
    assert!(
        export.contains("\"value\": \"PHgmeT4=\""),
        "Go's base64 of <x&y>: {export}"
    );

    assert_eq!(
        ok(&a, &["kv", "delete", "-recurse", "app"]),
        "Success! Deleted keys with prefix: app\n"
    );
    assert_eq!(ok(&a, &["kv", "get", "-recurse", "app"]), "");

    let dir = Agent::scratch("cli-kv");
    let file = dir.join("export.json");
    std::fs::write(&file, &export).unwrap();
    let imported = ok(&a, &["kv", "import", &format!("@{}", file.display())]);
    assert_eq!(
        imported,
        "Imported: app/a\nImported: app/b/c\nImported: app/d\n"
    );
    let again = run_with_stdin(
        Some(&a),
        &["kv", "import", "-prefix=copy", "-"],
        export.as_bytes(),
    );
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(
        ok(&a, &["kv", "export", "app"]),
        export,
        "export after import is the same document"
    );
    assert_eq!(a.get("/v1/kv/copy/app/b/c").json()[0]["Flags"], 42);

    ok(&a, &["kv", "delete", "app/a"]);
    assert_eq!(a.get("/v1/kv/app/a").status, 404);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn event_and_catalog() {
    let a = Agent::dev();
    let fired = ok(&a, &["event", "-name=deploy", "v1.2"]);
    let id = fired
        .strip_prefix("Event ID: ")
        .unwrap_or_else(|| panic!("{fired}"))
        .trim()
        .to_string();
    let events = a.get("/v1/event/list?name=deploy").json();
    assert!(
        events.as_array().unwrap().iter().any(|e| e["ID"] == id),
        "{events}"
    );
    let bad = run(&a, &["event", "-name=x", "-tag=web"]);
    assert_eq!(
        (bad.code, bad.stderr.as_str()),
        (1, "Cannot provide tag filter without service filter.\n")
    );

    assert_eq!(ok(&a, &["catalog", "datacenters"]), "dc1\n");
    let nodes = ok(&a, &["catalog", "nodes"]);
    let lines: Vec<&str> = nodes.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["Node", "ID", "Address", "DC"]
    );
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(row[0], "it-node");
    assert_eq!(row[1].len(), 8, "the ID's first group: {nodes}");
    assert_eq!(&row[2..], ["127.0.0.1", "dc1"]);
    let none = run(&a, &["catalog", "nodes", "-service=nope"]);
    assert_eq!(none.code, 0);
    assert_eq!(
        none.stderr,
        "No nodes match the given query - try expanding your search.\n"
    );
    assert_eq!(ok(&a, &["catalog", "services"]), "consul\n");
    assert_eq!(
        ok(&a, &["catalog", "services", "-node=it-node"]),
        "consul\n"
    );
}

#[test]
fn snapshot_save_inspect_and_restore_into_another_agent() {
    let a = Agent::dev();
    let b = Agent::dev();
    ok(&a, &["kv", "put", "snap/key", "kept"]);
    let dir = Agent::scratch("cli-snap");
    let file = dir.join("backup.snap");
    let file = file.to_str().unwrap();

    let saved = ok(&a, &["snapshot", "save", file]);
    assert!(
        saved.starts_with("Saved and verified snapshot to index "),
        "{saved}"
    );
    assert!(!std::path::Path::new(&format!("{file}.unverified")).exists());

    let inspect = ok(
        &a,
        &["snapshot", "inspect", "-kvdetails", "-kvdepth=1", file],
    );
    let lines: Vec<&str> = inspect.lines().collect();
    assert!(lines[0].starts_with(" ID           "), "{inspect}");
    assert!(inspect.contains("\n Type "), "{inspect}");
    let snap_row: Vec<&str> = lines
        .iter()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|w| w.first() == Some(&"snap"))
        .unwrap_or_else(|| panic!("the KV breakdown lists the snap prefix: {inspect}"));
    assert_eq!(snap_row[1], "1", "{inspect}");

    assert_eq!(ok(&b, &["kv", "get", "-recurse", "snap"]), "");
    assert_eq!(
        ok(&b, &["snapshot", "restore", file]),
        "Restored snapshot\n"
    );
    assert_eq!(ok(&b, &["kv", "get", "snap/key"]), "kept\n");

    // A damaged archive is refused before anything is restored.
    let bytes = std::fs::read(file).unwrap();
    let damaged = dir.join("damaged.snap");
    std::fs::write(&damaged, &bytes[..bytes.len() / 2]).unwrap();
    let out = run(&b, &["snapshot", "inspect", damaged.to_str().unwrap()]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.starts_with("Error reading snapshot: "),
        "{}",
        out.stderr
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn errors_use_consuls_words_and_exit_codes() {
    let port = common::free_port();
    let addr = format!("-http-addr=127.0.0.1:{port}");
    let out = run_with_stdin(None, &["members", &addr], b"");
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stderr,
        format!(
            "Error retrieving members: Get \"http://127.0.0.1:{port}/v1/agent/members?segment=_all\": \
             dial tcp 127.0.0.1:{port}: connect: connection refused\n"
        )
    );
    let out = run_with_stdin(None, &["kv", "get"], b"");
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (1, "Error! Missing KEY argument\n")
    );
    let out = run_with_stdin(None, &["catalog", "nodes", "extra"], b"");
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (1, "Too many arguments (expected 0, got 1)\n")
    );
    let out = run_with_stdin(None, &["members", "-http-addr=ftp://x"], b"");
    assert_eq!(
        out.stderr,
        "Error connecting to Consul agent: Unknown protocol scheme: ftp\n"
    );
    // Unknown commands keep clap's error.
    let out = run_with_stdin(None, &["frobnicate"], b"");
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("frobnicate"), "{}", out.stderr);
}

#[test]
fn keygen_prints_a_fresh_32_byte_key() {
    use base64::Engine as _;
    let a = run_with_stdin(None, &["keygen"], b"");
    let b = run_with_stdin(None, &["keygen"], b"");
    assert_eq!((a.code, a.stderr.as_str()), (0, ""));
    assert!(a.stdout.ends_with('\n') && a.stdout.lines().count() == 1);
    let key = a.stdout.trim_end();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(key)
        .unwrap_or_else(|e| panic!("{key}: {e}"));
    assert_eq!(raw.len(), 32);
    assert_ne!(a.stdout, b.stdout);

    // The key is one the agent's configuration accepts.
    let dir = Agent::scratch("cli-keygen");
    let file = dir.join("encrypt.json");
    std::fs::write(
        &file,
        format!(r#"{{"data_dir": "{}", "encrypt": "{key}"}}"#, dir.display()),
    )
    .unwrap();
    let out = run_with_stdin(None, &["validate", file.to_str().unwrap()], b"");
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "Configuration is valid!\n"),
        "{}",
        out.stderr
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn validate_checks_files_and_dirs_as_the_agent_loads_them() {
    let dir = Agent::scratch("cli-validate");
    let data = dir.join("data");
    let conf = dir.join("conf.d");
    std::fs::create_dir_all(&conf).unwrap();
    let validate = |args: &[&str]| {
        let mut all = vec!["validate"];
        all.extend_from_slice(args);
        run_with_stdin(None, &all, b"")
    };
    let path = |p: &std::path::Path| p.to_str().unwrap().to_string();

    // A directory of JSON and HCL, merged as the agent merges them.
    std::fs::write(
        conf.join("a.json"),
        format!(
            r#"{{"data_dir": "{}", "bind_addr": "10.0.0.1"}}"#,
            data.display()
        ),
    )
    .unwrap();
    std::fs::write(
        conf.join("b.hcl"),
        "service {\n  name = \"web\"\n  port = 80\n  check {\n    ttl = \"10s\"\n  }\n}\n",
    )
    .unwrap();
    let out = validate(&[&path(&conf)]);
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (0, "Configuration is valid!\n", "")
    );
    let quiet = validate(&["-quiet", &path(&conf)]);
    assert_eq!((quiet.code, quiet.stdout.as_str()), (0, ""));
    // Nothing was written: the node ID is not settled by a validation.
    assert!(!data.exists(), "validate created the data dir");

    // Files without a known extension need -config-format (JSON is valid HCL).
    let plain = dir.join("agent.conf");
    std::fs::write(&plain, format!(r#"{{"data_dir": "{}"}}"#, data.display())).unwrap();
    let out = validate(&[&path(&plain)]);
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stderr,
        format!(
            "Config validation failed: config file \"{}\" has unknown extension; must be .hcl or .json, or -config-format must be set\n",
            plain.display()
        )
    );
    for format in ["json", "hcl"] {
        let out = validate(&[&format!("-config-format={format}"), &path(&plain)]);
        assert_eq!(out.code, 0, "{format}: {}", out.stderr);
    }
    let out = validate(&["-config-format=yaml", &path(&plain)]);
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (1, "-config-format must be either 'hcl' or 'json\n")
    );

    // The agent's own validation: a server needs a data directory.
    let no_data = dir.join("no-data.json");
    std::fs::write(&no_data, r#"{"server": true}"#).unwrap();
    let out = validate(&[&path(&no_data)]);
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (
            1,
            "",
            "Config validation failed: data_dir cannot be empty\n"
        )
    );

    // Broken syntax names the file.
    let broken = dir.join("broken.json");
    std::fs::write(&broken, r#"{"data_dir": "/tmp/x",,}"#).unwrap();
    let out = validate(&[&path(&broken)]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.starts_with(&format!(
            "Config validation failed: config file \"{}\": parse error: ",
            broken.display()
        )),
        "{}",
        out.stderr
    );

    // A service definition the agent would refuse at startup.
    let bad_service = conf.join("c.json");
    std::fs::write(
        &bad_service,
        r#"{"service": {"name": "db", "colour": "red"}}"#,
    )
    .unwrap();
    let out = validate(&[&path(&conf)]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .starts_with("Config validation failed: invalid service definition: "),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("colour"), "{}", out.stderr);

    let out = validate(&[]);
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (1, "Must specify at least one config file or directory\n")
    );
    let missing = dir.join("missing.json");
    let out = validate(&[&path(&missing)]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.starts_with(&format!(
            "Config validation failed: config file \"{}\": ",
            missing.display()
        )),
        "{}",
        out.stderr
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn maint_enables_lists_and_disables_node_and_service_maintenance() {
    let a = Agent::dev();
    for (args, err) in [
        (
            &["maint", "-enable", "-disable"][..],
            "Only one of -enable or -disable may be provided\n",
        ),
        (
            &["maint", "-reason=x"][..],
            "Reason may only be provided with -enable\n",
        ),
        (
            &["maint", "-disable", "-reason=x"][..],
            "Reason may only be provided with -enable\n",
        ),
        (
            &["maint", "-service=web"][..],
            "Service requires either -enable or -disable\n",
        ),
    ] {
        let out = run(&a, args);
        assert_eq!((out.code, out.stderr.as_str()), (1, err), "{args:?}");
    }
    assert_eq!(ok(&a, &["maint"]), "");

    ok(&a, &["services", "register", "-name=web", "-port=80"]);
    assert_eq!(
        ok(&a, &["maint", "-enable", "-reason=kernel upgrade"]),
        "Node maintenance is now enabled\n"
    );
    assert_eq!(
        ok(&a, &["maint", "-enable", "-service=web"]),
        "Service maintenance is now enabled for \"web\"\n"
    );
    let checks = a.get("/v1/agent/checks").json();
    assert_eq!(checks["_node_maintenance"]["Notes"], "kernel upgrade");
    assert_eq!(checks["_service_maintenance:web"]["Status"], "critical");
    assert_eq!(
        ok(&a, &["maint"]),
        "Node:\n  Name:   it-node\n  Reason: kernel upgrade\n\n\
         Service:\n  ID:     web\n  Reason: Maintenance mode is enabled for this service, \
         but no reason was provided. This is a default message.\n\n"
    );

    let out = run(&a, &["maint", "-enable", "-service=nope"]);
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stderr,
        "Error enabling service maintenance: Unexpected response code: 404 \
         (No service registered with ID \"nope\")\n"
    );

    assert_eq!(
        ok(&a, &["maint", "-disable"]),
        "Node maintenance is now disabled\n"
    );
    assert_eq!(
        ok(&a, &["maint", "-disable", "-service=web"]),
        "Service maintenance is now disabled for \"web\"\n"
    );
    assert_eq!(ok(&a, &["maint"]), "");
    let checks = a.get("/v1/agent/checks").json();
    assert!(checks.as_object().unwrap().is_empty(), "{checks}");

    let port = common::free_port();
    let out = run(&a, &["maint", &format!("-http-addr=127.0.0.1:{port}")]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.starts_with(&format!(
            "Error querying Consul agent: Get \"http://127.0.0.1:{port}/v1/agent/self\": dial tcp"
        )),
        "{}",
        out.stderr
    );
}

#[test]
fn services_register_and_deregister_from_flags_and_files() {
    let a = Agent::dev();
    assert_eq!(
        ok(
            &a,
            &[
                "services",
                "register",
                "-name=web",
                "-port=8080",
                "-address=10.0.0.5",
                "-tag=a",
                "-tag=b",
                "-meta=team=x",
                "-meta=tier=front=end",
                "-tagged-address=lan=10.0.0.5:8080",
            ]
        ),
        "Registered service: web\n"
    );
    let web = a.get("/v1/agent/service/web").json();
    assert_eq!(web["ID"], "web");
    assert_eq!(web["Port"], 8080);
    assert_eq!(web["Address"], "10.0.0.5");
    assert_eq!(web["Tags"], serde_json::json!(["a", "b"]));
    assert_eq!(
        web["Meta"],
        serde_json::json!({"team": "x", "tier": "front=end"})
    );
    assert_eq!(web["TaggedAddresses"]["lan"]["Port"], 8080);

    // Files are config files: JSON or HCL, `service` or `services`; the flags fill
    // what a definition leaves out and add tags and meta.
    let dir = Agent::scratch("cli-services");
    let db = dir.join("db.json");
    std::fs::write(
        &db,
        r#"{"service": {"name": "db", "port": 5432, "tags": ["primary"], "check": {"ttl": "30s"}}}"#,
    )
    .unwrap();
    let caches = dir.join("caches.hcl");
    std::fs::write(
        &caches,
        "services = [\n  { name = \"cache\", port = 6379 },\n  { id = \"cache-2\", name = \"cache\", port = 6380 }\n]\n",
    )
    .unwrap();
    let db_s = db.to_str().unwrap();
    let caches_s = caches.to_str().unwrap();
    assert_eq!(
        ok(
            &a,
            &[
                "services",
                "register",
                "-id=db-1",
                "-tag=extra",
                "-meta=k=v",
                db_s
            ]
        ),
        "Registered service: db\n"
    );
    let db1 = a.get("/v1/agent/service/db-1").json();
    assert_eq!(db1["Service"], "db");
    assert_eq!(db1["Port"], 5432);
    assert_eq!(db1["Tags"], serde_json::json!(["primary", "extra"]));
    assert_eq!(db1["Meta"], serde_json::json!({"k": "v"}));
    let checks = a.get("/v1/agent/checks").json();
    assert!(
        checks
            .as_object()
            .unwrap()
            .values()
            .any(|c| c["ServiceID"] == "db-1"),
        "the file's check came along: {checks}"
    );
    assert_eq!(
        ok(&a, &["services", "register", caches_s]),
        "Registered service: cache\nRegistered service: cache\n"
    );
    assert_eq!(a.get("/v1/agent/service/cache-2").json()["Port"], 6380);

    // Misuse, in Consul's words.
    for (args, err) in [
        (
            vec!["services", "register"],
            "Service registration requires at least one argument or flags.\n",
        ),
        (
            vec!["services", "register", "-name=x", db_s],
            "Service registration requires arguments or -id, not both.\n",
        ),
        (
            vec![
                "services",
                "register",
                "-name=x",
                "-tagged-address=lan=10.0.0.1",
            ],
            "Invalid Tagged Address: address 10.0.0.1: missing port in address\n",
        ),
        (
            vec!["services", "deregister"],
            "Service deregistration requires at least one argument or -id.\n",
        ),
        (
            vec!["services", "deregister", "-id=web", db_s],
            "Service deregistration requires arguments or -id, not both.\n",
        ),
    ] {
        let out = run(&a, &args);
        assert_eq!((out.code, out.stderr.as_str()), (1, err), "{args:?}");
    }
    let out = run(&a, &["services", "register", "-name=x", "-meta=novalue"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.starts_with(
            "invalid value \"novalue\" for flag -meta: Missing \"=\" value in argument: novalue\n\n"
        ) && out.stderr.contains("Usage: concord services register "),
        "{}",
        out.stderr
    );
    let bad = dir.join("bad.json");
    std::fs::write(&bad, r#"{"service": {"name": "bad", "colour": "red"}}"#).unwrap();
    let out = run(&a, &["services", "register", bad.to_str().unwrap()]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .starts_with("Error: invalid service definition: "),
        "{}",
        out.stderr
    );
    assert_eq!(a.get("/v1/agent/service/bad").status, 404);
    let missing = dir.join("missing.json");
    let out = run(&a, &["services", "register", missing.to_str().unwrap()]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .starts_with(&format!("Error: config file \"{}\": ", missing.display())),
        "{}",
        out.stderr
    );

    assert_eq!(
        ok(&a, &["services", "deregister", "-id=web"]),
        "Deregistered service: web\n"
    );
    assert_eq!(a.get("/v1/agent/service/web").status, 404);
    assert_eq!(
        ok(&a, &["services", "deregister", caches_s]),
        "Deregistered service: cache\nDeregistered service: cache-2\n"
    );
    // db.json names the service "db", but it was registered as db-1.
    let out = run(&a, &["services", "deregister", db_s]);
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stderr,
        "Error deregistering service \"db\": Unexpected response code: 404 \
         (Unknown service ID \"db\". Ensure that the service ID is passed, not the service name.)\n"
    );
    assert_eq!(
        ok(&a, &["services", "deregister", "-id=db-1"]),
        "Deregistered service: db-1\n"
    );
    let services = a.get("/v1/agent/services").json();
    assert!(services.as_object().unwrap().is_empty(), "{services}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn rtt_estimates_from_network_coordinates() {
    let a = Agent::dev();
    // The leader stores the origin coordinate for itself once it leads.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while a
        .get("/v1/coordinate/nodes")
        .json()
        .as_array()
        .unwrap()
        .is_empty()
    {
        assert!(std::time::Instant::now() < deadline, "no coordinate");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(
        ok(&a, &["rtt", "it-node"]),
        "Estimated it-node <-> it-node rtt: 0.020 ms (using LAN coordinates)\n"
    );

    // A second node 5 ms away in the plane, 1 ms high, adjusted by 0.5 ms:
    // 5 + 0.01 + 1 + 0.5 = 6.51 ms from the origin.
    let reg = a.put(
        "/v1/catalog/register",
        r#"{"Node": "far", "Address": "10.0.0.2"}"#,
    );
    assert_eq!(reg.status, 200, "{}", reg.text());
    let upd = a.put(
        "/v1/coordinate/update",
        r#"{"Node": "far", "Coord": {"Vec": [0.003, 0.004, 0, 0, 0, 0, 0, 0],
            "Error": 0.5, "Adjustment": 0.0005, "Height": 0.001}}"#,
    );
    assert_eq!(upd.status, 200, "{}", upd.text());
    assert_eq!(
        ok(&a, &["rtt", "far"]),
        "Estimated far <-> it-node rtt: 6.510 ms (using LAN coordinates)\n"
    );
    assert_eq!(
        ok(&a, &["rtt", "IT-NODE", "far"]),
        "Estimated IT-NODE <-> far rtt: 6.510 ms (using LAN coordinates)\n"
    );

    let out = run(&a, &["rtt", "nope"]);
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (1, "Could not find a coordinate for node \"nope\"\n")
    );
    let out = run(&a, &["rtt", "far", "nope"]);
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (1, "Could not find a coordinate for node \"nope\"\n")
    );
    for args in [&["rtt"][..], &["rtt", "a", "b", "c"][..]] {
        let out = run(&a, args);
        assert_eq!(out.code, 1);
        assert!(
            out.stderr
                .starts_with("One or two node names must be specified\n\n"),
            "{}",
            out.stderr
        );
        assert!(out.stderr.contains("Usage: concord rtt "), "{}", out.stderr);
    }

    // WAN coordinates: the servers of each datacenter, named node.datacenter.
    assert_eq!(
        ok(&a, &["rtt", "-wan", "it-node.dc1"]),
        "Estimated it-node.dc1 <-> it-node.dc1 rtt: 0.020 ms (using WAN coordinates)\n"
    );
    let out = run(&a, &["rtt", "-wan", "it-node"]);
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (
            1,
            "Node names must be specified as <node name>.<datacenter> with -wan\n"
        )
    );
    let out = run(&a, &["rtt", "-wan", "it-node.dc2"]);
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (1, "Could not find a coordinate for node \"it-node.dc2\"\n")
    );
}

/// Reads `child`'s stdout on a thread; the receiver gets each line.
fn stdout_lines(child: &mut std::process::Child) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn spawn_monitor(agent: &Agent, args: &[&str]) -> std::process::Child {
    let mut all = vec!["monitor"];
    all.extend_from_slice(args);
    spawn_concord(agent, &all)
}

/// Starts `concord <args>` against `agent` in the background, stdout and stderr piped.
fn spawn_concord(agent: &Agent, args: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_concord"))
        .args(args)
        .env("CONSUL_HTTP_ADDR", format!("127.0.0.1:{}", agent.port))
        .env_remove("CONSUL_HTTP_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn concord")
}

/// Waits for a line matching `pred`, registering services meanwhile so that the
/// agent has something to log (each one is synced to the catalog with a log line).
fn wait_for_line(
    agent: &Agent,
    rx: &std::sync::mpsc::Receiver<String>,
    pred: impl Fn(&str) -> bool,
) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut n = 0;
    loop {
        assert!(std::time::Instant::now() < deadline, "no matching log line");
        n += 1;
        let reg = agent.put(
            "/v1/agent/service/register",
            format!(r#"{{"Name": "mon-{n}"}}"#),
        );
        assert_eq!(reg.status, 200);
        while let Ok(line) = rx.recv_timeout(std::time::Duration::from_millis(200)) {
            if pred(&line) {
                return line;
            }
        }
    }
}

#[test]
fn monitor_streams_logs_until_interrupted_or_the_agent_goes() {
    let mut a = Agent::dev();

    let mut child = spawn_monitor(&a, &["-log-level=debug"]);
    let rx = stdout_lines(&mut child);
    let line = wait_for_line(&a, &rx, |l| l.contains("Synced service"));
    assert!(line.contains(" [INFO] "), "{line}");
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "an interrupt is a clean exit");

    // JSON lines.
    let mut child = spawn_monitor(&a, &["-log-json"]);
    let rx = stdout_lines(&mut child);
    let line = wait_for_line(&a, &rx, |l| l.contains("Synced service"));
    let json: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line}: {e}"));
    assert_eq!(json["@level"], "info", "{line}");
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert_eq!(child.wait().unwrap().code(), Some(0));

    let out = run(&a, &["monitor", "-log-level=loud"]);
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (
            1,
            "Error starting monitor: Unexpected response code: 400 (Unknown log level: loud)\n"
        )
    );

    // The agent going away ends the monitor with Consul's notice and exit 1.
    let mut child = spawn_monitor(&a, &[]);
    let rx = stdout_lines(&mut child);
    wait_for_line(&a, &rx, |l| l.contains("Synced service"));
    a.interrupt();
    let mut rest = Vec::new();
    while let Ok(line) = rx.recv_timeout(std::time::Duration::from_secs(10)) {
        rest.push(line);
    }
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(1), "{rest:?}");
    assert_eq!(
        rest[rest.len() - 3..],
        [
            "",
            "Remote side ended the monitor! This usually means that the",
            "remote side has exited or crashed."
        ],
        "{rest:?}"
    );
}

/// Polls `f` until it holds (10 s at most).
fn wait_until(what: &str, f: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !f() {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn interrupt(child: &std::process::Child) {
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
}

/// The session holding `key`, if any.
fn lock_holder(agent: &Agent, key: &str) -> Option<String> {
    let r = agent.get(&format!("/v1/kv/{key}"));
    if r.status != 200 {
        return None;
    }
    r.json()[0]["Session"].as_str().map(str::to_string)
}

fn semaphore_holders(agent: &Agent, prefix: &str) -> usize {
    use base64::Engine as _;
    let r = agent.get(&format!("/v1/kv/{prefix}/.lock"));
    if r.status != 200 {
        return 0;
    }
    let value = r.json()[0]["Value"].as_str().unwrap_or("").to_string();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(value)
        .unwrap_or_default();
    serde_json::from_slice::<serde_json::Value>(&raw)
        .ok()
        .and_then(|v| v["Holders"].as_object().map(|h| h.len()))
        .unwrap_or(0)
}

fn assert_no_locks_left(agent: &Agent) {
    assert_eq!(agent.get("/v1/kv/?recurse").status, 404, "keys left");
    assert_eq!(
        agent.get("/v1/session/list").json(),
        serde_json::json!([]),
        "sessions left"
    );
}

#[test]
fn lock_runs_the_child_holding_the_lock_then_cleans_up() {
    let a = Agent::dev();
    let out = run(
        &a,
        &[
            "lock",
            "-verbose",
            "/app/leader",
            "echo held:$CONSUL_LOCK_HELD",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "Setting up lock at path: app/leader/.lock\nAttempting lock acquisition\n\
         Starting handler\nheld:true\nChild terminated, releasing lock\nCleanup succeeded\n"
    );
    assert_no_locks_left(&a);

    // The child's failure is reported; its exit code only with -child-exit-code.
    let out = run(&a, &["lock", "app/x", "exit 3"]);
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (0, "Error running handler: exit status 3\n")
    );
    let out = run(&a, &["lock", "-child-exit-code", "app/x", "exit 3"]);
    assert_eq!(out.code, 2);

    // stdin reaches the child only with -pass-stdin.
    let out = run_with_stdin(Some(&a), &["lock", "-pass-stdin", "app/x", "cat"], b"piped");
    assert_eq!((out.code, out.stdout.as_str()), (0, "piped"));
    let out = run_with_stdin(Some(&a), &["lock", "app/x", "cat"], b"piped");
    assert_eq!((out.code, out.stdout.as_str()), (0, ""));

    // Without a shell the arguments go to the program as they are.
    let out = run(&a, &["lock", "-shell=false", "app/x", "/bin/echo", "a  b"]);
    assert_eq!(out.stdout, "a  b\n");
    let out = run(&a, &["lock", "app/x", "echo", "a  b"]);
    assert_eq!(out.stdout, "a b\n", "the shell gets the words joined");
    let out = run(
        &a,
        &[
            "lock",
            "-shell=false",
            "-child-exit-code",
            "app/x",
            "no-such-cmd",
        ],
    );
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (
            2,
            "Error starting handler: exec: \"no-such-cmd\": executable file not found in $PATH\n"
        )
    );
    assert_no_locks_left(&a);

    for (args, err) in [
        (
            &["lock", "-n=0", "p", "true"][..],
            "Lock holder limit must be positive\n",
        ),
        (
            &["lock", "p"][..],
            "Key prefix and child command must be specified\n",
        ),
        (
            &["lock", "-timeout=-1s", "p", "true"][..],
            "Timeout must be positive\n",
        ),
        (
            &["lock", "-monitor-retry=-1", "p", "true"][..],
            "Number for 'monitor-retry' must be >= 0\n",
        ),
        (
            &["lock", "-n=2", "", "true"][..],
            "Lock setup failed: missing prefix\n",
        ),
    ] {
        let out = run(&a, args);
        assert_eq!((out.code, out.stderr.as_str()), (1, err), "{args:?}");
    }
    let out = run(&a, &["lock", "-timeout=soon", "p", "true"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .starts_with("invalid value \"soon\" for flag -timeout: parse error\n\n"),
        "{}",
        out.stderr
    );
}

#[test]
fn lock_excludes_others_and_a_semaphore_admits_n_holders() {
    let a = Agent::dev();
    let holder = spawn_concord(&a, &["lock", "-verbose", "app/x", "sleep 30"]);
    wait_until("the lock is held", || {
        lock_holder(&a, "app/x/.lock").is_some()
    });
    let out = run(&a, &["lock", "-timeout=500ms", "app/x", "echo never"]);
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (
            1,
            "",
            "Shutdown triggered or timeout during lock acquisition\n"
        )
    );
    let out = run(
        &a,
        &["lock", "-n=2", "-timeout=500ms", "app/x", "echo never"],
    );
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (
            1,
            "Lock acquisition failed: Existing key does not match semaphore use\n"
        )
    );
    interrupt(&holder);
    let out = holder.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(
            "Starting handler\nShutdown triggered, killing child\nTerminating child pid "
        ) && stdout.ends_with("Child terminated\nCleanup succeeded\n"),
        "{stdout}"
    );
    assert_no_locks_left(&a);

    let h1 = spawn_concord(&a, &["lock", "-n=2", "sem", "sleep 30"]);
    let h2 = spawn_concord(&a, &["lock", "-n=2", "sem", "sleep 30"]);
    wait_until("two holders", || semaphore_holders(&a, "sem") == 2);
    let out = run(&a, &["lock", "-n=2", "-timeout=500ms", "sem", "echo never"]);
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (1, "Shutdown triggered or timeout during lock acquisition\n")
    );
    let out = run(&a, &["lock", "-n=3", "-timeout=500ms", "sem", "echo never"]);
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (
            1,
            "Lock acquisition failed: semaphore limit conflict (lock: 2, local: 3)\n"
        )
    );
    let out = run(&a, &["lock", "-timeout=500ms", "sem", "echo never"]);
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (
            1,
            "Lock acquisition failed: Existing key does not match lock use\n"
        )
    );
    // A slot freed is taken by the next in line.
    let waiting = spawn_concord(&a, &["lock", "-n=2", "sem", "echo third"]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    interrupt(&h1);
    assert_eq!(h1.wait_with_output().unwrap().status.code(), Some(0));
    let out = waiting.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "third\n");
    interrupt(&h2);
    assert_eq!(h2.wait_with_output().unwrap().status.code(), Some(0));
    assert_no_locks_left(&a);
}

#[test]
fn a_lost_lock_stops_the_child() {
    let a = Agent::dev();
    let mut holder = spawn_concord(
        &a,
        &[
            "lock",
            "-verbose",
            "app/y",
            "sleep 30 >/dev/null & trap 'echo got-term; kill $!; exit 0' TERM; wait",
        ],
    );
    let rx = stdout_lines(&mut holder);
    wait_until("the lock is held", || {
        lock_holder(&a, "app/y/.lock").is_some()
    });
    let session = lock_holder(&a, "app/y/.lock").unwrap();
    assert_eq!(
        a.put(&format!("/v1/session/destroy/{session}"), "").status,
        200
    );
    let status = holder.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let lines: Vec<String> = rx.iter().collect();
    let want = [
        "Lock lost, killing child",
        "got-term",
        "Child terminated",
        "Cleanup succeeded",
    ];
    let tail: Vec<&str> = lines
        .iter()
        .map(String::as_str)
        .skip_while(|l| *l != want[0])
        .collect();
    assert_eq!(tail.len(), 5, "{lines:?}");
    assert_eq!([tail[0], tail[2], tail[3], tail[4]], want, "{lines:?}");
    assert!(tail[1].starts_with("Terminating child pid "), "{lines:?}");
    assert_no_locks_left(&a);

    // A child that ignores SIGTERM is killed after the grace period.
    let mut holder = spawn_concord(
        &a,
        &[
            "lock",
            "-verbose",
            "app/z",
            "trap '' TERM; sleep 6; echo late",
        ],
    );
    let rx = stdout_lines(&mut holder);
    wait_until("the lock is held", || {
        lock_holder(&a, "app/z/.lock").is_some()
    });
    let session = lock_holder(&a, "app/z/.lock").unwrap();
    a.put(&format!("/v1/session/destroy/{session}"), "");
    assert_eq!(holder.wait().unwrap().code(), Some(0));
    let mut lines = Vec::new();
    while let Ok(l) = rx.recv_timeout(std::time::Duration::from_millis(200)) {
        lines.push(l);
    }
    assert!(
        lines.contains(&"Child did not exit after grace period of 5s".to_string())
            && lines.iter().any(|l| l.starts_with("Killing child pid ")),
        "{lines:?}"
    );
    assert!(!lines.contains(&"late".to_string()), "{lines:?}");
}

#[test]
fn watch_prints_the_first_result_as_go_indents_it() {
    let a = Agent::dev();
    ok(&a, &["kv", "put", "app/a", "<x>"]);
    let index = a.get("/v1/kv/app/a").json()[0]["ModifyIndex"]
        .as_u64()
        .unwrap();
    let pair = format!(
        "{{\n    \"Key\": \"app/a\",\n    \"CreateIndex\": {index},\n    \"ModifyIndex\": {index},\n    \
         \"LockIndex\": 0,\n    \"Flags\": 0,\n    \"Value\": \"PHg+\",\n    \"Session\": \"\"\n}}"
    );
    assert_eq!(
        ok(&a, &["watch", "-type=key", "-key=app/a"]),
        format!("{pair}\n")
    );
    let indented: String = pair.lines().map(|l| format!("    {l}\n")).collect();
    assert_eq!(
        ok(&a, &["watch", "-type=keyprefix", "-prefix=app/"]),
        format!("[\n{indented}]\n")
    );
    assert_eq!(ok(&a, &["watch", "-type=key", "-key=nope"]), "null\n");
    assert_eq!(
        ok(&a, &["watch", "-type=services"]),
        "{\n    \"consul\": []\n}\n"
    );
    let nodes: serde_json::Value =
        serde_json::from_str(&ok(&a, &["watch", "-type=nodes"])).unwrap();
    assert_eq!(nodes[0]["Node"], "it-node");
    let checks: serde_json::Value =
        serde_json::from_str(&ok(&a, &["watch", "-type=checks", "-state=passing"])).unwrap();
    assert_eq!(checks[0]["CheckID"], "serfHealth");

    ok(
        &a,
        &["services", "register", "-name=web", "-id=web-1", "-tag=v1"],
    );
    ok(
        &a,
        &["services", "register", "-name=web", "-id=web-2", "-tag=v2"],
    );
    let web: serde_json::Value = serde_json::from_str(&ok(
        &a,
        &[
            "watch",
            "-type=service",
            "-service=web",
            "-tag=v2",
            "-passingonly=true",
        ],
    ))
    .unwrap();
    assert_eq!(web.as_array().unwrap().len(), 1, "{web}");
    assert_eq!(web[0]["Service"]["ID"], "web-2");
    let filtered: serde_json::Value = serde_json::from_str(&ok(
        &a,
        &["watch", "-type=services", "-filter=ServiceName == web"],
    ))
    .unwrap();
    assert_eq!(filtered, serde_json::json!({"web": ["v1", "v2"]}));

    let out = run(&a, &["watch"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.starts_with("Watch type must be specified\n\n")
            && out.stderr.contains("Usage: concord watch "),
        "{}",
        out.stderr
    );
    for (args, err) in [
        (
            &["watch", "-type=bogus"][..],
            "Unsupported watch type: bogus\n",
        ),
        (
            &["watch", "-type=key"][..],
            "Must specify a single key to watch\n",
        ),
        (
            &["watch", "-type=key", "-key=a", "-prefix=b"][..],
            "Invalid parameters: [prefix]\n",
        ),
        (
            &["watch", "-type=event", "-stale"][..],
            "Invalid parameters: [stale]\n",
        ),
        (
            &["watch", "-type=checks", "-service=web", "-state=passing"][..],
            "Cannot specify service and state\n",
        ),
        (
            &["watch", "-type=connect_roots"][..],
            "Type connect_roots is not supported in the CLI tool\n",
        ),
        (
            &[
                "watch",
                "-type=service",
                "-service=web",
                "-passingonly=maybe",
            ][..],
            "Failed to parse passingonly flag: strconv.ParseBool: parsing \"maybe\": invalid syntax\n",
        ),
    ] {
        let out = run(&a, args);
        assert_eq!((out.code, out.stderr.as_str()), (1, err), "{args:?}");
    }
    let port = common::free_port();
    let out = run(
        &a,
        &[
            "watch",
            "-type=nodes",
            &format!("-http-addr=127.0.0.1:{port}"),
        ],
    );
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.starts_with(&format!(
            "Error querying Consul agent: Get \"http://127.0.0.1:{port}/v1/status/leader\": "
        )),
        "{}",
        out.stderr
    );
}

/// The handler invocations a watch test's handler recorded, one per line.
fn handler_runs(file: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn watch_runs_the_handler_on_every_change_until_interrupted() {
    let a = Agent::dev();
    let dir = Agent::scratch("cli-watch");
    let file = dir.join("runs");
    // Each run appends `<CONSUL_INDEX> <stdin>` as one line.
    let handler = format!(
        "printf '%s ' \"$CONSUL_INDEX\" >> {0}; cat >> {0}",
        file.display()
    );
    ok(&a, &["kv", "put", "cfg", "one"]);
    let watch = spawn_concord(&a, &["watch", "-type=key", "-key=cfg", &handler]);
    wait_until("the first run", || handler_runs(&file).len() == 1);
    // The same value again changes nothing; another key neither.
    ok(&a, &["kv", "put", "cfg", "one"]);
    ok(&a, &["kv", "put", "other", "x"]);
    ok(&a, &["kv", "put", "cfg", "two"]);
    wait_until("the second run", || handler_runs(&file).len() == 2);
    std::thread::sleep(std::time::Duration::from_millis(300));
    interrupt(&watch);
    assert_eq!(watch.wait_with_output().unwrap().status.code(), Some(0));
    let runs = handler_runs(&file);
    assert_eq!(runs.len(), 2, "{runs:?}");
    let pair = a.get("/v1/kv/cfg").json();
    let (create, modify) = (
        pair[0]["CreateIndex"].as_u64().unwrap(),
        pair[0]["ModifyIndex"].as_u64().unwrap(),
    );
    assert_eq!(
        runs[1],
        format!(
            "{modify} {{\"Key\":\"cfg\",\"CreateIndex\":{create},\"ModifyIndex\":{modify},\
             \"LockIndex\":0,\"Flags\":0,\"Value\":\"dHdv\",\"Session\":\"\"}}"
        )
    );
    assert!(
        runs[0].starts_with(&format!("{create} {{\"Key\":\"cfg\"")),
        "{runs:?}"
    );

    // A failing handler ends the watch with exit 1.
    let out = run(&a, &["watch", "-type=key", "-key=cfg", "exit 4"]);
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (1, "Error executing handler: exit status 4\n")
    );

    // Events: only the new ones reach the handler, and other names do not wake it.
    let events = dir.join("events");
    let handler = format!("cat >> {}", events.display());
    let watch = spawn_concord(&a, &["watch", "-type=event", "-name=deploy", &handler]);
    wait_until("the first run", || handler_runs(&events).len() == 1);
    ok(&a, &["event", "-name=deploy", "one"]);
    wait_until("the second run", || handler_runs(&events).len() == 2);
    ok(&a, &["event", "-name=other", "x"]);
    ok(&a, &["event", "-name=deploy", "two"]);
    wait_until("the third run", || handler_runs(&events).len() == 3);
    std::thread::sleep(std::time::Duration::from_millis(300));
    interrupt(&watch);
    assert_eq!(watch.wait_with_output().unwrap().status.code(), Some(0));
    let runs: Vec<serde_json::Value> = handler_runs(&events)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(runs.len(), 3, "{runs:?}");
    assert_eq!(runs[0], serde_json::json!([]));
    let payloads: Vec<Vec<&str>> = runs[1..]
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|e| e["Payload"].as_str().unwrap())
                .collect()
        })
        .collect();
    // base64 of "one" and "two".
    assert_eq!(payloads, [vec!["b25l"], vec!["dHdv"]]);
    let _ = std::fs::remove_dir_all(dir);
}
