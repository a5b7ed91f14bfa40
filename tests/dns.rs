//! The DNS interface against the real binary, with hickory's message types as the
//! client: every name form, record types, health filtering, truncation over UDP
//! and full answers over TCP, recursion to a local upstream, and bad packets.

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpStream, UdpSocket};
use std::time::Duration;

use common::Agent;
use hickory_proto::op::{Edns, Message, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};

fn packet(name: &str, qtype: RecordType, edns: Option<u16>) -> Vec<u8> {
    let mut m = Message::query();
    m.metadata.id = rand::random();
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    if let Some(size) = edns {
        let mut e = Edns::new();
        e.set_max_payload(size);
        m.set_edns(e);
    }
    m.to_vec().unwrap()
}

fn udp_raw(port: u16, bytes: &[u8]) -> Option<Vec<u8>> {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    sock.send_to(bytes, ("127.0.0.1", port)).unwrap();
    let mut buf = vec![0; 65535];
    let (n, _) = sock.recv_from(&mut buf).ok()?;
    buf.truncate(n);
    Some(buf)
}

fn tcp_raw(port: u16, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(bytes);
    s.write_all(&framed).unwrap();
    let mut len = [0u8; 2];
    s.read_exact(&mut len).unwrap();
    let mut body = vec![0; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut body).unwrap();
    body
}

fn udp_with(agent: &Agent, name: &str, qtype: RecordType, edns: Option<u16>) -> Message {
    let req = packet(name, qtype, edns);
    let bytes = udp_raw(agent.dns, &req).unwrap_or_else(|| panic!("no reply for {name}"));
    let m = Message::from_vec(&bytes).unwrap();
    assert_eq!(m.metadata.id, u16::from_be_bytes([req[0], req[1]]));
    m
}

fn udp(agent: &Agent, name: &str, qtype: RecordType) -> Message {
    udp_with(agent, name, qtype, None)
}

fn tcp(agent: &Agent, name: &str, qtype: RecordType) -> Message {
    Message::from_vec(&tcp_raw(agent.dns, &packet(name, qtype, None))).unwrap()
}

fn ipv4s(records: &[Record]) -> BTreeSet<String> {
    records
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0.to_string()),
            _ => None,
        })
        .collect()
}

fn of_type(records: &[Record], t: RecordType) -> Vec<&Record> {
    records.iter().filter(|r| r.record_type() == t).collect()
}

fn txts(records: &[Record]) -> BTreeSet<String> {
    records
        .iter()
        .filter_map(|r| match &r.data {
            RData::TXT(t) => Some(
                t.txt_data
                    .iter()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .collect::<String>(),
            ),
            _ => None,
        })
        .collect()
}

fn has_soa(m: &Message) -> bool {
    m.authorities
        .iter()
        .any(|r| r.record_type() == RecordType::SOA)
}

fn register(agent: &Agent, body: serde_json::Value) {
    let r = agent.put("/v1/catalog/register", body.to_string());
    assert_eq!(r.status, 200, "{}", r.text());
}

fn hcl(agent_args: &[&str]) -> Agent {
    let mut args = vec!["-dev".to_string()];
    args.extend(agent_args.iter().map(|s| s.to_string()));
    Agent::start(args, None)
}

/// The catalog most tests share: two healthy web instances (one warning), one
/// critical, an IPv6 service and node metadata.
fn seed(agent: &Agent) {
    register(
        agent,
        serde_json::json!({
            "Node": "web-1", "Address": "10.0.0.1", "NodeMeta": {"rack": "r1", "rfc1035-raw": "plain"},
            "Service": {"Service": "web", "Tags": ["v1", "primary"], "Port": 8080},
        }),
    );
    register(
        agent,
        serde_json::json!({
            "Node": "web-2", "Address": "10.0.0.2",
            "Service": {"Service": "web", "Tags": ["v2"], "Address": "10.1.0.2", "Port": 8081,
                        "Weights": {"Passing": 10, "Warning": 2}},
            "Check": {"CheckID": "web-check", "Name": "web check", "Status": "warning", "ServiceID": "web"},
        }),
    );
    register(
        agent,
        serde_json::json!({
            "Node": "web-3", "Address": "10.0.0.3",
            "Service": {"Service": "web", "Port": 8082},
            "Check": {"CheckID": "web-check", "Name": "web check", "Status": "critical", "ServiceID": "web"},
        }),
    );
    register(
        agent,
        serde_json::json!({
            "Node": "v6node", "Address": "2001:db8::1",
            "Service": {"Service": "web6", "Port": 9090},
        }),
    );
}

#[test]
fn service_lookups() {
    let agent = Agent::dev();
    seed(&agent);

    // A: healthy instances (service address before node address); critical dropped.
    for name in [
        "web.service.consul.",
        "web.service.dc1.consul.",
        "web.service.dc1.dc.consul.",
    ] {
        let m = udp(&agent, name, RecordType::A);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{name}");
        assert!(m.metadata.authoritative);
        assert!(!m.metadata.recursion_available);
        assert_eq!(
            ipv4s(&m.answers),
            BTreeSet::from(["10.0.0.1".to_string(), "10.1.0.2".to_string()]),
            "{name}"
        );
        assert!(m.answers.iter().all(|r| r.ttl == 0));
    }
    // The name is answered in the case it was asked.
    let m = udp(&agent, "WEB.Service.Consul.", RecordType::A);
    assert_eq!(m.answers.len(), 2);
    assert_eq!(m.answers[0].name.to_ascii(), "WEB.Service.Consul.");

    // Tags, in both grammars.
    let m = udp(&agent, "v1.web.service.consul.", RecordType::A);
    assert_eq!(ipv4s(&m.answers), BTreeSet::from(["10.0.0.1".to_string()]));
    let m = udp(&agent, "V2.web.service.consul.", RecordType::A);
    assert_eq!(ipv4s(&m.answers), BTreeSet::from(["10.1.0.2".to_string()]));
    let m = udp(&agent, "nosuchtag.web.service.consul.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);

    // SRV: node target for the node address, hex .addr target for a service address.
    let m = udp(&agent, "web.service.consul.", RecordType::SRV);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    let mut targets: Vec<(String, u16, u16, u16)> = m
        .answers
        .iter()
        .map(|r| match &r.data {
            RData::SRV(s) => (s.target.to_ascii(), s.port, s.priority, s.weight),
            other => panic!("not SRV: {other:?}"),
        })
        .collect();
    targets.sort();
    assert_eq!(
        targets,
        vec![
            ("0a010002.addr.dc1.consul.".to_string(), 8081, 1, 2),
            ("web-1.node.dc1.consul.".to_string(), 8080, 1, 1),
        ]
    );
    assert_eq!(
        ipv4s(&m.additionals),
        BTreeSet::from(["10.0.0.1".to_string(), "10.1.0.2".to_string()])
    );
    // Node metadata of the targets travels as TXT in the additional section.
    assert_eq!(
        txts(&m.additionals),
        BTreeSet::from(["rack=r1".to_string(), "plain".to_string()])
    );

    // RFC 2782 forms, with and without `.service`.
    for name in [
        "_web._v1.service.consul.",
        "_web._v1.consul.",
        "_web._v1.dc1.consul.",
    ] {
        let m = udp(&agent, name, RecordType::SRV);
        assert_eq!(m.answers.len(), 1, "{name}");
    }
    for name in ["_web._tcp.service.consul.", "_web._tcp.consul."] {
        let m = udp(&agent, name, RecordType::SRV);
        assert_eq!(m.answers.len(), 2, "{name}");
    }

    // AAAA for IPv4-only instances: NODATA (NOERROR, SOA); IPv6 service answers.
    let m = udp(&agent, "web.service.consul.", RecordType::AAAA);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty() && has_soa(&m));
    let m = udp(&agent, "web6.service.consul.", RecordType::AAAA);
    assert_eq!(m.answers.len(), 1);
    assert!(matches!(&m.answers[0].data, RData::AAAA(a) if a.0.to_string() == "2001:db8::1"));
    let m = udp(&agent, "web6.service.consul.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty() && has_soa(&m));
    // ANY gives both families.
    let m = udp(&agent, "web.service.consul.", RecordType::ANY);
    assert_eq!(ipv4s(&m.answers).len(), 2);
    // An unrelated type: NODATA with SOA.
    let m = udp(&agent, "web.service.consul.", RecordType::MX);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty() && has_soa(&m));

    // Unknown service, unknown datacenter, bad locality, unknown kind: NXDOMAIN + SOA.
    for name in [
        "nosuch.service.consul.",
        "web.service.dc2.consul.",
        "web.service.a.b.consul.",
        "web.bogus.consul.",
        "consul.",
        "web.service.p.peer.consul.",
    ] {
        let m = udp(&agent, name, RecordType::A);
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain, "{name}");
        assert!(has_soa(&m), "{name}");
        assert!(m.metadata.authoritative);
    }

    // Connect and ingress: no mesh endpoints registered.
    let m = udp(&agent, "web.connect.consul.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    let m = udp(&agent, "web.ingress.consul.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    // Virtual IPs: none allocated, NOERROR and empty.
    let m = udp(&agent, "web.virtual.consul.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());
}

#[test]
fn nodes_addr_query_soa_ns_and_ptr() {
    let agent = Agent::dev();
    seed(&agent);

    // Node A: the address, node meta as TXT in additional.
    let m = udp(&agent, "web-1.node.consul.", RecordType::A);
    assert_eq!(ipv4s(&m.answers), BTreeSet::from(["10.0.0.1".to_string()]));
    assert_eq!(
        txts(&m.additionals),
        BTreeSet::from(["rack=r1".to_string(), "plain".to_string()])
    );
    let m = udp(&agent, "web-1.node.dc1.consul.", RecordType::TXT);
    assert_eq!(
        txts(&m.answers),
        BTreeSet::from(["rack=r1".to_string(), "plain".to_string()])
    );
    assert!(of_type(&m.answers, RecordType::A).is_empty());
    let m = udp(&agent, "web-1.node.consul.", RecordType::ANY);
    assert_eq!(of_type(&m.answers, RecordType::A).len(), 1);
    assert_eq!(of_type(&m.answers, RecordType::TXT).len(), 2);
    let m = udp(&agent, "v6node.node.consul.", RecordType::AAAA);
    assert_eq!(of_type(&m.answers, RecordType::AAAA).len(), 1);
    // A node that exists, a type a node does not answer: NOERROR, no SOA.
    let m = udp(&agent, "web-1.node.consul.", RecordType::MX);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty() && !has_soa(&m));
    // A for an IPv6-only node: NOERROR, empty, no SOA.
    let m = udp(&agent, "v6node.node.consul.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty() && !has_soa(&m));
    // Unknown node or datacenter: NXDOMAIN.
    for name in ["nope.node.consul.", "web-1.node.dc9.consul."] {
        let m = udp(&agent, name, RecordType::A);
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain, "{name}");
        assert!(has_soa(&m));
    }
    // The agent's own node.
    let m = udp(&agent, "it-node.node.consul.", RecordType::A);
    assert_eq!(ipv4s(&m.answers), BTreeSet::from(["127.0.0.1".to_string()]));

    // .addr: A/AAAA in the answer for the matching type, else in additional.
    let m = udp(&agent, "0a000001.addr.dc1.consul.", RecordType::A);
    assert_eq!(ipv4s(&m.answers), BTreeSet::from(["10.0.0.1".to_string()]));
    let m = udp(&agent, "0a000001.addr.consul.", RecordType::SRV);
    assert!(m.answers.is_empty());
    assert_eq!(
        ipv4s(&m.additionals),
        BTreeSet::from(["10.0.0.1".to_string()])
    );
    let m = udp(
        &agent,
        "20010db8000000000000000000000001.addr.consul.",
        RecordType::AAAA,
    );
    assert_eq!(of_type(&m.answers, RecordType::AAAA).len(), 1);
    let m = udp(&agent, "0a0001.addr.consul.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);

    // Prepared queries do not exist yet: as Consul does for an unknown query.
    for (name, t) in [
        ("geo.query.consul.", RecordType::A),
        ("_geo._tcp.query.dc1.consul.", RecordType::SRV),
    ] {
        let m = udp(&agent, name, t);
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain, "{name}");
        assert!(has_soa(&m));
    }

    // SOA: any name in the domain; NS of the servers in authority, glue in additional.
    for name in ["consul.", "web.service.consul."] {
        let m = udp(&agent, name, RecordType::SOA);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        let soa = match &m.answers[0].data {
            RData::SOA(s) => s.clone(),
            other => panic!("not SOA: {other:?}"),
        };
        assert_eq!(m.answers[0].name.to_ascii(), "consul.");
        assert_eq!(soa.mname.to_ascii(), "ns.consul.");
        assert_eq!(soa.rname.to_ascii(), "hostmaster.consul.");
        assert_eq!(
            (soa.refresh, soa.retry, soa.expire, soa.minimum),
            (3600, 600, 86400, 0)
        );
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as u32;
        assert!(soa.serial.abs_diff(now) < 60);
        let ns = of_type(&m.authorities, RecordType::NS);
        assert_eq!(ns.len(), 1);
        assert!(
            matches!(&ns[0].data, RData::NS(n) if n.0.to_ascii() == "it-node.node.dc1.consul.")
        );
        assert_eq!(
            ipv4s(&m.additionals),
            BTreeSet::from(["127.0.0.1".to_string()])
        );
    }
    let m = udp(&agent, "consul.", RecordType::NS);
    assert_eq!(of_type(&m.answers, RecordType::NS).len(), 1);
    assert_eq!(
        ipv4s(&m.additionals),
        BTreeSet::from(["127.0.0.1".to_string()])
    );

    // Reverse lookups: a node address, then a service address.
    let m = udp(&agent, "1.0.0.10.in-addr.arpa.", RecordType::PTR);
    assert!(
        matches!(&m.answers[0].data, RData::PTR(p) if p.0.to_ascii() == "web-1.node.dc1.consul.")
    );
    let m = udp(&agent, "2.0.1.10.in-addr.arpa.", RecordType::PTR);
    assert!(
        matches!(&m.answers[0].data, RData::PTR(p) if p.0.to_ascii() == "web.service.dc1.consul.")
    );
    let m = udp(&agent, "9.9.9.10.in-addr.arpa.", RecordType::PTR);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);

    // Outside the domain without recursors: REFUSED.
    let m = udp(&agent, "example.com.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);

    // AXFR is not implemented.
    let m = tcp(&agent, "consul.", RecordType::AXFR);
    assert_eq!(m.metadata.response_code, ResponseCode::NotImp);
}

#[test]
fn registration_over_http_resolves_at_once_and_deregistration_too() {
    let agent = Agent::dev();
    let m = udp(&agent, "fresh.service.consul.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    register(
        &agent,
        serde_json::json!({"Node": "n1", "Address": "10.9.0.1", "Service": {"Service": "fresh", "Port": 1}}),
    );
    // Lookups of one catalog state share their instances; asking again must
    // not pin that state once it changes.
    for _ in 0..3 {
        let m = udp(&agent, "fresh.service.consul.", RecordType::A);
        assert_eq!(ipv4s(&m.answers), BTreeSet::from(["10.9.0.1".to_string()]));
    }
    // A critical node-level check takes the instance out.
    register(
        &agent,
        serde_json::json!({"Node": "n1", "Address": "10.9.0.1",
            "Check": {"CheckID": "node-down", "Name": "node down", "Status": "critical"}}),
    );
    let m = udp(&agent, "fresh.service.consul.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    // And brings it back when it passes again.
    register(
        &agent,
        serde_json::json!({"Node": "n1", "Address": "10.9.0.1",
            "Check": {"CheckID": "node-down", "Name": "node down", "Status": "passing"}}),
    );
    let m = udp(&agent, "fresh.service.consul.", RecordType::A);
    assert_eq!(ipv4s(&m.answers), BTreeSet::from(["10.9.0.1".to_string()]));
}

#[test]
fn dns_config_only_passing_ttls_truncate_and_alt_domain() {
    let agent = hcl(&[
        r#"-hcl=dns_config { only_passing = true, node_ttl = "3s", enable_truncate = true, udp_answer_limit = 2, service_ttl = { "*" = "7s", "web" = "9s" } }"#,
        "-hcl=dns_config { enable_additional_node_meta_txt = true }",
        "-alt-domain=cluster.test",
        "-domain=consul",
    ]);
    seed(&agent);
    // Warning dropped with only_passing; the exact TTL beats the wildcard.
    let m = udp(&agent, "web.service.consul.", RecordType::A);
    assert_eq!(ipv4s(&m.answers), BTreeSet::from(["10.0.0.1".to_string()]));
    assert_eq!(m.answers[0].ttl, 9);
    let m = udp(&agent, "web6.service.consul.", RecordType::AAAA);
    assert_eq!(m.answers[0].ttl, 7);
    let m = udp(&agent, "web-1.node.consul.", RecordType::A);
    assert_eq!(m.answers[0].ttl, 3);

    // The alternate domain answers too, and names in answers use it.
    let m = udp(&agent, "web.service.cluster.test.", RecordType::SRV);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(
        matches!(&m.answers[0].data, RData::SRV(s) if s.target.to_ascii() == "web-1.node.dc1.cluster.test.")
    );
    let m = udp(&agent, "cluster.test.", RecordType::SOA);
    assert_eq!(m.answers[0].name.to_ascii(), "cluster.test.");

    // udp_answer_limit = 2 with enable_truncate: the TC bit is set.
    for i in 0..5 {
        register(
            &agent,
            serde_json::json!({"Node": format!("m{i}"), "Address": format!("10.5.0.{i}"),
                "Service": {"Service": "many", "Port": 1}}),
        );
    }
    let m = udp(&agent, "many.service.consul.", RecordType::A);
    assert_eq!(m.answers.len(), 2);
    assert!(m.metadata.truncation);
    let m = tcp(&agent, "many.service.consul.", RecordType::A);
    assert_eq!(m.answers.len(), 5);
    assert!(!m.metadata.truncation);
}

#[test]
fn truncation_over_udp_and_full_answers_over_tcp() {
    let agent = Agent::dev();
    for i in 0..50 {
        register(
            &agent,
            serde_json::json!({"Node": format!("big-node-{i}"), "Address": format!("10.7.{}.{}", i / 200, i % 200 + 1),
                "NodeMeta": {"idx": i.to_string()},
                "Service": {"Service": "big", "Port": 2000 + i}}),
        );
    }
    // No EDNS: three answers, TC not set (enable_truncate is off).
    let m = udp(&agent, "big.service.consul.", RecordType::A);
    assert_eq!(m.answers.len(), 3);
    assert!(!m.metadata.truncation);
    assert!(m.edns.is_none());
    let m = udp(&agent, "big.service.consul.", RecordType::SRV);
    assert_eq!(m.answers.len(), 3);
    assert!(!m.metadata.truncation);
    // The additional section only covers the remaining targets.
    let targets: BTreeSet<String> = m
        .answers
        .iter()
        .map(|r| match &r.data {
            RData::SRV(s) => s.target.to_ascii(),
            _ => unreachable!(),
        })
        .collect();
    let extra_names: BTreeSet<String> = m.additionals.iter().map(|r| r.name.to_ascii()).collect();
    assert_eq!(targets, extra_names);

    // Shuffled on every query.
    let firsts: BTreeSet<String> = (0..8)
        .map(|_| udp(&agent, "big.service.consul.", RecordType::A).answers[0].to_string())
        .collect();
    assert!(firsts.len() > 1, "answers are not shuffled");

    // EDNS with a large buffer: all fit; the reply carries OPT.
    let m = udp_with(&agent, "big.service.consul.", RecordType::A, Some(4096));
    assert_eq!(m.answers.len(), 50);
    assert!(m.edns.is_some());
    // EDNS with a small buffer: trimmed to what fits.
    let m = udp_with(&agent, "big.service.consul.", RecordType::SRV, Some(1024));
    assert!(
        m.answers.len() > 3 && m.answers.len() < 50,
        "{}",
        m.answers.len()
    );

    // TCP: everything.
    let m = tcp(&agent, "big.service.consul.", RecordType::A);
    assert_eq!(m.answers.len(), 50);
    let m = tcp(&agent, "big.service.consul.", RecordType::SRV);
    assert_eq!(m.answers.len(), 50);
    assert_eq!(of_type(&m.additionals, RecordType::A).len(), 50);
    assert_eq!(of_type(&m.additionals, RecordType::TXT).len(), 50);
}

/// A one-socket UDP DNS server answering every question with `answer` and `rcode`.
fn upstream(answer: Ipv4Addr, rcode: ResponseCode) -> u16 {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = sock.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut buf = vec![0; 4096];
        while let Ok((n, from)) = sock.recv_from(&mut buf) {
            let Ok(req) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let mut resp = Message::response(req.metadata.id, req.metadata.op_code);
            resp.metadata.response_code = rcode;
            resp.metadata.recursion_available = true;
            for q in &req.queries {
                resp.add_query(q.clone());
                if rcode == ResponseCode::NoError && q.query_type() == RecordType::A {
                    resp.add_answer(Record::from_rdata(
                        q.name().clone(),
                        42,
                        RData::A(A(answer)),
                    ));
                }
            }
            let _ = sock.send_to(&resp.to_vec().unwrap(), from);
        }
    });
    port
}

#[test]
fn recursors_forward_names_outside_the_domain() {
    let failing = upstream(Ipv4Addr::new(192, 0, 2, 1), ResponseCode::ServFail);
    let good = upstream(Ipv4Addr::new(192, 0, 2, 7), ResponseCode::NoError);
    let agent = hcl(&[
        &format!("-recursor=127.0.0.1:{failing}"),
        &format!("-recursor=127.0.0.1:{good}"),
    ]);
    // The first recursor answers SERVFAIL, so the second one's answer is used.
    let m = udp(&agent, "www.example.com.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(ipv4s(&m.answers), BTreeSet::from(["192.0.2.7".to_string()]));
    assert_eq!(m.answers[0].ttl, 42);
    assert!(m.metadata.recursion_available);
    // Our own names still answer locally, with RA now set.
    let m = udp(&agent, "consul.", RecordType::SOA);
    assert!(m.metadata.recursion_available && m.metadata.authoritative);

    // A service whose address is a hostname: CNAME plus what the recursors say.
    // Hostnames take the first reply whatever its rcode (as Consul does), so this
    // agent asks a silent recursor first: it times out and the next one answers.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let agent = hcl(&[
        &format!("-recursor=127.0.0.1:{silent_port}"),
        &format!("-recursor=127.0.0.1:{good}"),
        r#"-hcl=dns_config { recursor_timeout = "300ms" }"#,
    ]);
    register(
        &agent,
        serde_json::json!({"Node": "ext", "Address": "db.example.com",
            "Service": {"Service": "extdb", "Port": 5432}}),
    );
    let m = udp(&agent, "extdb.service.consul.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(matches!(&m.answers[0].data, RData::CNAME(c) if c.0.to_ascii() == "db.example.com."));
    assert_eq!(ipv4s(&m.answers), BTreeSet::from(["192.0.2.7".to_string()]));
    let m = udp(&agent, "extdb.service.consul.", RecordType::SRV);
    assert!(
        matches!(&m.answers[0].data, RData::SRV(s) if s.target.to_ascii() == "db.example.com.")
    );
    assert_eq!(
        ipv4s(&m.additionals),
        BTreeSet::from(["192.0.2.7".to_string()])
    );
    // Forwarding also moves on after a timeout, and TCP clients are forwarded over TCP
    // (the test upstream has no TCP listener, so that fails over to SERVFAIL).
    let m = udp(&agent, "www.example.com.", RecordType::A);
    assert_eq!(ipv4s(&m.answers), BTreeSet::from(["192.0.2.7".to_string()]));
    let m = tcp(&agent, "www.example.com.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    assert!(m.metadata.recursion_available);
    drop(silent);

    // Only failing recursors: SERVFAIL.
    let failing_only = hcl(&[&format!("-recursor=127.0.0.1:{failing}")]);
    let m = udp(&failing_only, "www.example.com.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
}

#[test]
fn malformed_packets_do_no_harm() {
    let agent = Agent::dev();
    let garbage: Vec<Vec<u8>> = vec![
        vec![],
        vec![0x12],
        vec![0x12, 0x34, 0x01, 0x00, 0x00],
        // A header announcing one question, and nothing after it.
        vec![0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0],
        // A question name running past the end.
        vec![
            0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0x3f, b'a', b'b',
        ],
        // A compression pointer pointing at itself.
        vec![
            0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c, 0, 1, 0, 1,
        ],
        (0..600).map(|i| (i * 7 + 3) as u8).collect(),
    ];
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    for g in &garbage {
        sock.send_to(g, ("127.0.0.1", agent.dns)).unwrap();
    }
    for _ in 0..50 {
        let junk: Vec<u8> = (0..rand::random_range(0..300))
            .map(|_| rand::random())
            .collect();
        sock.send_to(&junk, ("127.0.0.1", agent.dns)).unwrap();
    }
    // A reply to a bad question, if any, is an error and not an answer.
    let bad = udp_raw(agent.dns, &garbage[3]);
    if let Some(b) = bad {
        let m = Message::from_vec(&b).unwrap();
        assert_ne!(m.metadata.response_code, ResponseCode::NoError);
    }
    // Two questions in one message: FORMERR.
    let mut two = Message::query();
    two.metadata.id = 7;
    two.add_query(Query::query(
        Name::from_ascii("a.consul.").unwrap(),
        RecordType::A,
    ));
    two.add_query(Query::query(
        Name::from_ascii("b.consul.").unwrap(),
        RecordType::A,
    ));
    let m = Message::from_vec(&udp_raw(agent.dns, &two.to_vec().unwrap()).unwrap()).unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::FormErr);

    // TCP garbage: a bad frame, then a connection closed mid-frame.
    {
        let mut s = TcpStream::connect(("127.0.0.1", agent.dns)).unwrap();
        let _ = s.write_all(&[0, 5, 1, 2, 3, 4, 5]);
        let mut s2 = TcpStream::connect(("127.0.0.1", agent.dns)).unwrap();
        let _ = s2.write_all(&[0xff, 0xff, 1, 2]);
    }
    // The server still answers over both transports.
    let m = udp(&agent, "it-node.node.consul.", RecordType::A);
    assert_eq!(
        m.answers[0].data,
        RData::A(A("127.0.0.1".parse::<Ipv4Addr>().unwrap()))
    );
    let m = tcp(&agent, "it-node.node.consul.", RecordType::A);
    assert_eq!(m.answers.len(), 1);
    let ip: IpAddr = "127.0.0.1".parse().unwrap();
    assert!(matches!(&m.answers[0].data, RData::A(a) if IpAddr::V4(a.0) == ip));
    // And the HTTP API is fine too.
    assert_eq!(agent.get("/v1/catalog/nodes").status, 200);
}
