//! The HTTPS listener (`ports.https`): the same API as plain HTTP, over TLS with
//! the agent's certificate, requiring client certificates signed by the
//! configured CA when `verify_incoming_https` (or `tls.https.verify_incoming`) is on.
//! Connections are served by [`super::conn`], which runs each handshake in the
//! connection's own task within `limits.https_handshake_timeout`.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

use crate::config::TlsConfig;

/// The TLS server settings for the HTTPS listener, from the agent's TLS config.
pub fn server_config(tls: &TlsConfig) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let (Some(cert_file), Some(key_file)) = (&tls.cert_file, &tls.key_file) else {
        bail!("HTTPS requires cert_file and key_file");
    };
    let certs = CertificateDer::pem_file_iter(cert_file)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("reading certificates from {}", cert_file.display()))?;
    if certs.is_empty() {
        bail!("no certificate in {}", cert_file.display());
    }
    let key = PrivateKeyDer::from_pem_file(key_file)
        .with_context(|| format!("reading the private key from {}", key_file.display()))?;

    let builder = rustls::ServerConfig::builder();
    let builder = if tls.verify_incoming_https {
        let roots = ca_roots(tls)?;
        if roots.is_empty() {
            bail!("VerifyIncoming set, and no CA certificate provided!");
        }
        let verifier = WebPkiClientVerifier::builder(Arc::new(roots))
            .build()
            .context("building the client certificate verifier")?;
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .context("the certificate does not match the private key")?;
    // The API is served over HTTP/1.1 only, as on the plain port.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The CA certificates of `ca_file`, else of every PEM file in `ca_path`.
fn ca_roots(tls: &TlsConfig) -> anyhow::Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    let mut add_file = |path: &Path| -> anyhow::Result<()> {
        for cert in CertificateDer::pem_file_iter(path)
            .with_context(|| format!("reading CA certificates from {}", path.display()))?
        {
            let cert =
                cert.with_context(|| format!("reading CA certificates from {}", path.display()))?;
            roots
                .add(cert)
                .with_context(|| format!("a CA certificate in {}", path.display()))?;
        }
        Ok(())
    };
    if let Some(file) = &tls.ca_file {
        add_file(file)?;
    } else if let Some(dir) = &tls.ca_path {
        let entries =
            std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
        for entry in entries.flatten() {
            if entry.path().is_file() {
                add_file(&entry.path())?;
            }
        }
    }
    Ok(roots)
}
