//! Size limits of replies, as Consul applies them before sending: over UDP at most
//! `udp_answer_limit` answers without EDNS (never more than 8) and no more bytes
//! than 512 or the EDNS buffer size allow; over TCP at most 64 KiB. Answers are cut
//! from the end, the additional section keeps only what the remaining SRV targets
//! need, and NS records go first.

use std::collections::HashMap;

use hickory_proto::op::Query;
use hickory_proto::rr::{RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};

use super::answer::Reply;

/// Hard cap of `udp_answer_limit`.
const MAX_UDP_ANSWER_LIMIT: usize = 8;
const DEFAULT_UDP_SIZE: usize = 512;
/// Largest UDP payload Consul will fill (room for IP headers).
const MAX_UDP_DATAGRAM: usize = 65535 - 68;
/// TCP messages: 64 KiB less the DNS overhead.
const MAX_TCP_SIZE: usize = 65523;
/// Size of an OPT record without options.
const OPT_LEN: usize = 11;

/// The encoded size of a reply to `query`, with or without name compression.
pub fn wire_len(query: &Query, reply: &Reply, edns: bool, compress: bool) -> usize {
    let mut buf = Vec::with_capacity(1024);
    let mut enc = BinEncoder::new(&mut buf);
    enc.set_name_encoding(if compress {
        NameEncoding::Compressed
    } else {
        NameEncoding::Uncompressed
    });
    let mut ok = (0..12).try_for_each(|_| enc.emit(0)).is_ok() && query.emit(&mut enc).is_ok();
    for r in reply
        .answers
        .iter()
        .chain(&reply.authority)
        .chain(&reply.additional)
    {
        ok &= r.emit(&mut enc).is_ok();
    }
    // An unencodable record cannot be sent anyway: count it as too large.
    let len = if ok { enc.len() } else { usize::MAX / 2 };
    len + if edns { OPT_LEN } else { 0 }
}

/// Index of the additional records by lowercase owner name (the first per name).
fn index_extra(extra: &[Record]) -> HashMap<String, Record> {
    let mut index = HashMap::with_capacity(extra.len());
    for r in extra {
        index
            .entry(r.name.to_ascii().to_ascii_lowercase())
            .or_insert_with(|| r.clone());
    }
    index
}

/// Rebuilds the additional section from `index` so that it covers exactly the SRV
/// targets left in the answers (following CNAME chains).
fn sync_extra(index: &HashMap<String, Record>, reply: &mut Reply) {
    let mut extra = Vec::new();
    let mut resolved = std::collections::HashSet::new();
    for ans in &reply.answers {
        let RData::SRV(srv) = &ans.data else {
            continue;
        };
        let mut target = srv.target.to_ascii().to_ascii_lowercase();
        while resolved.insert(target.clone()) {
            let Some(rr) = index.get(&target) else { break };
            extra.push(rr.clone());
            match &rr.data {
                RData::CNAME(c) => target = c.0.to_ascii().to_ascii_lowercase(),
                _ => break,
            }
        }
    }
    reply.additional = extra;
}

struct Trimmer<'a> {
    query: &'a Query,
    edns: bool,
    compress: bool,
    index: Option<HashMap<String, Record>>,
}

impl Trimmer<'_> {
    fn len(&self, reply: &Reply) -> usize {
        wire_len(self.query, reply, self.edns, self.compress)
    }

    fn cut(&self, reply: &mut Reply, keep: usize) {
        reply.answers.truncate(keep);
        if let Some(index) = &self.index {
            sync_extra(index, reply);
        }
    }

    /// The largest answer count (searching by halves) whose reply fits `max`,
    /// stopping early once within 10 bytes of it.
    fn binary_truncate(&self, reply: &Reply, max: usize) -> usize {
        let (mut lo, mut hi) = (0, reply.answers.len() + 1);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            let mut probe = reply.clone();
            self.cut(&mut probe, mid);
            let len = self.len(&probe);
            if len <= max {
                if max - len < 10 {
                    return mid;
                }
                lo = mid;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// Drops the authority section, then answers, while more than one answer is left and the
    /// reply is larger than `limit`. `search_max` bounds the binary search.
    fn shrink(&self, reply: &mut Reply, limit: usize, search_max: usize) -> bool {
        let mut trimmed = false;
        while reply.answers.len() > 1 && self.len(reply) > limit {
            trimmed = true;
            reply.authority.clear();
            let len = self.len(reply);
            let keep = if len.saturating_sub(search_max) > 100 {
                self.binary_truncate(reply, search_max)
            } else {
                reply.answers.len() - 1
            };
            self.cut(reply, keep);
        }
        trimmed
    }
}

/// Trims a UDP reply. `edns_size` is the requester's EDNS buffer size, if it sent
/// OPT. Returns whether answers were dropped.
pub fn trim_udp(
    query: &Query,
    reply: &mut Reply,
    edns_size: Option<u16>,
    udp_answer_limit: usize,
) -> bool {
    let before = reply.answers.len();
    let max_size = edns_size
        .map_or(DEFAULT_UDP_SIZE, |s| (s as usize).max(DEFAULT_UDP_SIZE))
        .min(MAX_UDP_DATAGRAM);
    let has_extra = !reply.additional.is_empty() || edns_size.is_some();
    let mut t = Trimmer {
        query,
        edns: edns_size.is_some(),
        compress: true,
        index: has_extra.then(|| index_extra(&reply.additional)),
    };
    let max_answers = MAX_UDP_ANSWER_LIMIT.min(udp_answer_limit);
    if max_size == DEFAULT_UDP_SIZE && before > max_answers {
        // Small messages are measured uncompressed: safe even for resolvers that
        // expand them.
        t.compress = false;
        t.cut(reply, max_answers);
    }
    t.shrink(reply, max_size - 8, max_size);
    reply.answers.len() < before
}

/// Trims a TCP reply to what one DNS message can carry. Returns whether the size
/// limit dropped answers.
pub fn trim_tcp(query: &Query, reply: &mut Reply, edns: bool) -> bool {
    let has_extra = !reply.additional.is_empty();
    let t = Trimmer {
        query,
        edns,
        compress: true,
        index: has_extra.then(|| index_extra(&reply.additional)),
    };
    let cap = if query.query_type() == RecordType::SRV {
        1024
    } else {
        4096
    };
    reply.answers.truncate(cap);
    t.shrink(reply, MAX_TCP_SIZE, MAX_TCP_SIZE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::answer::dns_name;
    use hickory_proto::rr::rdata::{A, SRV};

    fn srv_reply(n: usize) -> (Query, Reply) {
        let q = dns_name("web.service.consul").unwrap();
        let mut reply = Reply::default();
        for i in 0..n {
            let target = dns_name(&format!("node-{i}.node.dc1.consul")).unwrap();
            reply.answers.push(Record::from_rdata(
                q.clone(),
                0,
                RData::SRV(SRV::new(1, 1, 80, target.clone())),
            ));
            reply.additional.push(Record::from_rdata(
                target,
                0,
                RData::A(A::new(10, 0, (i / 256) as u8, (i % 256) as u8)),
            ));
        }
        (Query::query(q, RecordType::SRV), reply)
    }

    fn a_reply(n: usize) -> (Query, Reply) {
        let q = dns_name("web.service.consul").unwrap();
        let mut reply = Reply::default();
        for i in 0..n {
            reply.answers.push(Record::from_rdata(
                q.clone(),
                0,
                RData::A(A::new(10, 0, (i / 256) as u8, (i % 256) as u8)),
            ));
        }
        (Query::query(q, RecordType::A), reply)
    }

    #[test]
    fn udp_without_edns_keeps_three_answers() {
        let (q, mut reply) = a_reply(50);
        assert!(trim_udp(&q, &mut reply, None, 3));
        assert_eq!(reply.answers.len(), 3);
        let (q, mut reply) = a_reply(2);
        assert!(!trim_udp(&q, &mut reply, None, 3));
        assert_eq!(reply.answers.len(), 2);
        // The hard cap is 8.
        let (q, mut reply) = a_reply(50);
        trim_udp(&q, &mut reply, None, 100);
        assert_eq!(reply.answers.len(), 8);
    }

    #[test]
    fn udp_srv_extra_follows_answers() {
        let (q, mut reply) = srv_reply(20);
        assert!(trim_udp(&q, &mut reply, None, 3));
        assert_eq!(reply.answers.len(), 3);
        assert_eq!(reply.additional.len(), 3);
        for (a, x) in reply.answers.iter().zip(&reply.additional) {
            let RData::SRV(srv) = &a.data else { panic!() };
            assert_eq!(srv.target, x.name);
        }
        assert!(wire_len(&q, &reply, false, false) <= 512 - 8);
    }

    #[test]
    fn edns_lifts_the_count_cap_but_not_the_size() {
        let (q, mut reply) = a_reply(300);
        assert!(trim_udp(&q, &mut reply, Some(1232), 3));
        assert!(reply.answers.len() > 8, "{}", reply.answers.len());
        assert!(wire_len(&q, &reply, true, true) <= 1232);
        let (q, mut reply) = a_reply(20);
        assert!(!trim_udp(&q, &mut reply, Some(4096), 3));
        assert_eq!(reply.answers.len(), 20);
    }

    #[test]
    fn tcp_keeps_everything_that_fits() {
        let (q, mut reply) = srv_reply(200);
        assert!(!trim_tcp(&q, &mut reply, false));
        assert_eq!(reply.answers.len(), 200);
        assert_eq!(reply.additional.len(), 200);
        let (q, mut reply) = a_reply(5000);
        trim_tcp(&q, &mut reply, false);
        assert!(reply.answers.len() <= 4096);
        assert!(wire_len(&q, &reply, false, true) <= MAX_TCP_SIZE);
    }
}
