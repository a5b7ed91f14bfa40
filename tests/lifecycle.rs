//! Process lifecycle: version output, clean shutdown, durability across kill -9.

mod common;
use common::Agent;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

#[test]
fn version_json_has_the_consul_version() {
    let out = Command::new(env!("CARGO_BIN_EXE_concord"))
        .args(["version", "-format=json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let version = v["Version"].as_str().unwrap();
    assert_eq!(version.split('.').count(), 3);
    assert!(v["Concord"].is_string());
}

#[test]
fn sigint_stops_quickly_and_frees_the_port() {
    let mut a = Agent::dev();
    // A blocking query in flight must not hold the shutdown.
    let http = a.http.clone();
    std::thread::spawn(move || {
        let _ = reqwest::blocking::get(format!("{http}/v1/kv/x?index=999999&wait=60s"));
    });
    std::thread::sleep(Duration::from_millis(200));
    let took = a.interrupt();
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(
        std::net::TcpListener::bind(("127.0.0.1", a.port)).is_ok(),
        "port freed"
    );
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    let dir = Agent::scratch("durable");
    let mut a = Agent::server(&dir);
    let http = a.http.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(std::sync::Mutex::new(Vec::<u64>::new()));
    let mut writers = Vec::new();
    for w in 0..4u64 {
        let (http, stop, acked) = (http.clone(), stop.clone(), acked.clone());
        writers.push(std::thread::spawn(move || {
            let c = reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap();
            let mut i = w;
            while !stop.load(Ordering::Relaxed) {
                let ok = c
                    .put(format!("{http}/v1/kv/d/{i}"))
                    .body(i.to_string())
                    .send()
                    .ok()
                    .filter(|r| r.status() == 200)
                    .and_then(|r| r.text().ok())
                    .is_some_and(|t| t == "true");
                if !ok {
                    break;
                }
                acked.lock().unwrap().push(i);
                i += 4;
            }
        }));
    }
    std::thread::sleep(Duration::from_millis(1500));
    a.kill9();
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 50, "only {} writes acknowledged", acked.len());
    a.restart();
    let keys = a.get("/v1/kv/d/?keys").json();
    let present: std::collections::HashSet<String> = keys
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    let missing: Vec<_> = acked
        .iter()
        .filter(|i| !present.contains(&format!("d/{i}")))
        .collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged writes lost: {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    let e = a.get("/v1/kv/d/0").json();
    assert_eq!(e[0]["Value"], "MA==");
}

#[test]
fn restart_after_raft_snapshots_and_log_purge_keeps_everything() {
    let dir = Agent::scratch("snapshots");
    let mut a = Agent::server_with(
        &dir,
        &[
            "-hcl=raft_snapshot_threshold = 40",
            "-hcl=raft_trailing_logs = 5",
        ],
    );
    // openraft purges in batches of 256 entries, so write well past that.
    for i in 0..400 {
        assert_eq!(
            a.put(&format!("/v1/kv/snap/{i:03}"), format!("v{i}"))
                .status,
            200
        );
    }
    let snapshot = dir.join("raft").join("snapshot.json");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !snapshot.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "no Raft snapshot was written"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let purged = || {
        let meta = std::fs::read_to_string(dir.join("raft").join("meta.json")).unwrap_or_default();
        serde_json::from_str::<serde_json::Value>(&meta).unwrap_or_default()["last_purged"]["index"]
            .as_u64()
            .unwrap_or(0)
    };
    while purged() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the log was never purged behind a snapshot"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    a.restart();
    let keys = a.get("/v1/kv/snap/?keys").json();
    assert_eq!(keys.as_array().unwrap().len(), 400);
    assert_eq!(a.get("/v1/kv/snap/399?raw").text(), "v399");
    // And it keeps taking writes.
    assert_eq!(a.put("/v1/kv/snap/after", "ok").status, 200);
}
