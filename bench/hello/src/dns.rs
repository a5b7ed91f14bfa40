//! The DNS ceiling: a UDP responder that answers any query with a fixed, valid answer shaped like Consul's
//! for `web.service.consul SRV` with 10 instances. Only the header and the question are taken from the
//! query (its ID, RD flag and question are echoed); everything after the question is pre-built.

use tokio::net::UdpSocket;

const INSTANCES: usize = 10;

/// Answer and additional sections: 10 SRV records (owner = the question, by pointer to offset 12) to
/// `web-node-<i>.node.dc1.consul.`, then 10 A records for those targets (owner by pointer to the SRV target).
/// Pointers are absolute, so the question must be the one the tail was built for; `answer` checks its length.
fn tail(question_len: usize, edns: bool) -> Vec<u8> {
    let mut t = Vec::new();
    let base = 12 + question_len;
    let mut targets = Vec::new();
    for i in 0..INSTANCES {
        t.extend_from_slice(&[0xC0, 0x0C, 0, 33, 0, 1, 0, 0, 0, 0]); // SRV IN TTL 0
        let label = format!("web-node-{i}");
        let mut target = vec![label.len() as u8];
        target.extend_from_slice(label.as_bytes());
        target.extend_from_slice(b"\x04node\x03dc1\x06consul\x00");
        t.extend_from_slice(&((6 + target.len()) as u16).to_be_bytes());
        t.extend_from_slice(&[0, 1, 0, 1]); // priority 1, weight 1
        t.extend_from_slice(&(20000 + i as u16).to_be_bytes());
        targets.push(base + t.len());
        t.extend_from_slice(&target);
    }
    for (i, off) in targets.into_iter().enumerate() {
        t.extend_from_slice(&[
            0xC0 | (off >> 8) as u8,
            off as u8,
            0,
            1,
            0,
            1,
            0,
            0,
            0,
            0,
            0,
            4,
            10,
            1,
            0,
        ]);
        t.push(i as u8 + 1);
    }
    if edns {
        t.extend_from_slice(&[0, 0, 41, 0x10, 0x00, 0, 0, 0, 0, 0, 0]);
    }
    t
}

/// End of the (single) question, or None for anything that is not a one-question query.
fn question_end(q: &[u8]) -> Option<usize> {
    if q.len() < 12 || q[2] & 0x80 != 0 || u16::from_be_bytes([q[4], q[5]]) != 1 {
        return None;
    }
    let mut i = 12;
    loop {
        let len = *q.get(i)? as usize;
        if len == 0 {
            i += 1;
            break;
        }
        if len > 63 {
            return None;
        }
        i += 1 + len;
    }
    (i + 4 <= q.len()).then_some(i + 4)
}

pub async fn serve(sock: UdpSocket) {
    let mut buf = vec![0u8; 4096];
    let mut out = Vec::with_capacity(4096);
    // Tails by (question length, EDNS): the pointers in them depend on where the question ends.
    let mut tails: std::collections::HashMap<(usize, bool), Vec<u8>> = Default::default();
    loop {
        let Ok((n, peer)) = sock.recv_from(&mut buf).await else {
            continue;
        };
        let q = &buf[..n];
        let Some(qend) = question_end(q) else { continue };
        let edns = u16::from_be_bytes([q[10], q[11]]) > 0;
        let tail = tails.entry((qend - 12, edns)).or_insert_with(|| tail(qend - 12, edns));
        out.clear();
        out.extend_from_slice(&q[..2]); // ID
        out.extend_from_slice(&[0x84 | (q[2] & 0x01), 0x00]); // QR, AA, RD as asked; RCODE 0
        out.extend_from_slice(&[0, 1, 0, INSTANCES as u8, 0, 0, 0, INSTANCES as u8 + u8::from(edns)]);
        out.extend_from_slice(&q[12..qend]);
        out.extend_from_slice(tail);
        let _ = sock.send_to(&out, peer).await;
    }
}
