//! A throw-away certificate authority for a test control plane, made in process with
//! `rcgen`: the CA, serving and client certificates signed by it, and the service account
//! key pair.
//!
//! Keys are ECDSA P-256, certificates X.509 v3 signed with ECDSA SHA-256 (Kubernetes 1.20
//! accepts both for TLS and for service account tokens). Certificates are valid for a
//! week: a test run is minutes. Kubernetes reads who a client is from its certificate: the
//! common name is the user, the organization the group (`O=system:masters` is the
//! all-powerful group, `CN=system:node:NAME, O=system:nodes` a kubelet).
//!
//! ```no_run
//! use std::net::{IpAddr, Ipv4Addr};
//! use test_harness::pki::{CertificateSpec, Pki};
//!
//! # fn f(dir: &std::path::Path) -> anyhow::Result<()> {
//! let pki = Pki::create(dir)?;
//! let admin = pki.issue("admin", &CertificateSpec::client("admin", &["system:masters"]))?;
//! let server = pki.issue(
//!     "apiserver",
//!     &CertificateSpec::server("kube-apiserver").with_ips([IpAddr::V4(Ipv4Addr::LOCALHOST)]),
//! )?;
//! # Ok(()) }
//! ```

use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyUsagePurpose, SanType,
};
use time::OffsetDateTime;

/// How long every certificate is valid.
const VALIDITY: time::Duration = time::Duration::days(7);

/// The subject of the CA's certificate.
const CA_COMMON_NAME: &str = "kubelet-lite-test-ca";

/// What a certificate is for: the extended key usages it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// A TLS client (`clientAuth`).
    Client,
    /// A TLS server (`serverAuth`).
    Server,
    /// Both (a kubelet serves its API and is a client of the apiserver).
    ClientAndServer,
}

impl Usage {
    fn extended_key_usages(self) -> Vec<ExtendedKeyUsagePurpose> {
        match self {
            Usage::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
            Usage::Server => vec![ExtendedKeyUsagePurpose::ServerAuth],
            Usage::ClientAndServer => vec![ExtendedKeyUsagePurpose::ClientAuth, ExtendedKeyUsagePurpose::ServerAuth],
        }
    }
}

/// The subject and extensions of a certificate to issue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateSpec {
    /// The subject's common name: the user name of a client certificate.
    pub common_name: String,
    /// The subject's organization: the group of a client certificate. At most one:
    /// `rcgen` writes one value per attribute type in a subject, so [`Pki::issue`] refuses
    /// a second group rather than drop it.
    pub organizations: Vec<String>,
    /// What the certificate is for.
    pub usage: Usage,
    /// IP addresses in the subject alternative name (servers).
    pub ips: Vec<IpAddr>,
    /// DNS names in the subject alternative name (servers).
    pub dns_names: Vec<String>,
}

impl CertificateSpec {
    /// A client certificate of user `common_name` in `groups` (at most one).
    pub fn client(common_name: &str, groups: &[&str]) -> CertificateSpec {
        CertificateSpec {
            common_name: common_name.into(),
            organizations: groups.iter().map(|group| group.to_string()).collect(),
            usage: Usage::Client,
            ips: Vec::new(),
            dns_names: Vec::new(),
        }
    }

    /// A serving certificate named `common_name`; add its addresses and names with
    /// [`CertificateSpec::with_ips`] and [`CertificateSpec::with_dns_names`] (Go checks
    /// only the subject alternative name).
    pub fn server(common_name: &str) -> CertificateSpec {
        CertificateSpec {
            usage: Usage::Server,
            ..CertificateSpec::client(common_name, &[])
        }
    }

    /// The same, with these IP addresses in the subject alternative name.
    pub fn with_ips(mut self, ips: impl IntoIterator<Item = IpAddr>) -> CertificateSpec {
        self.ips.extend(ips);
        self
    }

    /// The same, with these DNS names in the subject alternative name.
    pub fn with_dns_names<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> CertificateSpec {
        self.dns_names.extend(names.into_iter().map(Into::into));
        self
    }

    /// The same, for `usage`.
    pub fn with_usage(mut self, usage: Usage) -> CertificateSpec {
        self.usage = usage;
        self
    }

    /// The end-entity certificate this spec describes: the organization then the common
    /// name, `CA:FALSE`, the key usages of a TLS key, the authority key identifier.
    fn params(&self) -> anyhow::Result<CertificateParams> {
        if let [_, second, ..] = self.organizations.as_slice() {
            bail!(
                "certificate {:?} names a second group {second:?}: a subject holds one organization here",
                self.common_name
            );
        }
        let mut params = valid_for_a_week();
        for organization in &self.organizations {
            params
                .distinguished_name
                .push(DnType::OrganizationName, organization.as_str());
        }
        params
            .distinguished_name
            .push(DnType::CommonName, self.common_name.as_str());
        params.subject_alt_names = self.ips.iter().map(|ip| SanType::IpAddress(*ip)).collect();
        for name in &self.dns_names {
            let name = name.clone().try_into().with_context(|| format!("DNS name {name:?}"))?;
            params.subject_alt_names.push(SanType::DnsName(name));
        }
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = self.usage.extended_key_usages();
        params.use_authority_key_identifier_extension = true;
        Ok(params)
    }
}

/// Parameters with an empty subject, valid from now for [`VALIDITY`].
fn valid_for_a_week() -> CertificateParams {
    let now = OffsetDateTime::now_utc();
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.not_before = now;
    params.not_after = now + VALIDITY;
    params
}

/// A certificate and its private key, as PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPair {
    /// The certificate.
    pub cert: PathBuf,
    /// Its private key (PKCS#8).
    pub key: PathBuf,
}

/// The service account signing key pair of an apiserver and controller-manager.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccountKeys {
    /// The private key (PKCS#8): `--service-account-signing-key-file` and
    /// `--service-account-private-key-file`.
    pub private_key: PathBuf,
    /// The public key: `--service-account-key-file`.
    pub public_key: PathBuf,
}

/// A test certificate authority whose files live in one directory.
#[derive(Debug, Clone)]
pub struct Pki {
    dir: PathBuf,
    ca: KeyPair,
    issuer: Arc<Issuer<'static, rcgen::KeyPair>>,
}

impl Pki {
    /// Creates `dir` (if needed) and a new CA in it (`ca.crt`, `ca.key`).
    pub fn create(dir: &Path) -> anyhow::Result<Pki> {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let ca = KeyPair {
            cert: dir.join("ca.crt"),
            key: dir.join("ca.key"),
        };
        let mut params = valid_for_a_week();
        params.distinguished_name.push(DnType::CommonName, CA_COMMON_NAME);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = rcgen::KeyPair::generate().context("generating the test CA's key")?;
        let cert = params.self_signed(&key).context("creating the test CA")?;
        write_pair(&ca, &cert, &key)?;
        Ok(Pki {
            dir: dir.to_path_buf(),
            ca,
            issuer: Arc::new(Issuer::new(params, key)),
        })
    }

    /// The CA certificate (what clients and servers trust).
    pub fn ca_cert(&self) -> &Path {
        &self.ca.cert
    }

    /// The CA's certificate and key (`--cluster-signing-*-file` of a controller-manager).
    pub fn ca(&self) -> &KeyPair {
        &self.ca
    }

    /// The directory holding every file of this CA.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Issues a certificate for `spec` signed by the CA, as `NAME.crt` and `NAME.key`
    /// (a name already issued is replaced).
    pub fn issue(&self, name: &str, spec: &CertificateSpec) -> anyhow::Result<KeyPair> {
        if name.is_empty() || name.contains('/') {
            bail!("invalid certificate file name {name:?}");
        }
        let pair = KeyPair {
            cert: self.dir.join(format!("{name}.crt")),
            key: self.dir.join(format!("{name}.key")),
        };
        let key = rcgen::KeyPair::generate().with_context(|| format!("generating the key of certificate {name}"))?;
        let cert = (spec.params())
            .and_then(|params| Ok(params.signed_by(&key, &self.issuer)?))
            .with_context(|| format!("signing certificate {name}"))?;
        write_pair(&pair, &cert, &key)?;
        Ok(pair)
    }

    /// Creates a service account signing key pair (`sa.key`, `sa.pub`).
    pub fn service_account_keys(&self) -> anyhow::Result<ServiceAccountKeys> {
        let keys = ServiceAccountKeys {
            private_key: self.dir.join("sa.key"),
            public_key: self.dir.join("sa.pub"),
        };
        let key = rcgen::KeyPair::generate().context("generating the service account key")?;
        write_private(&keys.private_key, &key)?;
        write(&keys.public_key, &key.public_key_pem())?;
        Ok(keys)
    }
}

/// Writes `cert` and `key` as PEM to the files of `pair`.
fn write_pair(pair: &KeyPair, cert: &rcgen::Certificate, key: &rcgen::KeyPair) -> anyhow::Result<()> {
    write_private(&pair.key, key)?;
    write(&pair.cert, &cert.pem())
}

/// Writes `key` as PKCS#8 PEM to `path`, readable by its owner only.
fn write_private(path: &Path, key: &rcgen::KeyPair) -> anyhow::Result<()> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut file| file.write_all(key.serialize_pem().as_bytes()))
        .with_context(|| format!("writing {}", path.display()))
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use x509_parser::extensions::GeneralName;
    use x509_parser::pem::Pem;
    use x509_parser::prelude::X509Certificate;

    use super::*;

    /// The one certificate of the PEM file at `path`.
    fn read_pem(path: &Path) -> Pem {
        let text = fs::read(path).unwrap();
        let (_, pem) = x509_parser::pem::parse_x509_pem(&text).unwrap();
        pem
    }

    fn certificate(pem: &Pem) -> X509Certificate<'_> {
        pem.parse_x509().unwrap()
    }

    #[test]
    fn issued_certificates_are_v3_signed_by_the_ca_with_their_subject_and_names() {
        let dir = std::env::temp_dir().join(format!("harness-pki-{}", std::process::id()));
        let pki = Pki::create(&dir).unwrap();
        let pair = pki
            .issue(
                "both",
                &CertificateSpec::client("system:node:n1", &["system:nodes"])
                    .with_usage(Usage::ClientAndServer)
                    .with_ips([IpAddr::V4(Ipv4Addr::new(198, 18, 255, 1))])
                    .with_dns_names(["n1"]),
            )
            .unwrap();
        let ca_pem = read_pem(pki.ca_cert());
        let ca = certificate(&ca_pem);
        assert!(ca.is_ca());
        assert_eq!(ca.subject().to_string(), "CN=kubelet-lite-test-ca");
        let pem = read_pem(&pair.cert);
        let cert = certificate(&pem);
        cert.verify_signature(Some(ca.public_key())).unwrap();
        assert_eq!(cert.version(), x509_parser::x509::X509Version::V3);
        assert_eq!(cert.subject().to_string(), "O=system:nodes, CN=system:node:n1");
        assert!(!cert.is_ca());
        let validity = cert.validity();
        assert!(validity.is_valid());
        assert_eq!(
            validity.not_after.timestamp() - validity.not_before.timestamp(),
            VALIDITY.whole_seconds()
        );
        let usage = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(usage.client_auth && usage.server_auth);
        let key_usage = cert.key_usage().unwrap().unwrap();
        assert!(key_usage.critical && key_usage.value.digital_signature() && key_usage.value.key_encipherment());
        let names = &cert.subject_alternative_name().unwrap().unwrap().value.general_names;
        assert_eq!(
            names,
            &[GeneralName::IPAddress(&[198, 18, 255, 1]), GeneralName::DNSName("n1")]
        );
        assert!(
            fs::read_to_string(&pair.key)
                .unwrap()
                .starts_with("-----BEGIN PRIVATE KEY-----"),
            "PKCS#8"
        );
        let keys = pki.service_account_keys().unwrap();
        assert_eq!(read_pem(&keys.public_key).label, "PUBLIC KEY");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_second_group_is_refused() {
        let spec = CertificateSpec::client("alice", &["developers", "system:masters"]);
        let error = spec.params().unwrap_err().to_string();
        assert!(error.contains("\"system:masters\""), "{error}");
        let server = CertificateSpec::server("kube-apiserver").params().unwrap();
        assert_eq!(server.extended_key_usages, [ExtendedKeyUsagePurpose::ServerAuth]);
    }
}
