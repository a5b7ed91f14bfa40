//! Blocking-query semantics against the real binary.

mod common;
use common::Agent;
use std::time::{Duration, Instant};

#[test]
fn a_missing_key_that_appears_wakes_the_blocked_get() {
    let a = Agent::dev();
    let idx = a.get("/v1/kv/appear").index();
    let http = a.http.clone();
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        reqwest::blocking::Client::new()
            .put(format!("{http}/v1/kv/appear"))
            .body("here")
            .send()
            .unwrap();
    });
    let start = Instant::now();
    let r = a.get(&format!("/v1/kv/appear?index={idx}&wait=10s"));
    let took = start.elapsed();
    writer.join().unwrap();
    assert_eq!(r.status, 200);
    assert!(took >= Duration::from_millis(250), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(r.index() > idx);
}

#[test]
fn a_missing_key_keeps_blocking_through_unrelated_writes() {
    let a = Agent::dev();
    let idx = a.get("/v1/kv/absent").index();
    let http = a.http.clone();
    let writer = std::thread::spawn(move || {
        let c = reqwest::blocking::Client::new();
        for i in 0..5 {
            std::thread::sleep(Duration::from_millis(100));
            c.put(format!("{http}/v1/kv/other{i}"))
                .body("x")
                .send()
                .unwrap();
        }
    });
    let start = Instant::now();
    let r = a.get(&format!("/v1/kv/absent?index={idx}&wait=1500ms"));
    writer.join().unwrap();
    assert_eq!(r.status, 404);
    assert!(
        start.elapsed() >= Duration::from_millis(1400),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn a_wait_that_times_out_returns_the_same_index() {
    let a = Agent::dev();
    a.put("/v1/kv/still", "1");
    let idx = a.get("/v1/kv/still").index();
    let start = Instant::now();
    let r = a.get(&format!("/v1/kv/still?index={idx}&wait=300ms"));
    let took = start.elapsed();
    assert_eq!(r.status, 200);
    assert_eq!(r.index(), idx);
    // wait plus at most wait/16 of jitter, plus slack for the machine.
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_millis(1000),
        "{took:?}"
    );
}

#[test]
fn a_write_wakes_only_the_watchers_of_its_key() {
    let a = Agent::dev();
    a.put("/v1/kv/ka", "1");
    a.put("/v1/kv/kb", "1");
    let ia = a.get("/v1/kv/ka").index();
    let ib = a.get("/v1/kv/kb").index();
    let (ha, hb) = (a.http.clone(), a.http.clone());
    let wa = std::thread::spawn(move || {
        let s = Instant::now();
        let r = reqwest::blocking::get(format!("{ha}/v1/kv/ka?index={ia}&wait=5s")).unwrap();
        (r.status().as_u16(), s.elapsed())
    });
    let wb = std::thread::spawn(move || {
        let s = Instant::now();
        let r = reqwest::blocking::get(format!("{hb}/v1/kv/kb?index={ib}&wait=1500ms")).unwrap();
        (r.status().as_u16(), s.elapsed())
    });
    std::thread::sleep(Duration::from_millis(300));
    a.put("/v1/kv/ka", "2");
    let (sa, ta) = wa.join().unwrap();
    let (sb, tb) = wb.join().unwrap();
    assert_eq!(sa, 200);
    assert!(ta < Duration::from_millis(1200), "ka woke late: {ta:?}");
    assert_eq!(sb, 200);
    assert!(
        tb >= Duration::from_millis(1400),
        "kb must not wake early: {tb:?}"
    );
}

#[test]
fn a_deleted_prefix_index_does_not_go_backwards() {
    let a = Agent::dev();
    a.put("/v1/kv/pre/a", "1");
    a.put("/v1/kv/pre/b", "1");
    let before = a.get("/v1/kv/pre/?recurse").index();
    a.delete("/v1/kv/pre/b");
    let after = a.get("/v1/kv/pre/?recurse").index();
    assert!(after > before, "{after} > {before}");
    a.delete("/v1/kv/pre/a");
    let gone = a.get("/v1/kv/pre/?recurse");
    assert_eq!(gone.status, 404);
    assert!(gone.index() >= after);
}

#[test]
fn a_blocked_list_wakes_on_a_write_under_its_prefix() {
    let a = Agent::dev();
    a.put("/v1/kv/cfg/app/a", "1");
    let idx = a.get("/v1/kv/cfg/app/?recurse").index();
    let http = a.http.clone();
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        reqwest::blocking::Client::new()
            .put(format!("{http}/v1/kv/cfg/app/b"))
            .body("2")
            .send()
            .unwrap();
    });
    let r = a.get(&format!("/v1/kv/cfg/app/?recurse&index={idx}&wait=10s"));
    writer.join().unwrap();
    assert_eq!(r.json().as_array().unwrap().len(), 2);
}

#[test]
fn bad_index_and_wait_are_400() {
    let a = Agent::dev();
    let r = a.get("/v1/kv/x?index=abc");
    assert_eq!((r.status, r.text().as_str()), (400, "Invalid index"));
    let r = a.get("/v1/kv/x?index=1&wait=10");
    assert_eq!((r.status, r.text().as_str()), (400, "Invalid wait time"));
    let r = a.get("/v1/kv/x?stale&consistent");
    assert_eq!(r.status, 400);
}

#[test]
fn consistency_modes_and_effective_header() {
    let a = Agent::dev();
    for (q, label) in [
        ("", "leader"),
        ("?stale", "stale"),
        ("?consistent", "consistent"),
    ] {
        let r = a.get(&format!("/v1/catalog/nodes{q}"));
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("X-Consul-Effective-Consistency").as_deref(),
            Some(label)
        );
    }
}

/// Registers `web` instance `id` on `node` with one check in `status`.
fn register_web(a: &Agent, node: &str, id: &str, tags: &[&str], status: &str) {
    let body = serde_json::json!({
        "Node": node, "Address": "10.0.0.1", "NodeMeta": {"rack": node},
        "Service": {"ID": id, "Service": "web", "Tags": tags, "Port": 80},
        "Check": {"CheckID": format!("chk-{id}"), "Name": "c", "Status": status, "ServiceID": id},
    });
    assert_eq!(a.put("/v1/catalog/register", body.to_string()).status, 200);
}

fn ids(r: &common::Resp) -> Vec<String> {
    let mut ids: Vec<String> = r
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            e.pointer("/Service/ID")
                .or_else(|| e.get("ServiceID"))
                .and_then(|v| v.as_str())
                .unwrap()
                .to_string()
        })
        .collect();
    ids.sort();
    ids
}

/// Answers are shared between identical reads of one snapshot: reads that
/// differ in any parameter, made back to back on the same snapshot, must each
/// get their own answer, and a write must show in the next read.
#[test]
fn reads_of_one_snapshot_with_different_parameters_get_their_own_answers() {
    // Not -dev: it pretty-prints every answer, and `?pretty` must make a difference.
    let a = Agent::server(&Agent::scratch("shared-answers"));
    register_web(&a, "n1", "web-1", &["blue"], "passing");
    register_web(&a, "n2", "web-2", &["green"], "critical");

    for _ in 0..3 {
        assert_eq!(ids(&a.get("/v1/health/service/web")), ["web-1", "web-2"]);
        assert_eq!(ids(&a.get("/v1/health/service/web?passing")), ["web-1"]);
        assert_eq!(ids(&a.get("/v1/health/service/web?tag=green")), ["web-2"]);
        assert_eq!(
            ids(&a.get("/v1/health/service/web?node-meta=rack:n1")),
            ["web-1"]
        );
        assert_eq!(
            ids(&a.get("/v1/health/service/web?filter=Service.ID%20%3D%3D%20%22web-2%22")),
            ["web-2"]
        );
        assert_eq!(ids(&a.get("/v1/catalog/service/web?tag=blue")), ["web-1"]);
        assert_eq!(ids(&a.get("/v1/catalog/service/web")), ["web-1", "web-2"]);
        assert_eq!(
            a.get("/v1/health/connect/web").json(),
            serde_json::json!([])
        );
    }
    // `pretty` changes the bytes, not the content.
    let plain = a.get("/v1/catalog/services");
    let pretty = a.get("/v1/catalog/services?pretty");
    assert_ne!(plain.body, pretty.body);
    assert_eq!(plain.json(), pretty.json());
    assert_eq!(plain.index(), pretty.index());

    let before = a.get("/v1/health/service/web?passing");
    register_web(&a, "n2", "web-2", &["green"], "passing");
    let after = a.get("/v1/health/service/web?passing");
    assert!(after.index() > before.index());
    assert_eq!(ids(&after), ["web-1", "web-2"]);
    assert_eq!(
        a.get("/v1/catalog/services").json(),
        serde_json::json!({"consul": [], "web": ["blue", "green"]})
    );
}

/// Many watchers of one service, woken by one flip, all see the flip.
#[test]
fn every_woken_watcher_of_a_shared_answer_sees_the_write_that_woke_it() {
    let a = Agent::dev();
    register_web(&a, "n1", "web-1", &[], "passing");
    let idx = a.get("/v1/health/service/web?passing").index();
    let watchers: Vec<_> = (0..40)
        .map(|i| {
            let http = a.http.clone();
            let query = if i % 2 == 0 { "passing" } else { "tag=none" };
            std::thread::spawn(move || {
                let r = reqwest::blocking::Client::new()
                    .get(format!(
                        "{http}/v1/health/service/web?{query}&index={idx}&wait=20s"
                    ))
                    .send()
                    .unwrap();
                let index: u64 = r.headers()["X-Consul-Index"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                let body: serde_json::Value = r.json().unwrap();
                (query, index, body.as_array().unwrap().len())
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    register_web(&a, "n1", "web-1", &[], "critical");
    for w in watchers {
        let (query, index, len) = w.join().unwrap();
        assert!(index > idx, "{query}: index {index} <= {idx}");
        assert_eq!(len, 0, "{query}: the flip did not show");
    }
}

/// `?recurse` answers are shared too: different prefixes read at one snapshot
/// keep their own answers, an empty prefix is a 404, and a write shows at once.
#[test]
fn recurse_reads_of_one_snapshot_keep_their_prefixes_apart() {
    let a = Agent::dev();
    for key in ["app/a", "app/b/c", "other/x"] {
        assert_eq!(a.put(&format!("/v1/kv/{key}"), "v").status, 200);
    }
    let keys = |r: &common::Resp| -> Vec<String> {
        r.json()
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["Key"].as_str().unwrap().to_string())
            .collect()
    };
    for _ in 0..3 {
        assert_eq!(keys(&a.get("/v1/kv/app/?recurse")), ["app/a", "app/b/c"]);
        assert_eq!(keys(&a.get("/v1/kv/app/b/?recurse")), ["app/b/c"]);
        assert_eq!(keys(&a.get("/v1/kv/?recurse")).len(), 3);
        let missing = a.get("/v1/kv/none/?recurse");
        assert_eq!(missing.status, 404);
        assert!(missing.body.is_empty());
    }
    let idx = a.get("/v1/kv/app/?recurse").index();
    let http = a.http.clone();
    let watcher = std::thread::spawn(move || {
        reqwest::blocking::get(format!("{http}/v1/kv/app/?recurse&index={idx}&wait=10s"))
            .unwrap()
            .json::<serde_json::Value>()
            .unwrap()
    });
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(a.put("/v1/kv/app/new", "v").status, 200);
    assert_eq!(watcher.join().unwrap().as_array().unwrap().len(), 3);
    assert_eq!(
        keys(&a.get("/v1/kv/app/?recurse")),
        ["app/a", "app/b/c", "app/new"]
    );
}
