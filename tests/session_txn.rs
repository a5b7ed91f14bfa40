//! Sessions and transactions against the real binary.

mod common;
use common::Agent;
use serde_json::json;
use std::time::{Duration, Instant};

#[test]
fn session_defaults_info_renew_destroy() {
    let a = Agent::dev();
    let id = a.put("/v1/session/create", "").json()["ID"]
        .as_str()
        .unwrap()
        .to_string();
    let r = a.get(&format!("/v1/session/info/{id}"));
    assert_eq!(r.header("X-Consul-KnownLeader").as_deref(), Some("true"));
    let s = &r.json()[0];
    assert_eq!(s["Node"], "it-node");
    assert_eq!(s["LockDelay"], 15_000_000_000u64);
    assert_eq!(s["Behavior"], "release");
    assert_eq!(s["NodeChecks"], json!(["serfHealth"]));
    assert_eq!(s["TTL"], "");
    assert_eq!(
        a.get("/v1/session/list").json().as_array().unwrap().len(),
        1
    );
    assert_eq!(
        a.get("/v1/session/node/it-node")
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        a.put(&format!("/v1/session/renew/{id}"), "").json()[0]["ID"],
        id.as_str()
    );
    assert_eq!(a.put(&format!("/v1/session/destroy/{id}"), "").json(), true);
    assert_eq!(a.get(&format!("/v1/session/info/{id}")).json(), json!([]));
    let r = a.put(&format!("/v1/session/renew/{id}"), "");
    assert_eq!(r.status, 404);
    assert_eq!(r.text(), format!("Session id '{id}' not found"));
    // No checks at all when asked for an empty list.
    let id = a.put("/v1/session/create", r#"{"Checks":[]}"#).json()["ID"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        a.get(&format!("/v1/session/info/{id}")).json()[0]["NodeChecks"],
        json!([])
    );
}

#[test]
fn session_validation_errors() {
    let a = Agent::dev();
    let r = a.put("/v1/session/create", r#"{"TTL":"5s"}"#);
    assert_eq!(r.status, 500);
    assert_eq!(
        r.text(),
        "Invalid Session TTL '5000000000', must be between [10s=24h0m0s]"
    );
    let r = a.put("/v1/session/create", r#"{"Behavior":"explode"}"#);
    assert_eq!(r.status, 500);
    let r = a.put("/v1/session/create", r#"{"Node":"ghost"}"#);
    assert_eq!(r.status, 500);
    assert!(
        r.text().starts_with("Missing node registration"),
        "{}",
        r.text()
    );
    let r = a.put("/v1/session/create", r#"{"Bogus":1}"#);
    assert_eq!(r.status, 400);
    assert_eq!(
        r.text(),
        "Request decode failed: json: unknown field \"Bogus\""
    );
}

#[test]
fn ttl_session_expires_and_delete_behaviour_removes_keys() {
    let a = Agent::start(
        vec!["-dev".into(), "-hcl=session_ttl_min = \"1s\"".into()],
        None,
    );
    let id = a
        .put(
            "/v1/session/create",
            r#"{"TTL":"1s","Behavior":"delete","LockDelay":0}"#,
        )
        .json()["ID"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(a.put(&format!("/v1/kv/eph?acquire={id}"), "x").json(), true);
    let start = Instant::now();
    loop {
        if a.get(&format!("/v1/session/info/{id}")).json() == json!([]) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(6),
            "session not reaped"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        start.elapsed() >= Duration::from_millis(900),
        "reaped before its TTL"
    );
    assert_eq!(
        a.get("/v1/kv/eph").status,
        404,
        "delete behaviour removed the key"
    );
}

#[test]
fn txn_success_rollback_and_limits() {
    let a = Agent::dev();
    let ok = json!([
        {"KV": {"Verb": "set", "Key": "t/a", "Value": "MQ=="}},
        {"KV": {"Verb": "get", "Key": "t/a"}},
    ]);
    let r = a.put("/v1/txn", ok.to_string());
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert!(v["Errors"].is_null());
    assert_eq!(v["Results"][0]["KV"]["Value"], serde_json::Value::Null);
    assert_eq!(v["Results"][1]["KV"]["Value"], "MQ==");

    let bad = json!([
        {"KV": {"Verb": "set", "Key": "t/b", "Value": "Mg=="}},
        {"KV": {"Verb": "lock", "Key": "t/c"}},
        {"KV": {"Verb": "get", "Key": "t/missing"}},
    ]);
    let r = a.put("/v1/txn", bad.to_string());
    assert_eq!(r.status, 409);
    let v = r.json();
    assert!(v["Results"].is_null());
    assert_eq!(v["Errors"][0]["OpIndex"], 1);
    assert!(
        v["Errors"][0]["What"]
            .as_str()
            .unwrap()
            .contains("missing session")
    );
    assert!(
        v["Errors"][1]["What"]
            .as_str()
            .unwrap()
            .contains("doesn't exist")
    );
    assert_eq!(a.get("/v1/kv/t/b").status, 404, "rolled back");

    // Read-only transactions skip Raft and carry only the leader headers.
    let r = a.put(
        "/v1/txn",
        json!([{"KV": {"Verb": "get", "Key": "t/a"}}]).to_string(),
    );
    assert_eq!(r.status, 200);
    assert!(r.header("X-Consul-KnownLeader").is_some());
    assert!(r.header("X-Consul-Index").is_none());

    let many: Vec<_> = (0..129)
        .map(|i| json!({"KV": {"Verb": "set", "Key": format!("m/{i}")}}))
        .collect();
    let r = a.put("/v1/txn", serde_json::Value::Array(many).to_string());
    assert_eq!(r.status, 413);
    assert_eq!(
        r.text(),
        "Transaction contains too many operations (129 > 128)"
    );
    let r = a.put("/v1/txn", "{not json");
    assert_eq!(r.status, 400);
    assert!(r.text().starts_with("Failed to parse body"));
}

#[test]
fn txn_catalog_ops() {
    let a = Agent::dev();
    let ops = json!([
        {"Node": {"Verb": "set", "Node": {"Node": "tn", "Address": "10.0.0.9"}}},
        {"Service": {"Verb": "set", "Node": "tn", "Service": {"ID": "web1", "Service": "web", "Port": 80}}},
        {"Check": {"Verb": "set", "Check": {"Node": "tn", "CheckID": "c1", "Name": "c1", "Status": "passing", "ServiceID": "web1"}}},
    ]);
    let r = a.put("/v1/txn", ops.to_string());
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["Results"][0]["Node"]["Node"], "tn");
    assert_eq!(v["Results"][1]["Service"]["ID"], "web1");
    assert_eq!(v["Results"][2]["Check"]["ServiceName"], "web");
    let h = a.get("/v1/health/service/web?passing").json();
    assert_eq!(h.as_array().unwrap().len(), 1);
    let r = a.put(
        "/v1/txn",
        json!([{"Node": {"Verb": "get", "Node": {"Node": "nobody"}}}]).to_string(),
    );
    assert_eq!(r.status, 409);
    assert_eq!(
        r.json()["Errors"][0]["What"],
        "node \"nobody\" doesn't exist"
    );
}
