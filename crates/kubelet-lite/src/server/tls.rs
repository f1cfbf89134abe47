//! The TLS side of the API: the serving certificate (from files, or self-signed for the
//! node's names and addresses, as the kubelet does without `--tls-cert-file`) and the
//! client certificates, verified against `--client-ca-file` when one is given.
//!
//! A client certificate is optional at the TLS layer: a client without one completes the
//! handshake and meets authentication, which answers 401 (or lets it in as anonymous when
//! configured so). A certificate that does not chain to the client CA fails the
//! handshake. Only HTTP/1.1 is offered (ALPN): the upgrades of exec, attach and
//! port-forward are HTTP/1.1 upgrades.
//!
//! X.509 v1 certificates (what `openssl x509 -req` makes without `-extfile`) are refused
//! by rustls's verifier (`UnsupportedCertVersion`), as a peer's certificate and as the
//! node's own. No verifier of our own is written to accept them: the serving certificate
//! chain is checked at start-up ([`refuse_x509_v1`]) and start-up fails with the file's
//! name and how to reissue it; a client presenting a v1 certificate fails its handshake,
//! and the first such client is named in a warning saying the same. A v1 certificate in
//! `--client-ca-file` is a trust anchor, which webpki accepts whatever its version: it is
//! used as it is.

use std::collections::HashSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use x509_parser::prelude::{FromDer, X509Certificate, X509Version};

use super::error::{CertificateRole, ServerError, X509V1Certificate};

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
        ServingCertificate::Files { cert, key } => {
            let chain = read_certificates(cert)?;
            refuse_x509_v1(cert, &chain, CertificateRole::Serving)?;
            (chain, read_key(key)?)
        }
        ServingCertificate::SelfSigned { dns_names, ips } => self_signed(dns_names, ips)?,
    };
    let verifier: Arc<dyn ClientCertVerifier> = match client_ca {
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for certificate in read_certificates(path)? {
                roots.add(certificate)?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .allow_unauthenticated()
                .build()?;
            Arc::new(V1Reporting::new(verifier))
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

/// Fails if a certificate of `chain`, read from `path` (a PEM file, or a kubeconfig
/// holding it inline), is X.509 v1: rustls refuses those wherever they are presented
/// (the end entity and every intermediate), so the error names the file and says how to
/// reissue it. Trust anchors (CA files) need no such check.
pub fn refuse_x509_v1(
    path: &Path,
    chain: &[CertificateDer<'_>],
    role: CertificateRole,
) -> Result<(), X509V1Certificate> {
    for certificate in chain {
        if let Some(subject) = x509_v1_subject(certificate) {
            return Err(X509V1Certificate {
                path: path.to_path_buf(),
                subject,
                role,
            });
        }
    }
    Ok(())
}

/// Like [`refuse_x509_v1`], for the certificates of PEM text `pem` (a file's contents,
/// or a kubeconfig's `client-certificate-data` decoded) shown as coming from `path`.
/// PEM text that does not parse passes: whoever uses it next reports that.
pub fn refuse_x509_v1_pem(path: &Path, pem: &[u8], role: CertificateRole) -> Result<(), X509V1Certificate> {
    let chain: Vec<CertificateDer<'_>> = CertificateDer::pem_slice_iter(pem).filter_map(Result::ok).collect();
    refuse_x509_v1(path, &chain, role)
}

/// The subject of `certificate` if it is X.509 v1 (one that does not parse is not).
fn x509_v1_subject(certificate: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = X509Certificate::from_der(certificate.as_ref()).ok()?;
    (parsed.version() == X509Version::V1).then(|| parsed.subject().to_string())
}

/// How many distinct client certificate subjects the v1 warning remembers (each is
/// warned about once; past this, new ones are logged at debug level).
const MAX_V1_SUBJECTS_WARNED: usize = 64;

/// A client certificate verifier that does what the inner (webpki) one does, and when a
/// client's certificate fails because it is X.509 v1, says so in a warning naming the
/// certificate and how to reissue it (once per subject), instead of a bare handshake
/// failure at debug level.
#[derive(Debug)]
struct V1Reporting {
    inner: Arc<dyn ClientCertVerifier>,
    warned: Mutex<HashSet<String>>,
}

impl V1Reporting {
    fn new(inner: Arc<dyn ClientCertVerifier>) -> V1Reporting {
        V1Reporting {
            inner,
            warned: Mutex::new(HashSet::new()),
        }
    }

    /// Warns (once per subject) if the failure of `chain` comes from an X.509 v1
    /// certificate in it; returns whether it did.
    fn report_v1(&self, chain: &[&CertificateDer<'_>], error: &rustls::Error) -> bool {
        let Some((subject, issuer)) = chain.iter().find_map(|certificate| {
            let (_, parsed) = X509Certificate::from_der(certificate.as_ref()).ok()?;
            (parsed.version() == X509Version::V1).then(|| (parsed.subject().to_string(), parsed.issuer().to_string()))
        }) else {
            return false;
        };
        let first = {
            let mut warned = self.warned.lock().unwrap_or_else(PoisonError::into_inner);
            warned.len() < MAX_V1_SUBJECTS_WARNED && warned.insert(subject.clone())
        };
        if first {
            tracing::warn!(
                %subject,
                %issuer,
                %error,
                "a client presented an X.509 v1 certificate, which the TLS verifier refuses: its handshake fails \
                 (kubectl exec/logs through the apiserver then report `tls: unknown certificate`); reissue the \
                 certificate as X.509 v3, e.g. the apiserver's --kubelet-client-certificate with `openssl x509 -req \
                 -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 365 -extfile <(printf \
                 'extendedKeyUsage=clientAuth') -out client.crt` (any -extfile makes a v3 certificate)"
            );
        } else {
            tracing::debug!(%subject, "a client presented an X.509 v1 certificate (already reported)");
        }
        true
    }
}

impl ClientCertVerifier for V1Reporting {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.inner
            .verify_client_cert(end_entity, intermediates, now)
            .inspect_err(|error| {
                let chain: Vec<&CertificateDer<'_>> = std::iter::once(end_entity).chain(intermediates).collect();
                self.report_v1(&chain, error);
            })
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

    fn requires_raw_public_keys(&self) -> bool {
        self.inner.requires_raw_public_keys()
    }
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

    /// Runs `openssl ARGS` in `dir`.
    fn openssl(dir: &Path, args: &[&str]) {
        let output = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("running openssl");
        assert!(
            output.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// A key `NAME.key` and a certificate request `NAME.csr` for `subject`.
    fn key_and_request(dir: &Path, name: &str, subject: &str) {
        let (key, csr) = (format!("{name}.key"), format!("{name}.csr"));
        openssl(
            dir,
            &["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", &key],
        );
        openssl(dir, &["req", "-new", "-key", &key, "-subj", subject, "-out", &csr]);
    }

    /// `NAME.crt`, signed by `CA.key` (`openssl x509 -req`): X.509 v1 without `extensions`,
    /// v3 with them (the reissue the error message suggests).
    fn sign(dir: &Path, name: &str, ca: &str, extensions: Option<&str>) -> PathBuf {
        let (csr, crt) = (format!("{name}.csr"), format!("{name}.crt"));
        let (ca_crt, ca_key) = (format!("{ca}.crt"), format!("{ca}.key"));
        let mut args = vec!["x509", "-req", "-in", &csr, "-days", "2", "-out", &crt];
        if ca == name {
            args.extend(["-signkey", &ca_key]);
        } else {
            args.extend(["-CA", &ca_crt, "-CAkey", &ca_key, "-CAcreateserial"]);
        }
        let extfile = dir.join(format!("{name}.ext"));
        if let Some(extensions) = extensions {
            std::fs::write(&extfile, extensions).unwrap();
            args.extend(["-extfile", extfile.to_str().unwrap()]);
        }
        openssl(dir, &args);
        dir.join(crt)
    }

    /// A v3 CA `ca` (what `openssl req -x509` makes).
    fn v3_ca(dir: &Path) {
        openssl(
            dir,
            &["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key"],
        );
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-new",
                "-key",
                "ca.key",
                "-subj",
                "/CN=test-ca",
                "-days",
                "2",
                "-out",
                "ca.crt",
            ],
        );
    }

    fn version_of(path: &Path) -> X509Version {
        let certificate = read_certificates(path).unwrap().remove(0);
        X509Certificate::from_der(certificate.as_ref()).unwrap().1.version()
    }

    #[test]
    fn a_v1_serving_certificate_fails_start_up_naming_the_file_and_the_reissue() {
        let dir = tempfile::tempdir().unwrap();
        v3_ca(dir.path());
        key_and_request(dir.path(), "node", "/CN=node-1");
        let cert = sign(dir.path(), "node", "ca", None);
        assert_eq!(version_of(&cert), X509Version::V1);
        let serving = ServingCertificate::Files {
            cert: cert.clone(),
            key: dir.path().join("node.key"),
        };
        let error = server_config(&serving, None).unwrap_err();
        assert!(matches!(error, ServerError::X509V1(_)), "{error:?}");
        let message = error.to_string();
        for expected in [
            cert.to_str().unwrap(),
            "serving certificate \"CN=node-1\" is X.509 v1",
            "openssl x509 -req",
            "-extfile",
            "extendedKeyUsage=serverAuth",
        ] {
            assert!(message.contains(expected), "{expected:?} not in {message}");
        }

        // Reissued as the message says, it is v3 and serves.
        let cert = sign(
            dir.path(),
            "node",
            "ca",
            Some("extendedKeyUsage=serverAuth\nsubjectAltName=DNS:node-1\n"),
        );
        assert_eq!(version_of(&cert), X509Version::V3);
        server_config(&serving, None).unwrap();
    }

    #[test]
    fn a_v1_certificate_in_pem_text_is_found_after_a_v3_one() {
        let dir = tempfile::tempdir().unwrap();
        v3_ca(dir.path());
        key_and_request(dir.path(), "alice", "/CN=alice/O=dev");
        let v1 = std::fs::read(sign(dir.path(), "alice", "ca", None)).unwrap();
        let mut pem = std::fs::read(dir.path().join("ca.crt")).unwrap();
        let kubeconfig = Path::new("/etc/kubelet-lite/kubeconfig");
        refuse_x509_v1_pem(kubeconfig, &pem, CertificateRole::Client).unwrap();
        pem.extend_from_slice(&v1);
        let error = refuse_x509_v1_pem(kubeconfig, &pem, CertificateRole::Client).unwrap_err();
        assert_eq!(
            (error.path.as_path(), error.subject.as_str()),
            (kubeconfig, "CN=alice, O=dev")
        );
        assert!(error.to_string().contains("extendedKeyUsage=clientAuth"), "{error}");
        // Text that is no PEM is left to whoever parses it next.
        refuse_x509_v1_pem(kubeconfig, b"not pem", CertificateRole::Client).unwrap();
    }

    /// The client certificate verifier of client CA `ca`, as the server builds it.
    fn client_verifier(ca: &Path) -> V1Reporting {
        let mut roots = RootCertStore::empty();
        for certificate in read_certificates(ca).unwrap() {
            roots.add(certificate).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let inner = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .allow_unauthenticated()
            .build()
            .unwrap();
        V1Reporting::new(inner)
    }

    #[test]
    fn a_client_presenting_a_v1_certificate_is_refused_and_reported_once() {
        let dir = tempfile::tempdir().unwrap();
        v3_ca(dir.path());
        key_and_request(
            dir.path(),
            "apiserver",
            "/CN=kube-apiserver-kubelet-client/O=system:masters",
        );
        let v1 = read_certificates(&sign(dir.path(), "apiserver", "ca", None))
            .unwrap()
            .remove(0);
        let verifier = client_verifier(&dir.path().join("ca.crt"));
        for _ in 0..3 {
            let error = verifier.verify_client_cert(&v1, &[], UnixTime::now()).unwrap_err();
            assert!(format!("{error:?}").contains("UnsupportedCertVersion"), "{error:?}");
        }
        let warned = verifier.warned.lock().unwrap().clone();
        assert_eq!(
            warned,
            HashSet::from(["CN=kube-apiserver-kubelet-client, O=system:masters".to_owned()])
        );

        // The same client reissued with an extension is accepted, and nothing is reported.
        let v3 = sign(dir.path(), "apiserver", "ca", Some("extendedKeyUsage=clientAuth\n"));
        let v3 = read_certificates(&v3).unwrap().remove(0);
        let verifier = client_verifier(&dir.path().join("ca.crt"));
        verifier.verify_client_cert(&v3, &[], UnixTime::now()).unwrap();
        assert!(verifier.warned.lock().unwrap().is_empty());
    }

    #[test]
    fn a_v1_client_ca_is_a_trust_anchor_that_works() {
        let dir = tempfile::tempdir().unwrap();
        key_and_request(dir.path(), "ca", "/CN=v1-ca");
        let ca = sign(dir.path(), "ca", "ca", None);
        assert_eq!(version_of(&ca), X509Version::V1);
        key_and_request(dir.path(), "alice", "/CN=alice");
        let client = sign(dir.path(), "alice", "ca", Some("extendedKeyUsage=clientAuth\n"));
        let client = read_certificates(&client).unwrap().remove(0);
        client_verifier(&ca)
            .verify_client_cert(&client, &[], UnixTime::now())
            .unwrap();
        let serving = ServingCertificate::SelfSigned {
            dns_names: vec!["node-1".into()],
            ips: Vec::new(),
        };
        server_config(&serving, Some(&ca)).unwrap();
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
