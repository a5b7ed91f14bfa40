//! The query-name grammar of the DNS interface: which of our domains a name falls
//! in, and what the labels in front of the domain ask for (`<svc>.service`,
//! `_<svc>._<tag>`, `<node>.node`, `<hex>.addr`, `<q>.query`, ...), with the
//! locality suffixes (`<dc>`, `<dc>.dc`, `<peer>.peer`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The configured domain and alternate domain, lowercased and fully qualified.
#[derive(Debug, Clone)]
pub struct Domains {
    pub primary: String,
    pub alt: Option<String>,
}

/// Lowercases a domain and makes it end in a dot.
pub fn fqdn(name: &str) -> String {
    let mut s = name.trim().to_ascii_lowercase();
    if !s.ends_with('.') {
        s.push('.');
    }
    s
}

impl Domains {
    pub fn new(primary: &str, alt: Option<&str>) -> Domains {
        Domains {
            primary: fqdn(primary),
            alt: alt.map(fqdn).filter(|a| a != "."),
        }
    }

    /// The domain `name` (lowercase, fully qualified) belongs to, preferring the
    /// longer one when both match; `None` when the name is not ours.
    pub fn matching(&self, name: &str) -> Option<&str> {
        let inside = |d: &str| name == d || name.ends_with(&format!(".{d}"));
        let mut candidates: Vec<&str> = std::iter::once(self.primary.as_str())
            .chain(self.alt.as_deref())
            .filter(|d| *d != "." && inside(d))
            .collect();
        candidates.sort_by_key(|d| std::cmp::Reverse(d.len()));
        candidates.first().copied()
    }
}

/// Where a lookup should be answered: the agent's own datacenter, another one, or
/// a cluster peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Local,
    Datacenter(String),
    Peer(String),
}

/// The locality suffix of a name (the labels between the kind label and the domain).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Locality {
    /// From `<dc>.dc`.
    pub datacenter: Option<String>,
    /// From `<peer>.peer`.
    pub peer: Option<String>,
    /// From a single bare label: a datacenter, or a peer for `.virtual`.
    pub bare: Option<String>,
}

impl Locality {
    /// The target of a service or node lookup: a peer when named explicitly, else a
    /// datacenter (explicit, then bare), else the local one.
    pub fn target(&self) -> Target {
        if let Some(p) = &self.peer {
            return Target::Peer(p.clone());
        }
        match self.datacenter.as_ref().or(self.bare.as_ref()) {
            Some(dc) => Target::Datacenter(dc.clone()),
            None => Target::Local,
        }
    }
}

/// What a name inside our domain asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// `[<tag>.]<svc>.service`, `_<svc>._<tag>[.service]`.
    Service {
        service: String,
        tag: Option<String>,
        locality: Locality,
    },
    /// `<svc>.connect`: Connect-capable endpoints.
    Connect { service: String, locality: Locality },
    /// `<svc>.ingress`: ingress gateway endpoints.
    Ingress { service: String, locality: Locality },
    /// `<svc>.virtual[.<peer>]`: the service's virtual IP.
    Virtual { service: String, locality: Locality },
    /// `<node>.node`.
    Node { node: String, locality: Locality },
    /// `<id-or-name>.query[.<dc>]`, `_<name>._<proto>.query[.<dc>]`.
    Prepared {
        query: String,
        datacenter: Option<String>,
    },
    /// `<hex>.addr[...]`.
    Addr(IpAddr),
    /// Anything else: an unknown kind, missing parts, a bad locality.
    Invalid,
}

const KINDS: [&str; 7] = [
    "service", "connect", "virtual", "ingress", "node", "query", "addr",
];

/// Parses the labels in front of the domain (`relative`, lowercase, no trailing
/// dot). `srv` says whether the question type is SRV, which makes a leading `_`
/// label imply `.service`.
pub fn parse(relative: &str, srv: bool) -> Query {
    let labels: Vec<&str> = relative.split('.').filter(|l| !l.is_empty()).collect();
    let mut found = None;
    for i in (0..labels.len()).rev() {
        if KINDS.contains(&labels[i]) {
            found = Some((labels[i], &labels[..i], &labels[i + 1..]));
            break;
        }
        if srv && labels[i].starts_with('_') {
            found = Some(("service", &labels[..=i], &labels[i + 1..]));
            break;
        }
    }
    let Some((kind, parts, suffixes)) = found else {
        return Query::Invalid;
    };
    if parts.is_empty() {
        return Query::Invalid;
    }
    let last = parts[parts.len() - 1].to_string();
    match kind {
        "service" => {
            let Some(locality) = locality(suffixes) else {
                return Query::Invalid;
            };
            let (service, tag) =
                if parts.len() == 2 && parts[0].starts_with('_') && parts[1].starts_with('_') {
                    let tag = &parts[1][1..];
                    (
                        parts[0][1..].to_string(),
                        (tag != "tcp").then(|| tag.to_string()),
                    )
                } else {
                    let tag = parts[..parts.len() - 1].join(".");
                    (last, (!tag.is_empty()).then_some(tag))
                };
            let tag = tag.filter(|t| !t.is_empty());
            Query::Service {
                service,
                tag,
                locality,
            }
        }
        "connect" | "ingress" | "virtual" => {
            let Some(locality) = locality(suffixes) else {
                return Query::Invalid;
            };
            match kind {
                "connect" => Query::Connect {
                    service: last,
                    locality,
                },
                "ingress" => Query::Ingress {
                    service: last,
                    locality,
                },
                _ => Query::Virtual {
                    service: last,
                    locality,
                },
            }
        }
        "node" => match locality(suffixes) {
            Some(locality) => Query::Node {
                node: parts.join("."),
                locality,
            },
            None => Query::Invalid,
        },
        "query" => {
            let datacenter = match suffixes {
                [] => None,
                [dc] => Some(dc.to_string()),
                _ => return Query::Invalid,
            };
            let n = parts.len();
            let query = if n >= 2 && parts[0].starts_with('_') && parts[n - 1].starts_with('_') {
                parts[..n - 1].join(".")[1..].to_string()
            } else {
                parts.join(".")
            };
            Query::Prepared { query, datacenter }
        }
        "addr" => match parts {
            [hex] => decode_addr(hex).map_or(Query::Invalid, Query::Addr),
            _ => Query::Invalid,
        },
        _ => Query::Invalid,
    }
}

/// `[<dc>]`, or pairs of `<name>.dc` / `<name>.peer` (not both kinds).
fn locality(labels: &[&str]) -> Option<Locality> {
    match labels.len() {
        0 => Some(Locality::default()),
        1 => Some(Locality {
            bare: Some(labels[0].to_string()),
            ..Locality::default()
        }),
        2 | 4 => {
            let mut loc = Locality::default();
            for pair in labels.chunks(2) {
                match pair[1] {
                    "dc" => loc.datacenter = Some(pair[0].to_string()),
                    "peer" => loc.peer = Some(pair[0].to_string()),
                    _ => return None,
                }
            }
            if loc.datacenter.is_some() && loc.peer.is_some() {
                return None;
            }
            Some(loc)
        }
        _ => None,
    }
}

/// `<hex>` of an `.addr` name: 8 hex digits for IPv4, 32 for IPv6.
fn decode_addr(hex: &str) -> Option<IpAddr> {
    let bytes = hex::decode(hex).ok()?;
    match bytes.len() {
        4 => Some(IpAddr::V4(Ipv4Addr::new(
            bytes[0], bytes[1], bytes[2], bytes[3],
        ))),
        16 => {
            let arr: [u8; 16] = bytes.try_into().ok()?;
            Some(IpAddr::V6(Ipv6Addr::from(arr)))
        }
        _ => None,
    }
}

/// The `<hex>` label of an `.addr` name for `ip` (an IPv4-mapped IPv6 address
/// counts as IPv4).
pub fn encode_addr(ip: IpAddr) -> String {
    match canonical_ip(ip) {
        IpAddr::V4(v4) => hex::encode(v4.octets()),
        IpAddr::V6(v6) => hex::encode(v6.octets()),
    }
}

/// Treats IPv4-mapped IPv6 addresses as IPv4, as Go's `To4` does.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The reverse-lookup name of `ip` (`d.c.b.a.in-addr.arpa.` or the nibbles of
/// `ip6.arpa.`).
pub fn reverse_name(ip: IpAddr) -> String {
    match canonical_ip(ip) {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}.in-addr.arpa.", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v6) => {
            let mut s = String::with_capacity(72);
            for b in v6.octets().iter().rev() {
                s.push_str(&format!("{:x}.{:x}.", b & 0xf, b >> 4));
            }
            s.push_str("ip6.arpa.");
            s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(service: &str, tag: Option<&str>, locality: Locality) -> Query {
        Query::Service {
            service: service.into(),
            tag: tag.map(str::to_string),
            locality,
        }
    }

    fn dc(name: &str) -> Locality {
        Locality {
            bare: Some(name.into()),
            ..Locality::default()
        }
    }

    #[test]
    fn domains_match_longest_suffix() {
        let d = Domains::new("consul", Some("test.consul."));
        assert_eq!(d.primary, "consul.");
        assert_eq!(d.matching("web.service.consul."), Some("consul."));
        assert_eq!(d.matching("web.service.test.consul."), Some("test.consul."));
        assert_eq!(d.matching("consul."), Some("consul."));
        assert_eq!(d.matching("example.com."), None);
        assert_eq!(d.matching("notconsul."), None);
        let plain = Domains::new("consul.", Some(""));
        assert_eq!(plain.alt, None);
    }

    #[test]
    fn service_forms() {
        assert_eq!(
            parse("web.service", false),
            svc("web", None, Locality::default())
        );
        assert_eq!(
            parse("v1.web.service.dc1", false),
            svc("web", Some("v1"), dc("dc1"))
        );
        assert_eq!(
            parse("a.b.web.service", false),
            svc("web", Some("a.b"), Locality::default())
        );
        assert_eq!(
            parse("_web._tcp.service", true),
            svc("web", None, Locality::default())
        );
        assert_eq!(
            parse("_web._udp.service", false),
            svc("web", Some("udp"), Locality::default())
        );
        // SRV without `.service`.
        assert_eq!(
            parse("_web._tcp", true),
            svc("web", None, Locality::default())
        );
        assert_eq!(
            parse("_web._v2.dc2", true),
            svc("web", Some("v2"), dc("dc2"))
        );
        // Without SRV the leading underscore means nothing.
        assert_eq!(parse("_web._tcp", false), Query::Invalid);
        assert_eq!(
            parse("web.service.dc1.dc", false),
            svc(
                "web",
                None,
                Locality {
                    datacenter: Some("dc1".into()),
                    ..Locality::default()
                }
            )
        );
        assert_eq!(
            parse("web.service.p1.peer", false),
            svc(
                "web",
                None,
                Locality {
                    peer: Some("p1".into()),
                    ..Locality::default()
                }
            )
        );
    }

    #[test]
    fn bad_localities_and_missing_parts() {
        assert_eq!(parse("web.service.a.b", false), Query::Invalid);
        assert_eq!(parse("web.service.a.b.c", false), Query::Invalid);
        assert_eq!(parse("web.service.d.dc.p.peer", false), Query::Invalid);
        assert_eq!(parse("service", false), Query::Invalid);
        assert_eq!(parse("node", false), Query::Invalid);
        assert_eq!(parse("", false), Query::Invalid);
        assert_eq!(parse("web.foo", false), Query::Invalid);
    }

    #[test]
    fn kind_scan_is_right_to_left() {
        // The rightmost kind label wins; everything left of it is parts.
        assert_eq!(
            parse("service.web.service", false),
            svc("web", Some("service"), Locality::default())
        );
        assert_eq!(
            parse("foo.node.web.service", false),
            svc("web", Some("foo.node"), Locality::default())
        );
    }

    #[test]
    fn node_connect_ingress_virtual() {
        assert_eq!(
            parse("my.host.node.dc1", false),
            Query::Node {
                node: "my.host".into(),
                locality: dc("dc1")
            }
        );
        assert_eq!(
            parse("db.connect", false),
            Query::Connect {
                service: "db".into(),
                locality: Locality::default()
            }
        );
        assert_eq!(
            parse("db.ingress.dc1", false),
            Query::Ingress {
                service: "db".into(),
                locality: dc("dc1")
            }
        );
        assert_eq!(
            parse("db.virtual.p", false),
            Query::Virtual {
                service: "db".into(),
                locality: dc("p")
            }
        );
    }

    #[test]
    fn prepared_queries() {
        assert_eq!(
            parse("geo.db.query", false),
            Query::Prepared {
                query: "geo.db".into(),
                datacenter: None
            }
        );
        assert_eq!(
            parse("_geo._tcp.query.dc1", true),
            Query::Prepared {
                query: "geo".into(),
                datacenter: Some("dc1".into())
            }
        );
        assert_eq!(parse("x.query.a.b", false), Query::Invalid);
    }

    #[test]
    fn addr_names() {
        assert_eq!(
            parse("7f000001.addr.dc1", false),
            Query::Addr("127.0.0.1".parse().unwrap())
        );
        assert_eq!(
            parse("20010db8000000000000000000000001.addr", false),
            Query::Addr("2001:db8::1".parse().unwrap())
        );
        assert_eq!(parse("7f00001.addr", false), Query::Invalid);
        assert_eq!(parse("7f0000zz.addr", false), Query::Invalid);
        assert_eq!(parse("7f000001aa.addr", false), Query::Invalid);
        assert_eq!(parse("a.7f000001.addr", false), Query::Invalid);
        assert_eq!(encode_addr("10.0.0.1".parse().unwrap()), "0a000001");
        assert_eq!(encode_addr("::ffff:10.0.0.1".parse().unwrap()), "0a000001");
        assert_eq!(
            encode_addr("2001:db8::1".parse().unwrap()),
            "20010db8000000000000000000000001"
        );
    }

    #[test]
    fn locality_targets() {
        assert_eq!(Locality::default().target(), Target::Local);
        assert_eq!(dc("dc2").target(), Target::Datacenter("dc2".into()));
        let peer = Locality {
            peer: Some("p".into()),
            ..Locality::default()
        };
        assert_eq!(peer.target(), Target::Peer("p".into()));
    }

    #[test]
    fn reverse_names() {
        assert_eq!(
            reverse_name("10.1.2.3".parse().unwrap()),
            "3.2.1.10.in-addr.arpa."
        );
        assert_eq!(
            reverse_name("2001:db8::1".parse().unwrap()),
            "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa."
        );
    }
}
