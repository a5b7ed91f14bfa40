//! The agent's own state over time: API registrations and TTL statuses across a
//! restart, re-registration with `EnableTagOverride`, IDs holding `/` on every
//! agent path, SIGHUP as a reload, and `retry_join` with names that do not resolve.

mod common;
use common::Agent;
use serde_json::{Value, json};
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn eventually(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < within, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn catalog_service(a: &Agent, name: &str) -> Vec<Value> {
    a.get(&format!("/v1/catalog/service/{name}"))
        .json()
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn local_check(a: &Agent, id: &str) -> Value {
    a.get("/v1/agent/checks").json()[id].clone()
}

fn catalog_check_status(a: &Agent, id: &str) -> Option<String> {
    a.get("/v1/health/node/it-node")
        .json()
        .as_array()?
        .iter()
        .find(|c| c["CheckID"] == id)
        .map(|c| c["Status"].as_str().unwrap_or_default().to_string())
}

#[test]
fn api_registrations_and_ttl_status_survive_a_restart() {
    let dir = Agent::scratch("state");
    let mut a = Agent::server(&dir);
    let reg = json!({
        "ID": "web/1", "Name": "web", "Tags": ["v1"], "Port": 80, "Token": "svc-token",
        "Check": {"CheckID": "web/ttl", "TTL": "10m"}
    });
    assert_eq!(
        a.put("/v1/agent/service/register", reg.to_string()).status,
        200
    );
    a.put(
        "/v1/agent/service/register",
        r#"{"ID":"gone","Name":"gone"}"#,
    );
    assert_eq!(a.put("/v1/agent/service/deregister/gone", "").status, 200);
    a.put(
        "/v1/agent/check/register",
        r#"{"ID":"node-ttl","Name":"node ttl","TTL":"10m"}"#,
    );
    a.put(
        "/v1/agent/check/register",
        r#"{"ID":"short-ttl","Name":"short","TTL":"2s"}"#,
    );
    assert_eq!(
        a.put("/v1/agent/check/pass/web/ttl?note=fine", "").status,
        200
    );
    assert_eq!(a.put("/v1/agent/check/warn/node-ttl", "").status, 200);
    assert_eq!(a.put("/v1/agent/check/pass/short-ttl", "").status, 200);
    // Node-wide maintenance is kept too.
    assert_eq!(
        a.put("/v1/agent/maintenance?enable=true&reason=later", "")
            .status,
        200
    );
    eventually("synced", Duration::from_secs(5), || {
        catalog_check_status(&a, "web/ttl").as_deref() == Some("passing")
    });

    a.kill9();
    // Long enough for the 2s TTL pushed before the stop to run out.
    std::thread::sleep(Duration::from_secs(3));
    a.restart();

    let services = a.get("/v1/agent/services").json();
    assert_eq!(services["web/1"]["Tags"], json!(["v1"]), "{services}");
    assert_eq!(services["web/1"]["Port"], 80);
    assert!(services.get("gone").is_none(), "{services}");
    let web = local_check(&a, "web/ttl");
    assert_eq!(web["Status"], "passing", "{web}");
    assert_eq!(web["Output"], "fine");
    assert_eq!(web["ServiceID"], "web/1");
    assert_eq!(local_check(&a, "node-ttl")["Status"], "warning");
    // Its kept status ran out while the agent was down: back to critical.
    assert_eq!(local_check(&a, "short-ttl")["Status"], "critical");
    let maint = local_check(&a, "_node_maintenance");
    assert_eq!(maint["Notes"], "later", "{maint}");

    // Anti-entropy keeps them in the catalog (it ran at start).
    std::thread::sleep(Duration::from_secs(1));
    eventually("in the catalog", Duration::from_secs(5), || {
        catalog_service(&a, "web").len() == 1
            && catalog_check_status(&a, "web/ttl").as_deref() == Some("passing")
    });
    assert!(catalog_service(&a, "gone").is_empty());

    // Deregistered, they stay gone after the next restart.
    assert_eq!(a.put("/v1/agent/service/deregister/web/1", "").status, 200);
    assert_eq!(a.put("/v1/agent/maintenance?enable=false", "").status, 200);
    a.restart();
    let services = a.get("/v1/agent/services").json();
    assert!(services.get("web/1").is_none(), "{services}");
    let checks = a.get("/v1/agent/checks").json();
    assert!(checks.get("web/ttl").is_none(), "{checks}");
    assert!(checks.get("_node_maintenance").is_none(), "{checks}");
    assert!(checks.get("node-ttl").is_some(), "{checks}");
}

#[test]
fn a_corrupt_state_file_does_not_stop_the_agent() {
    let dir = Agent::scratch("corrupt");
    let mut a = Agent::server(&dir);
    a.put(
        "/v1/agent/service/register",
        r#"{"ID":"keep","Name":"keep"}"#,
    );
    a.kill9();
    for sub in ["services", "checks", "checks/state"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
        std::fs::write(dir.join(sub).join("garbage"), b"{\"Service\":").unwrap();
    }
    a.restart();
    let services = a.get("/v1/agent/services").json();
    assert!(services.get("keep").is_some(), "{services}");
}

#[test]
fn config_file_services_are_not_kept_and_win_over_kept_ones() {
    let dir = Agent::scratch("cfgwins");
    let conf = dir.join("conf");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::write(
        conf.join("svc.json"),
        r#"{"service":{"id":"both","name":"fromfile","port":1}}"#,
    )
    .unwrap();
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let mut a = Agent::start(
        vec![
            "-server".into(),
            "-bootstrap-expect=1".into(),
            format!("-data-dir={}", data.display()),
            format!("-config-dir={}", conf.display()),
        ],
        Some(dir.clone()),
    );
    // The API replaces the config's definition for now...
    a.put(
        "/v1/agent/service/register",
        r#"{"ID":"both","Name":"fromapi","Port":2}"#,
    );
    assert_eq!(a.get("/v1/agent/services").json()["both"]["Port"], 2);
    a.restart();
    // ...but after a restart the config file's definition is the one in force.
    let services = a.get("/v1/agent/services").json();
    assert_eq!(services["both"]["Service"], "fromfile", "{services}");
    assert_eq!(
        std::fs::read_dir(data.join("services"))
            .map(|d| d.count())
            .unwrap_or(0),
        0
    );
}

#[test]
fn re_registering_with_enable_tag_override_pushes_the_new_tags() {
    let a = Agent::dev();
    let reg = |tags: Value| {
        json!({"ID": "ovr", "Name": "ovr", "Port": 1, "EnableTagOverride": true, "Tags": tags})
            .to_string()
    };
    assert_eq!(
        a.put("/v1/agent/service/register", reg(json!(["a"])))
            .status,
        200
    );
    eventually("synced", Duration::from_secs(5), || {
        catalog_service(&a, "ovr")
            .first()
            .is_some_and(|s| s["ServiceTags"] == json!(["a"]))
    });
    assert_eq!(
        a.put("/v1/agent/service/register", reg(json!(["b"])))
            .status,
        200
    );
    // The write was synced before it was answered; give later passes a moment too.
    std::thread::sleep(Duration::from_millis(500));
    a.put("/v1/agent/check/register", r#"{"Name":"poke","TTL":"1m"}"#);
    std::thread::sleep(Duration::from_millis(500));
    let tags = catalog_service(&a, "ovr")[0]["ServiceTags"].clone();
    assert_eq!(tags, json!(["b"]));
    assert_eq!(a.get("/v1/agent/service/ovr").json()["Tags"], json!(["b"]));

    // An edit made in the catalog still wins over the synced local definition.
    let edit = json!({
        "Node": "it-node", "Address": "127.0.0.1", "SkipNodeUpdate": true,
        "Service": {"ID": "ovr", "Service": "ovr", "Port": 1, "Tags": ["c"], "EnableTagOverride": true}
    });
    assert_eq!(a.put("/v1/catalog/register", edit.to_string()).status, 200);
    a.put("/v1/agent/check/register", r#"{"Name":"poke2","TTL":"1m"}"#);
    eventually("adopted", Duration::from_secs(5), || {
        a.get("/v1/agent/service/ovr").json()["Tags"] == json!(["c"])
    });
    assert_eq!(catalog_service(&a, "ovr")[0]["ServiceTags"], json!(["c"]));
}

#[test]
fn ids_with_slashes_work_on_every_agent_path() {
    let a = Agent::dev();
    let reg = json!({
        "ID": "a/b", "Name": "n/s", "Port": 1,
        "Check": {"CheckID": "test/chk", "TTL": "10m"}
    });
    assert_eq!(
        a.put("/v1/agent/service/register", reg.to_string()).status,
        200
    );
    let svc = a.get("/v1/agent/service/a/b");
    assert_eq!(svc.status, 200, "{}", svc.text());
    assert_eq!(svc.json()["ID"], "a/b");
    for (path, status) in [
        ("/v1/agent/check/pass/test/chk", "passing"),
        ("/v1/agent/check/warn/test/chk", "warning"),
        ("/v1/agent/check/fail/test/chk", "critical"),
    ] {
        let r = a.put(path, "");
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert_eq!(local_check(&a, "test/chk")["Status"], status, "{path}");
    }
    let r = a.put(
        "/v1/agent/check/update/test/chk",
        r#"{"Status":"passing","Output":"up"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(local_check(&a, "test/chk")["Output"], "up");
    let r = a.get("/v1/agent/health/service/id/a/b");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["Service"]["ID"], "a/b");
    let r = a.get("/v1/agent/health/service/name/n/s?format=text");
    assert_eq!((r.status, r.text()), (200, "passing".to_string()));

    let r = a.put("/v1/agent/service/maintenance/a/b?enable=true", "");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        local_check(&a, "_service_maintenance:a/b")["ServiceID"],
        "a/b"
    );
    assert_eq!(
        a.put("/v1/agent/service/maintenance/a/b?enable=false", "")
            .status,
        200
    );
    assert!(local_check(&a, "_service_maintenance:a/b").is_null());

    let r = a.put("/v1/agent/check/deregister/test/chk", "");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(local_check(&a, "test/chk").is_null());
    let r = a.put("/v1/agent/service/deregister/a/b", "");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(a.get("/v1/agent/services").json().get("a/b").is_none());
    // Unknown IDs with slashes get Consul's 404s.
    assert_eq!(a.get("/v1/agent/service/a/b").status, 404);
    assert_eq!(a.put("/v1/agent/check/pass/x/y", "").status, 404);
}

#[test]
fn sighup_reloads_the_configuration_and_the_agent_stays_up() {
    let dir = Agent::scratch("hup");
    let a = Agent::start(
        vec!["-dev".into(), format!("-config-dir={}", dir.display())],
        Some(dir.clone()),
    );
    std::fs::write(
        dir.join("late.json"),
        r#"{"service":{"name":"late","port":4242}}"#,
    )
    .unwrap();
    a.signal(1);
    eventually("reloaded", Duration::from_secs(10), || {
        a.try_get("/v1/agent/services")
            .is_some_and(|r| r.json()["late"]["Port"] == 4242)
    });
    // A second one (a broken file: the reload fails) leaves it running as it was.
    std::fs::write(dir.join("broken.json"), "{").unwrap();
    a.signal(1);
    std::thread::sleep(Duration::from_millis(500));
    let r = a.get("/v1/agent/services");
    assert_eq!(r.json()["late"]["Port"], 4242);
}

/// Runs `concord agent` with `args` on fresh ports and returns its exit status
/// (None if it still ran after `within`) and everything it logged.
fn run_agent(args: &[String], within: Duration) -> (Option<i32>, String) {
    let data = Agent::scratch("join");
    let mut child = Command::new(env!("CARGO_BIN_EXE_concord"))
        .arg("agent")
        .args([
            "-dev".to_string(),
            "-bind=127.0.0.1".into(),
            "-client=127.0.0.1".into(),
            format!("-http-port={}", common::free_port()),
            "-dns-port=-1".into(),
            "-grpc-port=-1".into(),
            format!("-server-port={}", common::free_port()),
            format!("-serf-lan-port={}", common::free_port()),
            "-serf-wan-port=-1".into(),
            "-log-level=info".into(),
        ])
        .args(args)
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + within;
    let status = loop {
        if let Ok(Some(st)) = child.try_wait() {
            break st.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = reader.join().unwrap();
    let _ = std::fs::remove_dir_all(data);
    (status, log)
}

#[test]
fn retry_join_retries_a_name_that_does_not_resolve_until_retry_max() {
    let (status, log) = run_agent(
        &[
            "-retry-join=concord-no-such-host.invalid".into(),
            "-retry-interval=200ms".into(),
            "-retry-max=2".into(),
        ],
        Duration::from_secs(20),
    );
    assert!(!log.contains("Join cluster completed"), "{log}");
    // The first attempt and two retries fail; the warning comes before each retry.
    assert_eq!(
        log.matches("Join cluster failed, will retry").count(),
        2,
        "{log}"
    );
    assert!(
        log.contains("Failed to resolve concord-no-such-host.invalid"),
        "{log}"
    );
    assert!(
        log.contains("agent: max join LAN retry exhausted, exiting"),
        "{log}"
    );
    assert_eq!(status, Some(1), "{log}");
}

#[test]
fn retry_join_joins_through_the_names_that_resolve() {
    let server = Agent::dev();
    let serf_port = server.get("/v1/agent/self").json()["Member"]["Port"]
        .as_u64()
        .unwrap();
    let client = Agent::start_at(
        "127.0.7.2",
        "joiner",
        vec![
            "-retry-join=concord-no-such-host.invalid".into(),
            format!("-retry-join=localhost:{serf_port}"),
        ],
        Agent::scratch("joiner"),
    );
    eventually("joined", Duration::from_secs(15), || {
        server
            .get("/v1/agent/members")
            .json()
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m["Name"] == "joiner"))
    });
    drop(client);
}
