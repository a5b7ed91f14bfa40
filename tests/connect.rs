//! The built-in Connect CA: roots, leaf certificates and root rotation through
//! `PUT /v1/connect/ca/configuration`, watched with blocking queries.

mod common;
use common::Agent;
use serde_json::{Value, json};

/// Waits for the CA the leader creates on first leadership.
fn roots(a: &Agent) -> (u64, Value) {
    for _ in 0..100 {
        let r = a.get("/v1/connect/ca/roots");
        if r.status == 200 && !r.json()["Roots"].as_array().unwrap().is_empty() {
            return (r.index(), r.json());
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("no CA roots");
}

/// An operator-supplied root: a P-256 key and a self-signed CA certificate.
fn new_root() -> (String, String) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "CA Modified");
    let cert = params.self_signed(&key).unwrap();
    (key.serialize_pem(), cert.pem())
}

#[test]
fn rotating_the_root_wakes_roots_and_leaf_watches() {
    let a = Agent::dev();
    let (index, first) = roots(&a);
    let original = first["ActiveRootID"].as_str().unwrap().to_string();
    assert_eq!(first["Roots"].as_array().unwrap().len(), 1);
    assert!(first["TrustDomain"].as_str().unwrap().ends_with(".consul"));

    let leaf = a.get("/v1/agent/connect/ca/leaf/web");
    assert_eq!(leaf.status, 200);
    let leaf_index = leaf.index();
    let leaf = leaf.json();
    assert!(
        leaf["ServiceURI"]
            .as_str()
            .unwrap()
            .ends_with("/dc/dc1/svc/web")
    );
    // Without a change, the same leaf is served from the cache.
    assert_eq!(
        a.get("/v1/agent/connect/ca/leaf/web").json()["CertPEM"],
        leaf["CertPEM"]
    );

    let roots_watch = {
        let http = a.http.clone();
        std::thread::spawn(move || {
            reqwest::blocking::get(format!("{http}/v1/connect/ca/roots?index={index}&wait=30s"))
                .unwrap()
                .json::<Value>()
                .unwrap()
        })
    };
    let leaf_watch = {
        let http = a.http.clone();
        std::thread::spawn(move || {
            reqwest::blocking::get(format!(
                "{http}/v1/agent/connect/ca/leaf/web?index={leaf_index}&wait=30s"
            ))
            .unwrap()
            .json::<Value>()
            .unwrap()
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(300));

    let mut config = a.get("/v1/connect/ca/configuration").json();
    let (key, cert) = new_root();
    config["Config"]["PrivateKey"] = json!(key);
    config["Config"]["RootCert"] = json!(cert);
    let r = a.put("/v1/connect/ca/configuration", config.to_string());
    assert_eq!(r.status, 200, "{}", r.text());

    let rotated = roots_watch.join().unwrap();
    let list = rotated["Roots"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_ne!(rotated["ActiveRootID"], json!(original));
    let active: Vec<_> = list.iter().filter(|r| r["Active"] == true).collect();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0]["ID"], rotated["ActiveRootID"]);
    assert_eq!(active[0]["RootCert"].as_str().unwrap().trim(), cert.trim());

    let renewed = leaf_watch.join().unwrap();
    assert_ne!(renewed["CertPEM"], leaf["CertPEM"]);
    assert_ne!(renewed["PrivateKeyPEM"], leaf["PrivateKeyPEM"]);
    assert_ne!(renewed["ModifyIndex"], leaf["ModifyIndex"]);

    // The same key again is not a rotation; a key that does not match its
    // certificate is refused and changes nothing.
    let r = a.put("/v1/connect/ca/configuration", config.to_string());
    assert_eq!(r.status, 200);
    assert_eq!(
        a.get("/v1/connect/ca/roots").json()["Roots"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let (other_key, _) = new_root();
    config["Config"]["PrivateKey"] = json!(other_key);
    let r = a.put("/v1/connect/ca/configuration", config.to_string());
    assert_eq!(r.status, 500);
    assert_eq!(
        r.text(),
        "private key does not match the root certificate's public key"
    );
    assert_eq!(
        a.get("/v1/connect/ca/roots").json()["Roots"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}
