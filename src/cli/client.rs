//! The agent HTTP client every command shares: requests shaped as Consul's Go
//! `api` package sends them (token header, `dc`, query encoding, content types)
//! and its error texts (`Unexpected response code: 500 (body)`, `Get "url": dial
//! tcp ...`), so scripts that match on them keep working.

use std::fmt;
use std::net::ToSocketAddrs;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::http_flags::{ClientFlags, Scheme, ServerFlags, Settings};
use super::ui::go_os_error;

/// What Go's `url.URL` leaves unescaped in a path: unreserved characters and
/// `$&+,/:;=@`. Everything else in a KV key or node name is percent-encoded.
const PATH: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b',')
    .remove(b'/')
    .remove(b':')
    .remove(b';')
    .remove(b'=')
    .remove(b'@');

/// Go's `url.QueryEscape`: unreserved characters kept, space as `+`.
const QUERY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b' ');

/// A failed API call, displayed as the Go client words it.
#[derive(Debug)]
pub enum ApiError {
    /// The agent answered with a status the call does not accept.
    Status { code: u16, body: String },
    /// The request did not get an answer.
    Transport {
        method: Method,
        url: String,
        detail: String,
    },
    /// The answer was not what the call expects.
    Decode(String),
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::Status { code, body } => {
                write!(f, "Unexpected response code: {code} ({body})")
            }
            ApiError::Transport {
                method,
                url,
                detail,
            } => {
                // net/http's url.Error: "Get", "Put", ... then the quoted URL.
                let m = method.as_str();
                write!(f, "{}{} {url:?}: {detail}", &m[..1], m[1..].to_lowercase())
            }
            ApiError::Decode(msg) => f.write_str(msg),
        }
    }
}

/// One agent connection.
pub struct Client {
    http: reqwest::Client,
    /// `scheme://host:port[prefix]`, as requests are addressed.
    base: String,
    /// The base as Go's client would show it in an error: for a unix socket its
    /// URL host is the escaped socket path.
    shown_base: String,
    /// The address as Go's dialer would name it in an error (`tcp host:port`).
    dial: String,
    token: String,
    datacenter: Option<String>,
    basic_auth: Option<(String, String)>,
}

impl Client {
    /// A client from a command's flags and the environment. `server` carries
    /// `-datacenter`/`-stale` for commands that take them. The error is the text
    /// Consul prints after "Error connecting to Consul agent: ".
    pub fn new(client: &ClientFlags, server: Option<&ServerFlags>) -> Result<Client, String> {
        let settings = Settings::resolve(client, server)?;
        Client::from_settings(&settings)
    }

    pub fn from_settings(s: &Settings) -> Result<Client, String> {
        // reqwest is built without a TLS provider of its own; main installs ring,
        // and doing it here too (a no-op then) keeps the client usable on its own.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder().no_proxy();
        let scheme = match s.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        let mut host = s.address.clone();
        let dial;
        let mut shown_host = None;
        if let Some(sock) = &s.unix_socket {
            builder = builder.unix_socket(sock.clone());
            host = "localhost".to_string();
            dial = format!("unix {}", sock.display());
            shown_host = Some(s.address.replace('/', "%2F"));
        } else {
            dial = format!("tcp {}", s.address);
        }
        if s.scheme == Scheme::Https {
            builder = configure_tls(builder, s, &mut host)?;
        }
        let http = builder.build().map_err(|e| e.to_string())?;
        Ok(Client {
            http,
            base: format!("{scheme}://{host}{}", s.path_prefix),
            shown_base: format!(
                "{scheme}://{}{}",
                shown_host.unwrap_or_else(|| host.clone()),
                s.path_prefix
            ),
            dial,
            token: s.token.clone(),
            datacenter: s.datacenter.clone(),
            basic_auth: s.basic_auth.clone(),
        })
    }

    pub fn get(&self, path: &str) -> Request<'_> {
        self.request(Method::GET, path)
    }

    pub fn put(&self, path: &str) -> Request<'_> {
        self.request(Method::PUT, path)
    }

    pub fn post(&self, path: &str) -> Request<'_> {
        self.request(Method::POST, path)
    }

    pub fn delete(&self, path: &str) -> Request<'_> {
        self.request(Method::DELETE, path)
    }

    fn request(&self, method: Method, path: &str) -> Request<'_> {
        let mut params = Vec::new();
        if let Some(dc) = &self.datacenter {
            params.push(("dc".to_string(), dc.clone()));
        }
        Request {
            client: self,
            method,
            path: path.to_string(),
            params,
            body: None,
            content_type: "application/json",
        }
    }
}

/// The TLS side of an `https` connection: CA roots, client identity, SNI name.
fn configure_tls(
    mut builder: reqwest::ClientBuilder,
    s: &Settings,
    host: &mut String,
) -> Result<reqwest::ClientBuilder, String> {
    let tls = &s.tls;
    let mut roots = Vec::new();
    if let Some(file) = &tls.ca_file {
        let pem = std::fs::read(file).map_err(|e| format!("open {file}: {}", go_os_error(&e)))?;
        roots.extend(reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| e.to_string())?);
    } else if let Some(dir) = &tls.ca_path {
        let entries =
            std::fs::read_dir(dir).map_err(|e| format!("open {dir}: {}", go_os_error(&e)))?;
        for entry in entries.flatten() {
            if let Ok(pem) = std::fs::read(entry.path()) {
                roots.extend(reqwest::Certificate::from_pem_bundle(&pem).unwrap_or_default());
            }
        }
    }
    if !roots.is_empty() {
        builder = builder.tls_certs_only(roots);
    }
    match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => {
            let mut pem =
                std::fs::read(cert).map_err(|e| format!("open {cert}: {}", go_os_error(&e)))?;
            pem.push(b'\n');
            pem.extend(std::fs::read(key).map_err(|e| format!("open {key}: {}", go_os_error(&e)))?);
            let id = reqwest::Identity::from_pem(&pem).map_err(|e| e.to_string())?;
            builder = builder.identity(id);
        }
        (None, None) => {}
        _ => return Err("both client cert and client key must be provided".to_string()),
    }
    if tls.insecure {
        builder = builder.tls_danger_accept_invalid_certs(true);
    }
    // reqwest takes the SNI name from the URL, so the URL names the server and the
    // name is pinned to the real address.
    if let Some(name) = &tls.server_name
        && s.unix_socket.is_none()
    {
        let name = name.rsplit_once(':').map_or(name.as_str(), |(h, _)| h);
        let addr = s
            .address
            .to_socket_addrs()
            .map_err(|e| format!("lookup {}: {e}", s.address))?
            .next()
            .ok_or_else(|| format!("lookup {}: no such host", s.address))?;
        builder = builder.resolve(name, addr);
        *host = format!("{name}:{}", addr.port());
    }
    Ok(builder)
}

/// A request being built; `send` runs it.
pub struct Request<'c> {
    client: &'c Client,
    method: Method,
    path: String,
    params: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    content_type: &'static str,
}

impl Request<'_> {
    /// Sets a query parameter (an empty value is sent as `key=`, as Go does).
    pub fn param(mut self, key: &str, value: impl Into<String>) -> Self {
        self.params.retain(|(k, _)| k != key);
        self.params.push((key.to_string(), value.into()));
        self
    }

    /// Adds another value for a repeatable parameter (`node-meta`).
    pub fn add_param(mut self, key: &str, value: impl Into<String>) -> Self {
        self.params.push((key.to_string(), value.into()));
        self
    }

    /// `param` when `cond` holds.
    pub fn param_if(self, cond: bool, key: &str, value: impl Into<String>) -> Self {
        if cond { self.param(key, value) } else { self }
    }

    /// A raw body (KV values, snapshots, event payloads).
    pub fn bytes(mut self, body: Vec<u8>) -> Self {
        self.body = Some(body);
        self.content_type = "application/octet-stream";
        self
    }

    /// A JSON body, encoded as Go's `json.Encoder` does (trailing newline).
    pub fn json<T: Serialize>(mut self, value: &T) -> Self {
        let mut body = serde_json::to_vec(value).unwrap_or_default();
        body.push(b'\n');
        self.body = Some(body);
        self.content_type = "application/json";
        self
    }

    /// The URL as the Go client builds it: escaped path, parameters sorted by key.
    fn url(&self) -> String {
        let mut url = format!(
            "{}{}",
            self.client.base,
            utf8_percent_encode(&self.path, PATH)
        );
        if !self.params.is_empty() {
            let mut params: Vec<&(String, String)> = self.params.iter().collect();
            params.sort_by(|a, b| a.0.cmp(&b.0));
            let query: Vec<String> = params
                .iter()
                .map(|(k, v)| {
                    format!(
                        "{}={}",
                        utf8_percent_encode(k, QUERY).to_string().replace(' ', "+"),
                        utf8_percent_encode(v, QUERY).to_string().replace(' ', "+")
                    )
                })
                .collect();
            url.push('?');
            url.push_str(&query.join("&"));
        }
        url
    }

    /// Sends the request and returns once the answer's headers are in.
    async fn start(self) -> Result<(reqwest::Response, Transport), ApiError> {
        let url = self.url();
        let c = self.client;
        let mut req = c.http.request(self.method.clone(), &url);
        if !c.token.is_empty() {
            req = req.header("X-Consul-Token", &c.token);
        }
        if let Some((user, pass)) = &c.basic_auth {
            req = req.basic_auth(user, Some(pass));
        }
        if let Some(body) = self.body {
            req = req.header("Content-Type", self.content_type).body(body);
        }
        let transport = Transport {
            method: self.method,
            url: url.replacen(&c.base, &c.shown_base, 1),
            dial: c.dial.clone(),
        };
        let resp = req.send().await.map_err(|e| transport.error(&e))?;
        Ok((resp, transport))
    }

    /// Runs the request; any status is an answer.
    pub async fn send(self) -> Result<Response, ApiError> {
        let (resp, transport) = self.start().await?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp
            .bytes()
            .await
            .map_err(|e| transport.error(&e))?
            .to_vec();
        Ok(Response {
            status,
            headers,
            body,
        })
    }

    /// Runs the request for an answer that streams (`/v1/agent/monitor`): a 200
    /// hands back the body as it arrives, any other status is an error as
    /// `send_ok` words it.
    pub async fn stream_ok(self) -> Result<Stream, ApiError> {
        let (resp, transport) = self.start().await?;
        let status = resp.status().as_u16();
        if status != 200 {
            let body = resp.bytes().await.map_err(|e| transport.error(&e))?;
            return Err(ApiError::Status {
                code: status,
                body: String::from_utf8_lossy(&body).trim().to_string(),
            });
        }
        Ok(Stream { resp, transport })
    }

    /// Runs the request and requires a 200, as the Go client's `requireOK`.
    pub async fn send_ok(self) -> Result<Response, ApiError> {
        self.send().await?.require_ok()
    }

    /// Runs the request, requires a 200 and decodes the JSON answer.
    pub async fn json_ok<T: DeserializeOwned>(self) -> Result<T, ApiError> {
        self.send_ok().await?.decode()
    }
}

/// What a transport error names: the request and the address dialled.
struct Transport {
    method: Method,
    /// The URL as Go's client would show it.
    url: String,
    dial: String,
}

impl Transport {
    fn error(&self, e: &reqwest::Error) -> ApiError {
        ApiError::Transport {
            method: self.method.clone(),
            url: self.url.clone(),
            detail: transport_detail(e, &self.dial),
        }
    }
}

/// A streaming answer's body.
pub struct Stream {
    resp: reqwest::Response,
    transport: Transport,
}

impl Stream {
    /// The next piece of the body; `None` once the agent has ended it.
    pub async fn chunk(&mut self) -> Result<Option<Vec<u8>>, ApiError> {
        match self.resp.chunk().await {
            Ok(c) => Ok(c.map(|b| b.to_vec())),
            Err(e) => Err(self.transport.error(&e)),
        }
    }
}

/// Words a transport failure as Go's dialer does where it can
/// (`dial tcp 127.0.0.1:8500: connect: connection refused`).
fn transport_detail(e: &reqwest::Error, dial: &str) -> String {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    let mut innermost = e.to_string();
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            if e.is_connect() {
                return format!("dial {dial}: connect: {}", go_os_error(io));
            }
            return go_os_error(io);
        }
        innermost = s.to_string();
        source = s.source();
    }
    if e.is_timeout() {
        return format!("dial {dial}: i/o timeout");
    }
    innermost
}

/// An answer from the agent.
pub struct Response {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Response {
    pub fn require_ok(self) -> Result<Response, ApiError> {
        if self.status == 200 {
            Ok(self)
        } else {
            Err(ApiError::Status {
                code: self.status,
                body: String::from_utf8_lossy(&self.body).trim().to_string(),
            })
        }
    }

    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        serde_json::from_slice(&self.body).map_err(|e| ApiError::Decode(e.to_string()))
    }

    /// `X-Consul-Index`, 0 when absent.
    pub fn index(&self) -> u64 {
        self.headers
            .get("X-Consul-Index")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// Whether the body says `true` (the Go client's test for CAS and lock writes).
    pub fn says_true(&self) -> bool {
        String::from_utf8_lossy(&self.body).contains("true")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> Client {
        let s = Settings::resolve_with(
            &ClientFlags {
                http_addr: Some("127.0.0.1:1".into()),
                ..Default::default()
            },
            Some(&ServerFlags {
                datacenter: Some("dc2".into()),
                stale: false,
            }),
            |_| None,
        )
        .unwrap();
        Client::from_settings(&s).unwrap()
    }

    #[test]
    fn urls_are_escaped_and_sorted_like_go() {
        let c = client();
        let r = c
            .get("/v1/kv/a b/ü?#x")
            .param("recurse", "")
            .param("separator", "/");
        assert_eq!(
            r.url(),
            "http://127.0.0.1:1/v1/kv/a%20b/%C3%BC%3F%23x?dc=dc2&recurse=&separator=%2F"
        );
        let r = c
            .get("/v1/catalog/nodes")
            .add_param("node-meta", "a:b c")
            .add_param("node-meta", "x:y");
        assert_eq!(
            r.url(),
            "http://127.0.0.1:1/v1/catalog/nodes?dc=dc2&node-meta=a%3Ab+c&node-meta=x%3Ay"
        );
    }

    #[tokio::test]
    async fn unix_socket_errors_show_the_socket_as_go_does() {
        let s = Settings::resolve_with(
            &ClientFlags {
                http_addr: Some("unix:///nonexistent/consul.sock".into()),
                ..Default::default()
            },
            None,
            |_| None,
        )
        .unwrap();
        let c = Client::from_settings(&s).unwrap();
        let err = c.get("/v1/agent/self").send().await.err().unwrap();
        assert_eq!(
            err.to_string(),
            "Get \"http://%2Fnonexistent%2Fconsul.sock/v1/agent/self\": \
             dial unix /nonexistent/consul.sock: connect: no such file or directory"
        );
    }

    #[test]
    fn errors_read_like_the_go_client() {
        let e = ApiError::Status {
            code: 500,
            body: "boom".into(),
        };
        assert_eq!(e.to_string(), "Unexpected response code: 500 (boom)");
        let e = ApiError::Transport {
            method: Method::GET,
            url: "http://127.0.0.1:1/v1/agent/self".into(),
            detail: "dial tcp 127.0.0.1:1: connect: connection refused".into(),
        };
        assert_eq!(
            e.to_string(),
            "Get \"http://127.0.0.1:1/v1/agent/self\": dial tcp 127.0.0.1:1: connect: connection refused"
        );
    }

    #[tokio::test]
    async fn requests_carry_the_token_and_body_as_the_go_client_sends_them() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut req = Vec::new();
            let mut buf = [0u8; 4096];
            while !String::from_utf8_lossy(&req).contains("\r\n\r\nv") {
                let n = sock.read(&mut buf).await.unwrap();
                req.extend_from_slice(&buf[..n]);
            }
            sock.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ntrue")
                .await
                .unwrap();
            String::from_utf8(req).unwrap()
        });
        let s = Settings::resolve_with(
            &ClientFlags {
                http_addr: Some(format!("http://127.0.0.1:{port}")),
                token: Some("secret".into()),
                ..Default::default()
            },
            None,
            |_| None,
        )
        .unwrap();
        let c = Client::from_settings(&s).unwrap();
        let resp = c
            .put("/v1/kv/k")
            .param("cas", "0")
            .bytes(b"v".to_vec())
            .send_ok()
            .await
            .unwrap();
        assert!(resp.says_true());
        let req = server.await.unwrap().to_lowercase();
        assert!(req.starts_with("put /v1/kv/k?cas=0 http/1.1\r\n"), "{req}");
        assert!(req.contains("x-consul-token: secret\r\n"), "{req}");
        assert!(
            req.contains("content-type: application/octet-stream\r\n"),
            "{req}"
        );
    }

    #[tokio::test]
    async fn https_trusts_the_given_ca_and_verifies_the_server_name() {
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let _ = rustls::crypto::ring::default_provider().install_default();
        let certified = rcgen::generate_simple_self_signed(vec!["server.dc1.consul".to_string()])
            .expect("rcgen");
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(certified.cert.der().to_vec())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
                    certified.signing_key.serialize_der(),
                )),
            )
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let Ok(mut tls) = acceptor.accept(sock).await else {
                    continue;
                };
                let mut buf = [0u8; 4096];
                let _ = tls.read(&mut buf).await;
                let _ = tls
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n[]")
                    .await;
                let _ = tls.shutdown().await;
            }
        });
        let ca = std::env::temp_dir().join(format!("concord-cli-ca-{}.pem", std::process::id()));
        std::fs::write(&ca, certified.cert.pem()).unwrap();
        let connect = |server_name: Option<&str>| {
            let s = Settings::resolve_with(
                &ClientFlags {
                    http_addr: Some(format!("https://127.0.0.1:{port}")),
                    ca_file: Some(ca.display().to_string()),
                    tls_server_name: server_name.map(str::to_string),
                    ..Default::default()
                },
                None,
                |_| None,
            )
            .unwrap();
            Client::from_settings(&s).unwrap()
        };
        let named = connect(Some("server.dc1.consul"));
        let members: Vec<serde_json::Value> =
            named.get("/v1/agent/members").json_ok().await.unwrap();
        assert!(members.is_empty());
        // The certificate does not name 127.0.0.1, so without -tls-server-name the
        // connection is refused.
        assert!(connect(None).get("/v1/agent/members").send().await.is_err());
        std::fs::remove_file(&ca).unwrap();
    }

    #[tokio::test]
    async fn a_refused_connection_names_the_dial() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let s = Settings::resolve_with(
            &ClientFlags {
                http_addr: Some(format!("127.0.0.1:{port}")),
                ..Default::default()
            },
            None,
            |_| None,
        )
        .unwrap();
        let c = Client::from_settings(&s).unwrap();
        let err = c.get("/v1/agent/self").send().await.err().unwrap();
        assert_eq!(
            err.to_string(),
            format!(
                "Get \"http://127.0.0.1:{port}/v1/agent/self\": dial tcp 127.0.0.1:{port}: connect: connection refused"
            )
        );
    }
}
