//! Registry hosts configuration, in containerd's `certs.d` layout (containerd's
//! `docs/hosts.md`, `remotes/docker/config/hosts.go`).
//!
//! ```text
//! <dir>/
//!   docker.io/hosts.toml          endpoints for images named docker.io/...
//!   127.0.0.1:5000/hosts.toml     a registry with a port ("127.0.0.1_5000_" also works)
//!   _default/hosts.toml           for every registry without a directory of its own
//! ```
//!
//! A `hosts.toml`:
//!
//! ```toml
//! server = "https://registry-1.docker.io"   # the upstream; default https://<registry>
//!
//! [host."http://127.0.0.1:5000"]             # mirrors, tried in file order before the server
//!   capabilities = ["pull", "resolve"]       # default: pull, resolve, push
//!   skip_verify = true
//!   ca = "ca.pem"                            # or a list; relative to the host directory
//!   client = [["client.pem", "client.key"]]  # or "both.pem", or ["a.pem", "b.pem"]
//!   override_path = true                     # the URL path is the API root (no /v2 added)
//!   [host."http://127.0.0.1:5000".header]
//!     x-custom = "value"                     # or a list of values
//! ```
//!
//! Without a directory for a registry (and no `_default`), its one endpoint is
//! `https://<registry>/v2` (`https://registry-1.docker.io/v2` for docker.io), except for
//! `localhost` and loopback addresses, which containerd contacts over plain http. A host
//! directory without `hosts.toml` is read the Docker way: `*.crt` files are CAs,
//! `*.cert` + `*.key` files client key pairs, for the default endpoint.
//!
//! Unlike containerd, which re-reads the directory on every pull and silently ignores a
//! `hosts.toml` it cannot parse, the directory is read once by [`RegistryHosts::load`] and
//! a broken file is an error: a mirror that quietly stops being used is hard to debug.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use reqwest::Url;
use reqwest::header::{HeaderName, HeaderValue};
use toml::Value;

use crate::image::reference::{DEFAULT_DOMAIN, DEFAULT_UPSTREAM_HOST};

/// Name of the configuration file in each host directory.
pub const HOSTS_FILE: &str = "hosts.toml";
/// Host directory that applies to every registry without a directory of its own.
pub const DEFAULT_HOST_DIR: &str = "_default";
/// The API root of an OCI distribution registry.
pub const API_ROOT: &str = "/v2";

/// An error reading a hosts configuration directory.
#[derive(Debug, thiserror::Error)]
pub enum HostsError {
    /// A file or directory could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// What was being read.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A `hosts.toml` is not valid TOML.
    #[error("cannot parse {path}: {source}")]
    Toml {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        source: Box<toml::de::Error>,
    },
    /// A `hosts.toml` is valid TOML but not a valid hosts configuration.
    #[error("invalid {path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// `http` or `https`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// Plain HTTP, only when configured (or for localhost, as containerd does).
    Http,
    /// HTTPS, the default.
    Https,
}

impl Scheme {
    /// `"http"` or `"https"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Https => "https",
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an endpoint may be asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Capabilities {
    /// Blobs and manifests by digest.
    pub pull: bool,
    /// Resolving a tag to a manifest digest.
    pub resolve: bool,
    /// Uploads (unused by the runtime, kept for completeness).
    pub push: bool,
}

impl Capabilities {
    /// Everything: the default when `capabilities` is not given.
    pub const ALL: Self = Self {
        pull: true,
        resolve: true,
        push: true,
    };
    /// Nothing.
    pub const NONE: Self = Self {
        pull: false,
        resolve: false,
        push: false,
    };
}

/// TLS settings of one endpoint; endpoints with equal settings share one HTTP client.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct TlsSettings {
    /// Extra CA certificate files (PEM), trusted besides the built-in roots.
    pub ca: Vec<PathBuf>,
    /// Client certificates: a PEM certificate file and its key file (`None`: the key is in
    /// the certificate file).
    pub client: Vec<(PathBuf, Option<PathBuf>)>,
    /// Whether to skip verification of the server's certificate; `None` when not set.
    pub skip_verify: Option<bool>,
}

impl TlsSettings {
    /// Whether the server certificate is not verified.
    pub fn skips_verify(&self) -> bool {
        self.skip_verify == Some(true)
    }
}

/// One place to fetch a registry's content from: a mirror or the upstream server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `http` or `https`.
    pub scheme: Scheme,
    /// `host[:port]`.
    pub host: String,
    /// The API root path, normally `/v2` (without a trailing slash).
    pub path: String,
    /// What this endpoint may be asked for.
    pub capabilities: Capabilities,
    /// TLS settings.
    pub tls: TlsSettings,
    /// Extra headers sent with every request, in file order (a name may repeat).
    pub headers: Vec<(String, String)>,
    /// `true` for a `[host."..."]` entry, `false` for the server (upstream) entry.
    pub mirror: bool,
}

impl Endpoint {
    /// The endpoint a registry has when nothing is configured for it: https to the
    /// registry (`registry-1.docker.io` for docker.io), plain http without verification
    /// for localhost and loopback addresses (as containerd does).
    pub fn default_for(domain: &str) -> Self {
        let mut endpoint = Self {
            scheme: Scheme::Https,
            host: String::new(),
            path: API_ROOT.to_string(),
            capabilities: Capabilities::ALL,
            tls: TlsSettings::default(),
            headers: Vec::new(),
            mirror: false,
        };
        endpoint.fill_default_upstream(domain);
        endpoint
    }

    /// Turns a server entry without a host into the default upstream for `domain`,
    /// keeping its TLS settings and headers.
    fn fill_default_upstream(&mut self, domain: &str) {
        self.path = API_ROOT.to_string();
        self.capabilities = Capabilities::ALL;
        if domain == DEFAULT_DOMAIN {
            self.scheme = Scheme::Https;
            self.host = DEFAULT_UPSTREAM_HOST.to_string();
        } else if is_localhost(domain) {
            self.scheme = Scheme::Http;
            self.host = domain.to_string();
            self.tls.skip_verify = Some(true);
        } else {
            self.scheme = Scheme::Https;
            self.host = domain.to_string();
        }
    }

    /// `scheme://host/path`: the API root URL, without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("{}://{}{}", self.scheme, self.host, self.path)
    }

    /// The URL of `suffix` (e.g. `library/busybox/manifests/latest`) under the API root.
    pub fn url(&self, suffix: &str) -> String {
        format!("{}/{}", self.base_url(), suffix.trim_start_matches('/'))
    }
}

/// A registry hosts directory, read once.
#[derive(Debug, Clone, Default)]
pub struct RegistryHosts {
    /// Host directory name -> its endpoints (the server entry last, possibly without a
    /// host, in which case the default upstream fills in).
    dirs: BTreeMap<String, Vec<Endpoint>>,
}

impl RegistryHosts {
    /// No configuration: every registry has only its default endpoint.
    pub fn none() -> Self {
        Self::default()
    }

    /// Reads every host directory under `dir`. A missing `dir` is no configuration.
    pub fn load(dir: &Path) -> Result<Self, HostsError> {
        let read_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| HostsError::Read { path, source }
        };
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                tracing::debug!(dir = %dir.display(), "no registry hosts directory");
                return Ok(Self::none());
            }
            Err(e) => return Err(read_err(dir)(e)),
        };
        let mut dirs = BTreeMap::new();
        for entry in entries {
            let entry = entry.map_err(read_err(dir))?;
            let host_dir = entry.path();
            if !host_dir.is_dir() {
                continue;
            }
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                tracing::warn!(dir = %host_dir.display(), "ignoring host directory with a non-UTF-8 name");
                continue;
            };
            let file = host_dir.join(HOSTS_FILE);
            let endpoints = match std::fs::read_to_string(&file) {
                Ok(text) if !text.trim().is_empty() => parse_hosts_toml(&text, &host_dir).map_err(|e| e.at(&file))?,
                Ok(_) => load_cert_files(&host_dir)?,
                Err(e) if e.kind() == io::ErrorKind::NotFound => load_cert_files(&host_dir)?,
                Err(e) => return Err(read_err(&file)(e)),
            };
            tracing::debug!(host = %name, endpoints = endpoints.len(), "loaded registry host directory");
            dirs.insert(name, endpoints);
        }
        Ok(Self { dirs })
    }

    /// Builds a configuration from `hosts.toml` texts given per host directory name, with
    /// relative paths taken relative to `base/<name>` (for tests and embedding).
    pub fn from_toml<'a>(base: &Path, files: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Self, HostsError> {
        let mut dirs = BTreeMap::new();
        for (name, text) in files {
            let host_dir = base.join(name);
            let endpoints = parse_hosts_toml(text, &host_dir).map_err(|e| e.at(&host_dir.join(HOSTS_FILE)))?;
            dirs.insert(name.to_string(), endpoints);
        }
        Ok(Self { dirs })
    }

    /// The endpoints to try, in order, for images of registry `domain` (a normalized
    /// reference domain such as `docker.io` or `127.0.0.1:5000`): the mirrors, then the
    /// server. Callers filter by [`Endpoint::capabilities`].
    pub fn endpoints(&self, domain: &str) -> Vec<Endpoint> {
        let configured = host_dir_names(domain).into_iter().find_map(|name| self.dirs.get(&name));
        let Some(configured) = configured else {
            return vec![Endpoint::default_for(domain)];
        };
        let mut endpoints = configured.clone();
        if let Some(last) = endpoints.last_mut()
            && last.host.is_empty()
        {
            last.fill_default_upstream(domain);
        }
        endpoints
    }
}

/// The directory names looked up for `domain`, in order (containerd's `hostPaths`).
fn host_dir_names(domain: &str) -> Vec<String> {
    let mut names = Vec::with_capacity(3);
    if let Some(idx) = domain.rfind(':')
        && idx > 0
        && !domain.ends_with(']')
    {
        names.push(format!("{}_{}_", &domain[..idx], &domain[idx + 1..]));
    }
    names.push(domain.to_string());
    names.push(DEFAULT_HOST_DIR.to_string());
    names
}

/// `localhost`, `127.x.y.z` or `::1`, with or without a port.
pub fn is_localhost(host: &str) -> bool {
    let bare = if host.parse::<IpAddr>().is_ok() {
        host
    } else if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    bare == "localhost" || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// An error in a file, before the file's path is known.
struct ParseError(ParseErrorKind);

enum ParseErrorKind {
    Toml(toml::de::Error),
    Invalid(String),
}

impl ParseError {
    fn invalid(reason: impl Into<String>) -> Self {
        Self(ParseErrorKind::Invalid(reason.into()))
    }

    fn at(self, path: &Path) -> HostsError {
        let path = path.to_path_buf();
        match self.0 {
            ParseErrorKind::Toml(e) => HostsError::Toml {
                path,
                source: Box::new(e),
            },
            ParseErrorKind::Invalid(reason) => HostsError::Invalid { path, reason },
        }
    }
}

/// Parses one `hosts.toml`: the `[host."..."]` entries in file order, then the server entry
/// (whose host is empty when `server` is not set).
fn parse_hosts_toml(text: &str, host_dir: &Path) -> Result<Vec<Endpoint>, ParseError> {
    let root: toml::Table = text.parse().map_err(|e| ParseError(ParseErrorKind::Toml(e)))?;
    let mut endpoints = Vec::new();
    match root.get("host") {
        None => {}
        Some(Value::Table(hosts)) => {
            // `toml` is built with `preserve_order`: iteration follows the file.
            for (server, config) in hosts {
                let Value::Table(config) = config else {
                    return Err(ParseError::invalid(format!("host {server:?} must be a table")));
                };
                endpoints.push(parse_host_config(Some(server), config, host_dir, true)?);
            }
        }
        Some(_) => return Err(ParseError::invalid("\"host\" must be a table of tables")),
    }
    let server = match root.get("server") {
        None => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => return Err(ParseError::invalid("\"server\" must be a string")),
    };
    endpoints.push(parse_host_config(server, &root, host_dir, false)?);
    Ok(endpoints)
}

fn parse_host_config(
    server: Option<&str>,
    config: &toml::Table,
    host_dir: &Path,
    mirror: bool,
) -> Result<Endpoint, ParseError> {
    let override_path = match config.get("override_path") {
        None => false,
        Some(Value::Boolean(b)) => *b,
        Some(_) => return Err(ParseError::invalid("\"override_path\" must be a boolean")),
    };
    let (scheme, host, path) = match server {
        Some(server) => parse_server(server, override_path)?,
        None => (Scheme::Https, String::new(), API_ROOT.to_string()),
    };
    let capabilities = match config.get("capabilities") {
        None => Capabilities::ALL,
        Some(value) => {
            let names = string_list(value, "capabilities")?;
            if names.is_empty() {
                Capabilities::ALL
            } else {
                let mut caps = Capabilities::NONE;
                for name in names {
                    match name.to_ascii_lowercase().as_str() {
                        "pull" => caps.pull = true,
                        "resolve" => caps.resolve = true,
                        "push" => caps.push = true,
                        other => {
                            return Err(ParseError::invalid(format!("unknown capability {other:?}")));
                        }
                    }
                }
                caps
            }
        }
    };
    let skip_verify = match config.get("skip_verify") {
        None => None,
        Some(Value::Boolean(b)) => Some(*b),
        Some(_) => return Err(ParseError::invalid("\"skip_verify\" must be a boolean")),
    };
    let ca = match config.get("ca") {
        None => Vec::new(),
        Some(value) => string_list(value, "ca")?
            .iter()
            .map(|p| abs_path(p, host_dir))
            .collect(),
    };
    let client = match config.get("client") {
        None => Vec::new(),
        Some(value) => parse_client(value, host_dir)?,
    };
    let headers = match config.get("header") {
        None => Vec::new(),
        Some(Value::Table(table)) => {
            let mut headers = Vec::new();
            for (name, value) in table {
                if HeaderName::from_bytes(name.as_bytes()).is_err() {
                    return Err(ParseError::invalid(format!("invalid header name {name:?}")));
                }
                for value in string_list(value, &format!("header {name:?}"))? {
                    if HeaderValue::from_str(&value).is_err() {
                        return Err(ParseError::invalid(format!("invalid value for header {name:?}")));
                    }
                    headers.push((name.clone(), value));
                }
            }
            headers
        }
        Some(_) => return Err(ParseError::invalid("\"header\" must be a table")),
    };
    Ok(Endpoint {
        scheme,
        host,
        path,
        capabilities,
        tls: TlsSettings {
            ca,
            client,
            skip_verify,
        },
        headers,
        mirror,
    })
}

/// `http://host:port/path` -> scheme, host, API root; `https://` is assumed without a scheme.
fn parse_server(server: &str, override_path: bool) -> Result<(Scheme, String, String), ParseError> {
    let with_scheme = if server.starts_with("http://") || server.starts_with("https://") {
        server.to_string()
    } else if let Some((scheme, _)) = server.split_once("://") {
        return Err(ParseError::invalid(format!(
            "unsupported scheme {scheme:?} in {server:?}"
        )));
    } else {
        format!("https://{server}")
    };
    let url =
        Url::parse(&with_scheme).map_err(|e| ParseError::invalid(format!("invalid server URL {server:?}: {e}")))?;
    let scheme = match url.scheme() {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        other => {
            return Err(ParseError::invalid(format!(
                "unsupported scheme {other:?} in {server:?}"
            )));
        }
    };
    let Some(host) = url.host_str().filter(|h| !h.is_empty()) else {
        return Err(ParseError::invalid(format!("no host in server URL {server:?}")));
    };
    let host = match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    };
    let trimmed = url.path().trim_end_matches('/');
    let path = if override_path || trimmed.ends_with(API_ROOT) {
        trimmed.to_string()
    } else {
        format!("{trimmed}{API_ROOT}")
    };
    Ok((scheme, host, path))
}

/// `client`: `"both.pem"`, `["a.pem", "b.pem"]` or `[["cert.pem", "key.pem"], ...]`.
fn parse_client(value: &Value, host_dir: &Path) -> Result<Vec<(PathBuf, Option<PathBuf>)>, ParseError> {
    match value {
        Value::String(s) => Ok(vec![(abs_path(s, host_dir), None)]),
        Value::Array(items) => items
            .iter()
            .map(|item| match item {
                Value::String(s) => Ok((abs_path(s, host_dir), None)),
                Value::Array(pair) => match pair.as_slice() {
                    [Value::String(cert), Value::String(key)] => {
                        Ok((abs_path(cert, host_dir), Some(abs_path(key, host_dir))))
                    }
                    _ => Err(ParseError::invalid("a \"client\" pair must be two file names")),
                },
                _ => Err(ParseError::invalid("\"client\" entries must be strings or pairs")),
            })
            .collect(),
        _ => Err(ParseError::invalid("\"client\" must be a string or a list")),
    }
}

/// A string or a list of strings.
fn string_list(value: &Value, what: &str) -> Result<Vec<String>, ParseError> {
    let not_strings = || ParseError::invalid(format!("{what} must be a string or a list of strings"));
    match value {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) => items
            .iter()
            .map(|item| item.as_str().map(str::to_string).ok_or_else(not_strings))
            .collect(),
        _ => Err(not_strings()),
    }
}

fn abs_path(path: &str, base: &Path) -> PathBuf {
    let path = Path::new(path);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}

/// A host directory without `hosts.toml`, read the Docker way: `*.crt` are CAs, `*.cert`
/// (with a `*.key` of the same name, if present) client certificates.
fn load_cert_files(host_dir: &Path) -> Result<Vec<Endpoint>, HostsError> {
    let read_err = |source| HostsError::Read {
        path: host_dir.to_path_buf(),
        source,
    };
    let mut names = Vec::new();
    for entry in std::fs::read_dir(host_dir).map_err(read_err)? {
        let entry = entry.map_err(read_err)?;
        if entry.path().is_file()
            && let Some(name) = entry.file_name().to_str()
        {
            names.push(name.to_string());
        }
    }
    names.sort();
    let mut tls = TlsSettings::default();
    for name in &names {
        if name.ends_with(".crt") {
            tls.ca.push(host_dir.join(name));
        } else if let Some(stem) = name.strip_suffix(".cert") {
            let key = format!("{stem}.key");
            let key = names.contains(&key).then(|| host_dir.join(key));
            tls.client.push((host_dir.join(name), key));
        }
    }
    Ok(vec![Endpoint {
        scheme: Scheme::Https,
        host: String::new(),
        path: API_ROOT.to_string(),
        capabilities: Capabilities::ALL,
        tls,
        headers: Vec::new(),
        mirror: false,
    }])
}

#[cfg(test)]
mod tests {
    use super::*;

    const PULL_RESOLVE: Capabilities = Capabilities {
        pull: true,
        resolve: true,
        push: false,
    };
    const PULL: Capabilities = Capabilities {
        pull: true,
        resolve: false,
        push: false,
    };

    /// The parts of an endpoint a case checks.
    fn summary(e: &Endpoint) -> (String, Capabilities, bool) {
        (e.base_url(), e.capabilities, e.mirror)
    }

    #[test]
    fn endpoints_follow_containerd() {
        struct Case {
            desc: &'static str,
            files: Vec<(&'static str, &'static str)>,
            domain: &'static str,
            want: Vec<(&'static str, Capabilities, bool)>,
        }
        let cases = vec![
            Case {
                desc: "no configuration: docker.io goes to registry-1",
                files: vec![],
                domain: "docker.io",
                want: vec![("https://registry-1.docker.io/v2", Capabilities::ALL, false)],
            },
            Case {
                desc: "no configuration: other registries over https",
                files: vec![],
                domain: "registry.k8s.io",
                want: vec![("https://registry.k8s.io/v2", Capabilities::ALL, false)],
            },
            Case {
                desc: "no configuration: localhost over http",
                files: vec![],
                domain: "localhost:5000",
                want: vec![("http://localhost:5000/v2", Capabilities::ALL, false)],
            },
            Case {
                desc: "no configuration: loopback address over http",
                files: vec![],
                domain: "127.0.0.1:5000",
                want: vec![("http://127.0.0.1:5000/v2", Capabilities::ALL, false)],
            },
            Case {
                desc: "mirror then the default upstream",
                files: vec![(
                    "docker.io",
                    r#"
                    [host."http://127.0.0.1:5000"]
                    capabilities = ["pull", "resolve"]
                    "#,
                )],
                domain: "docker.io",
                want: vec![
                    ("http://127.0.0.1:5000/v2", PULL_RESOLVE, true),
                    ("https://registry-1.docker.io/v2", Capabilities::ALL, false),
                ],
            },
            Case {
                desc: "mirrors in file order, then the server",
                files: vec![(
                    "registry.k8s.io",
                    r#"
                    server = "https://registry.k8s.io"
                    [host."https://zz-mirror.example"]
                      capabilities = ["pull"]
                    [host."http://aa-mirror.example:5000"]
                    [host."https://mm-mirror.example/some/prefix"]
                    "#,
                )],
                domain: "registry.k8s.io",
                want: vec![
                    ("https://zz-mirror.example/v2", PULL, true),
                    ("http://aa-mirror.example:5000/v2", Capabilities::ALL, true),
                    ("https://mm-mirror.example/some/prefix/v2", Capabilities::ALL, true),
                    ("https://registry.k8s.io/v2", Capabilities::ALL, false),
                ],
            },
            Case {
                desc: "server without scheme is https, top-level capabilities apply to it",
                files: vec![(
                    "example.com",
                    r#"
                    server = "other.example:8443"
                    capabilities = ["pull"]
                    "#,
                )],
                domain: "example.com",
                want: vec![("https://other.example:8443/v2", PULL, false)],
            },
            Case {
                desc: "override_path keeps the path as the API root",
                files: vec![(
                    "example.com",
                    r#"
                    server = "https://example.com"
                    [host."https://proxy.example/api/v2/example.com"]
                      override_path = true
                    [host."https://proxy2.example/root/"]
                      override_path = true
                    "#,
                )],
                domain: "example.com",
                want: vec![
                    ("https://proxy.example/api/v2/example.com", Capabilities::ALL, true),
                    ("https://proxy2.example/root", Capabilities::ALL, true),
                    ("https://example.com/v2", Capabilities::ALL, false),
                ],
            },
            Case {
                desc: "a path already ending in /v2 is kept",
                files: vec![("example.com", r#"server = "https://example.com/v2/""#)],
                domain: "example.com",
                want: vec![("https://example.com/v2", Capabilities::ALL, false)],
            },
            Case {
                desc: "host:port directory name",
                files: vec![("127.0.0.1:5000", r#"server = "http://127.0.0.1:6000""#)],
                domain: "127.0.0.1:5000",
                want: vec![("http://127.0.0.1:6000/v2", Capabilities::ALL, false)],
            },
            Case {
                desc: "host_port_ directory name is tried first",
                files: vec![
                    ("127.0.0.1:5000", r#"server = "http://127.0.0.1:6000""#),
                    ("127.0.0.1_5000_", r#"server = "http://127.0.0.1:7000""#),
                ],
                domain: "127.0.0.1:5000",
                want: vec![("http://127.0.0.1:7000/v2", Capabilities::ALL, false)],
            },
            Case {
                desc: "_default applies to registries without a directory",
                files: vec![
                    ("_default", r#"[host."http://127.0.0.1:5000"]"#),
                    ("docker.io", r#"[host."http://127.0.0.1:6000"]"#),
                ],
                domain: "quay.io",
                want: vec![
                    ("http://127.0.0.1:5000/v2", Capabilities::ALL, true),
                    ("https://quay.io/v2", Capabilities::ALL, false),
                ],
            },
            Case {
                desc: "a registry's own directory wins over _default",
                files: vec![
                    ("_default", r#"[host."http://127.0.0.1:5000"]"#),
                    ("docker.io", r#"[host."http://127.0.0.1:6000"]"#),
                ],
                domain: "docker.io",
                want: vec![
                    ("http://127.0.0.1:6000/v2", Capabilities::ALL, true),
                    ("https://registry-1.docker.io/v2", Capabilities::ALL, false),
                ],
            },
            Case {
                desc: "an unrelated directory does not apply",
                files: vec![("docker.io", r#"[host."http://127.0.0.1:6000"]"#)],
                domain: "registry.k8s.io",
                want: vec![("https://registry.k8s.io/v2", Capabilities::ALL, false)],
            },
            Case {
                desc: "https port 443 is the default port",
                files: vec![("example.com", r#"server = "https://example.com:443""#)],
                domain: "example.com",
                want: vec![("https://example.com/v2", Capabilities::ALL, false)],
            },
        ];
        for c in cases {
            let hosts = RegistryHosts::from_toml(Path::new("/etc/certs.d"), c.files.clone())
                .unwrap_or_else(|e| panic!("{}: {e}", c.desc));
            let got: Vec<_> = hosts.endpoints(c.domain).iter().map(summary).collect();
            let want: Vec<_> = c
                .want
                .iter()
                .map(|(url, caps, mirror)| (url.to_string(), *caps, *mirror))
                .collect();
            assert_eq!(got, want, "{}", c.desc);
        }
    }

    #[test]
    fn tls_settings_and_headers_are_parsed() {
        let text = r#"
            server = "https://registry.example"
            skip_verify = false
            ca = "/abs/upstream-ca.pem"

            [host."https://mirror.example:5000"]
              skip_verify = true
              ca = ["ca1.pem", "/abs/ca2.pem"]
              client = [["client.cert", "client.key"], "both.pem"]
              [host."https://mirror.example:5000".header]
                x-single = "one"
                x-multi = ["a", "b"]

            [host."https://other.example"]
              client = "only.pem"
        "#;
        let hosts = RegistryHosts::from_toml(Path::new("/etc/certs.d"), [("registry.example", text)]).expect("parse");
        let endpoints = hosts.endpoints("registry.example");
        assert_eq!(endpoints.len(), 3);

        let dir = Path::new("/etc/certs.d/registry.example");
        let mirror = &endpoints[0];
        assert_eq!(mirror.tls.skip_verify, Some(true));
        assert!(mirror.tls.skips_verify());
        assert_eq!(mirror.tls.ca, vec![dir.join("ca1.pem"), PathBuf::from("/abs/ca2.pem")]);
        assert_eq!(
            mirror.tls.client,
            vec![
                (dir.join("client.cert"), Some(dir.join("client.key"))),
                (dir.join("both.pem"), None),
            ]
        );
        let headers: Vec<(&str, &str)> = mirror.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(headers, vec![("x-single", "one"), ("x-multi", "a"), ("x-multi", "b")]);

        assert_eq!(endpoints[1].tls.client, vec![(dir.join("only.pem"), None)]);
        assert_eq!(endpoints[1].tls.skip_verify, None);

        let server = &endpoints[2];
        assert!(!server.mirror);
        assert_eq!(server.tls.skip_verify, Some(false));
        assert_eq!(server.tls.ca, vec![PathBuf::from("/abs/upstream-ca.pem")]);
    }

    #[test]
    fn invalid_files_are_refused() {
        let cases = [
            ("not toml", "server = ", "cannot parse"),
            ("server not a string", "server = 5", "\"server\" must be a string"),
            ("host not tables", "host = 5", "\"host\" must be a table"),
            (
                "unknown capability",
                "[host.\"http://m\"]\ncapabilities = [\"fly\"]",
                "unknown capability",
            ),
            ("capabilities not strings", "capabilities = [1]", "capabilities must be"),
            (
                "skip_verify not bool",
                "skip_verify = \"yes\"",
                "\"skip_verify\" must be a boolean",
            ),
            ("bad scheme", "server = \"ftp://x\"", "unsupported scheme"),
            ("no host", "server = \"http://\"", "server"),
            ("bad client pair", "client = [[\"a\"]]", "pair"),
            (
                "bad header name",
                "[header]\n\"bad header\" = \"x\"",
                "invalid header name",
            ),
            (
                "bad header value",
                "[header]\nx = \"a\\nb\"",
                "invalid value for header",
            ),
        ];
        for (desc, text, want) in cases {
            match RegistryHosts::from_toml(Path::new("/d"), [("example.com", text)]) {
                Ok(_) => panic!("{desc}: accepted"),
                Err(e) => {
                    let msg = e.to_string();
                    assert!(msg.contains(want), "{desc}: {msg:?} does not contain {want:?}");
                    assert!(
                        msg.contains("/d/example.com/hosts.toml"),
                        "{desc}: {msg:?} names no file"
                    );
                }
            }
        }
    }

    #[test]
    fn localhost_detection() {
        let cases = [
            ("localhost", true),
            ("localhost:5000", true),
            ("127.0.0.1", true),
            ("127.1.2.3:80", true),
            ("[::1]:5000", true),
            ("[::1]", true),
            ("::1", true),
            ("registry.k8s.io", false),
            ("10.0.0.1:5000", false),
            ("localhost.example", false),
        ];
        for (host, want) in cases {
            assert_eq!(is_localhost(host), want, "{host}");
        }
    }

    #[test]
    fn load_reads_a_directory_tree() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path();
        std::fs::create_dir_all(root.join("docker.io")).expect("mkdir");
        std::fs::write(
            root.join("docker.io").join(HOSTS_FILE),
            "[host.\"http://127.0.0.1:5000\"]\ncapabilities = [\"pull\", \"resolve\"]\n",
        )
        .expect("write");
        // A directory in Docker's certificate layout, without hosts.toml.
        let certs = root.join("secure.example:5000");
        std::fs::create_dir_all(&certs).expect("mkdir");
        for name in ["ca.crt", "client.cert", "client.key", "other.cert", "README"] {
            std::fs::write(certs.join(name), "x").expect("write");
        }
        std::fs::write(root.join("stray-file"), "x").expect("write");

        let hosts = RegistryHosts::load(root).expect("load");
        let docker: Vec<_> = hosts.endpoints("docker.io").iter().map(summary).collect();
        assert_eq!(
            docker,
            vec![
                ("http://127.0.0.1:5000/v2".to_string(), PULL_RESOLVE, true),
                ("https://registry-1.docker.io/v2".to_string(), Capabilities::ALL, false),
            ]
        );
        let secure = hosts.endpoints("secure.example:5000");
        assert_eq!(secure.len(), 1);
        assert_eq!(secure[0].base_url(), "https://secure.example:5000/v2");
        assert_eq!(secure[0].tls.ca, vec![certs.join("ca.crt")]);
        assert_eq!(
            secure[0].tls.client,
            vec![
                (certs.join("client.cert"), Some(certs.join("client.key"))),
                (certs.join("other.cert"), None),
            ]
        );

        let missing = RegistryHosts::load(&root.join("missing")).expect("missing dir is no config");
        assert_eq!(missing.endpoints("docker.io").len(), 1);

        std::fs::write(root.join("docker.io").join(HOSTS_FILE), "server = [").expect("write");
        let err = RegistryHosts::load(root).expect_err("broken file");
        assert!(matches!(err, HostsError::Toml { .. }), "{err}");
    }

    #[test]
    fn endpoint_urls() {
        let e = Endpoint::default_for("registry.k8s.io");
        assert_eq!(
            e.url("pause/manifests/3.9"),
            "https://registry.k8s.io/v2/pause/manifests/3.9"
        );
        assert_eq!(e.url("/pause/blobs/x"), "https://registry.k8s.io/v2/pause/blobs/x");
    }
}
