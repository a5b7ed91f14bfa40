//! The HTTP ceiling for concord's KV GET benchmark: an axum 0.8 hello-world on the same runtime shape as
//! concord (tokio multi-thread, `axum::serve`), answering `GET /v1/kv/x` with a Consul-shaped KV JSON body
//! (~120 bytes, serialized with serde_json on every request) and the `X-Consul-*` headers Consul sends on a
//! KV read. Everything concord does beyond this (routing, query parsing, the state store read, blocking
//! machinery) is what the GET ratio measures.
//!
//! Usage: `hello [PORT]` (default 18080); binds 127.0.0.1 only.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;

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
    let mut resp = body.into_response();
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
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let app = Router::new().route("/v1/kv/x", get(kv));
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
