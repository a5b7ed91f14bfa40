//! The built-in Connect CA: a root generated on first leadership (ECDSA P-256, as
//! Consul's built-in provider) and replicated through the FSM, and the roots
//! endpoints. Leaf certificates and intentions build on this.

pub mod http;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The CA state as replicated (singleton document `connect-ca`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CaState {
    pub cluster_id: String,
    pub active_root_id: String,
    pub roots: Vec<CaRoot>,
    /// The active root's signing key (PEM). Replicated so any server can sign leaves.
    pub signing_key_pem: String,
}

/// One root, in Consul's `CARoot` JSON shape.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CaRoot {
    #[serde(rename = "ID")]
    pub id: String,
    pub name: String,
    pub serial_number: u64,
    #[serde(rename = "SigningKeyID")]
    pub signing_key_id: String,
    pub external_trust_domain: String,
    pub not_before: String,
    pub not_after: String,
    pub root_cert: String,
    pub intermediate_certs: Option<Vec<String>>,
    pub active: bool,
    pub private_key_type: String,
    pub private_key_bits: u32,
    pub create_index: u64,
    pub modify_index: u64,
}

pub const CA_DOC: &str = "connect-ca";

/// Colon-separated hex, the way Consul prints key and certificate IDs.
fn colon_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Generates a new root CA for `cluster_id`, valid for ten years (Consul's default
/// `RootCertTTL` of 87600h).
pub fn generate_root(cluster_id: &str) -> anyhow::Result<CaState> {
    use rcgen::{
        BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair,
        KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SanType,
    };
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let trust_domain = format!("{cluster_id}.consul");
    let serial: u64 = rand::random::<u64>() >> 1;
    let now = time::OffsetDateTime::now_utc();
    let not_before = now - time::Duration::minutes(1);
    let not_after = now + time::Duration::hours(87_600);
    let mut params = CertificateParams::default();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.not_before = not_before;
    params.not_after = not_after;
    params.serial_number = Some(serial.into());
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, format!("Consul CA {serial}"));
    params.distinguished_name = dn;
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.subject_alt_names = vec![SanType::URI(format!("spiffe://{trust_domain}").try_into()?)];
    let cert = params.self_signed(&key)?;
    let id = colon_hex(&Sha256::digest(cert.der())[..20]);
    let key_id = colon_hex(&Sha256::digest(key.public_key_raw())[..20]);
    Ok(CaState {
        cluster_id: cluster_id.to_string(),
        active_root_id: id.clone(),
        roots: vec![CaRoot {
            id,
            name: "Consul CA Primary Cert".into(),
            serial_number: serial,
            signing_key_id: key_id,
            external_trust_domain: cluster_id.to_string(),
            not_before: rfc3339(not_before),
            not_after: rfc3339(not_after),
            root_cert: cert.pem(),
            intermediate_certs: None,
            active: true,
            private_key_type: "ec".into(),
            private_key_bits: 256,
            create_index: 0,
            modify_index: 0,
        }],
        signing_key_pem: key.serialize_pem(),
    })
}
