//! Resource records of the answers: A/AAAA/CNAME/SRV for service instances, node
//! address and node-meta TXT records, `.addr` records, SOA, NS and PTR, built from
//! plain catalog data exactly as Consul's legacy DNS server shapes them.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use hickory_proto::rr::rdata::{A, AAAA, CNAME, NS, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::health::srv_weight;
use super::name::{canonical_ip, encode_addr};
use super::settings::Settings;
use crate::structs::{CheckServiceNode, Node};

/// Most records a hostname may add through resolution without EDNS.
const MAX_RECURSE_RECORDS: usize = 5;

/// The three record sections of a reply.
#[derive(Debug, Default, Clone)]
pub struct Reply {
    pub answers: Vec<Record>,
    pub authority: Vec<Record>,
    pub additional: Vec<Record>,
}

/// A name from text, made fully qualified; `None` when it is not a valid DNS name.
pub fn dns_name(text: &str) -> Option<Name> {
    let mut t = text.to_string();
    if !t.ends_with('.') {
        t.push('.');
    }
    Name::from_ascii(&t).ok()
}

fn record(name: Name, ttl: u32, rdata: RData) -> Record {
    Record::from_rdata(name, ttl, rdata)
}

/// An A or AAAA record for `ip`, if `qtype` admits that family (SRV, NS and TXT
/// admit both, as do ANY queries).
pub fn address_record(qtype: RecordType, ip: IpAddr, ttl: u32, name: Name) -> Option<Record> {
    let both = matches!(
        qtype,
        RecordType::SRV | RecordType::ANY | RecordType::NS | RecordType::TXT
    );
    match canonical_ip(ip) {
        IpAddr::V4(v4) if both || qtype == RecordType::A => {
            Some(record(name, ttl, RData::A(A(v4))))
        }
        IpAddr::V6(v6) if both || qtype == RecordType::AAAA => {
            Some(record(name, ttl, RData::AAAA(AAAA(v6))))
        }
        _ => None,
    }
}

pub fn cname(name: Name, ttl: u32, target: Name) -> Record {
    record(name, ttl, RData::CNAME(CNAME(target)))
}

pub fn ptr(name: Name, target: Name) -> Record {
    record(name, 0, RData::PTR(PTR(target)))
}

/// The zone's SOA record (serial: the current unix time).
pub fn soa(settings: &Settings, domain: &str) -> Option<Record> {
    let serial = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as u32);
    let clamp = |v: u32| i32::try_from(v).unwrap_or(i32::MAX);
    let rdata = SOA::new(
        dns_name(&format!("ns.{domain}"))?,
        dns_name(&format!("hostmaster.{domain}"))?,
        serial,
        clamp(settings.soa.refresh),
        clamp(settings.soa.retry),
        clamp(settings.soa.expire),
        settings.soa.min_ttl,
    );
    Some(record(
        dns_name(domain)?,
        settings.soa.min_ttl,
        RData::SOA(rdata),
    ))
}

/// `<node>.node.<dc>.<domain>`.
pub fn node_fqdn(node: &str, datacenter: &str, domain: &str) -> String {
    format!("{node}.node.{datacenter}.{domain}")
}

/// Encodes one node-meta pair as an RFC 1464 `key=value` string: backquotes
/// escape backquotes, `=` and leading/trailing spaces of the key, and backquotes
/// of the value.
pub fn rfc1464(key: &str, value: &str) -> String {
    let key = key.replace('`', "``").replace('=', "`=");
    let trimmed_start = key.trim_start_matches(' ');
    let leading = key.len() - trimmed_start.len();
    let core = trimmed_start.trim_end_matches(' ');
    let trailing = trimmed_start.len() - core.len();
    format!(
        "{}{}{}={}",
        "` ".repeat(leading),
        core,
        "` ".repeat(trailing),
        value.replace('`', "``")
    )
}

/// TXT records for a node's metadata; keys starting `rfc1035-` give the bare value.
pub fn meta_txt(name: &Name, node: &Node, ttl: u32) -> Vec<Record> {
    node.meta
        .iter()
        .map(|(k, v)| {
            let text = if k.to_ascii_lowercase().starts_with("rfc1035-") {
                v.clone()
            } else {
                rfc1464(k, v)
            };
            // A character-string holds at most 255 bytes: longer texts are split.
            let chunks: Vec<&[u8]> = if text.is_empty() {
                vec![b"".as_slice()]
            } else {
                text.as_bytes().chunks(255).collect()
            };
            record(name.clone(), ttl, RData::TXT(TXT::from_bytes(chunks)))
        })
        .collect()
}

/// Which address families a question admits when an address is picked from a
/// node's or service's tagged addresses.
#[derive(Clone, Copy)]
struct Accept {
    v4: bool,
    v6: bool,
    any: bool,
}

fn accept(qtype: RecordType) -> Accept {
    Accept {
        v4: qtype == RecordType::A,
        v6: qtype == RecordType::AAAA,
        any: !matches!(qtype, RecordType::A | RecordType::AAAA),
    }
}

/// Picks the address to answer with: the LAN address of the asked family, else
/// the default when it fits (a hostname always fits), else nothing.
fn pick(accept: Accept, default: &str, v4: Option<&str>, v6: Option<&str>) -> String {
    if accept.v6
        && let Some(v6) = v6.filter(|s| !s.is_empty())
    {
        return v6.to_string();
    }
    if accept.v4
        && let Some(v4) = v4.filter(|s| !s.is_empty())
    {
        return v4.to_string();
    }
    if accept.any && !default.is_empty() {
        return default.to_string();
    }
    match default.parse::<IpAddr>().map(canonical_ip) {
        Ok(IpAddr::V4(_)) if accept.v4 => default.to_string(),
        Ok(IpAddr::V6(_)) if accept.v6 => default.to_string(),
        Ok(_) => String::new(),
        Err(_) => default.to_string(),
    }
}

fn node_address(node: &Node, accept: Accept) -> String {
    pick(
        accept,
        &node.address,
        node.tagged_addresses.get("lan_ipv4").map(String::as_str),
        node.tagged_addresses.get("lan_ipv6").map(String::as_str),
    )
}

/// How one instance is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// The node's own address: the SRV target is the node's name.
    NodeIp(IpAddr),
    /// An address of its own: the SRV target is `<hex>.addr.<dc>.<domain>`.
    Ip(IpAddr),
    /// A hostname: answered with a CNAME (SRV target) and what it resolves to.
    Host(String),
}

/// The endpoint of an instance for a question of type `qtype` about `qname`.
pub fn endpoint(inst: &CheckServiceNode, qtype: RecordType, qname: &str) -> Option<Endpoint> {
    let acc = accept(qtype);
    let tagged = |key: &str| {
        inst.service
            .tagged_addresses
            .get(key)
            .and_then(|v| v.get("Address"))
            .and_then(|a| a.as_str())
    };
    let service_addr = pick(
        acc,
        &inst.service.address,
        tagged("lan_ipv4"),
        tagged("lan_ipv6"),
    );
    let node_addr = node_address(&inst.node, acc);
    if service_addr.is_empty() && node_addr.is_empty() {
        return None;
    }
    let node_ip = node_addr.parse::<IpAddr>().ok();
    if service_addr.is_empty() {
        return Some(match node_ip {
            Some(ip) if inst.node.address == node_addr => Endpoint::NodeIp(ip),
            Some(ip) => Endpoint::Ip(ip),
            None => Endpoint::Host(node_addr),
        });
    }
    if let Ok(ip) = service_addr.parse::<IpAddr>() {
        return Some(Endpoint::Ip(ip));
    }
    let host = service_addr.trim_end_matches('.');
    if let Some(ip) = node_ip
        && format!("{host}.").eq_ignore_ascii_case(qname)
    {
        return Some(Endpoint::NodeIp(ip));
    }
    Some(Endpoint::Host(service_addr))
}

/// The address records of a node lookup: A/AAAA for an IP address, or a CNAME to
/// a hostname address followed by what that resolves to (`resolved`).
pub fn node_records(
    node: &Node,
    qtype: RecordType,
    qname: &Name,
    ttl: u32,
    resolved: &[Record],
) -> Vec<Record> {
    let addr = node_address(node, accept(qtype));
    if addr.is_empty() {
        return Vec::new();
    }
    match addr.parse::<IpAddr>() {
        Ok(ip) => address_record(qtype, ip, ttl, qname.clone())
            .into_iter()
            .collect(),
        Err(_) => match dns_name(&addr) {
            Some(target) => std::iter::once(cname(qname.clone(), ttl, target))
                .chain(resolved.iter().cloned())
                .collect(),
            None => Vec::new(),
        },
    }
}

/// The hostname whose resolution a node lookup needs, if any.
pub fn node_host(node: &Node, qtype: RecordType) -> Option<String> {
    let addr = node_address(node, accept(qtype));
    (!addr.is_empty() && addr.parse::<IpAddr>().is_err()).then_some(addr)
}

/// What the service answers are built from.
pub struct ServiceQuestion<'a> {
    pub qname: &'a Name,
    pub qtype: RecordType,
    pub ttl: u32,
    pub datacenter: &'a str,
    pub domain: &'a str,
    pub edns: bool,
    pub settings: &'a Settings,
}

impl ServiceQuestion<'_> {
    /// The records a hostname resolved to, as they appear under an instance: only
    /// CNAME/A/AAAA, with the service TTL, at most five without EDNS.
    fn host_records(&self, host: &str, resolved: &HashMap<String, Vec<Record>>) -> Vec<Record> {
        let mut out: Vec<Record> = resolved
            .get(&host.to_ascii_lowercase())
            .into_iter()
            .flatten()
            .filter(|r| {
                matches!(
                    r.record_type(),
                    RecordType::CNAME | RecordType::A | RecordType::AAAA
                )
            })
            .cloned()
            .map(|mut r| {
                r.ttl = self.ttl;
                r
            })
            .collect();
        if !self.edns {
            out.truncate(MAX_RECURSE_RECORDS);
        }
        out
    }

    /// `(answers, additional)` for one instance.
    fn instance_records(
        &self,
        inst: &CheckServiceNode,
        ep: &Endpoint,
        resolved: &HashMap<String, Vec<Record>>,
    ) -> (Vec<Record>, Vec<Record>) {
        let srv = self.qtype == RecordType::SRV;
        let port = inst.service.port as u16;
        let srv_record = |target: Name| {
            record(
                self.qname.clone(),
                self.ttl,
                RData::SRV(SRV::new(1, srv_weight(inst), port, target)),
            )
        };
        match ep {
            Endpoint::NodeIp(ip) | Endpoint::Ip(ip) => {
                let target = match ep {
                    Endpoint::NodeIp(_) => node_fqdn(&inst.node.node, self.datacenter, self.domain),
                    _ => format!(
                        "{}.addr.{}.{}",
                        encode_addr(*ip),
                        self.datacenter,
                        self.domain
                    ),
                };
                if !srv {
                    return (
                        address_record(self.qtype, *ip, self.ttl, self.qname.clone())
                            .into_iter()
                            .collect(),
                        Vec::new(),
                    );
                }
                let Some(target) = dns_name(&target) else {
                    return (Vec::new(), Vec::new());
                };
                match address_record(self.qtype, *ip, self.ttl, target.clone()) {
                    Some(a) => (vec![srv_record(target)], vec![a]),
                    None => (Vec::new(), Vec::new()),
                }
            }
            Endpoint::Host(host) => {
                let Some(target) = dns_name(host) else {
                    return (Vec::new(), Vec::new());
                };
                let more = self.host_records(host, resolved);
                if srv {
                    (vec![srv_record(target)], more)
                } else {
                    let mut answers = vec![cname(self.qname.clone(), self.ttl, target)];
                    answers.extend(more);
                    (answers, Vec::new())
                }
            }
        }
    }

    /// A/AAAA/ANY (and other non-SRV) answers: one address per instance, duplicates
    /// removed, capped by `a_record_limit`; CNAME answers only when no instance gave
    /// an address, and then only the first.
    pub fn address_reply(
        &self,
        instances: &[(CheckServiceNode, Option<Endpoint>)],
        resolved: &HashMap<String, Vec<Record>>,
    ) -> Reply {
        let mut reply = Reply::default();
        let mut seen = HashSet::new();
        let mut first_cname: Option<Vec<Record>> = None;
        let mut count = 0;
        for (inst, ep) in instances {
            let Some(ep) = ep else { continue };
            let (records, _) = self.instance_records(inst, ep, resolved);
            let Some(first) = records.first() else {
                continue;
            };
            if !seen.insert(first.to_string()) {
                continue;
            }
            if first.record_type() == RecordType::CNAME {
                first_cname.get_or_insert(records);
                continue;
            }
            reply.answers.extend(records);
            count += 1;
            if count == self.settings.a_record_limit {
                return reply;
            }
        }
        if reply.answers.is_empty()
            && let Some(c) = first_cname
        {
            reply.answers = c;
        }
        reply
    }

    /// SRV answers: one per distinct node/address/port, with the targets'
    /// addresses (and node-meta TXT records when enabled) in the additional section.
    pub fn srv_reply(
        &self,
        instances: &[(CheckServiceNode, Option<Endpoint>)],
        resolved: &HashMap<String, Vec<Record>>,
    ) -> Reply {
        let mut reply = Reply::default();
        let mut seen = HashSet::new();
        for (inst, ep) in instances {
            let any_addr = pick(accept(RecordType::ANY), &inst.service.address, None, None);
            if !seen.insert(format!(
                "{}:{}:{}",
                inst.node.node, any_addr, inst.service.port
            )) {
                continue;
            }
            if let Some(ep) = ep {
                let (answers, extra) = self.instance_records(inst, ep, resolved);
                reply.answers.extend(answers);
                reply.additional.extend(extra);
            }
            if self.settings.node_meta_txt
                && let Some(name) =
                    dns_name(&node_fqdn(&inst.node.node, self.datacenter, self.domain))
            {
                reply
                    .additional
                    .extend(meta_txt(&name, &inst.node, self.ttl));
            }
        }
        reply
    }
}

/// NS records naming up to three servers, and their addresses as glue.
pub fn name_servers(
    servers: &[CheckServiceNode],
    settings: &Settings,
    domain: &str,
) -> (Vec<Record>, Vec<Record>) {
    let (mut ns, mut glue) = (Vec::new(), Vec::new());
    let Some(zone) = dns_name(domain) else {
        return (ns, glue);
    };
    for server in servers {
        let node = &server.node;
        if node.node.is_empty()
            || !node
                .node
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            continue;
        }
        let dc = if node.datacenter.is_empty() {
            settings.datacenter.as_str()
        } else {
            node.datacenter.as_str()
        };
        let Some(target) = dns_name(&node_fqdn(&node.node, dc, domain).to_ascii_lowercase()) else {
            continue;
        };
        ns.push(record(
            zone.clone(),
            settings.node_ttl,
            RData::NS(NS(target.clone())),
        ));
        if let Ok(ip) = node.address.parse::<IpAddr>()
            && let Some(a) = address_record(RecordType::ANY, ip, settings.node_ttl, target)
        {
            glue.push(a);
        }
        if ns.len() >= 3 {
            break;
        }
    }
    (ns, glue)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::structs::NodeService;

    fn inst(node_addr: &str, svc_addr: &str) -> CheckServiceNode {
        CheckServiceNode {
            node: Node {
                node: "n1".into(),
                address: node_addr.into(),
                ..Node::default()
            },
            service: NodeService {
                service: "web".into(),
                address: svc_addr.into(),
                port: 80,
                ..NodeService::default()
            },
            checks: Vec::new(),
        }
    }

    #[test]
    fn rfc1464_escaping() {
        assert_eq!(rfc1464("key", "value"), "key=value");
        assert_eq!(rfc1464("a=b", "c`d"), "a`=b=c``d");
        assert_eq!(rfc1464("  k ", "v"), "` ` k` =v");
    }

    #[test]
    fn endpoints() {
        let q = "web.service.consul.";
        assert_eq!(
            endpoint(&inst("10.0.0.1", ""), RecordType::A, q),
            Some(Endpoint::NodeIp("10.0.0.1".parse().unwrap()))
        );
        assert_eq!(
            endpoint(&inst("10.0.0.1", "10.0.0.9"), RecordType::SRV, q),
            Some(Endpoint::Ip("10.0.0.9".parse().unwrap()))
        );
        assert_eq!(
            endpoint(&inst("10.0.0.1", "db.example.com"), RecordType::A, q),
            Some(Endpoint::Host("db.example.com".into()))
        );
        assert_eq!(
            endpoint(&inst("10.0.0.1", "web.service.consul"), RecordType::A, q),
            Some(Endpoint::NodeIp("10.0.0.1".parse().unwrap()))
        );
        // An AAAA question about an IPv4-only instance finds no address.
        assert_eq!(endpoint(&inst("10.0.0.1", ""), RecordType::AAAA, q), None);
        assert_eq!(
            endpoint(&inst("::1", ""), RecordType::AAAA, q),
            Some(Endpoint::NodeIp("::1".parse().unwrap()))
        );
    }

    #[test]
    fn address_records_follow_the_question_type() {
        let n = dns_name("x.consul").unwrap();
        let v4: IpAddr = "10.0.0.1".parse().unwrap();
        let v6: IpAddr = "::1".parse().unwrap();
        assert!(address_record(RecordType::A, v4, 0, n.clone()).is_some());
        assert!(address_record(RecordType::AAAA, v4, 0, n.clone()).is_none());
        assert!(address_record(RecordType::A, v6, 0, n.clone()).is_none());
        assert!(address_record(RecordType::SRV, v6, 0, n.clone()).is_some());
        assert!(address_record(RecordType::MX, v4, 0, n).is_none());
    }
}
