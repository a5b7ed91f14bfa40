//! Importing an operator-supplied CA: PEM private keys in the encodings Consul
//! accepts (PKCS#8 and SEC1 `EC PRIVATE KEY`), and root certificates checked
//! against their key.
//!
//! The signing backend (rcgen on ring) only reads PKCS#8, so SEC1 keys are
//! wrapped into PKCS#8 here; the key bytes themselves are untouched.

use rcgen::KeyPair;
use x509_parser::prelude::{FromDer, X509Certificate};

/// `id-ecPublicKey` (1.2.840.10045.2.1), DER-encoded with its tag.
const OID_EC_PUBLIC_KEY: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
/// Named curves ring can sign with: `prime256v1` and `secp384r1`.
const OID_P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_P384: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];

/// Why an imported key or certificate was refused; the text is the API's answer.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("error parsing private key: {0}")]
    Key(String),
    #[error("error parsing root cert: {0}")]
    Cert(String),
    #[error("private key does not match the root certificate's public key")]
    Mismatch,
}

/// Decodes the first PEM block of `text`, returning its label and DER contents.
fn pem_block(text: &str) -> Option<(String, Vec<u8>)> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(text.trim().as_bytes()).ok()?;
    Some((pem.label, pem.contents))
}

/// Parses a PEM private key (PKCS#8 `PRIVATE KEY` or SEC1 `EC PRIVATE KEY`).
pub fn parse_private_key(text: &str) -> Result<KeyPair, ImportError> {
    let (label, der) =
        pem_block(text).ok_or_else(|| ImportError::Key("no PEM data found".into()))?;
    let pkcs8 = match label.as_str() {
        "PRIVATE KEY" => der,
        "EC PRIVATE KEY" => sec1_to_pkcs8(&der)?,
        other => return Err(ImportError::Key(format!("unsupported key type {other:?}"))),
    };
    let pem = pem_encode("PRIVATE KEY", &pkcs8);
    KeyPair::from_pem(&pem).map_err(|e| ImportError::Key(e.to_string()))
}

/// Parses a PEM certificate and checks that `key` is its key pair.
pub fn parse_root_cert(text: &str, key: &KeyPair) -> Result<Vec<u8>, ImportError> {
    let (label, der) =
        pem_block(text).ok_or_else(|| ImportError::Cert("no PEM data found".into()))?;
    if label != "CERTIFICATE" {
        return Err(ImportError::Cert(format!("unexpected PEM block {label:?}")));
    }
    let (_, cert) =
        X509Certificate::from_der(&der).map_err(|e| ImportError::Cert(e.to_string()))?;
    if cert.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
        return Err(ImportError::Mismatch);
    }
    Ok(der)
}

/// Wraps a SEC1 `ECPrivateKey` in a PKCS#8 `PrivateKeyInfo` naming its curve:
/// from the key's own `[0]` parameters when present (Go writes them), else from
/// the length of the private scalar.
fn sec1_to_pkcs8(sec1: &[u8]) -> Result<Vec<u8>, ImportError> {
    let contains = |needle: &[u8]| sec1.windows(needle.len()).any(|w| w == needle);
    // SEQUENCE header (short or one-byte long form), INTEGER 1, OCTET STRING len.
    let header = if sec1.get(1).is_some_and(|l| *l & 0x80 != 0) {
        3
    } else {
        2
    };
    let scalar_len = match sec1.get(header..header + 5) {
        Some([0x02, 0x01, 0x01, 0x04, len]) => Some(*len),
        _ => None,
    };
    let curve = if contains(OID_P256) || (!contains(OID_P384) && scalar_len == Some(32)) {
        OID_P256
    } else if contains(OID_P384) || scalar_len == Some(48) {
        OID_P384
    } else {
        return Err(ImportError::Key(
            "unsupported elliptic curve (P-256 and P-384 are supported)".into(),
        ));
    };
    let algorithm = der_tlv(0x30, &[OID_EC_PUBLIC_KEY, curve].concat());
    let version = [0x02, 0x01, 0x00];
    let body = [&version[..], &algorithm, &der_tlv(0x04, sec1)].concat();
    Ok(der_tlv(0x30, &body))
}

/// One DER tag-length-value with a definite length.
fn der_tlv(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = value.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(value);
    out
}

/// PEM text for one DER block, 64 characters per line.
pub fn pem_encode(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A SEC1 key from rcgen's PKCS#8, whose last field is an OCTET STRING
    /// holding the ECPrivateKey SEQUENCE (short-form lengths for P-256). With
    /// `go_style`, the curve's `[0]` parameters are spliced in after the private
    /// scalar, as Go's `x509.MarshalECPrivateKey` writes them.
    fn sec1_pem(key: &KeyPair, go_style: bool) -> String {
        let pkcs8 = key.serialize_der();
        let pos = pkcs8
            .windows(3)
            .position(|w| w[0] == 0x04 && w[2] == 0x30)
            .unwrap();
        let len = pkcs8[pos + 1] as usize;
        let sec1 = &pkcs8[pos + 2..pos + 2 + len];
        if !go_style {
            return pem_encode("EC PRIVATE KEY", sec1);
        }
        // SEQUENCE { INTEGER 1, OCTET STRING(32) scalar, [1] public key }
        let body = &sec1[2..];
        let (head, public) = body.split_at(3 + 2 + 32);
        let params = der_tlv(0xa0, OID_P256);
        let go = der_tlv(0x30, &[head, &params, public].concat());
        pem_encode("EC PRIVATE KEY", &go)
    }

    #[test]
    fn sec1_and_pkcs8_keys_import() {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let from_pkcs8 = parse_private_key(&key.serialize_pem()).unwrap();
        assert_eq!(from_pkcs8.public_key_raw(), key.public_key_raw());
        for go_style in [false, true] {
            let sec1 = sec1_pem(&key, go_style);
            assert!(sec1.starts_with("-----BEGIN EC PRIVATE KEY-----"));
            let from_sec1 = parse_private_key(&sec1).unwrap();
            assert_eq!(from_sec1.public_key_raw(), key.public_key_raw());
        }
    }

    #[test]
    fn root_must_match_its_key() {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let other = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::default();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        assert!(parse_root_cert(&cert.pem(), &key).is_ok());
        assert!(matches!(
            parse_root_cert(&cert.pem(), &other),
            Err(ImportError::Mismatch)
        ));
        assert!(parse_private_key("junk").is_err());
        assert!(
            parse_root_cert(
                "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                &key
            )
            .is_err()
        );
    }
}
