//! Operating a real cluster: what followers report about their contact with the
//! leader and how `?max_stale` bounds a stale read, Raft timing under
//! `raft_multiplier`, autopilot's dead-server cleanup and health, a client agent's
//! Connect CA endpoints, and a client agent's node meta in the catalog. Every
//! agent is its own process on its own loopback address (127.0.5.x, 127.0.6.x).

mod common;
use common::{Agent, Resp};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Polls `check` until it holds or `secs` pass; the panic names what was awaited.
fn eventually(what: &str, secs: u64, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn leader_of(a: &Agent) -> String {
    match a.try_get("/v1/status/leader") {
        Some(r) if r.status == 200 => r.json().as_str().unwrap_or_default().to_string(),
        _ => String::new(),
    }
}

fn last_contact(r: &Resp) -> u64 {
    r.header("X-Consul-LastContact")
        .expect("X-Consul-LastContact")
        .parse()
        .unwrap()
}

/// Servers on `<net>.1..=count`, expecting `count`, with fast Raft timing and
/// `extra` HCL.
fn start_servers(net: &str, tag: &str, count: usize, extra: &str) -> Vec<Agent> {
    let joins: Vec<String> = (1..=count)
        .map(|i| format!("-retry-join={net}.{i}"))
        .collect();
    let servers: Vec<Agent> = (1..=count)
        .map(|i| {
            let mut args = vec![
                "-server".to_string(),
                format!("-bootstrap-expect={count}"),
                format!("-hcl=performance {{ raft_multiplier = 1 }} {extra}"),
            ];
            args.extend(joins.clone());
            Agent::start_at(
                &format!("{net}.{i}"),
                &format!("s{i}"),
                args,
                Agent::scratch(&format!("{tag}-s{i}")),
            )
        })
        .collect();
    eventually("one leader known by every server", 30, || {
        let leaders: Vec<String> = servers.iter().map(leader_of).collect();
        !leaders[0].is_empty() && leaders.iter().all(|l| *l == leaders[0])
    });
    servers
}

/// Which of `servers` leads, by its RPC address.
fn leader_index(servers: &[Agent]) -> usize {
    let leader = leader_of(&servers[0]);
    let ip = leader.trim_end_matches(":8300");
    servers
        .iter()
        .position(|s| s.http.contains(&format!("//{ip}:")))
        .expect("leader is one of the servers")
}

#[test]
fn contact_max_stale_connect_and_node_meta() {
    let servers = start_servers(
        "127.0.5",
        "ops",
        3,
        "connect { enabled = true } discovery_max_stale = \"1h\"",
    );
    let client = Agent::start_at(
        "127.0.5.4",
        "c4",
        vec![
            "-retry-join=127.0.5.1".to_string(),
            "-node-meta=rack:r1".to_string(),
        ],
        Agent::scratch("ops-c4"),
    );
    eventually("the client to know a server", 30, || {
        leader_of(&client) == leader_of(&servers[0])
    });
    let l = leader_index(&servers);
    let leader = &servers[l];
    let follower = &servers[(l + 1) % 3];

    // X-Consul-LastContact: 0 on the leader; on a follower the time since the
    // leader's last heartbeat, which keeps coming back below a second.
    let r = leader.get("/v1/catalog/nodes?stale");
    assert_eq!(r.header("X-Consul-KnownLeader").as_deref(), Some("true"));
    assert_eq!(last_contact(&r), 0);
    let mut samples = Vec::new();
    for _ in 0..20 {
        let r = follower.get("/v1/catalog/nodes?stale");
        assert_eq!(r.header("X-Consul-KnownLeader").as_deref(), Some("true"));
        samples.push(last_contact(&r));
        std::thread::sleep(Duration::from_millis(13));
    }
    assert!(
        samples.iter().any(|&ms| ms > 0),
        "a follower's last contact is never exactly 0: {samples:?}"
    );
    assert!(
        samples.iter().all(|&ms| ms < 1000),
        "heartbeats keep a follower's last contact short: {samples:?}"
    );

    // ?max_stale: a follower whose last contact is older than the bound hands the
    // read to the leader (which answers in default mode); within it, it answers.
    let r = follower.get("/v1/catalog/nodes?max_stale=1ns");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("X-Consul-Effective-Consistency").as_deref(),
        Some("leader")
    );
    assert_eq!(last_contact(&r), 0);
    let r = follower.get("/v1/catalog/nodes?max_stale=1h");
    assert_eq!(
        r.header("X-Consul-Effective-Consistency").as_deref(),
        Some("stale")
    );
    let r = leader.get("/v1/catalog/nodes?max_stale=1ns");
    assert_eq!(
        r.header("X-Consul-Effective-Consistency").as_deref(),
        Some("stale")
    );
    // Through a client agent, whichever server it reaches: never a stale answer.
    for _ in 0..5 {
        let r = client.get("/v1/catalog/nodes?max_stale=1ns");
        assert_eq!((r.status, last_contact(&r)), (200, 0));
    }
    let r = follower.get("/v1/catalog/nodes?max_stale=later");
    assert_eq!(
        (r.status, r.text().as_str()),
        (400, "Invalid max_stale value \"later\"")
    );
    // discovery_max_stale makes default catalog/health reads bounded stale reads;
    // ?leader asks for the default mode explicitly.
    let r = follower.get("/v1/health/node/s1");
    assert_eq!(
        r.header("X-Consul-Effective-Consistency").as_deref(),
        Some("stale")
    );
    let r = follower.get("/v1/health/node/s1?leader");
    assert_eq!(
        r.header("X-Consul-Effective-Consistency").as_deref(),
        Some("leader")
    );

    // A client agent's Connect CA endpoints are answered by the servers.
    let server_roots = {
        let mut roots = Value::Null;
        eventually("the CA to be initialized", 20, || {
            roots = servers[0].get("/v1/connect/ca/roots").json();
            roots["ActiveRootID"]
                .as_str()
                .is_some_and(|id| !id.is_empty())
        });
        roots
    };
    let r = client.get("/v1/agent/connect/ca/roots");
    assert_eq!(r.status, 200, "{}", r.text());
    let roots = r.json();
    assert_eq!(roots["ActiveRootID"], server_roots["ActiveRootID"]);
    assert_eq!(roots["Roots"].as_array().map(Vec::len), Some(1));
    let index = r.index();
    // A blocking read on the client wakes when the CA table changes.
    std::thread::scope(|scope| {
        let waiter = scope.spawn(|| {
            let started = Instant::now();
            let r = client.get(&format!(
                "/v1/agent/connect/ca/roots?index={index}&wait=30s"
            ));
            (r.status, r.index(), started.elapsed())
        });
        std::thread::sleep(Duration::from_millis(500));
        let r = servers[1].put(
            "/v1/connect/ca/configuration",
            json!({"Provider": "consul", "Config": {"LeafCertTTL": "72h"}}).to_string(),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        let (status, woke_at, took) = waiter.join().unwrap();
        assert_eq!(status, 200);
        assert!(woke_at > index, "index {woke_at} after {index}");
        assert!(took >= Duration::from_millis(400), "it blocked: {took:?}");
        assert!(
            took < Duration::from_secs(20),
            "the change woke it: {took:?}"
        );
    });
    // A short blocking wait with nothing changing runs out with the same index.
    // The client asks any server and each answers from its own replica, so first
    // let every replica catch up with the CA change above.
    let roots_index = || client.get("/v1/agent/connect/ca/roots").index();
    eventually("every server to have applied the CA change", 10, || {
        let first = roots_index();
        (0..4).all(|_| roots_index() == first)
    });
    let r = client.get("/v1/agent/connect/ca/roots");
    let started = Instant::now();
    let again = client.get(&format!(
        "/v1/agent/connect/ca/roots?index={}&wait=1s",
        r.index()
    ));
    assert_eq!(again.index(), r.index());
    assert!(started.elapsed() >= Duration::from_millis(900));
    let leaf = client.get("/v1/agent/connect/ca/leaf/web");
    assert_eq!(leaf.status, 200, "{}", leaf.text());
    let leaf = leaf.json();
    assert_eq!(leaf["Service"], "web");
    assert!(leaf["ServiceURI"].as_str().unwrap().ends_with("/svc/web"));
    assert!(
        leaf["CertPEM"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----")
    );

    // The client's node meta reaches the catalog with no service registered, and
    // anti-entropy puts it back after someone overwrites the node.
    let rack =
        |a: &Agent| a.get("/v1/catalog/node/c4?stale").json()["Node"]["Meta"]["rack"].clone();
    eventually("c4's node meta in the catalog", 20, || rack(leader) == "r1");
    assert_eq!(client.get("/v1/agent/services").json(), json!({}));
    let r = leader.put(
        "/v1/catalog/register",
        json!({"Node": "c4", "Address": "127.0.5.4", "NodeMeta": {"rack": "bogus"}}).to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(rack(leader), "bogus");
    // Any sync pass repairs it (the periodic one runs every minute; a local change
    // starts one at once).
    let r = client.put(
        "/v1/agent/service/register",
        json!({"Name": "api", "Port": 9000}).to_string(),
    );
    assert_eq!(r.status, 200);
    eventually("c4's node meta to be restored", 20, || rack(leader) == "r1");
    let node = leader.get("/v1/catalog/node/c4").json();
    assert_eq!(node["Node"]["TaggedAddresses"]["lan"], "127.0.5.4");
    assert_eq!(node["Services"]["api"]["Port"], 9000);
}

fn raft_servers(a: &Agent) -> Vec<String> {
    a.get("/v1/operator/raft/configuration?stale").json()["Servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["Node"].as_str().unwrap().to_string())
        .collect()
}

fn set_cleanup(a: &Agent, on: bool) {
    let conf = json!({
        "CleanupDeadServers": on,
        "LastContactThreshold": "200ms",
        "MaxTrailingLogs": 250,
        "MinQuorum": 0,
        "ServerStabilizationTime": "10s",
    });
    let r = a.put("/v1/operator/autopilot/configuration", conf.to_string());
    assert_eq!((r.status, r.text().as_str()), (200, "true"));
    let got = a.get("/v1/operator/autopilot/configuration").json();
    assert_eq!(got["CleanupDeadServers"], on);
}

#[test]
fn autopilot_removes_dead_servers_when_configured() {
    let mut servers = start_servers(
        "127.0.6",
        "ap",
        3,
        "performance { rpc_hold_timeout = \"2s\" }",
    );
    eventually("three healthy servers, one failure tolerated", 30, || {
        let r = servers[0].get("/v1/operator/autopilot/health");
        let h = r.json();
        r.status == 200
            && h["Healthy"] == true
            && h["FailureTolerance"] == 1
            && h["Servers"].as_array().map(Vec::len) == Some(3)
    });
    set_cleanup(&servers[0], false);

    // A dead follower stays in the configuration while cleanup is off, and shows
    // as unhealthy.
    let l = leader_index(&servers);
    let victim = (l + 1) % 3;
    let survivor = (l + 2) % 3;
    let victim_name = format!("s{}", victim + 1);
    servers[victim].kill9();
    eventually("the dead server to be unhealthy", 40, || {
        let r = servers[survivor].get("/v1/operator/autopilot/health");
        let h = r.json();
        let dead = h["Servers"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["Name"] == victim_name.as_str()))
            .cloned()
            .unwrap_or(Value::Null);
        r.status == 429
            && h["Healthy"] == false
            && h["FailureTolerance"] == 0
            && dead["Healthy"] == false
            && dead["SerfStatus"] == "failed"
    });
    // Longer than autopilot's cleanup interval (10s): still there.
    std::thread::sleep(Duration::from_secs(12));
    assert!(
        raft_servers(&servers[l]).contains(&victim_name),
        "removed with cleanup off"
    );

    // Turned on, autopilot removes it and force-leaves it from gossip.
    set_cleanup(&servers[survivor], true);
    eventually("the dead server's removal", 30, || {
        let names = raft_servers(&servers[l]);
        names.len() == 2 && !names.contains(&victim_name)
    });
    eventually("the dead server to have left the pool", 20, || {
        servers[l]
            .get("/v1/agent/members")
            .json()
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["Name"] == victim_name.as_str() && m["Status"] == 3)
    });
    eventually("two healthy servers, no failure tolerated", 20, || {
        let h = servers[l].get("/v1/operator/autopilot/health").json();
        h["Healthy"] == true
            && h["FailureTolerance"] == 0
            && h["Servers"].as_array().map(Vec::len) == Some(2)
    });

    // The leader dies: the last server keeps answering stale reads, knows it has no
    // leader after the raft_multiplier=1 timeout (1.5-2s after the last
    // heartbeat), reports how long since it heard from one, and hands a bounded
    // stale read to a leader that is not there.
    let key = servers[survivor].put("/v1/kv/k", "v");
    assert_eq!(key.status, 200);
    servers[l].kill9();
    let killed = Instant::now();
    let f = &servers[survivor];
    eventually("the survivor to know it has no leader", 10, || {
        f.get("/v1/kv/k?stale")
            .header("X-Consul-KnownLeader")
            .as_deref()
            == Some("false")
    });
    let took = killed.elapsed();
    assert!(
        took >= Duration::from_millis(1200) && took < Duration::from_secs(6),
        "leader loss noticed after {took:?}"
    );
    let r = f.get("/v1/kv/k?stale&raw");
    assert_eq!((r.status, r.text().as_str()), (200, "v"));
    assert!(
        last_contact(&r) >= 1000,
        "{:?}",
        r.header("X-Consul-LastContact")
    );
    let r = f.get("/v1/kv/k?max_stale=1s");
    assert_eq!((r.status, r.text().as_str()), (500, "No cluster leader"));
    let r = f.get("/v1/kv/k?max_stale=1h&raw");
    assert_eq!((r.status, r.text().as_str()), (200, "v"));
}
