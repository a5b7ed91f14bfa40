//! The request handler: routes each question to our domains (SOA, NS, services,
//! nodes, `.addr`, prepared queries), to reverse lookups, or to the recursors;
//! picks the rcode as Consul does (NXDOMAIN versus NODATA), trims the reply and
//! sends it with the EDNS the requester asked for.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use hickory_proto::op::{Edns, Header, HeaderCounts, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::{Name, Record, RecordType};
use hickory_server::net::runtime::Time;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;

use super::answer::{self, Endpoint, Reply, ServiceQuestion};
use super::health;
use super::lookup::{self, Endpoints, LookupError};
use super::name::{self, Query, Target};
use super::recursor;
use super::settings::Settings;
use super::trim;
use crate::agent::Agent;
use crate::structs::{CONSUL_SERVICE, CheckServiceNode};

/// How deep hostnames inside our domain are resolved through our own answers.
const MAX_RECURSION_DEPTH: u8 = 3;

/// The outcome of a lookup in our domain, which decides rcode and SOA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    /// NOERROR, no SOA (also used for an empty answer where Consul sends no SOA).
    Found,
    /// NOERROR with an empty answer and the SOA (RFC 2308 NODATA).
    NoData,
    /// NXDOMAIN with the SOA.
    NotFound,
    /// SERVFAIL.
    Failed,
}

fn failure(e: LookupError) -> (Reply, Status) {
    match e {
        LookupError::NoPathToDatacenter | LookupError::QueryNotFound => {
            (Reply::default(), Status::NotFound)
        }
        LookupError::Unavailable(msg) => {
            tracing::warn!(error = %msg, "DNS lookup failed");
            (Reply::default(), Status::Failed)
        }
    }
}

type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What one question asks, beyond its name and type.
#[derive(Clone, Copy)]
struct Ask<'a> {
    qname: &'a Name,
    qtype: RecordType,
    /// The domain the name is in (lowercase, fully qualified).
    domain: &'a str,
    edns: bool,
    depth: u8,
}

pub struct DnsHandler {
    agent: Arc<Agent>,
    settings: Arc<Settings>,
}

impl DnsHandler {
    pub fn new(agent: Arc<Agent>) -> DnsHandler {
        let settings = Arc::new(Settings::new(&agent.config));
        DnsHandler { agent, settings }
    }

    /// Answers a name inside one of our domains.
    fn dispatch<'a>(&'a self, ask: Ask<'a>) -> Boxed<'a, (Reply, Status)> {
        Box::pin(async move {
            let lower = ask.qname.to_ascii().to_ascii_lowercase();
            let relative = lower
                .strip_suffix(ask.domain)
                .unwrap_or_default()
                .trim_end_matches('.');
            match name::parse(relative, ask.qtype == RecordType::SRV) {
                Query::Service {
                    service,
                    tag,
                    locality,
                } => {
                    let target = locality.target();
                    self.service(ask, &target, &service, tag.as_deref(), Endpoints::Service)
                        .await
                }
                Query::Connect { service, locality } => {
                    self.service(ask, &locality.target(), &service, None, Endpoints::Connect)
                        .await
                }
                Query::Ingress { service, locality } => {
                    self.service(ask, &locality.target(), &service, None, Endpoints::Ingress)
                        .await
                }
                Query::Virtual { service, .. } => {
                    match lookup::virtual_ip(&self.agent, &self.settings, &service).await {
                        Ok(ip) => {
                            let mut reply = Reply::default();
                            reply.answers.extend(ip.and_then(|ip| {
                                answer::address_record(
                                    RecordType::A,
                                    ip,
                                    self.settings.node_ttl,
                                    ask.qname.clone(),
                                )
                            }));
                            (reply, Status::Found)
                        }
                        Err(e) => failure(e),
                    }
                }
                Query::Node { node, locality } => self.node(ask, &locality.target(), &node).await,
                Query::Prepared { query, datacenter } => {
                    match lookup::prepared_query(
                        &self.agent,
                        &self.settings,
                        datacenter.as_deref(),
                        &query,
                    )
                    .await
                    {
                        Ok(found) => self.service_answer(ask, &found.service, found.nodes).await,
                        Err(e) => failure(e),
                    }
                }
                Query::Addr(ip) => {
                    let mut reply = Reply::default();
                    if let Some(name) = answer::dns_name(&lower)
                        && let Some(rec) = answer::address_record(
                            RecordType::ANY,
                            ip,
                            self.settings.node_ttl,
                            name,
                        )
                    {
                        let wanted = ask.qtype == RecordType::ANY || ask.qtype == rec.record_type();
                        if wanted {
                            reply.answers.push(rec);
                        } else {
                            reply.additional.push(rec);
                        }
                    }
                    (reply, Status::Found)
                }
                Query::Invalid => {
                    tracing::debug!(qname = %lower, "DNS name invalid");
                    (Reply::default(), Status::NotFound)
                }
            }
        })
    }

    async fn service(
        &self,
        ask: Ask<'_>,
        target: &Target,
        service: &str,
        tag: Option<&str>,
        endpoints: Endpoints,
    ) -> (Reply, Status) {
        let nodes = match lookup::service_nodes(
            &self.agent,
            &self.settings,
            target,
            service,
            tag,
            endpoints,
        )
        .await
        {
            Ok(nodes) => nodes,
            Err(e) => return failure(e),
        };
        let nodes = health::healthy_shuffled(nodes, self.settings.only_passing);
        self.service_answer(ask, service, nodes).await
    }

    /// Records for healthy, shuffled instances of a service.
    async fn service_answer(
        &self,
        ask: Ask<'_>,
        service: &str,
        nodes: Vec<CheckServiceNode>,
    ) -> (Reply, Status) {
        if nodes.is_empty() {
            return (Reply::default(), Status::NotFound);
        }
        let qname_text = ask.qname.to_ascii();
        let instances: Vec<(CheckServiceNode, Option<Endpoint>)> = nodes
            .into_iter()
            .map(|n| {
                let ep = answer::endpoint(&n, ask.qtype, &qname_text);
                (n, ep)
            })
            .collect();
        let mut resolved: HashMap<String, Vec<Record>> = HashMap::new();
        for (_, ep) in &instances {
            if let Some(Endpoint::Host(host)) = ep {
                let key = host.to_ascii_lowercase();
                if let Entry::Vacant(slot) = resolved.entry(key) {
                    let records = self.resolve_host(slot.key(), ask.depth).await;
                    slot.insert(records);
                }
            }
        }
        let question = ServiceQuestion {
            qname: ask.qname,
            qtype: ask.qtype,
            ttl: self.settings.service_ttl(service),
            datacenter: &self.settings.datacenter,
            domain: ask.domain,
            edns: ask.edns,
            settings: &self.settings,
        };
        let reply = if ask.qtype == RecordType::SRV {
            question.srv_reply(&instances, &resolved)
        } else {
            question.address_reply(&instances, &resolved)
        };
        let status = if reply.answers.is_empty() {
            Status::NoData
        } else {
            Status::Found
        };
        (reply, status)
    }

    async fn node(&self, ask: Ask<'_>, target: &Target, node: &str) -> (Reply, Status) {
        let qtype = ask.qtype;
        if !matches!(
            qtype,
            RecordType::ANY | RecordType::A | RecordType::AAAA | RecordType::TXT
        ) {
            return (Reply::default(), Status::Found);
        }
        let node = match lookup::node(&self.agent, &self.settings, target, node).await {
            Ok(Some(n)) => n,
            Ok(None) => return (Reply::default(), Status::NotFound),
            Err(e) => return failure(e),
        };
        let ttl = self.settings.node_ttl;
        let mut reply = Reply::default();
        if qtype != RecordType::TXT {
            let resolved = match answer::node_host(&node, qtype) {
                Some(host) => self.resolve_host(&host, ask.depth).await,
                None => Vec::new(),
            };
            reply.answers = answer::node_records(&node, qtype, ask.qname, ttl, &resolved);
        }
        let meta_in_answer = matches!(qtype, RecordType::TXT | RecordType::ANY);
        if self.settings.node_meta_txt || meta_in_answer {
            let metas = answer::meta_txt(ask.qname, &node, ttl);
            if meta_in_answer {
                reply.answers.extend(metas);
            } else {
                reply.additional.extend(metas);
            }
        }
        (reply, Status::Found)
    }

    /// What a hostname resolves to: through our own answers when it is inside our
    /// domain (to a limited depth), else through the recursors.
    async fn resolve_host(&self, host: &str, depth: u8) -> Vec<Record> {
        let Some(name) = answer::dns_name(host) else {
            return Vec::new();
        };
        let lower = name.to_ascii().to_ascii_lowercase();
        if let Some(domain) = self.settings.domains.matching(&lower) {
            if depth < 1 {
                tracing::warn!(name = %lower, "DNS CNAME recursion too deep; not resolving");
                return Vec::new();
            }
            let ask = Ask {
                qname: &name,
                qtype: RecordType::ANY,
                domain,
                edns: false,
                depth: depth - 1,
            };
            return self.dispatch(ask).await.0.answers;
        }
        if !self.settings.recursion_available() {
            return Vec::new();
        }
        recursor::resolve_a(
            &self.settings.recursors,
            &name,
            self.settings.recursor_timeout,
        )
        .await
    }

    /// NS records for up to three healthy servers of the local datacenter, with glue.
    async fn name_servers(&self, domain: &str) -> (Vec<Record>, Vec<Record>) {
        match lookup::service_nodes(
            &self.agent,
            &self.settings,
            &Target::Local,
            CONSUL_SERVICE,
            None,
            Endpoints::Service,
        )
        .await
        {
            Ok(nodes) => {
                let servers = health::healthy_shuffled(nodes, self.settings.only_passing);
                answer::name_servers(&servers, &self.settings, domain)
            }
            Err(e) => {
                tracing::warn!(error = ?e, "unable to list servers for NS records");
                (Vec::new(), Vec::new())
            }
        }
    }

    /// A question about a name in one of our domains.
    async fn in_domain<R: ResponseHandler>(
        &self,
        request: &Request,
        response: R,
        domain: &str,
    ) -> ResponseInfo {
        let query = request.queries.queries()[0].original();
        let qtype = query.query_type();
        let mut reply = Reply::default();
        let mut rcode = ResponseCode::NoError;
        match qtype {
            RecordType::SOA => {
                let (ns, glue) = self.name_servers(domain).await;
                reply.answers.extend(answer::soa(&self.settings, domain));
                reply.authority = ns;
                reply.additional = glue;
            }
            RecordType::NS => {
                let (ns, glue) = self.name_servers(domain).await;
                reply.answers = ns;
                reply.additional = glue;
            }
            RecordType::AXFR => rcode = ResponseCode::NotImp,
            _ => {
                let ask = Ask {
                    qname: query.name(),
                    qtype,
                    domain,
                    edns: request.edns.is_some(),
                    depth: MAX_RECURSION_DEPTH,
                };
                let (found, status) = self.dispatch(ask).await;
                reply = found;
                rcode = match status {
                    Status::Found | Status::NoData => ResponseCode::NoError,
                    Status::NotFound => ResponseCode::NXDomain,
                    Status::Failed => ResponseCode::ServFail,
                };
                if matches!(status, Status::NoData | Status::NotFound) {
                    reply.authority.extend(answer::soa(&self.settings, domain));
                }
            }
        }
        let trimmed = if request.protocol().is_datagram() {
            trim::trim_udp(
                query,
                &mut reply,
                request.edns.as_ref().map(Edns::max_payload),
                self.settings.udp_answer_limit,
            )
        } else {
            trim::trim_tcp(query, &mut reply, request.edns.is_some())
        };
        let mut meta = self.reply_metadata(request, rcode);
        meta.truncation = trimmed && self.settings.enable_truncate;
        send(request, response, meta, &reply).await
    }

    /// A reverse lookup (`*.arpa.`): a node with that address, else a service
    /// instance with it, else the recursors, else NXDOMAIN.
    async fn reverse<R: ResponseHandler>(&self, request: &Request, response: R) -> ResponseInfo {
        let query = request.queries.queries()[0].original();
        let lower = query.name().to_ascii().to_ascii_lowercase();
        let primary = self.settings.domains.primary.as_str();
        let mut reply = Reply::default();
        if query.query_type() == RecordType::SOA {
            reply.authority.extend(answer::soa(&self.settings, primary));
        }
        let matches = |addr: &str| {
            addr.parse()
                .is_ok_and(|ip| name::reverse_name(ip).eq_ignore_ascii_case(&lower))
        };
        let dc_of = |dc: &str| {
            if dc.is_empty() {
                self.settings.datacenter.clone()
            } else {
                dc.to_string()
            }
        };
        let mut target = None;
        if let Ok(nodes) = lookup::nodes(&self.agent, &self.settings).await {
            target = nodes
                .iter()
                .find(|n| matches(&n.address))
                .map(|n| answer::node_fqdn(&n.node, &dc_of(&n.datacenter), primary));
        }
        if target.is_none()
            && let Ok(instances) = lookup::service_instances(&self.agent, &self.settings).await
        {
            target = instances
                .iter()
                .find(|(_, s)| matches(&s.address))
                .map(|(n, s)| format!("{}.service.{}.{primary}", s.service, dc_of(&n.datacenter)));
        }
        let mut rcode = ResponseCode::NoError;
        match target.as_deref().and_then(answer::dns_name) {
            Some(t) => reply.answers.push(answer::ptr(query.name().clone(), t)),
            None if self.settings.recursion_available() => {
                return self.recurse(request, response).await;
            }
            None => {
                rcode = ResponseCode::NXDomain;
                reply.authority.extend(answer::soa(&self.settings, primary));
            }
        }
        let meta = self.reply_metadata(request, rcode);
        send(request, response, meta, &reply).await
    }

    /// Passes a question outside our domains to the recursors.
    async fn recurse<R: ResponseHandler>(
        &self,
        request: &Request,
        mut response: R,
    ) -> ResponseInfo {
        let forwarded = recursor::forward(
            &self.settings.recursors,
            request.as_slice(),
            request.protocol().is_stream(),
            self.settings.recursor_timeout,
        )
        .await;
        let Some(upstream) = forwarded else {
            let mut meta = Metadata::response_from_request(&request.metadata);
            meta.recursion_available = true;
            meta.response_code = ResponseCode::ServFail;
            return send(request, response, meta, &Reply::default()).await;
        };
        let mut meta = upstream.metadata;
        meta.id = request.metadata.id;
        let edns = upstream.edns.clone();
        let builder = MessageResponseBuilder::new(&request.queries, edns.as_ref());
        let msg = builder.build(
            meta,
            upstream.answers.iter(),
            upstream.authorities.iter(),
            std::iter::empty(),
            upstream.additionals.iter(),
        );
        deliver(response.send_response(msg).await, meta)
    }

    /// The header of a reply from our domains: authoritative, RA when recursors
    /// are configured.
    fn reply_metadata(&self, request: &Request, rcode: ResponseCode) -> Metadata {
        let mut meta = Metadata::response_from_request(&request.metadata);
        meta.authoritative = true;
        meta.recursion_available = self.settings.recursion_available();
        meta.response_code = rcode;
        meta
    }
}

/// The OPT record of a reply: present when the request had one, with its buffer
/// size (at least 512) and DO flag.
fn reply_edns(request: &Request) -> Option<Edns> {
    request.edns.as_ref().map(|req| {
        let mut edns = Edns::new();
        edns.set_max_payload(req.max_payload().max(512));
        edns.set_version(0);
        edns.set_dnssec_ok(req.flags().dnssec_ok);
        edns
    })
}

fn deliver(
    sent: Result<ResponseInfo, hickory_server::net::NetError>,
    meta: Metadata,
) -> ResponseInfo {
    sent.unwrap_or_else(|e| {
        tracing::debug!(error = %e, "failed to send a DNS reply");
        ResponseInfo::from(Header {
            metadata: meta,
            counts: HeaderCounts::default(),
        })
    })
}

async fn send<R: ResponseHandler>(
    request: &Request,
    mut response: R,
    meta: Metadata,
    reply: &Reply,
) -> ResponseInfo {
    let edns = reply_edns(request);
    let builder = MessageResponseBuilder::new(&request.queries, edns.as_ref());
    let msg = builder.build(
        meta,
        reply.answers.iter(),
        reply.authority.iter(),
        std::iter::empty(),
        reply.additional.iter(),
    );
    deliver(response.send_response(msg).await, meta)
}

/// A reply carrying only an rcode.
async fn send_rcode<R: ResponseHandler>(
    request: &Request,
    response: R,
    rcode: ResponseCode,
) -> ResponseInfo {
    let mut meta = Metadata::response_from_request(&request.metadata);
    meta.response_code = rcode;
    send(request, response, meta, &Reply::default()).await
}

#[async_trait::async_trait]
impl RequestHandler for DnsHandler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        response: R,
    ) -> ResponseInfo {
        if request.metadata.op_code != OpCode::Query {
            return send_rcode(request, response, ResponseCode::NotImp).await;
        }
        if request.queries.queries().len() != 1 {
            return send_rcode(request, response, ResponseCode::FormErr).await;
        }
        let lower = request.queries.queries()[0]
            .original()
            .name()
            .to_ascii()
            .to_ascii_lowercase();
        let lower = if lower.ends_with('.') {
            lower
        } else {
            format!("{lower}.")
        };
        if let Some(domain) = self.settings.domains.matching(&lower) {
            let domain = domain.to_string();
            self.in_domain(request, response, &domain).await
        } else if lower == "arpa." || lower.ends_with(".arpa.") {
            self.reverse(request, response).await
        } else if self.settings.recursion_available() {
            self.recurse(request, response).await
        } else {
            send_rcode(request, response, ResponseCode::Refused).await
        }
    }
}
