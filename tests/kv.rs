//! KV over HTTP against the real binary: Consul's shapes, flags, CAS, locks, limits.

mod common;
use common::Agent;

#[test]
fn put_get_roundtrip_with_consul_shape_and_headers() {
    let a = Agent::dev();
    let r = a.put("/v1/kv/app/config?flags=42", "hello");
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), true);
    let r = a.get("/v1/kv/app/config");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("Content-Type").as_deref(),
        Some("application/json")
    );
    assert_eq!(r.header("X-Consul-KnownLeader").as_deref(), Some("true"));
    assert_eq!(r.header("X-Consul-LastContact").as_deref(), Some("0"));
    assert!(
        r.header("X-Consul-Effective-Consistency").is_none(),
        "KV leaves it out"
    );
    let v = r.json();
    let e = &v[0];
    assert_eq!(e["Key"], "app/config");
    assert_eq!(e["Flags"], 42);
    assert_eq!(e["Value"], "aGVsbG8=");
    assert_eq!(e["LockIndex"], 0);
    assert!(e.get("Session").is_none());
    assert_eq!(e["CreateIndex"], e["ModifyIndex"]);
    assert_eq!(r.index(), e["ModifyIndex"].as_u64().unwrap());

    let raw = a.get("/v1/kv/app/config?raw");
    assert_eq!(raw.text(), "hello");
    assert_eq!(raw.header("Content-Type").as_deref(), Some("text/plain"));

    // A PUT without ?flags resets them; an empty body stores null.
    a.put("/v1/kv/app/config", "");
    let e = &a.get("/v1/kv/app/config").json()[0];
    assert_eq!(e["Flags"], 0);
    assert!(e["Value"].is_null());
}

#[test]
fn missing_key_is_404_with_index_and_empty_body() {
    let a = Agent::dev();
    let r = a.get("/v1/kv/nope");
    assert_eq!(r.status, 404);
    assert!(r.body.is_empty());
    assert!(r.index() >= 1);
    assert_eq!(r.header("X-Consul-KnownLeader").as_deref(), Some("true"));
}

#[test]
fn recurse_keys_and_separator() {
    let a = Agent::dev();
    for k in ["web/a", "web/b/c", "web/b/d", "webx", "other"] {
        a.put(&format!("/v1/kv/{k}"), "v");
    }
    let r = a.get("/v1/kv/web?recurse");
    let keys: Vec<String> = r
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["Key"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        keys,
        vec!["web/a", "web/b/c", "web/b/d", "webx"],
        "string prefix, not path"
    );
    let r = a.get("/v1/kv/web/?keys&separator=/");
    assert_eq!(r.json(), serde_json::json!(["web/a", "web/b/"]));
    let r = a.get("/v1/kv/?keys");
    assert_eq!(r.json().as_array().unwrap().len(), 5);
    assert_eq!(a.get("/v1/kv/zzz?keys").status, 404);
    assert_eq!(a.get("/v1/kv/zzz?recurse").status, 404);
    let r = a.delete("/v1/kv/web/b?recurse");
    assert_eq!(r.json(), true);
    assert_eq!(
        a.get("/v1/kv/web?recurse").json().as_array().unwrap().len(),
        2
    );
}

#[test]
fn cas_delete_cas_and_identical_writes() {
    let a = Agent::dev();
    assert_eq!(a.put("/v1/kv/c?cas=0", "1").json(), true);
    assert_eq!(a.put("/v1/kv/c?cas=0", "2").json(), false);
    let idx = a.get("/v1/kv/c").json()[0]["ModifyIndex"].as_u64().unwrap();
    assert_eq!(
        a.put(&format!("/v1/kv/c?cas={}", idx + 100), "2").json(),
        false
    );
    assert_eq!(a.put(&format!("/v1/kv/c?cas={idx}"), "2").json(), true);
    let idx2 = a.get("/v1/kv/c").json()[0]["ModifyIndex"].as_u64().unwrap();
    assert!(idx2 > idx);
    // The same content again: no new index.
    a.put("/v1/kv/c", "2");
    assert_eq!(
        a.get("/v1/kv/c").json()[0]["ModifyIndex"].as_u64().unwrap(),
        idx2
    );
    assert_eq!(
        a.delete(&format!("/v1/kv/c?cas={}", idx2 + 1)).json(),
        false
    );
    assert_eq!(a.delete(&format!("/v1/kv/c?cas={idx2}")).json(), true);
    assert_eq!(a.delete("/v1/kv/never-existed?cas=9").json(), true);
}

#[test]
fn acquire_release_lock_index_and_lock_delay() {
    let a = Agent::dev();
    let s1 = a.put("/v1/session/create", r#"{"LockDelay":"2s"}"#).json()["ID"]
        .as_str()
        .unwrap()
        .to_string();
    let s2 = a.put("/v1/session/create", "").json()["ID"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        a.put(&format!("/v1/kv/lock?acquire={s1}"), "me").json(),
        true
    );
    let e = a.get("/v1/kv/lock").json()[0].clone();
    assert_eq!(e["LockIndex"], 1);
    assert_eq!(e["Session"], s1.as_str());
    assert_eq!(
        a.put(&format!("/v1/kv/lock?acquire={s2}"), "you").json(),
        false
    );
    assert_eq!(
        a.put(&format!("/v1/kv/lock?release={s2}"), "").json(),
        false
    );
    assert_eq!(
        a.put(&format!("/v1/kv/lock?release={s1}"), "bye").json(),
        true
    );
    let e = a.get("/v1/kv/lock").json()[0].clone();
    assert!(e.get("Session").is_none());
    assert_eq!(e["LockIndex"], 1);
    assert_eq!(e["Value"], "Ynll");
    // Destroying a holder starts its lock delay on the key.
    assert_eq!(a.put(&format!("/v1/kv/lock?acquire={s1}"), "").json(), true);
    assert_eq!(a.put(&format!("/v1/session/destroy/{s1}"), "").json(), true);
    assert_eq!(
        a.put(&format!("/v1/kv/lock?acquire={s2}"), "").json(),
        false,
        "lock delay"
    );
    std::thread::sleep(std::time::Duration::from_millis(2100));
    assert_eq!(a.put(&format!("/v1/kv/lock?acquire={s2}"), "").json(), true);
    assert_eq!(
        a.get("/v1/kv/lock").json()[0]["LockIndex"],
        3,
        "third acquisition"
    );
    // An unknown session is an error, with Consul's text.
    let r = a.put("/v1/kv/x?acquire=00000000-0000-0000-0000-000000000000", "");
    assert_eq!(r.status, 500);
    assert_eq!(
        r.text(),
        "invalid session \"00000000-0000-0000-0000-000000000000\""
    );
}

#[test]
fn limits_and_conflicting_flags() {
    let a = Agent::dev();
    let big = vec![b'x'; 512 * 1024 + 1];
    let r = a.put("/v1/kv/big", big);
    assert_eq!(r.status, 413);
    assert!(
        r.text()
            .starts_with("Request body(524289 bytes) too large, max size: 524288 bytes.")
    );
    assert_eq!(a.get("/v1/kv/big").status, 404, "nothing half-applied");
    let ok = vec![b'x'; 512 * 1024];
    assert_eq!(a.put("/v1/kv/big", ok).status, 200);
    let r = a.put("/v1/kv/k?cas=1&acquire=x", "");
    assert_eq!(r.status, 400);
    assert!(r.text().starts_with("Conflicting flags"));
    let r = a.put("/v1/kv/", "x");
    assert_eq!(r.status, 400);
    assert_eq!(r.text(), "Missing key name");
    assert_eq!(a.get("/v1/kv/").status, 400);
}
