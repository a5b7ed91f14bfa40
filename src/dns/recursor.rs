//! Forwarding to the configured `recursors`: names outside our domains are passed
//! on as they came (over the transport the client used) and the first reply with
//! NOERROR or NXDOMAIN is returned; hostnames in service addresses are resolved
//! through them for the additional section.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// Largest reply read from a recursor over UDP.
const UDP_BUFFER: usize = 65535;

/// The socket address of a recursor given as `ip`, `ip:port`, `[v6]:port` or
/// `host[:port]` (port 53 when none is given).
async fn address(recursor: &str) -> Option<SocketAddr> {
    if let Ok(sa) = recursor.parse::<SocketAddr>() {
        return Some(sa);
    }
    let bare = recursor.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Some(SocketAddr::new(ip, 53));
    }
    let with_port = if recursor.contains(':') {
        recursor.to_string()
    } else {
        format!("{recursor}:53")
    };
    tokio::net::lookup_host(with_port).await.ok()?.next()
}

/// One request/reply exchange with a recursor.
async fn exchange(server: SocketAddr, request: &[u8], tcp: bool) -> std::io::Result<Vec<u8>> {
    if tcp {
        let mut stream = TcpStream::connect(server).await?;
        let len =
            u16::try_from(request.len()).map_err(|_| std::io::Error::other("request too large"))?;
        let mut framed = Vec::with_capacity(request.len() + 2);
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(request);
        stream.write_all(&framed).await?;
        let reply_len = stream.read_u16().await? as usize;
        let mut reply = vec![0; reply_len];
        stream.read_exact(&mut reply).await?;
        return Ok(reply);
    }
    let local: SocketAddr = if server.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        ([0u16; 8], 0).into()
    };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(server).await?;
    socket.send(request).await?;
    let id = request.get(..2);
    let mut buf = vec![0; UDP_BUFFER];
    loop {
        let n = socket.recv(&mut buf).await?;
        // Ignore stray datagrams that do not answer our request.
        if n >= 12 && buf.get(..2) == id {
            buf.truncate(n);
            return Ok(buf);
        }
    }
}

async fn ask(recursor: &str, request: &[u8], tcp: bool, timeout: Duration) -> Option<Message> {
    let server = address(recursor).await?;
    match tokio::time::timeout(timeout, exchange(server, request, tcp)).await {
        Ok(Ok(bytes)) => match Message::from_vec(&bytes) {
            Ok(m) => Some(m),
            Err(e) => {
                tracing::debug!(recursor, error = %e, "recursor sent an undecodable reply");
                None
            }
        },
        Ok(Err(e)) => {
            tracing::debug!(recursor, error = %e, "recursor exchange failed");
            None
        }
        Err(_) => {
            tracing::debug!(recursor, "recursor timed out");
            None
        }
    }
}

/// Forwards the raw `request` to the recursors in order; the first reply whose
/// rcode is NOERROR or NXDOMAIN wins. `None` when every recursor failed.
pub async fn forward(
    recursors: &[String],
    request: &[u8],
    tcp: bool,
    timeout: Duration,
) -> Option<Message> {
    for recursor in recursors {
        let Some(reply) = ask(recursor, request, tcp, timeout).await else {
            continue;
        };
        match reply.metadata.response_code {
            ResponseCode::NoError | ResponseCode::NXDomain => return Some(reply),
            other => tracing::debug!(recursor, rcode = %other, "recursor refused the question"),
        }
    }
    tracing::warn!("all DNS recursors failed");
    None
}

/// Resolves `name` to A records through the recursors (UDP); the answer section
/// of the first reply, whatever its rcode.
pub async fn resolve_a(recursors: &[String], name: &Name, timeout: Duration) -> Vec<Record> {
    let mut msg = Message::query();
    msg.metadata.id = rand::random();
    msg.metadata.recursion_desired = true;
    msg.add_query(Query::query(name.clone(), RecordType::A));
    let Ok(bytes) = msg.to_vec() else {
        return Vec::new();
    };
    for recursor in recursors {
        if let Some(reply) = ask(recursor, &bytes, false, timeout).await {
            return reply.answers;
        }
    }
    Vec::new()
}
