//! The built-in Connect CA: a root generated on first leadership (ECDSA P-256, as
//! Consul's built-in provider) and replicated through the FSM, and the roots
//! endpoints. Leaf certificates and intentions build on this.

pub mod http;
pub mod keys;

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

/// The parameters of a generated root.
fn root_params(serial: u64, trust_domain: &str) -> anyhow::Result<rcgen::CertificateParams> {
    use rcgen::{
        BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyUsagePurpose,
        SanType,
    };
    let mut params = CertificateParams::default();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
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
    Ok(params)
}

/// Generates a new root CA for `cluster_id`, valid for ten years (Consul's default
/// `RootCertTTL` of 87600h).
pub fn generate_root(cluster_id: &str) -> anyhow::Result<CaState> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let root = self_signed_root(cluster_id, &key)?;
    Ok(CaState {
        cluster_id: cluster_id.to_string(),
        active_root_id: root.id.clone(),
        roots: vec![root],
        signing_key_pem: key.serialize_pem(),
    })
}

/// A new self-signed root for `key` in the trust domain of `cluster_id`.
fn self_signed_root(cluster_id: &str, key: &rcgen::KeyPair) -> anyhow::Result<CaRoot> {
    let serial: u64 = rand::random::<u64>() >> 1;
    let now = time::OffsetDateTime::now_utc();
    let mut params = root_params(serial, &format!("{cluster_id}.consul"))?;
    params.not_before = now - time::Duration::minutes(1);
    params.not_after = now + time::Duration::hours(87_600);
    let cert = params.self_signed(key)?;
    describe_root(cert.der(), key, cluster_id)
}

/// Builds the `CARoot` record of a root certificate (DER) and its key: ID from
/// the certificate's digest, validity and serial read back from the certificate.
fn describe_root(der: &[u8], key: &rcgen::KeyPair, cluster_id: &str) -> anyhow::Result<CaRoot> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let (_, cert) = X509Certificate::from_der(der)?;
    let validity = cert.validity();
    let at = |t: i64| time::OffsetDateTime::from_unix_timestamp(t).map(rfc3339);
    // Consul's SerialNumber is a uint64: keep the low 64 bits of longer serials.
    let serial = cert
        .raw_serial()
        .iter()
        .fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    let bits = if key.algorithm() == &rcgen::PKCS_ECDSA_P384_SHA384 {
        384
    } else {
        256
    };
    Ok(CaRoot {
        id: colon_hex(&Sha256::digest(der)[..20]),
        name: "Consul CA Primary Cert".into(),
        serial_number: serial,
        signing_key_id: colon_hex(&Sha256::digest(key.public_key_raw())[..20]),
        external_trust_domain: cluster_id.to_string(),
        not_before: at(validity.not_before.timestamp())?,
        not_after: at(validity.not_after.timestamp())?,
        root_cert: keys::pem_encode("CERTIFICATE", der),
        intermediate_certs: None,
        active: true,
        private_key_type: "ec".into(),
        private_key_bits: bits,
        create_index: 0,
        modify_index: 0,
    })
}

impl CaState {
    /// Makes `root` (signed by `key_pem`) the active root. Earlier roots stay
    /// listed, inactive, so certificates they signed keep verifying while
    /// services pick up new leaves.
    pub fn rotate(&mut self, mut root: CaRoot, key_pem: String) {
        for old in &mut self.roots {
            old.active = false;
        }
        root.active = true;
        self.active_root_id = root.id.clone();
        self.roots.retain(|r| r.id != root.id);
        self.roots.push(root);
        self.signing_key_pem = key_pem;
    }

    /// The new root an updated provider configuration asks for, if any: a
    /// `PrivateKey` other than the active one, with its `RootCert` or else a
    /// fresh self-signed root for that key.
    pub fn root_for_config(
        &self,
        private_key: Option<&str>,
        root_cert: Option<&str>,
    ) -> Result<Option<(CaRoot, String)>, keys::ImportError> {
        let Some(private_key) = private_key.filter(|k| !k.trim().is_empty()) else {
            return Ok(None);
        };
        let key = keys::parse_private_key(private_key)?;
        let current = keys::parse_private_key(&self.signing_key_pem).ok();
        if current.is_some_and(|c| c.public_key_raw() == key.public_key_raw()) {
            return Ok(None);
        }
        let root = match root_cert.filter(|c| !c.trim().is_empty()) {
            Some(pem) => {
                let der = keys::parse_root_cert(pem, &key)?;
                describe_root(&der, &key, &self.cluster_id)
            }
            None => self_signed_root(&self.cluster_id, &key),
        }
        .map_err(|e| keys::ImportError::Cert(e.to_string()))?;
        Ok(Some((root, key.serialize_pem())))
    }
}

/// A signed leaf certificate in Consul's `IssuedCert` shape.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct IssuedCert {
    pub serial_number: String,
    #[serde(rename = "CertPEM")]
    pub cert_pem: String,
    #[serde(rename = "PrivateKeyPEM")]
    pub private_key_pem: String,
    pub service: String,
    #[serde(rename = "ServiceURI")]
    pub service_uri: String,
    pub valid_after: String,
    pub valid_before: String,
    pub create_index: u64,
    pub modify_index: u64,
}

/// The SPIFFE ID of a service in this trust domain.
pub fn service_uri(ca: &CaState, datacenter: &str, service: &str) -> String {
    format!(
        "spiffe://{}.consul/ns/default/dc/{datacenter}/svc/{service}",
        ca.cluster_id
    )
}

/// Signs a new leaf certificate for `service` with the active root (Consul's default
/// `LeafCertTTL` of 72h).
pub fn sign_leaf(
    ca: &CaState,
    datacenter: &str,
    service: &str,
    ttl: time::Duration,
) -> anyhow::Result<IssuedCert> {
    use rcgen::{
        CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair,
        SanType,
    };
    let root = ca
        .roots
        .iter()
        .find(|r| r.active)
        .ok_or_else(|| anyhow::anyhow!("no active CA root"))?;
    let ca_key = keys::parse_private_key(&ca.signing_key_pem)?;
    let issuer = Issuer::from_ca_cert_pem(&root.root_cert, ca_key)?;
    let leaf_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let uri = service_uri(ca, datacenter, service);
    let serial: u64 = rand::random::<u64>() >> 1;
    let now = time::OffsetDateTime::now_utc();
    let not_before = now - time::Duration::minutes(1);
    let not_after = now + ttl;
    let mut params = CertificateParams::default();
    params.serial_number = Some(serial.into());
    params.not_before = not_before;
    params.not_after = not_after;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, service.to_string());
    params.distinguished_name = dn;
    params.subject_alt_names = vec![SanType::URI(uri.clone().try_into()?)];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let cert = params.signed_by(&leaf_key, &issuer)?;
    Ok(IssuedCert {
        serial_number: colon_hex(&serial.to_be_bytes()),
        cert_pem: cert.pem(),
        private_key_pem: leaf_key.serialize_pem(),
        service: service.to_string(),
        service_uri: uri,
        valid_after: rfc3339(not_before),
        valid_before: rfc3339(not_after),
        create_index: 0,
        modify_index: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leaf_is_signed_by_the_root() {
        let ca = generate_root("11111111-2222-3333-4444-555555555555").unwrap();
        assert!(
            ca.roots[0]
                .root_cert
                .starts_with("-----BEGIN CERTIFICATE-----")
        );
        let leaf = sign_leaf(&ca, "dc1", "web", time::Duration::hours(72)).unwrap();
        assert!(leaf.service_uri.ends_with("/svc/web"));
        assert!(leaf.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(leaf.private_key_pem.contains("PRIVATE KEY"));
        assert!(leaf.valid_after < leaf.valid_before);
    }
}
