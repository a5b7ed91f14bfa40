//! The HTTPS listener: the API over TLS, with and without client certificates
//! required. Certificates are made for each run with the `openssl` command.

mod common;
use common::{Agent, free_port};
use std::path::Path;
use std::process::Command;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl command");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A P-256 key `<name>.key` and, by `extra`, a self-signed certificate or a
/// signing request for the subject `CN=<name>`.
fn new_key(dir: &Path, name: &str, extra: &[&str]) {
    let (key, subject) = (format!("{name}.key"), format!("/CN={name}"));
    let mut args = vec![
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    args.extend(["-keyout", &key, "-subj", &subject]);
    args.extend(extra);
    openssl(dir, &args);
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, both
/// signed by the CA, and a second CA nobody trusts with its own client cert.
fn make_certs(dir: &Path) {
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    for ca in ["ca", "rogue"] {
        let cert = format!("{ca}.crt");
        new_key(dir, ca, &["-x509", "-days", "2", "-out", &cert]);
    }
    for (name, ca) in [("server", "ca"), ("client", "ca"), ("stranger", "rogue")] {
        let csr = format!("{name}.csr");
        new_key(dir, name, &["-out", &csr]);
        let ext = if name == "server" {
            "server.ext"
        } else {
            "client.ext"
        };
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                &format!("{ca}.crt"),
                "-CAkey",
                &format!("{ca}.key"),
                "-CAcreateserial",
                "-out",
                &format!("{name}.crt"),
                "-days",
                "2",
                "-extfile",
                ext,
            ],
        );
    }
}

fn https_agent(dir: &Path, verify_incoming: bool) -> (Agent, u16) {
    let port = free_port();
    let hcl = format!(
        r#"ports {{ https = {port} }}
tls {{
  defaults {{
    ca_file = "{d}/ca.crt"
    cert_file = "{d}/server.crt"
    key_file = "{d}/server.key"
  }}
  https {{ verify_incoming = {verify_incoming} }}
}}"#,
        d = dir.display()
    );
    (
        Agent::start(vec!["-dev".into(), format!("-hcl={hcl}")], None),
        port,
    )
}

fn client(dir: &Path, cert: Option<&str>) -> reqwest::blocking::Client {
    let ca = std::fs::read(dir.join("ca.crt")).unwrap();
    let mut b = reqwest::blocking::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&ca).unwrap()]);
    if let Some(name) = cert {
        let mut pem = std::fs::read(dir.join(format!("{name}.crt"))).unwrap();
        pem.extend(std::fs::read(dir.join(format!("{name}.key"))).unwrap());
        b = b.identity(reqwest::Identity::from_pem(&pem).unwrap());
    }
    b.build().unwrap()
}

#[test]
fn https_requires_a_client_certificate_from_the_ca_when_verify_incoming_is_on() {
    let dir = Agent::scratch("https-verify");
    make_certs(&dir);
    let (agent, port) = https_agent(&dir, true);
    let url = format!("https://127.0.0.1:{port}/v1/agent/self");

    let r = client(&dir, Some("client")).get(&url).send().unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().unwrap();
    assert_eq!(body["Config"]["NodeName"], "it-node");

    assert!(
        client(&dir, None).get(&url).send().is_err(),
        "no client certificate"
    );
    assert!(
        client(&dir, Some("stranger")).get(&url).send().is_err(),
        "a client certificate from another CA"
    );
    // The plain HTTP port keeps serving, and so does HTTPS after the refusals.
    assert_eq!(agent.get("/v1/status/leader").status, 200);
    let r = client(&dir, Some("client")).get(&url).send().unwrap();
    assert_eq!(r.status(), 200);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn https_without_verify_incoming_serves_any_client_and_writes_work() {
    let dir = Agent::scratch("https-open");
    make_certs(&dir);
    let (agent, port) = https_agent(&dir, false);
    let base = format!("https://127.0.0.1:{port}");
    let c = client(&dir, None);
    let r = c
        .put(format!("{base}/v1/kv/over-tls"))
        .body("secret")
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(agent.get("/v1/kv/over-tls?raw").text(), "secret");
    let r = c.get(format!("{base}/v1/kv/over-tls?raw")).send().unwrap();
    assert_eq!(r.headers()["X-Consul-KnownLeader"], "true");
    assert_eq!(r.text().unwrap(), "secret");
    // Plain HTTP spoken to the HTTPS port is refused, and the listener lives on.
    let plain = reqwest::blocking::get(format!("http://127.0.0.1:{port}/v1/agent/self"));
    assert!(plain.is_err() || plain.unwrap().status() != 200);
    assert_eq!(
        c.get(format!("{base}/v1/status/leader"))
            .send()
            .unwrap()
            .status(),
        200
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Consul's own test harness always sets an HTTPS port; without certificates
/// the agent must still start (and serve plain HTTP).
#[test]
fn an_https_port_without_certificates_leaves_https_off() {
    let port = free_port();
    let agent = Agent::start(
        vec!["-dev".into(), format!("-hcl=ports {{ https = {port} }}")],
        None,
    );
    assert_eq!(agent.get("/v1/status/leader").status, 200);
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}
