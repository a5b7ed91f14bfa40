//! The HTTP probe (Consul's `CheckHTTP`): one request per run with the check's method,
//! headers and body. 2xx is passing, 429 warning, anything else critical; the output is
//! `HTTP <METHOD> <url>: <code> <reason> Output: <body>`, where the body is its last
//! `output_max_size` bytes (Consul reads it through a ring buffer, without a marker).
//! A request that fails is critical with Go's error text
//! (`Get "<url>": dial tcp …: connect: connection refused`).

use std::collections::BTreeMap;
use std::error::Error as StdError;
use std::io;
use std::time::Duration;

use reqwest::header::{ACCEPT, HeaderMap, HeaderName, HeaderValue, USER_AGENT};
use reqwest::redirect::Policy;
use reqwest::{Client, Method, Url};
use tokio::time::{Instant, timeout_at};

use super::support::{Health, Outcome, TailBuffer, root_cause_text};
use super::tls;

/// Consul's `UserAgent` for HTTP checks.
const CHECK_USER_AGENT: &str = "Consul Health Check";
const CHECK_ACCEPT: &str = "text/plain, text/*, */*";
/// Go's http.Client follows at most 10 redirects.
const MAX_REDIRECTS: usize = 10;

/// An HTTP check's settings.
#[derive(Debug, Clone)]
pub(super) struct HttpSettings {
    pub(super) url: String,
    pub(super) method: String,
    pub(super) headers: BTreeMap<String, Vec<String>>,
    pub(super) body: String,
    pub(super) tls_skip_verify: bool,
    pub(super) tls_server_name: String,
    pub(super) disable_redirects: bool,
    pub(super) max_output: usize,
}

/// One HTTP check with its own client: each check has its TLS settings and redirect
/// policy, and, as in Consul, idle connections are not kept between runs.
#[derive(Debug)]
pub(super) struct HttpProbe {
    settings: HttpSettings,
    client: Result<Client, String>,
}

impl HttpProbe {
    pub(super) fn new(settings: HttpSettings) -> Self {
        let client = build_client(&settings);
        HttpProbe { settings, client }
    }

    pub(super) async fn check(&self, timeout: Duration) -> Outcome {
        let deadline = Instant::now() + timeout;
        let s = &self.settings;
        let method_name = if s.method.is_empty() {
            "GET"
        } else {
            s.method.as_str()
        };
        let client = match &self.client {
            Ok(client) => client,
            Err(e) => return Outcome::critical(e.clone()),
        };
        let Ok(method) = Method::from_bytes(method_name.as_bytes()) else {
            return Outcome::critical(format!("net/http: invalid method {method_name:?}"));
        };
        let url = match Url::parse(&s.url) {
            Ok(url) => url,
            Err(e) => return Outcome::critical(format!("parse {:?}: {e}", s.url)),
        };
        // Go's url.Error names the operation by the method: "Get", "Post", …
        let failed =
            |why: String| Outcome::critical(format!("{} {:?}: {why}", op_name(method_name), s.url));
        if url.scheme() != "http" && url.scheme() != "https" {
            return failed(format!("unsupported protocol scheme {:?}", url.scheme()));
        }
        let headers = match request_headers(&s.headers) {
            Ok(headers) => headers,
            Err(why) => return failed(why),
        };
        let mut request = client.request(method, url.clone()).headers(headers);
        if !s.body.is_empty() {
            request = request.body(s.body.clone());
        }

        let response =
            match timeout_at(deadline, request.send()).await {
                Err(_) => return failed(
                    "context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
                        .into(),
                ),
                Ok(Err(e)) => return failed(describe(&e, &url)),
                Ok(Ok(response)) => response,
            };
        let status = response.status();
        let status_text = match response
            .extensions()
            .get::<hyper::ext::ReasonPhrase>()
            .map(|r| String::from_utf8_lossy(r.as_bytes()).into_owned())
            .or_else(|| status.canonical_reason().map(str::to_string))
        {
            Some(reason) => format!("{} {reason}", status.as_u16()),
            None => status.as_u16().to_string(),
        };

        // Consul keeps what it read when the body fails or the deadline passes midway
        // and still judges by the status code.
        let mut body = TailBuffer::new(s.max_output);
        let mut response = response;
        while let Ok(Ok(Some(chunk))) = timeout_at(deadline, response.chunk()).await {
            body.write(&chunk);
        }

        let output = format!(
            "HTTP {method_name} {}: {status_text} Output: {}",
            s.url,
            body.text()
        );
        let health = match status.as_u16() {
            200..=299 => Health::Passing,
            // 429 Too Many Requests: the service is up but shedding load.
            429 => Health::Warning,
            _ => Health::Critical,
        };
        Outcome::new(health, output)
    }
}

fn build_client(s: &HttpSettings) -> Result<Client, String> {
    let server_name = Some(s.tls_server_name.as_str()).filter(|n| !n.is_empty());
    let tls = tls::client_config(s.tls_skip_verify, server_name, &[b"h2", b"http/1.1"])?;
    let redirects = if s.disable_redirects {
        // Go's ErrUseLastResponse: the 3xx itself is the result.
        Policy::none()
    } else {
        Policy::limited(MAX_REDIRECTS)
    };
    Client::builder()
        .use_preconfigured_tls((*tls).clone())
        .redirect(redirects)
        .pool_max_idle_per_host(0)
        .build()
        .map_err(|e| root_cause_text(&e))
}

/// The check's headers plus Consul's `User-Agent` and `Accept` unless the check sets
/// them (to something non-empty, as Go's `Header.Get` sees it).
fn request_headers(configured: &BTreeMap<String, Vec<String>>) -> Result<HeaderMap, String> {
    let mut headers = HeaderMap::new();
    for (name, values) in configured {
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("net/http: invalid header field name {name:?}"))?;
        for value in values {
            let value = HeaderValue::from_str(value)
                .map_err(|_| format!("net/http: invalid header field value for {name:?}"))?;
            headers.append(header.clone(), value);
        }
    }
    for (name, default) in [(USER_AGENT, CHECK_USER_AGENT), (ACCEPT, CHECK_ACCEPT)] {
        let set = headers.get(&name).is_some_and(|v| !v.is_empty());
        if !set {
            headers.insert(name, HeaderValue::from_static(default));
        }
    }
    Ok(headers)
}

/// "GET" → "Get", as Go's `urlErrorOp` names a failed request.
fn op_name(method: &str) -> String {
    let mut chars = method.chars();
    match chars.next() {
        Some(first) => first
            .to_uppercase()
            .chain(chars.flat_map(char::to_lowercase))
            .collect(),
        None => String::new(),
    }
}

/// A failed request in Go's words where the cause is recognisable.
fn describe(err: &reqwest::Error, url: &Url) -> String {
    if err.is_redirect() {
        return format!("stopped after {MAX_REDIRECTS} redirects");
    }
    let root = root_cause_text(err);
    if err.is_connect() {
        let host = url.host_str().unwrap_or_default();
        let port = url.port_or_known_default().unwrap_or_default();
        if has_os_error(err) {
            return format!("dial tcp {host}:{port}: connect: {root}");
        }
        if chain_mentions(err, "dns error") {
            return format!(
                "dial tcp: lookup {}: no such host",
                host.trim_matches(['[', ']'])
            );
        }
    }
    root
}

fn has_os_error(err: &(dyn StdError + 'static)) -> bool {
    let mut current = Some(err);
    while let Some(e) = current {
        if e.downcast_ref::<io::Error>()
            .is_some_and(|io| io.raw_os_error().is_some())
        {
            return true;
        }
        current = e.source();
    }
    false
}

fn chain_mentions(err: &(dyn StdError + 'static), needle: &str) -> bool {
    let mut current = Some(err);
    while let Some(e) = current {
        if e.to_string().contains(needle) {
            return true;
        }
        current = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::net::SocketAddr;

    use axum::Router;
    use axum::body::Bytes;
    use axum::http::{HeaderMap as AxumHeaders, StatusCode};
    use axum::response::Redirect;
    use axum::routing::{any, get};
    use http_body_util::Full;
    use hyper_util::rt::TokioIo;

    use super::*;

    async fn serve(app: Router) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        addr
    }

    fn settings(url: String) -> HttpSettings {
        HttpSettings {
            url,
            method: String::new(),
            headers: BTreeMap::new(),
            body: String::new(),
            tls_skip_verify: false,
            tls_server_name: String::new(),
            disable_redirects: false,
            max_output: 4096,
        }
    }

    fn test_app() -> Router {
        Router::new()
            .route(
                "/echo",
                any(
                    |method: axum::http::Method, headers: AxumHeaders, body: Bytes| async move {
                        let h = |n: &str| {
                            headers
                                .get(n)
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("")
                                .to_string()
                        };
                        format!(
                            "{method} ua={} accept={} x={} body={}",
                            h("user-agent"),
                            h("accept"),
                            h("x-probe"),
                            String::from_utf8_lossy(&body)
                        )
                    },
                ),
            )
            .route(
                "/busy",
                get(|| async { (StatusCode::TOO_MANY_REQUESTS, "slow down") }),
            )
            .route(
                "/broken",
                get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "oops") }),
            )
            .route("/moved", get(|| async { Redirect::to("/echo") }))
            .route("/big", get(|| async { "a".repeat(100) + "THE-END" }))
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    "late"
                }),
            )
    }

    #[tokio::test]
    async fn passing_with_consul_default_headers() {
        let addr = serve(test_app()).await;
        let url = format!("http://{addr}/echo");
        let out = HttpProbe::new(settings(url.clone()))
            .check(Duration::from_secs(5))
            .await;
        assert_eq!(out.health, Health::Passing);
        assert_eq!(
            out.output,
            format!(
                "HTTP GET {url}: 200 OK Output: GET ua=Consul Health Check accept=text/plain, text/*, */* x= body="
            )
        );
    }

    #[tokio::test]
    async fn method_headers_and_body_are_sent() {
        let addr = serve(test_app()).await;
        let url = format!("http://{addr}/echo");
        let mut s = settings(url.clone());
        s.method = "POST".into();
        s.body = "{\"ping\":1}".into();
        s.headers.insert("X-Probe".into(), vec!["yes".into()]);
        s.headers.insert("User-Agent".into(), vec!["mine".into()]);
        let out = HttpProbe::new(s).check(Duration::from_secs(5)).await;
        assert_eq!(out.health, Health::Passing);
        assert_eq!(
            out.output,
            format!(
                "HTTP POST {url}: 200 OK Output: POST ua=mine accept=text/plain, text/*, */* x=yes body={{\"ping\":1}}"
            )
        );
    }

    #[tokio::test]
    async fn status_codes_map_to_health() {
        let addr = serve(test_app()).await;
        let busy = format!("http://{addr}/busy");
        let out = HttpProbe::new(settings(busy.clone()))
            .check(Duration::from_secs(5))
            .await;
        assert_eq!(out.health, Health::Warning);
        assert_eq!(
            out.output,
            format!("HTTP GET {busy}: 429 Too Many Requests Output: slow down")
        );

        let broken = format!("http://{addr}/broken");
        let out = HttpProbe::new(settings(broken.clone()))
            .check(Duration::from_secs(5))
            .await;
        assert_eq!(out.health, Health::Critical);
        assert_eq!(
            out.output,
            format!("HTTP GET {broken}: 500 Internal Server Error Output: oops")
        );
    }

    #[tokio::test]
    async fn redirects_followed_unless_disabled() {
        let addr = serve(test_app()).await;
        let url = format!("http://{addr}/moved");
        let out = HttpProbe::new(settings(url.clone()))
            .check(Duration::from_secs(5))
            .await;
        assert_eq!(out.health, Health::Passing, "{out:?}");

        let mut s = settings(url.clone());
        s.disable_redirects = true;
        let out = HttpProbe::new(s).check(Duration::from_secs(5)).await;
        assert_eq!(out.health, Health::Critical);
        assert_eq!(
            out.output,
            format!("HTTP GET {url}: 303 See Other Output: ")
        );
    }

    #[tokio::test]
    async fn body_keeps_its_last_bytes() {
        let addr = serve(test_app()).await;
        let url = format!("http://{addr}/big");
        let mut s = settings(url.clone());
        s.max_output = 10;
        let out = HttpProbe::new(s).check(Duration::from_secs(5)).await;
        assert_eq!(
            out.output,
            format!("HTTP GET {url}: 200 OK Output: aaaTHE-END")
        );
    }

    #[tokio::test]
    async fn refused_connection_is_critical_with_go_text() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let url = format!("http://{addr}/");
        let out = HttpProbe::new(settings(url.clone()))
            .check(Duration::from_secs(5))
            .await;
        assert_eq!(out.health, Health::Critical);
        assert_eq!(
            out.output,
            format!("Get \"{url}\": dial tcp {addr}: connect: connection refused")
        );
    }

    #[tokio::test]
    async fn timeout_is_critical_with_go_text() {
        let addr = serve(test_app()).await;
        let url = format!("http://{addr}/slow");
        let out = HttpProbe::new(settings(url.clone()))
            .check(Duration::from_millis(200))
            .await;
        assert_eq!(out.health, Health::Critical);
        assert_eq!(
            out.output,
            format!(
                "Get \"{url}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
            )
        );
    }

    #[tokio::test]
    async fn bad_method_and_scheme() {
        let mut s = settings("http://127.0.0.1:1/".into());
        s.method = "BAD METHOD".into();
        let out = HttpProbe::new(s).check(Duration::from_secs(1)).await;
        assert_eq!(out.output, "net/http: invalid method \"BAD METHOD\"");

        let out = HttpProbe::new(settings("ftp://127.0.0.1/x".into()))
            .check(Duration::from_secs(1))
            .await;
        assert_eq!(
            out.output,
            "Get \"ftp://127.0.0.1/x\": unsupported protocol scheme \"ftp\""
        );
    }

    /// An HTTPS server with a self-signed certificate: passes with skip-verify, fails
    /// verification otherwise.
    #[tokio::test]
    async fn https_with_and_without_verification() {
        let acceptor = tls::testing::acceptor(&[b"http/1.1"]);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(|_req| async {
                        Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from_static(
                            b"secure",
                        ))))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        let url = format!("https://localhost:{}/", addr.port());
        let mut s = settings(url.clone());
        s.tls_skip_verify = true;
        let out = HttpProbe::new(s).check(Duration::from_secs(5)).await;
        assert_eq!(out.health, Health::Passing, "{out:?}");
        assert_eq!(out.output, format!("HTTP GET {url}: 200 OK Output: secure"));

        let out = HttpProbe::new(settings(url.clone()))
            .check(Duration::from_secs(5))
            .await;
        assert_eq!(out.health, Health::Critical);
        assert_eq!(
            out.output,
            format!(
                "Get \"{url}\": tls: failed to verify certificate: x509: certificate signed by unknown authority"
            )
        );
    }

    #[test]
    fn op_names_follow_go() {
        assert_eq!(op_name("GET"), "Get");
        assert_eq!(op_name("POST"), "Post");
        assert_eq!(op_name("delete"), "Delete");
    }
}
