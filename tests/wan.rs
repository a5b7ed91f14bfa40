//! Two datacenters joined over the WAN pool, as separate processes on their own
//! loopback addresses: dc1 has a server (127.0.6.1) and a client agent
//! (127.0.6.2), dc2 a server (127.0.6.3). WAN membership and names, the
//! datacenter list from every agent, `?dc=` reads and writes through the client
//! agent (answered by dc2 with dc2's headers), Consul's errors for an unknown
//! datacenter and for WAN operations on a client, DNS lookups in the other
//! datacenter, and WAN failure detection.

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::Agent;
use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use serde_json::{Value, json};

/// Polls `check` until it holds or `secs` pass; the panic names what was awaited.
fn eventually(what: &str, secs: u64, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// WAN timings fast enough to see a failure within seconds on loopback.
const FAST_WAN: &str = "-hcl=gossip_wan {
  probe_interval = \"200ms\"
  probe_timeout = \"100ms\"
  gossip_interval = \"50ms\"
  suspicion_mult = 5
}";

fn server(ip: &str, name: &str, dc: &str, extra: &[&str]) -> Agent {
    let mut args = vec![
        "-server".to_string(),
        "-bootstrap-expect=1".to_string(),
        format!("-datacenter={dc}"),
        "-serf-wan-port=8302".to_string(),
        "-dns-port=8600".to_string(),
        FAST_WAN.to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let mut a = Agent::start_at(ip, name, args, Agent::scratch(&format!("wan-{name}")));
    a.wait_ready();
    a
}

fn wan_members(a: &Agent) -> Vec<(String, u64, Value)> {
    let r = a.get("/v1/agent/members?wan=1");
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
        .as_array()
        .map(|l| {
            l.iter()
                .map(|m| {
                    let name = m["Name"].as_str().unwrap_or_default().to_string();
                    (name, m["Status"].as_u64().unwrap_or(0), m["Tags"].clone())
                })
                .collect()
        })
        .unwrap_or_default()
}

fn dns(ip: &str, name: &str) -> Message {
    let mut m = Message::query();
    m.metadata.id = rand::random();
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    sock.send_to(&m.to_vec().unwrap(), (ip, 8600)).unwrap();
    let mut buf = vec![0; 65535];
    let (n, _) = sock.recv_from(&mut buf).expect("a DNS reply");
    Message::from_vec(&buf[..n]).unwrap()
}

fn a_records(m: &Message) -> Vec<String> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0.to_string()),
            _ => None,
        })
        .collect()
}

#[test]
fn two_datacenters_over_wan() {
    let s1 = server("127.0.6.1", "s1", "dc1", &[]);
    let mut c1 = Agent::start_at(
        "127.0.6.2",
        "c1",
        vec![
            "-datacenter=dc1".into(),
            "-retry-join=127.0.6.1".into(),
            "-retry-join-wan=127.0.6.1".into(),
            "-dns-port=8600".into(),
        ],
        Agent::scratch("wan-c1"),
    );
    let s2 = server("127.0.6.3", "s2", "dc2", &["-retry-join-wan=127.0.6.1"]);
    c1.wait_ready();

    // Both servers see both WAN members, named `<node>.<dc>` with server tags.
    for s in [&s1, &s2] {
        eventually("both servers in the WAN pool", 30, || {
            let names: Vec<String> = wan_members(s).into_iter().map(|m| m.0).collect();
            names == ["s1.dc1", "s2.dc2"]
        });
    }
    let members = wan_members(&s1);
    let (_, status, tags) = &members[1];
    assert_eq!(*status, 1);
    assert_eq!(tags["role"], "consul");
    assert_eq!(tags["dc"], "dc2");
    assert_eq!(tags["port"], "8300");
    // The LAN member of a server says where its WAN pool listens.
    let lan = s1.get("/v1/agent/members").json();
    let me = lan.as_array().unwrap().iter().find(|m| m["Name"] == "s1");
    assert_eq!(me.unwrap()["Tags"]["wan_join_port"], "8302");

    // A client agent has no WAN pool: members is null, joining is refused.
    let r = c1.get("/v1/agent/members?wan=1");
    assert_eq!((r.status, r.json()), (200, Value::Null));
    let r = c1.put("/v1/agent/join/127.0.6.3?wan=1", "");
    assert_eq!(
        (r.status, r.text().as_str()),
        (500, "Must be a server to join WAN cluster")
    );
    // `?wan` without a value means the LAN, as in Consul.
    let r = c1.get("/v1/agent/members?wan");
    assert_eq!(r.json().as_array().map(Vec::len), Some(2));

    // Every agent lists both datacenters, its own first.
    for (a, want) in [
        (&s1, ["dc1", "dc2"]),
        (&c1, ["dc1", "dc2"]),
        (&s2, ["dc2", "dc1"]),
    ] {
        let r = a.get("/v1/catalog/datacenters");
        assert_eq!(r.status, 200);
        assert_eq!(r.json(), json!(want));
    }

    // A write through the dc1 client with ?dc=dc2 lands in dc2 only.
    let r = c1.put("/v1/kv/where?dc=dc2", "in-dc2");
    assert_eq!((r.status, r.text().as_str()), (200, "true"));
    let r = s2.get("/v1/kv/where?raw");
    assert_eq!((r.status, r.text().as_str()), (200, "in-dc2"));
    assert_eq!(s1.get("/v1/kv/where").status, 404);
    assert_eq!(c1.get("/v1/kv/where").status, 404);
    // Read back through dc1: the answer and its index are dc2's.
    let remote = c1.get("/v1/kv/where?dc=dc2");
    assert_eq!(remote.status, 200);
    assert_eq!(remote.index(), s2.get("/v1/kv/where").index());
    assert_eq!(
        remote.header("X-Consul-KnownLeader").as_deref(),
        Some("true")
    );
    let r = s1.get("/v1/kv/where?dc=dc2&raw");
    assert_eq!(r.text(), "in-dc2");

    // Catalog reads and writes in dc2 from dc1.
    let nodes = c1.get("/v1/catalog/nodes?dc=dc2").json();
    let names: Vec<&str> = nodes
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["Node"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["s2"]);
    assert_eq!(nodes[0]["Datacenter"], "dc2");
    let reg =
        json!({"Node": "ext", "Address": "10.0.0.9", "Service": {"Service": "db", "Port": 5432}});
    let r = c1.put("/v1/catalog/register?dc=dc2", reg.to_string());
    assert_eq!((r.status, r.text().as_str()), (200, "true"));
    let db = s2.get("/v1/catalog/service/db").json();
    assert_eq!(db[0]["Node"], "ext");
    assert_eq!(s1.get("/v1/catalog/service/db").json(), json!([]));

    // An unknown datacenter gets Consul's answer, from a client or a server;
    // agent endpoints ignore `dc`.
    for a in [&c1, &s1] {
        let r = a.get("/v1/catalog/nodes?dc=nowhere");
        assert_eq!(
            (r.status, r.text().as_str()),
            (500, "No path to datacenter")
        );
        let r = a.put("/v1/kv/x?dc=nowhere", "1");
        assert_eq!(
            (r.status, r.text().as_str()),
            (500, "No path to datacenter")
        );
    }
    assert_eq!(c1.get("/v1/agent/self?dc=nowhere").status, 200);

    // DNS: another datacenter's service, through a client agent and a server;
    // an unknown datacenter is NXDOMAIN.
    for ip in ["127.0.6.2", "127.0.6.1"] {
        let m = dns(ip, "db.service.dc2.consul.");
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert_eq!(a_records(&m), ["10.0.0.9"]);
        let m = dns(ip, "s2.node.dc2.consul.");
        assert_eq!(a_records(&m), ["127.0.6.3"]);
        let m = dns(ip, "db.service.nowhere.consul.");
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    }

    // dc2's server dies: dc1 sees it failed in the WAN pool; requests for dc2
    // find no server that answers, and dc2 stays listed until it is reaped.
    let mut s2 = s2;
    s2.kill9();
    eventually("s2.dc2 to be failed in the WAN pool", 30, || {
        wan_members(&s1)
            .iter()
            .any(|(n, status, _)| n == "s2.dc2" && *status == 4)
    });
    let r = c1.get("/v1/kv/where?dc=dc2");
    assert_eq!(
        (r.status, r.text().as_str()),
        (500, "Remote DC has no server currently reachable")
    );
    assert_eq!(
        s1.get("/v1/catalog/datacenters").json(),
        json!(["dc1", "dc2"])
    );
    // Force-leaving it from the WAN pool removes the datacenter.
    let r = s1.put("/v1/agent/force-leave/s2.dc2?wan", "");
    assert_eq!(r.status, 200, "{}", r.text());
    eventually("dc2 to be gone", 15, || {
        s1.get("/v1/catalog/datacenters").json() == json!(["dc1"])
    });
    let r = c1.get("/v1/kv/where?dc=dc2");
    assert_eq!(
        (r.status, r.text().as_str()),
        (500, "No path to datacenter")
    );
    let r = c1.put("/v1/agent/force-leave/s2.dc2?wan", "");
    assert_eq!(
        (r.status, r.text().as_str()),
        (
            500,
            "Must be a server to force-leave a node from the WAN cluster"
        )
    );
}
