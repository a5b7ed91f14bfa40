//! Names of any length and names with NUL bytes, end to end against a durable
//! server: KV keys, txn keys, node names, service and check IDs of 511 bytes up to
//! 512 KiB are stored, listed, deleted and survive a restart (LMDB itself refuses
//! keys over 511 bytes), and no two names meet on one storage key.

mod common;
use common::Agent;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::json;

/// The sizes the hardening issue names, around and far past LMDB's key limit.
const SIZES: [usize; 5] = [511, 512, 4 << 10, 64 << 10, 512 << 10];

/// A name of `len` bytes under `prefix`, distinct per size.
fn name(prefix: &str, len: usize) -> String {
    let mut s = format!("{prefix}{len}-");
    while s.len() < len {
        s.push(char::from(b'a' + (s.len() % 26) as u8));
    }
    s.truncate(len);
    s
}

/// Lengths stand in for names in failure messages (the names are huge).
fn lens(names: &[&str]) -> Vec<usize> {
    names.iter().map(|n| n.len()).collect()
}

/// Sends one raw HTTP/1.1 request and returns the whole answer.
fn raw(a: &Agent, request: &str) -> String {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", a.port)).unwrap();
    conn.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    answer
}

fn txn_set(a: &Agent, key: &str, value: &str) -> common::Resp {
    a.put(
        "/v1/txn",
        json!([{"KV": {"Verb": "set", "Key": key, "Value": B64.encode(value)}}]).to_string(),
    )
}

#[test]
fn long_kv_and_txn_keys_work_and_survive_a_restart() {
    let dir = Agent::scratch("long-kv");
    // A 512 KiB key does not fit Consul's default transaction size either.
    let mut a = Agent::server_with(&dir, &["-hcl=limits { txn_max_req_len = 2097152 }"]);
    for len in SIZES {
        // Through the txn endpoint (body), every size.
        let key = name("t/", len);
        let r = txn_set(&a, &key, &format!("v{len}"));
        assert_eq!(r.status, 200, "txn set {len}: {}", r.text());
        // Through the URL, up to what the test's HTTP client puts in one (its URIs
        // stop short of 64 KiB).
        if len <= 4 << 10 {
            let key = name("u/", len);
            let r = a.put(&format!("/v1/kv/{key}"), format!("u{len}"));
            assert_eq!(r.status, 200, "kv put {len}: {}", r.text());
            assert_eq!(
                a.get(&format!("/v1/kv/{key}?raw")).text(),
                format!("u{len}")
            );
        }
    }
    let check = |a: &Agent| {
        let listed = a.get("/v1/kv/t/?recurse").json();
        let keys: Vec<&str> = listed
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["Key"].as_str().unwrap())
            .collect();
        let mut want: Vec<String> = SIZES.iter().map(|n| name("t/", *n)).collect();
        want.sort();
        assert!(keys == want, "recurse, lengths {:?}", lens(&keys));
        let listed = a.get("/v1/kv/t/?keys").json();
        assert!(
            listed == json!(want),
            "keys, {} entries",
            listed.as_array().map_or(0, Vec::len)
        );
        // A prefix longer than what long keys keep of themselves.
        let long = name("t/", 4 << 10);
        let r = a.get(&format!("/v1/kv/{}?recurse", &long[..1000]));
        assert_eq!(r.status, 200);
        let only = r.json();
        assert_eq!(only.as_array().unwrap().len(), 1);
        assert_eq!(only[0]["Key"], json!(long));
        let txn = a.put(
            "/v1/txn",
            json!([{"KV": {"Verb": "get", "Key": name("t/", 512 << 10)}}]).to_string(),
        );
        assert_eq!(txn.status, 200, "{}", txn.text());
        let v = txn.json()["Results"][0]["KV"]["Value"].clone();
        assert_eq!(v, json!(B64.encode(format!("v{}", 512 << 10))));
    };
    // A URL longer than the 64 KiB the `http` crate's URIs hold is refused before
    // anything is proposed (414; Consul reads request heads up to 1 MiB). Such keys
    // go through /v1/txn, as above.
    let key = name("u/", 512 << 10);
    let put = format!(
        "PUT /v1/kv/{key} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
    );
    assert!(raw(&a, &put).starts_with("HTTP/1.1 414"));
    // Headers, though, may fill Go's 1 MiB request head.
    let big_header = format!(
        "GET /v1/kv/t/?keys HTTP/1.1\r\nHost: x\r\nX-Filler: {}\r\nConnection: close\r\n\r\n",
        "f".repeat(900 << 10)
    );
    assert!(raw(&a, &big_header).starts_with("HTTP/1.1 200"));
    check(&a);
    a.restart();
    check(&a);

    // Deletes, single and by prefix, leave the short keys alone.
    a.put("/v1/kv/t/short", "s");
    let long = name("t/", 4 << 10);
    assert_eq!(a.delete(&format!("/v1/kv/{long}")).status, 200);
    assert_eq!(a.get(&format!("/v1/kv/{long}")).status, 404);
    assert_eq!(
        a.delete(&format!("/v1/kv/{}?recurse", &long[..600])).status,
        200
    );
    let left = a.get("/v1/kv/t/?keys").json();
    assert_eq!(left.as_array().unwrap().len(), SIZES.len());
    assert!(left.as_array().unwrap().contains(&json!("t/short")));
    // The server still takes writes.
    assert_eq!(a.put("/v1/kv/after", "ok").status, 200);
}

#[test]
fn long_node_service_and_check_names_work_and_survive_a_restart() {
    let dir = Agent::scratch("long-catalog");
    let mut a = Agent::server(&dir);
    for len in SIZES {
        let node = name("node-", len);
        let reg = json!({
            "Node": node,
            "Address": "10.0.0.1",
            "Service": {"ID": name("svc-", len), "Service": "web", "Port": 80},
            "Checks": [{"CheckID": name("chk-", len), "Name": "c", "Status": "passing",
                        "ServiceID": name("svc-", len)}],
        });
        let r = a.put("/v1/catalog/register", reg.to_string());
        assert_eq!(r.status, 200, "catalog register {len}: {}", r.text());
        // Through the agent: anti-entropy pushes it to the catalog.
        let r = a.put(
            "/v1/agent/service/register",
            json!({"ID": name("agent-svc-", len), "Name": "api", "Port": 81,
                   "Check": {"CheckID": name("agent-chk-", len), "TTL": "30s"}})
            .to_string(),
        );
        assert_eq!(r.status, 200, "agent register {len}: {}", r.text());
    }
    let check = |a: &Agent| {
        let web = a.get("/v1/health/service/web").json();
        assert_eq!(web.as_array().unwrap().len(), SIZES.len());
        for inst in web.as_array().unwrap() {
            assert_eq!(inst["Checks"].as_array().unwrap().len(), 1);
        }
        let nodes = a.get("/v1/catalog/nodes").json();
        let names: Vec<&str> = nodes
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["Node"].as_str().unwrap())
            .collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert!(names == sorted, "nodes in name order: {:?}", lens(&names));
        assert_eq!(names.len(), SIZES.len() + 1, "{:?}", lens(&names));
        let big = name("node-", 4 << 10);
        let r = a.get(&format!("/v1/catalog/node/{big}"));
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["Node"]["Node"], json!(big));
        // The agent's own services reached the catalog.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let api = a.get("/v1/catalog/service/api").json();
            if api.as_array().unwrap().len() == SIZES.len() {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "api instances: {}",
                api.as_array().unwrap().len()
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    };
    check(&a);
    a.restart();
    check(&a);
    // Deregistration by long names.
    let node = name("node-", 512 << 10);
    let r = a.put(
        "/v1/catalog/deregister",
        json!({"Node": node, "ServiceID": name("svc-", 512 << 10)}).to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let web = a.get("/v1/health/service/web").json();
    assert_eq!(web.as_array().unwrap().len(), SIZES.len() - 1);
    let r = a.put("/v1/catalog/deregister", json!({"Node": node}).to_string());
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        a.get(&format!("/v1/catalog/node/{}", name("node-", 4 << 10)))
            .status,
        200
    );
    assert_eq!(a.put("/v1/kv/after", "ok").status, 200);
}

#[test]
fn names_with_nul_bytes_do_not_meet_other_names() {
    let a = Agent::dev();
    let register = |node: &str, svc: &str| {
        let r = a.put(
            "/v1/catalog/register",
            json!({"Node": node, "Address": "10.0.0.2",
                   "Service": {"ID": svc, "Service": svc}})
            .to_string(),
        );
        assert_eq!(r.status, 200, "{}", r.text());
    };
    register("a", "plain");
    register("a\u{0}evil", "evil");
    let services = |node: &str| -> Vec<String> {
        let r = a.get(&format!("/v1/catalog/node-services/{node}"));
        assert_eq!(r.status, 200, "{node}: {}", r.text());
        r.json()["Services"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["ID"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(services("a"), vec!["plain"]);
    assert_eq!(services("a%00evil"), vec!["evil"]);
    // Deregistering `a` leaves the other node and its service alone.
    let r = a.put("/v1/catalog/deregister", json!({"Node": "a"}).to_string());
    assert_eq!(r.status, 200);
    assert_eq!(services("a%00evil"), vec!["evil"]);
    let evil = a.get("/v1/catalog/service/evil").json();
    assert_eq!(evil.as_array().unwrap().len(), 1);
    assert_eq!(evil[0]["Node"], json!("a\u{0}evil"));
    // KV keys with NUL bytes are keys like any other.
    assert_eq!(a.put("/v1/kv/k%00x", "1").status, 200);
    assert_eq!(a.put("/v1/kv/k", "2").status, 200);
    assert_eq!(a.get("/v1/kv/k%00x?raw").text(), "1");
    assert_eq!(a.get("/v1/kv/k?raw").text(), "2");
}
