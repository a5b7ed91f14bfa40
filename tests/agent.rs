//! The agent's own services and checks, as Spring Cloud Consul and the Go client use
//! them: registration with HTTP and TTL checks, heartbeats, maintenance, deregistration,
//! config-file services and reload.

mod common;
use common::Agent;
use serde_json::json;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

/// A tiny HTTP server answering every request with the status held in `code`.
fn status_server(code: Arc<AtomicU16>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 2048];
            let _ = s.read(&mut buf);
            let c = code.load(Ordering::Relaxed);
            let _ = write!(
                s,
                "HTTP/1.1 {c} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
            );
        }
    });
    port
}

fn passing_count(a: &Agent, service: &str) -> usize {
    a.get(&format!("/v1/health/service/{service}?passing=true"))
        .json()
        .as_array()
        .unwrap()
        .len()
}

fn eventually(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < within, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn spring_style_lifecycle_http_and_ttl_checks() {
    let a = Agent::dev();
    let code = Arc::new(AtomicU16::new(200));
    let port = status_server(code.clone());
    let reg = json!({
        "ID": "app-8080", "Name": "app", "Tags": ["v1"], "Port": 8080,
        "Meta": {"secure": "false"}, "Checks": null, "EnableTagOverride": null,
        "Check": {"HTTP": format!("http://127.0.0.1:{port}/actuator/health"), "Interval": "1s",
                  "Timeout": null, "Header": {}, "TLSSkipVerify": null, "Args": null,
                  "DeregisterCriticalServiceAfter": null}
    });
    let r = a.put("/v1/agent/service/register", reg.to_string());
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.body.is_empty(), "agent writes answer with an empty body");
    let svc = a.get("/v1/agent/services").json();
    assert_eq!(svc["app-8080"]["Service"], "app");
    assert_eq!(svc["app-8080"]["Meta"]["secure"], "false");
    assert_eq!(
        svc["app-8080"]["Weights"],
        json!({"Passing": 1, "Warning": 1})
    );
    let checks = a.get("/v1/agent/checks").json();
    assert_eq!(checks["service:app-8080"]["Name"], "Service 'app' check");
    assert_eq!(checks["service:app-8080"]["Type"], "http");

    eventually("HTTP check passes", Duration::from_secs(8), || {
        passing_count(&a, "app") == 1
    });
    code.store(500, Ordering::Relaxed);
    eventually("a 500 makes it critical", Duration::from_secs(8), || {
        passing_count(&a, "app") == 0
    });
    code.store(429, Ordering::Relaxed);
    eventually("a 429 makes it warning", Duration::from_secs(8), || {
        a.get("/v1/agent/checks").json()["service:app-8080"]["Status"] == "warning"
    });
    assert_eq!(a.get("/v1/agent/health/service/id/app-8080").status, 429);
    code.store(200, Ordering::Relaxed);
    eventually("back to passing", Duration::from_secs(8), || {
        passing_count(&a, "app") == 1
    });
    assert_eq!(a.get("/v1/agent/health/service/name/app").status, 200);

    // Maintenance hides it; Spring looks for this check name.
    a.put(
        "/v1/agent/service/maintenance/app-8080?enable=true&reason=deploy",
        "",
    );
    eventually("maintenance hides it", Duration::from_secs(5), || {
        passing_count(&a, "app") == 0
    });
    let maint = a.get("/v1/health/checks/app").json();
    let m = maint
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["CheckID"] == "_service_maintenance:app-8080")
        .unwrap()
        .clone();
    assert_eq!(m["Name"], "Service Maintenance Mode");
    assert_eq!(m["Notes"], "deploy");
    assert_eq!(m["Status"], "critical");
    a.put("/v1/agent/service/maintenance/app-8080?enable=false", "");
    eventually("maintenance off", Duration::from_secs(5), || {
        passing_count(&a, "app") == 1
    });

    // A second instance with a TTL heartbeat.
    let ttl = json!({"ID": "app-9090", "Name": "app", "Port": 9090, "Check": {"TTL": "2s"}});
    assert_eq!(
        a.put("/v1/agent/service/register", ttl.to_string()).status,
        200
    );
    assert_eq!(
        a.get("/v1/agent/checks").json()["service:app-9090"]["Status"],
        "critical",
        "TTL checks start critical"
    );
    assert_eq!(
        a.put("/v1/agent/check/pass/service:app-9090", "").status,
        200
    );
    eventually("both pass", Duration::from_secs(5), || {
        passing_count(&a, "app") == 2
    });
    eventually(
        "TTL expires without heartbeats",
        Duration::from_secs(6),
        || passing_count(&a, "app") == 1,
    );
    let out = a.get("/v1/agent/checks").json()["service:app-9090"]["Output"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(out.starts_with("TTL expired"), "{out}");

    // Unknown IDs and bad statuses answer with Consul's codes and texts.
    let r = a.put("/v1/agent/check/pass/nope", "");
    assert_eq!(r.status, 404);
    assert_eq!(
        r.text(),
        "Unknown check ID \"nope\". Ensure that the check ID is passed, not the check name."
    );
    let r = a.put(
        "/v1/agent/check/update/service:app-9090",
        r#"{"Status":"fluffy"}"#,
    );
    assert_eq!(r.status, 400);
    let r = a.put(
        "/v1/agent/service/register",
        r#"{"Name":"x","Check":{"TTL":"nope"}}"#,
    );
    assert_eq!(r.status, 400);
    assert!(r.text().contains("invalid duration"), "{}", r.text());

    // Deregistration removes the instance and its checks from the catalog.
    assert_eq!(
        a.put("/v1/agent/service/deregister/app-8080", "").status,
        200
    );
    assert_eq!(
        a.put("/v1/agent/service/deregister/app-9090", "").status,
        200
    );
    eventually("gone from the catalog", Duration::from_secs(5), || {
        a.get("/v1/catalog/service/app").json() == json!([])
    });
    assert_eq!(
        a.put("/v1/agent/service/deregister/app-8080", "").status,
        404
    );
}

#[test]
fn anti_entropy_restores_a_service_removed_behind_the_agents_back() {
    let a = Agent::dev();
    a.put(
        "/v1/agent/service/register",
        r#"{"Name":"keeper","Port":1}"#,
    );
    eventually("synced", Duration::from_secs(5), || {
        a.get("/v1/catalog/service/keeper")
            .json()
            .as_array()
            .unwrap()
            .len()
            == 1
    });
    a.put(
        "/v1/catalog/deregister",
        json!({"Node": "it-node", "ServiceID": "keeper"}).to_string(),
    );
    // The periodic full sync runs every minute; a local change triggers one at once.
    a.put("/v1/agent/check/register", r#"{"Name":"poke","TTL":"1m"}"#);
    eventually("restored", Duration::from_secs(5), || {
        a.get("/v1/catalog/service/keeper")
            .json()
            .as_array()
            .unwrap()
            .len()
            == 1
    });
}

#[test]
fn config_file_services_and_reload() {
    let dir = Agent::scratch("cfg");
    let extra = dir.join("extra.json");
    std::fs::write(&extra, "").unwrap();
    let hcl = dir.join("svc.hcl");
    std::fs::write(
        &hcl,
        "service {\n  name = \"fromfile\"\n  port = 7000\n  tags = [\"hcl\"]\n}\n",
    )
    .unwrap();
    let a = Agent::start(
        vec![
            "-dev".into(),
            format!("-config-file={}", hcl.display()),
            format!("-config-file={}", extra.display()),
        ],
        Some(dir.clone()),
    );
    assert_eq!(
        a.get("/v1/agent/services").json()["fromfile"]["Tags"],
        json!(["hcl"])
    );
    std::fs::write(
        &extra,
        r#"{"service":{"name":"redis","port":1234,"Meta":{"some":"meta"}}}"#,
    )
    .unwrap();
    assert_eq!(a.put("/v1/agent/reload", "").status, 200);
    let svcs = a.get("/v1/agent/services").json();
    assert_eq!(svcs["redis"]["Port"], 1234);
    assert_eq!(svcs["redis"]["Meta"]["some"], "meta");
    assert!(svcs.get("fromfile").is_some());
}

#[test]
fn raft_timing_follows_raft_multiplier() {
    // Consul's defaults: multiplier 5 on a server, 1 under -dev; the base timing
    // is hashicorp/raft's (1s heartbeat and election timeout, 500ms lease).
    let timing = |a: &Agent| {
        let c = a.get("/v1/agent/self").json()["DebugConfig"].clone();
        (
            c["ConsulRaftHeartbeatTimeout"]
                .as_str()
                .unwrap()
                .to_string(),
            c["ConsulRaftElectionTimeout"].as_str().unwrap().to_string(),
            c["ConsulRaftLeaderLeaseTimeout"]
                .as_str()
                .unwrap()
                .to_string(),
        )
    };
    let dir = Agent::scratch("raft-mult");
    let server = Agent::server(&dir);
    assert_eq!(timing(&server), ("5s".into(), "5s".into(), "2.5s".into()));
    drop(server);
    let dev = Agent::dev();
    assert_eq!(timing(&dev), ("1s".into(), "1s".into(), "500ms".into()));
    drop(dev);
    let three = Agent::start(
        vec![
            "-dev".into(),
            "-hcl=performance { raft_multiplier = 3 }".into(),
        ],
        None,
    );
    assert_eq!(timing(&three), ("3s".into(), "3s".into(), "1.5s".into()));
}
