//! TLS client settings for the probes (HTTP, TCP+TLS, gRPC, H2PING): the system trust
//! roots, `tls_skip_verify`, and `tls_server_name` as the name the certificate is
//! checked against. Consul builds these from the agent's TLS configurator; this
//! runner has no access to the agent's own CA file, so it trusts the system roots.

use std::fmt;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// Where Linux distributions and macOS keep their CA bundle (the same list Go's
/// crypto/x509 searches), after `SSL_CERT_FILE`.
const CA_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/tls/cacert.pem",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

fn provider() -> Arc<CryptoProvider> {
    // Idempotent: only the first call in the process installs it.
    let _ = rustls::crypto::ring::default_provider().install_default();
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The system trust roots, read once per process.
fn system_roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let mut store = RootCertStore::empty();
            let from_env = std::env::var_os("SSL_CERT_FILE");
            let candidates = from_env
                .iter()
                .map(Path::new)
                .chain(CA_BUNDLES.iter().map(Path::new));
            for path in candidates {
                let Ok(iter) = CertificateDer::pem_file_iter(path) else {
                    continue;
                };
                for cert in iter.flatten() {
                    // A bundle may hold certificates webpki cannot use; skip those.
                    let _ = store.add(cert);
                }
                if !store.is_empty() {
                    break;
                }
            }
            Arc::new(store)
        })
        .clone()
}

/// A client config for one check. `server_name` overrides the name the certificate
/// must be valid for (Consul's `tls_server_name`); `alpn` lists the protocols to offer.
pub(super) fn client_config(
    skip_verify: bool,
    server_name: Option<&str>,
    alpn: &[&[u8]],
) -> Result<Arc<ClientConfig>, String> {
    let provider = provider();
    let algorithms = provider.signature_verification_algorithms;
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("tls: {e}"))?;
    let verifier: Arc<dyn ServerCertVerifier> = if skip_verify {
        Arc::new(AcceptAnyCert { algorithms })
    } else {
        let roots = system_roots();
        if roots.is_empty() {
            // Without any trust root every certificate is from an unknown authority;
            // failing here instead would also break plain-HTTP checks.
            return finish(builder, Arc::new(NoTrustRoots { algorithms }), alpn);
        }
        let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider)
            .build()
            .map_err(|e| format!("tls: {e}"))?;
        match server_name.filter(|n| !n.is_empty()) {
            Some(name) => {
                let name = ServerName::try_from(name.to_string())
                    .map_err(|_| format!("tls: invalid server name {name:?}"))?;
                Arc::new(CheckedAs {
                    inner: webpki,
                    name,
                })
            }
            None => webpki,
        }
    };
    finish(builder, verifier, alpn)
}

fn finish(
    builder: rustls::ConfigBuilder<ClientConfig, rustls::WantsVerifier>,
    verifier: Arc<dyn ServerCertVerifier>,
    alpn: &[&[u8]],
) -> Result<Arc<ClientConfig>, String> {
    let mut config = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// Used when the system has no CA bundle: rejects every certificate as Go does then.
#[derive(Debug)]
struct NoTrustRoots {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for NoTrustRoots {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Err(rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer,
        ))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// `tls_skip_verify`: any certificate is accepted, as Go's `InsecureSkipVerify`
/// does; the handshake signatures are still checked so the session keys are sound.
struct AcceptAnyCert {
    algorithms: WebPkiSupportedAlgorithms,
}

impl fmt::Debug for AcceptAnyCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AcceptAnyCert")
    }
}

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Verifies the chain as usual but against a configured name instead of the host the
/// connection went to (`tls_server_name`).
#[derive(Debug)]
struct CheckedAs {
    inner: Arc<WebPkiServerVerifier>,
    name: ServerName<'static>,
}

impl ServerCertVerifier for CheckedAs {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
pub(super) mod testing {
    //! A self-signed certificate and a TLS acceptor for the probes' tests.

    use std::sync::Arc;

    use rustls::ServerConfig;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    use tokio_rustls::TlsAcceptor;

    /// An acceptor presenting a self-signed certificate for `localhost`, offering `alpn`.
    pub(in crate::agent::checks) fn acceptor(alpn: &[&[u8]]) -> TlsAcceptor {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let certified =
            rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("rcgen");
        let cert = CertificateDer::from(certified.cert.der().to_vec());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            certified.signing_key.serialize_der(),
        ));
        let mut config =
            ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .expect("versions")
                .with_no_client_auth()
                .with_single_cert(vec![cert], key)
                .expect("server config");
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        TlsAcceptor::from(Arc::new(config))
    }
}
