//! TLS settings, built once at start: the server side from the certificate and
//! key files in the config, and the client side for outbound delivery, which
//! either checks certificates against a CA bundle or (opportunistic, like
//! Postfix's `may`) accepts any certificate but still proves the peer holds
//! its key. Both use rustls with the ring provider, TLS 1.2 and 1.3 only, and
//! rustls' default cipher suites.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{self, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};

use crate::config::{Config, ConfigError};

fn provider() -> Arc<CryptoProvider> {
    Arc::new(crypto::ring::default_provider())
}

/// The server configuration, if the config names a certificate. Errors name
/// the `tls_cert` or `tls_key` line.
pub fn load_server(config: &Config) -> Result<Option<Arc<ServerConfig>>, ConfigError> {
    let (Some(cert_path), Some(key_path)) = (&config.tls_cert, &config.tls_key) else {
        return Ok(None);
    };
    let certs = read_certs(cert_path).map_err(|e| config.error_at("tls_cert", e))?;
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| {
        config.error_at(
            "tls_key",
            format!(
                "cannot read a private key from '{}': {e}",
                key_path.display()
            ),
        )
    })?;
    let mut server = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key))
        .map_err(|e| {
            config.error_at(
                "tls_key",
                format!(
                    "certificate '{}' and key '{}' cannot be used: {e}",
                    cert_path.display(),
                    key_path.display()
                ),
            )
        })?;
    // `ignore_client_order` stays false: every suite offered is an AEAD with
    // forward secrecy, so the client may pick, e.g. ChaCha20 where it lacks
    // AES hardware (Mozilla's guidance; Postfix's tls_preempt_cipherlist=no).
    // SMTP clients rarely resume sessions; tickets would cost two records and
    // a cache entry per handshake. TLS 1.2 session IDs still resume.
    server.send_tls13_tickets = 0;
    Ok(Some(Arc::new(server)))
}

/// Every certificate in a PEM file, leaf first.
fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let why =
        |e: &dyn fmt::Display| format!("cannot read certificates from '{}': {e}", path.display());
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| why(&e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| why(&e))?;
    if certs.is_empty() {
        return Err(why(&"no CERTIFICATE block found"));
    }
    Ok(certs)
}

/// The negotiated protocol and cipher of a session, for the Received header
/// and the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsInfo {
    pub protocol: &'static str,
    pub cipher: &'static str,
}

impl TlsInfo {
    pub fn of(conn: &rustls::CommonState) -> TlsInfo {
        let protocol = match conn.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
            _ => "TLS",
        };
        let cipher = conn
            .negotiated_cipher_suite()
            .and_then(|s| s.suite().as_str())
            .unwrap_or("unknown");
        TlsInfo { protocol, cipher }
    }
}

impl fmt::Display for TlsInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} with cipher {}", self.protocol, self.cipher)
    }
}

/// How an outbound connection treats the server's certificate.
pub enum ServerCheck {
    /// Encrypt, but accept any certificate: opportunistic TLS (RFC 7435).
    Any,
    /// The certificate must chain to one of these roots and name the host.
    Roots(RootCertStore),
}

/// A client configuration for outbound SMTP.
pub fn client(check: ServerCheck) -> Arc<ClientConfig> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports TLS 1.2 and 1.3");
    let mut config = match check {
        ServerCheck::Roots(roots) => builder.with_root_certificates(roots).with_no_client_auth(),
        ServerCheck::Any => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider())))
            .with_no_client_auth(),
    };
    // One message per connection to many different hosts: a cache of
    // sessions would rarely be hit and costs memory.
    config.resumption = rustls::client::Resumption::disabled();
    Arc::new(config)
}

/// The roots in a PEM bundle such as `/etc/ssl/certs/ca-certificates.crt`.
pub fn load_roots(path: &Path) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(read_certs(path)?);
    if added == 0 {
        return Err(format!("no usable CA certificate in '{}'", path.display()));
    }
    Ok(roots)
}

/// Accepts any certificate chain, but checks the handshake signatures, so the
/// session is at least bound to the key the server presented.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
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
        crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
#[path = "tls_tests.rs"]
mod tests;
