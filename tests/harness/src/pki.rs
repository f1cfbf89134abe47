//! A throw-away certificate authority for a test control plane, made with the `openssl`
//! command line: the CA, serving and client certificates signed by it, and the service
//! account key pair.
//!
//! Keys are ECDSA P-256 (fast to generate; Kubernetes 1.20 accepts them for TLS and for
//! service account tokens). Certificates are valid for a week: a test run is minutes.
//! Kubernetes reads who a client is from its certificate: the common name is the user,
//! each organization a group (`O=system:masters` is the all-powerful group,
//! `CN=system:node:NAME, O=system:nodes` a kubelet).
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

use std::fmt::Write as _;
use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

/// The tools [`Pki`] needs.
pub const PKI_TOOLS: &[&str] = &["openssl"];

/// How long every certificate is valid.
const VALIDITY_DAYS: &str = "7";

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

/// The subject and extensions of a certificate to issue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateSpec {
    /// The subject's common name: the user name of a client certificate.
    pub common_name: String,
    /// The subject's organizations: the groups of a client certificate.
    pub organizations: Vec<String>,
    /// What the certificate is for.
    pub usage: Usage,
    /// IP addresses in the subject alternative name (servers).
    pub ips: Vec<IpAddr>,
    /// DNS names in the subject alternative name (servers).
    pub dns_names: Vec<String>,
}

impl CertificateSpec {
    /// A client certificate of user `common_name` in `groups`.
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

    /// The `-subj` argument of `openssl req`: organizations first, then the common name.
    fn subject(&self) -> String {
        let mut subject = String::new();
        for organization in &self.organizations {
            let _ = write!(subject, "/O={}", escape_subject(organization));
        }
        let _ = write!(subject, "/CN={}", escape_subject(&self.common_name));
        subject
    }

    /// The x509v3 extensions section (`[v3]`) `openssl x509 -req -extfile` reads.
    fn extensions(&self) -> String {
        let usages = match self.usage {
            Usage::Client => "clientAuth",
            Usage::Server => "serverAuth",
            Usage::ClientAndServer => "clientAuth,serverAuth",
        };
        let mut text = format!(
            "[v3]\n\
             basicConstraints = critical,CA:FALSE\n\
             keyUsage = critical,digitalSignature,keyEncipherment\n\
             extendedKeyUsage = {usages}\n\
             authorityKeyIdentifier = keyid\n"
        );
        let names: Vec<String> = (self.ips.iter().map(|ip| format!("IP:{ip}")))
            .chain(self.dns_names.iter().map(|name| format!("DNS:{name}")))
            .collect();
        if !names.is_empty() {
            let _ = writeln!(text, "subjectAltName = {}", names.join(","));
        }
        text
    }
}

/// `/` and `+` separate fields in openssl's `-subj` syntax; escape them.
fn escape_subject(value: &str) -> String {
    value.replace('\\', "\\\\").replace('/', "\\/").replace('+', "\\+")
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
}

impl Pki {
    /// Creates `dir` (if needed) and a new CA in it (`ca.crt`, `ca.key`).
    ///
    /// Fails with [`crate::Missing`] in the chain if `openssl` is not installed.
    pub fn create(dir: &Path) -> anyhow::Result<Pki> {
        crate::require_tools(PKI_TOOLS)?;
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let ca = KeyPair {
            cert: dir.join("ca.crt"),
            key: dir.join("ca.key"),
        };
        generate_key(&ca.key)?;
        openssl(
            Command::new("openssl")
                .args(["req", "-x509", "-new", "-sha256", "-days", VALIDITY_DAYS, "-key"])
                .arg(&ca.key)
                .args(["-subj", "/CN=kubelet-lite-test-ca"])
                .args(["-addext", "basicConstraints=critical,CA:TRUE"])
                .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature"])
                .arg("-out")
                .arg(&ca.cert),
        )
        .context("creating the test CA")?;
        Ok(Pki {
            dir: dir.to_path_buf(),
            ca,
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
        let csr = self.dir.join(format!("{name}.csr"));
        let extensions = self.dir.join(format!("{name}.ext"));
        generate_key(&pair.key)?;
        fs::write(&extensions, spec.extensions())?;
        openssl(
            Command::new("openssl")
                .args(["req", "-new", "-sha256", "-key"])
                .arg(&pair.key)
                .args(["-subj", &spec.subject()])
                .arg("-out")
                .arg(&csr),
        )
        .with_context(|| format!("making the request of certificate {name}"))?;
        openssl(
            Command::new("openssl")
                .args(["x509", "-req", "-sha256", "-days", VALIDITY_DAYS, "-in"])
                .arg(&csr)
                .arg("-CA")
                .arg(&self.ca.cert)
                .arg("-CAkey")
                .arg(&self.ca.key)
                .arg("-CAserial")
                .arg(self.dir.join("ca.srl"))
                .arg("-CAcreateserial")
                .arg("-extfile")
                .arg(&extensions)
                .args(["-extensions", "v3", "-out"])
                .arg(&pair.cert),
        )
        .with_context(|| format!("signing certificate {name}"))?;
        let _ = fs::remove_file(&csr);
        let _ = fs::remove_file(&extensions);
        Ok(pair)
    }

    /// Creates a service account signing key pair (`sa.key`, `sa.pub`).
    pub fn service_account_keys(&self) -> anyhow::Result<ServiceAccountKeys> {
        let keys = ServiceAccountKeys {
            private_key: self.dir.join("sa.key"),
            public_key: self.dir.join("sa.pub"),
        };
        generate_key(&keys.private_key)?;
        openssl(
            Command::new("openssl")
                .args(["pkey", "-pubout", "-in"])
                .arg(&keys.private_key)
                .arg("-out")
                .arg(&keys.public_key),
        )
        .context("extracting the service account public key")?;
        Ok(keys)
    }
}

/// Writes a new ECDSA P-256 private key (PKCS#8 PEM) to `path`.
fn generate_key(path: &Path) -> anyhow::Result<()> {
    openssl(
        Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
            ])
            .arg(path),
    )
    .with_context(|| format!("generating key {}", path.display()))
}

fn openssl(command: &mut Command) -> anyhow::Result<()> {
    let output = command.stdin(Stdio::null()).output().context("running openssl")?;
    if !output.status.success() {
        bail!(
            "openssl failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    #[test]
    fn subjects_put_groups_before_the_user_and_escape_separators() {
        let spec = CertificateSpec::client("system:node:n1", &["system:nodes", "a/b"]);
        assert_eq!(spec.subject(), "/O=system:nodes/O=a\\/b/CN=system:node:n1");
    }

    #[test]
    fn server_extensions_name_their_addresses() {
        let spec = CertificateSpec::server("kube-apiserver")
            .with_ips([IpAddr::V4(Ipv4Addr::LOCALHOST)])
            .with_dns_names(["localhost"]);
        let text = spec.extensions();
        assert!(text.contains("extendedKeyUsage = serverAuth\n"), "{text}");
        assert!(
            text.ends_with("subjectAltName = IP:127.0.0.1,DNS:localhost\n"),
            "{text}"
        );
        let client = CertificateSpec::client("admin", &["system:masters"]).extensions();
        assert!(!client.contains("subjectAltName"));
        assert!(client.contains("extendedKeyUsage = clientAuth\n"));
    }

    #[test]
    fn issued_certificates_verify_against_the_ca() {
        if crate::require_tools(PKI_TOOLS).is_err() {
            return;
        }
        let dir = std::env::temp_dir().join(format!("harness-pki-{}", std::process::id()));
        let pki = Pki::create(&dir).unwrap();
        let pair = pki
            .issue(
                "both",
                &CertificateSpec::client("system:node:n1", &["system:nodes"])
                    .with_usage(Usage::ClientAndServer)
                    .with_ips([IpAddr::V4(Ipv4Addr::new(198, 18, 255, 1))]),
            )
            .unwrap();
        let verify = Command::new("openssl")
            .args(["verify", "-CAfile"])
            .arg(pki.ca_cert())
            .arg(&pair.cert)
            .output()
            .unwrap();
        assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stderr));
        let text = Command::new("openssl")
            .args(["x509", "-noout", "-text", "-in"])
            .arg(&pair.cert)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&text.stdout);
        assert!(text.contains("O = system:nodes, CN = system:node:n1"), "{text}");
        assert!(text.contains("IP Address:198.18.255.1"), "{text}");
        assert!(text.contains("TLS Web Client Authentication, TLS Web Server Authentication"));
        let keys = pki.service_account_keys().unwrap();
        assert!(
            fs::read_to_string(keys.public_key)
                .unwrap()
                .contains("BEGIN PUBLIC KEY")
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
