//! The TLS side of the API: the serving certificate (from files, or self-signed for the
//! node's names and addresses, as the kubelet does without `--tls-cert-file`) and the
//! client certificates, verified against `--client-ca-file` when one is given.
//!
//! A client certificate is optional at the TLS layer: a client without one completes the
//! handshake and meets authentication, which answers 401 (or lets it in as anonymous when
//! configured so). A certificate that does not chain to the client CA fails the
//! handshake. Only HTTP/1.1 is offered (ALPN): the upgrades of exec, attach and
//! port-forward are HTTP/1.1 upgrades.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;

use super::error::ServerError;

/// The ALPN name of HTTP/1.1.
const HTTP_1_1: &[u8] = b"http/1.1";

/// Where the serving certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServingCertificate {
    /// PEM files: `--tls-cert-file` (the certificate, then its chain) and
    /// `--tls-private-key-file`.
    Files {
        /// The certificate chain.
        cert: PathBuf,
        /// The private key (PKCS#8, PKCS#1 or SEC1).
        key: PathBuf,
    },
    /// A certificate made at start-up, signed by its own key, for these names and
    /// addresses (the node's hostname and IPs).
    SelfSigned {
        /// DNS names in the subject alternative name.
        dns_names: Vec<String>,
        /// IP addresses in the subject alternative name.
        ips: Vec<IpAddr>,
    },
}

/// The rustls configuration of the server, with the `ring` provider (the one kube uses).
pub(crate) fn server_config(
    serving: &ServingCertificate,
    client_ca: Option<&Path>,
) -> Result<rustls::ServerConfig, ServerError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let (chain, key) = match serving {
        ServingCertificate::Files { cert, key } => (read_certificates(cert)?, read_key(key)?),
        ServingCertificate::SelfSigned { dns_names, ips } => self_signed(dns_names, ips)?,
    };
    let verifier = match client_ca {
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for certificate in read_certificates(path)? {
                roots.add(certificate)?;
            }
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .allow_unauthenticated()
                .build()?
        }
        None => WebPkiClientVerifier::no_client_auth(),
    };
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![HTTP_1_1.to_vec()];
    Ok(config)
}

/// A rustls client configuration trusting `ca` and presenting `client` (certificate and
/// key files) if given: what a caller of the API (a test, a tool) needs.
pub fn client_config(ca: &Path, client: Option<(&Path, &Path)>) -> Result<rustls::ClientConfig, ServerError> {
    let provider: Arc<CryptoProvider> = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for certificate in read_certificates(ca)? {
        roots.add(certificate)?;
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let mut config = match client {
        Some((cert, key)) => builder.with_client_auth_cert(read_certificates(cert)?, read_key(key)?)?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![HTTP_1_1.to_vec()];
    Ok(config)
}

/// Every certificate of PEM file `path`; at least one.
fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, ServerError> {
    let pem_error = |message: String| ServerError::Pem {
        path: path.to_path_buf(),
        message,
    };
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|err| pem_error(err.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| pem_error(err.to_string()))?;
    if certificates.is_empty() {
        return Err(pem_error("no certificate in the file".into()));
    }
    Ok(certificates)
}

/// The first private key of PEM file `path`.
fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, ServerError> {
    PrivateKeyDer::from_pem_file(path).map_err(|err| ServerError::Pem {
        path: path.to_path_buf(),
        message: err.to_string(),
    })
}

/// A self-signed ECDSA P-256 certificate for `dns_names` and `ips`, and its key.
fn self_signed(
    dns_names: &[String],
    ips: &[IpAddr],
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), ServerError> {
    let mut params = rcgen::CertificateParams::new(dns_names.to_vec())?;
    params
        .subject_alt_names
        .extend(ips.iter().map(|ip| rcgen::SanType::IpAddress(*ip)));
    let common_name = dns_names.first().map(String::as_str).unwrap_or("kubelet-lite");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("{common_name}@kubelet-lite"));
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let key = rcgen::KeyPair::generate()?;
    let certificate = params.self_signed(&key)?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    Ok((vec![certificate.der().clone()], key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_self_signed_certificate_makes_a_server_configuration() {
        let serving = ServingCertificate::SelfSigned {
            dns_names: vec!["node-1".into()],
            ips: vec!["198.18.58.1".parse().unwrap()],
        };
        let config = server_config(&serving, None).unwrap();
        assert_eq!(config.alpn_protocols, vec![HTTP_1_1.to_vec()]);
    }

    #[test]
    fn a_missing_file_names_itself() {
        let serving = ServingCertificate::Files {
            cert: "/nonexistent/kubelet.crt".into(),
            key: "/nonexistent/kubelet.key".into(),
        };
        let error = server_config(&serving, None).unwrap_err().to_string();
        assert!(error.contains("/nonexistent/kubelet.crt"), "{error}");
    }
}
