//! The HTTP ceiling for concord's KV GET benchmark: an axum 0.8 hello-world on the same runtime shape as
//! concord (tokio multi-thread, `axum::serve`), answering `GET /v1/kv/x` with a Consul-shaped KV JSON body
//! (~120 bytes, serialized with serde_json on every request) and the `X-Consul-*` headers Consul sends on a
//! KV read. Everything concord does beyond this (routing, query parsing, the state store read, blocking
//! machinery) is what the GET ratio measures.
//!
//! `GET /bytes/<N>` answers with a fixed JSON body of exactly N bytes (built once per size, then shared) and
//! the same headers: the ceiling for a read whose answer is N bytes long (the health benchmark).
//!
//! With a second argument, a UDP DNS responder listens on that port too: it answers every query with the
//! query's ID and question and a fixed answer shaped like Consul's for a 10-instance SRV lookup (10 SRV
//! records, 10 A records in the additional section, an OPT record when the query had one): the ceiling for
//! the DNS benchmark, i.e. the cost of the UDP round trip alone.
//!
//! Usage: `hello [PORT [DNS_PORT]]` (default 18080, no DNS); binds 127.0.0.1 only.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;

mod dns;

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct DirEntry {
    lock_index: u64,
    key: &'static str,
    flags: u64,
    value: &'static str,
    create_index: u64,
    modify_index: u64,
}

async fn kv() -> Response {
    let body = serde_json::to_vec(&[DirEntry {
        lock_index: 0,
        key: "x",
        flags: 0,
        // base64 of a 32-byte value, like the value concord's benchmark pre-writes.
        value: "YmVuY2gtdmFsdWUtYmVuY2gtdmFsdWUtYmVuY2gtdmFs",
        create_index: 12,
        modify_index: 12,
    }])
    .expect("serialize");
    consul_headers(body.into_response())
}

/// Fixed bodies by size: `["xxx…"]`, N bytes in all.
type Bodies = Arc<Mutex<HashMap<usize, Bytes>>>;

async fn bytes(State(bodies): State<Bodies>, Path(n): Path<usize>) -> Response {
    if n > 64 << 20 {
        return (axum::http::StatusCode::BAD_REQUEST, "too large").into_response();
    }
    let body = bodies
        .lock()
        .unwrap()
        .entry(n)
        .or_insert_with(|| {
            let mut v = Vec::with_capacity(n);
            v.extend_from_slice(&b"[\""[..n.min(2)]);
            v.resize(n.saturating_sub(2).max(v.len()), b'x');
            v.extend_from_slice(&b"\"]"[..n.saturating_sub(v.len()).min(2)]);
            Bytes::from(v)
        })
        .clone();
    consul_headers(Body::from(body).into_response())
}

fn consul_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert("X-Consul-Index", HeaderValue::from(12u64));
    h.insert("X-Consul-KnownLeader", HeaderValue::from_static("true"));
    h.insert("X-Consul-LastContact", HeaderValue::from(0u64));
    resp
}

fn main() {
    let port: u16 = std::env::args()
        .nth(1)
        .map(|p| p.parse().expect("PORT"))
        .unwrap_or(18080);
    let dns_port: Option<u16> = std::env::args().nth(2).map(|p| p.parse().expect("DNS_PORT"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        if let Some(dns_port) = dns_port {
            let sock = tokio::net::UdpSocket::bind(("127.0.0.1", dns_port))
                .await
                .expect("bind DNS");
            eprintln!("hello: DNS on 127.0.0.1:{dns_port}/udp");
            tokio::spawn(dns::serve(sock));
        }
        let app = Router::new()
            .route("/v1/kv/x", get(kv))
            .route("/bytes/{n}", get(bytes))
            .with_state(Bodies::default());
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
        eprintln!("hello: listening on 127.0.0.1:{port}");
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .expect("serve");
    });
}
