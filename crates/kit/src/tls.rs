//! Outbound TLS for every client the platform builds (engine nodes behind https, model
//! registries): rustls on the ring provider, verifying servers against the operating system's
//! trust store, so a private CA installed there (or named by `SSL_CERT_FILE`) is trusted too. A
//! machine without a trust store (no `ca-certificates`) falls back to Mozilla's roots compiled in.

use std::path::Path;
use std::sync::{Arc, Once, OnceLock};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{ClientConfig, RootCertStore};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the certificates in {path}: {reason}")]
    Certificates { path: String, reason: String },
    #[error("cannot set up TLS: {0}")]
    Setup(String),
}

/// Makes ring the process's default provider, which reqwest clients built without an explicit TLS
/// configuration look up (and panic without). Idempotent.
pub fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Another library may have installed one first; either provider will do.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// The client configuration: ring, TLS 1.2 and 1.3, the platform's verifier (or the compiled-in
/// roots), no ALPN (each client sets its own). The trust store is read once per process.
pub fn client_config() -> ClientConfig {
    static CONFIG: OnceLock<ClientConfig> = OnceLock::new();
    CONFIG.get_or_init(|| build(Vec::new()).expect("the default TLS configuration has no inputs that can fail")).clone()
}

/// [`client_config`] that also trusts the PEM certificates in `ca_file`.
pub fn client_config_trusting(ca_file: &Path) -> Result<ClientConfig, TlsError> {
    let unreadable = |reason: String| TlsError::Certificates { path: ca_file.display().to_string(), reason };
    let certs = CertificateDer::pem_file_iter(ca_file)
        .map_err(|e| unreadable(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| unreadable(e.to_string()))?;
    if certs.is_empty() {
        return Err(unreadable("no certificate found".into()));
    }
    build(certs)
}

fn build(extra_roots: Vec<CertificateDer<'static>>) -> Result<ClientConfig, TlsError> {
    install_crypto_provider();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier: Arc<dyn ServerCertVerifier> =
        match rustls_platform_verifier::Verifier::new_with_extra_roots(extra_roots.clone(), provider.clone()) {
            Ok(verifier) => Arc::new(verifier),
            Err(e) => {
                tracing::warn!(error = %e, "no usable system trust store; trusting the compiled-in Mozilla roots");
                let mut roots = RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
                roots.add_parsable_certificates(extra_roots);
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|e| TlsError::Setup(e.to_string()))?
            }
        };
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Setup(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}
