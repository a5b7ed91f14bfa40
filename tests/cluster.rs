//! A real cluster: three servers and two client agents as separate processes, each
//! on its own loopback address with Consul's default ports. Formation from
//! `bootstrap_expect` over gossip, writes through any agent, the three read modes,
//! events reaching every agent, failure detection, graceful leave, leader kill and
//! re-election, a server restart with its data, and snapshot save/restore.

mod common;
use common::Agent;
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
    let r = a.get("/v1/status/leader");
    if r.status == 200 {
        r.json().as_str().unwrap_or_default().to_string()
    } else {
        String::new()
    }
}

fn member_status(a: &Agent, name: &str) -> Option<u64> {
    a.get("/v1/agent/members")
        .json()
        .as_array()?
        .iter()
        .find(|m| m["Name"] == name)
        .and_then(|m| m["Status"].as_u64())
}

fn serf_health(a: &Agent, node: &str) -> Option<String> {
    let checks = a.get(&format!("/v1/health/node/{node}?stale")).json();
    checks
        .as_array()?
        .iter()
        .find(|c| c["CheckID"] == "serfHealth")
        .map(|c| c["Status"].as_str().unwrap_or_default().to_string())
}

fn kv(a: &Agent, key: &str, mode: &str) -> Option<String> {
    let r = a.try_get(&format!("/v1/kv/{key}?raw&{mode}"))?;
    (r.status == 200).then(|| r.text())
}

struct Cluster {
    servers: Vec<Agent>,
    clients: Vec<Agent>,
}

/// Three servers on `<net>.1-3` and two clients on `<net>.4-5`.
fn start_cluster(net: &str, tag: &str) -> Cluster {
    let joins: Vec<String> = (1..=3).map(|i| format!("-retry-join={net}.{i}")).collect();
    let servers: Vec<Agent> = (1..=3)
        .map(|i| {
            // Consul's fastest Raft timing keeps the failover below short.
            let mut args = vec![
                "-server".to_string(),
                "-bootstrap-expect=3".to_string(),
                "-hcl=performance { raft_multiplier = 1 }".to_string(),
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
    let clients: Vec<Agent> = (4..=5)
        .map(|i| {
            Agent::start_at(
                &format!("{net}.{i}"),
                &format!("c{i}"),
                vec![format!("-retry-join={net}.1")],
                Agent::scratch(&format!("{tag}-c{i}")),
            )
        })
        .collect();
    let c = Cluster { servers, clients };
    eventually("one leader known by every agent", 30, || {
        let leaders: Vec<String> = c.all().map(leader_of).collect();
        !leaders[0].is_empty() && leaders.iter().all(|l| *l == leaders[0])
    });
    eventually("five nodes with a passing serfHealth", 30, || {
        ["s1", "s2", "s3", "c4", "c5"]
            .iter()
            .all(|n| serf_health(&c.servers[0], n).as_deref() == Some("passing"))
    });
    c
}

impl Cluster {
    fn all(&self) -> impl Iterator<Item = &Agent> {
        self.servers.iter().chain(self.clients.iter())
    }

    fn leader_index(&self) -> usize {
        let leader = leader_of(&self.servers[0]);
        let port_less = leader.trim_end_matches(":8300");
        self.servers
            .iter()
            .position(|s| s.http.contains(&format!("//{port_less}:")))
            .expect("leader is one of the servers")
    }
}

#[test]
fn three_servers_two_clients() {
    let mut c = start_cluster("127.0.1", "cl");

    // Writes through every agent; reads in all three modes from every agent.
    for (i, a) in c.all().enumerate() {
        let r = a.put(&format!("/v1/kv/w/{i}"), format!("v{i}"));
        assert_eq!((r.status, r.text().as_str()), (200, "true"));
    }
    for a in c.all() {
        for i in 0..5 {
            let want = format!("v{i}");
            assert_eq!(kv(a, &format!("w/{i}"), "").as_deref(), Some(want.as_str()));
            assert_eq!(
                kv(a, &format!("w/{i}"), "consistent").as_deref(),
                Some(want.as_str())
            );
            eventually("a stale read to catch up", 10, || {
                kv(a, &format!("w/{i}"), "stale").as_deref() == Some(want.as_str())
            });
        }
        let r = a.get("/v1/kv/w/0");
        assert_eq!(r.header("X-Consul-KnownLeader").as_deref(), Some("true"));
    }

    // A client agent's service reaches the catalog; the servers see every member.
    let c4 = &c.clients[0];
    let r = c4.put(
        "/v1/agent/service/register",
        json!({"Name": "web", "Port": 80, "Check": {"TTL": "60s"}}).to_string(),
    );
    assert_eq!(r.status, 200);
    assert_eq!(c4.put("/v1/agent/check/pass/service:web", "").status, 200);
    eventually("the client's service to be passing on a server", 10, || {
        let list = c.servers[2].get("/v1/health/service/web?passing").json();
        list.as_array()
            .is_some_and(|l| l.len() == 1 && l[0]["Node"]["Node"] == "c4")
    });
    for a in c.all() {
        eventually("every agent to see five members", 15, || {
            a.get("/v1/agent/members").json().as_array().map(Vec::len) == Some(5)
        });
    }

    // An event fired on one agent reaches every agent.
    let fired = c.clients[0].put("/v1/event/fire/deploy", "v2").json();
    for a in c.all() {
        eventually("the event on every agent", 10, || {
            a.get("/v1/event/list?name=deploy")
                .json()
                .as_array()
                .is_some_and(|l| l.iter().any(|e| e["ID"] == fired["ID"]))
        });
    }

    // A killed client is detected as failed: serfHealth critical, sessions gone.
    let session = c.clients[1].put("/v1/session/create", "{}").json()["ID"]
        .as_str()
        .unwrap()
        .to_string();
    c.clients[1].kill9();
    eventually("c5 to be failed", 30, || {
        member_status(&c.servers[0], "c5") == Some(4)
    });
    eventually("c5's serfHealth to go critical", 10, || {
        serf_health(&c.servers[0], "c5").as_deref() == Some("critical")
    });
    eventually("c5's session to be invalidated", 10, || {
        c.servers[0]
            .get(&format!("/v1/session/info/{session}"))
            .json()
            == Value::Null
            || c.servers[0]
                .get(&format!("/v1/session/info/{session}"))
                .json()
                == json!([])
    });

    // A graceful leave: left everywhere, deregistered from the catalog.
    assert_eq!(c.clients[0].put("/v1/agent/leave", "").status, 200);
    eventually("c4 to be left", 15, || {
        member_status(&c.servers[1], "c4") == Some(3)
    });
    eventually("c4 to be deregistered", 10, || {
        c.servers[1].get("/v1/catalog/node/c4").json() == Value::Null
    });

    // Kill the leader: another is elected, writes go on, and the old leader
    // restarted with its data catches up.
    let old = c.leader_index();
    c.servers[old].kill9();
    let others: Vec<usize> = (0..3).filter(|i| *i != old).collect();
    let killed_at = Instant::now();
    eventually("a new leader", 30, || {
        let l = leader_of(&c.servers[others[0]]);
        !l.is_empty() && !c.servers[old].http.contains(l.trim_end_matches(":8300"))
    });
    eprintln!("re-election took {:?}", killed_at.elapsed());
    let r = c.servers[others[1]].put("/v1/kv/after-failover", "yes");
    assert_eq!((r.status, r.text().as_str()), (200, "true"));
    c.servers[old].relaunch();
    eventually("the restarted server to catch up", 30, || {
        kv(&c.servers[old], "after-failover", "stale").as_deref() == Some("yes")
    });
    assert_eq!(kv(&c.servers[old], "w/3", "stale").as_deref(), Some("v3"));

    // Snapshot save through one server, restore through another.
    let snap = c.servers[others[0]].get("/v1/snapshot");
    assert_eq!(snap.status, 200);
    assert_eq!(c.servers[0].put("/v1/kv/after-snapshot", "x").status, 200);
    let r = c.servers[others[1]].put("/v1/snapshot", snap.body.clone());
    assert_eq!(r.status, 200, "{}", r.text());
    for s in &c.servers {
        eventually("the restore on every server", 15, || {
            kv(s, "after-snapshot", "stale").is_none() && kv(s, "w/1", "stale").is_some()
        });
    }

    // Leadership moves to the server named, asked through a follower.
    eventually("every server to know the leader", 10, || {
        let l = leader_of(&c.servers[0]);
        !l.is_empty() && c.servers.iter().all(|s| leader_of(s) == l)
    });
    let leader = c.leader_index();
    let (asked, target) = {
        let others: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
        (others[0], others[1])
    };
    let config = c.servers[asked]
        .get("/v1/operator/raft/configuration")
        .json();
    let target_addr = c.servers[target]
        .http
        .trim_start_matches("http://")
        .replace(":8500", ":8300");
    let target_id = config["Servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Address"] == target_addr.as_str())
        .map(|s| s["ID"].as_str().unwrap().to_string())
        .expect("the target in the raft configuration");
    let r = c.servers[asked].request(
        "POST",
        &format!("/v1/operator/raft/transfer-leader?id={target_id}"),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), json!({"Success": true}));
    eventually("the named server to lead", 10, || {
        c.servers.iter().all(|s| leader_of(s) == target_addr)
    });
    let r = c.servers[leader].put("/v1/kv/after-transfer", "yes");
    assert_eq!((r.status, r.text().as_str()), (200, "true"));
    let r = c.servers[asked].request("POST", "/v1/operator/raft/transfer-leader?id=no-such-id");
    assert_eq!(r.status, 500);
    assert_eq!(
        r.text(),
        "Failed to transfer leadership: raft: cannot find peer"
    );
}

#[test]
fn no_leader_answers_in_time() {
    // One server expecting three never elects a leader: writes and default reads
    // get Consul's answer within the hold timeout, stale reads are served.
    let s = Agent::start_at(
        "127.0.2.1",
        "lonely",
        vec![
            "-server".into(),
            "-bootstrap-expect=3".into(),
            "-hcl=performance { rpc_hold_timeout = \"1s\" }".into(),
        ],
        Agent::scratch("lonely"),
    );
    let started = Instant::now();
    let r = s.put("/v1/kv/x", "1");
    assert_eq!((r.status, r.text().as_str()), (500, "No cluster leader"));
    assert!(started.elapsed() < Duration::from_secs(5));
    let r = s.get("/v1/kv/x");
    assert_eq!((r.status, r.text().as_str()), (500, "No cluster leader"));
    let r = s.get("/v1/kv/x?stale");
    assert_eq!(r.status, 404);
    assert_eq!(r.header("X-Consul-KnownLeader").as_deref(), Some("false"));
    assert_eq!(leader_of(&s), "");
}

#[test]
fn reads_queued_at_a_paused_leader_are_forwarded_to_the_new_one() {
    let c = start_cluster("127.0.3", "dep");
    let old = c.leader_index();
    let r = c.servers[old].put("/v1/kv/dep", "before");
    assert_eq!((r.status, r.text().as_str()), (200, "true"));

    // Paused, the leader still believes it leads when it wakes up.
    c.servers[old].signal(19); // SIGSTOP
    let pending: Vec<_> = ["", "consistent", "", "consistent", "index=1", ""]
        .iter()
        .map(|mode| {
            let url = format!("{}/v1/kv/dep?raw&{mode}", c.servers[old].http);
            std::thread::spawn(move || {
                let r = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(60))
                    .build()
                    .unwrap()
                    .get(url)
                    .send()
                    .unwrap();
                (r.status().as_u16(), r.text().unwrap())
            })
        })
        .collect();
    let other = (old + 1) % 3;
    eventually("a new leader among the others", 30, || {
        let l = leader_of(&c.servers[other]);
        !l.is_empty()
            && !c.servers[old]
                .http
                .contains(&format!("//{}:", l.trim_end_matches(":8300")))
    });
    let r = c.servers[other].put("/v1/kv/dep", "after");
    assert_eq!((r.status, r.text().as_str()), (200, "true"));
    std::thread::sleep(Duration::from_millis(500));
    c.servers[old].signal(18); // SIGCONT

    for p in pending {
        let (status, body) = p.join().unwrap();
        assert_eq!((status, body.as_str()), (200, "after"));
    }
}
