//! Where a CRI runtime listens, in the forms the kubelet and crictl accept.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// A parsed CRI endpoint: a unix socket or a TCP address.
///
/// | form                                     | meaning                               |
/// |------------------------------------------|---------------------------------------|
/// | `unix:///run/containerd/containerd.sock` | unix socket, absolute path            |
/// | `unix:relative/cri.sock`                 | unix socket, relative to the cwd      |
/// | `/run/containerd/containerd.sock`        | unix socket (bare absolute path)      |
/// | `tcp://127.0.0.1:10010`                  | TCP, plain-text HTTP/2 (no TLS)       |
///
/// The unix forms follow gRPC's naming spec (`unix:path` may be relative, `unix://` must
/// be followed by an absolute path). A bare path must be absolute: `cri.sock` or
/// `localhost:1234` without a scheme would be ambiguous, so they are refused.
///
/// ```
/// use cri_client::Endpoint;
/// let endpoint: Endpoint = "/run/containerd/containerd.sock".parse()?;
/// assert_eq!(endpoint.to_string(), "unix:///run/containerd/containerd.sock");
/// assert!("localhost:1234".parse::<Endpoint>().is_err());
/// # Ok::<(), cri_client::EndpointError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// A unix domain socket at this path (absolute, or relative to the working directory).
    Unix(PathBuf),
    /// A TCP address; the runtime speaks plain-text HTTP/2 there.
    Tcp {
        /// Host name or IP address, without the brackets of an IPv6 literal.
        host: String,
        /// TCP port, never 0.
        port: u16,
    },
}

/// Why a string is not an [`Endpoint`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid endpoint {endpoint:?}: {reason}")]
pub struct EndpointError {
    /// The string that was given.
    pub endpoint: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl Endpoint {
    /// Parses `s` in any of the forms listed [above](Endpoint).
    pub fn parse(s: &str) -> Result<Endpoint, EndpointError> {
        let fail = |reason| EndpointError {
            endpoint: s.to_owned(),
            reason,
        };
        if s.is_empty() {
            return Err(fail("empty"));
        }
        if let Some(rest) = s.strip_prefix("unix://") {
            if rest.is_empty() {
                return Err(fail("no socket path after unix://"));
            }
            if !rest.starts_with('/') {
                return Err(fail(
                    "unix:// must be followed by an absolute path (use unix:path for a relative one)",
                ));
            }
            return Ok(Endpoint::Unix(PathBuf::from(rest)));
        }
        if let Some(rest) = s.strip_prefix("unix:") {
            if rest.is_empty() {
                return Err(fail("no socket path after unix:"));
            }
            return Ok(Endpoint::Unix(PathBuf::from(rest)));
        }
        if let Some(rest) = s.strip_prefix("tcp://") {
            return parse_tcp(rest.strip_suffix('/').unwrap_or(rest)).map_err(fail);
        }
        if s.starts_with('/') {
            return Ok(Endpoint::Unix(PathBuf::from(s)));
        }
        if s.contains("://") {
            return Err(fail("unsupported scheme (expected unix:// or tcp://)"));
        }
        Err(fail(
            "neither unix:///abs/path, unix:rel/path, tcp://host:port nor an absolute socket path",
        ))
    }

    /// The socket path, if this is a unix endpoint.
    pub fn unix_path(&self) -> Option<&Path> {
        match self {
            Endpoint::Unix(path) => Some(path),
            Endpoint::Tcp { .. } => None,
        }
    }
}

/// Parses `host:port` or `[v6]:port`.
fn parse_tcp(authority: &str) -> Result<Endpoint, &'static str> {
    if authority.contains(['/', '@', '?', '#']) {
        return Err("a tcp endpoint is only host:port, without a path, user or query");
    }
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']').ok_or("unclosed [ in IPv6 address")?;
        let port = after.strip_prefix(':').ok_or("missing :port after tcp://host")?;
        (host, port)
    } else {
        let (host, port) = authority.rsplit_once(':').ok_or("missing :port after tcp://host")?;
        if host.contains(':') {
            return Err("an IPv6 address must be in brackets, as in tcp://[::1]:10010");
        }
        (host, port)
    };
    if host.is_empty() {
        return Err("missing host after tcp://");
    }
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|&port| port != 0)
        .ok_or("port is not a number between 1 and 65535")?;
    Ok(Endpoint::Tcp {
        host: host.to_owned(),
        port,
    })
}

impl FromStr for Endpoint {
    type Err = EndpointError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Endpoint::parse(s)
    }
}

impl TryFrom<&str> for Endpoint {
    type Error = EndpointError;

    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Endpoint::parse(s)
    }
}

/// Writes the canonical form: `unix:///abs`, `unix:rel` or `tcp://host:port`.
impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Unix(path) if path.is_absolute() => write!(f, "unix://{}", path.display()),
            Endpoint::Unix(path) => write!(f, "unix:{}", path.display()),
            Endpoint::Tcp { host, port } if host.contains(':') => {
                write!(f, "tcp://[{host}]:{port}")
            }
            Endpoint::Tcp { host, port } => write!(f, "tcp://{host}:{port}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unix(path: &str) -> Endpoint {
        Endpoint::Unix(PathBuf::from(path))
    }

    fn tcp(host: &str, port: u16) -> Endpoint {
        Endpoint::Tcp {
            host: host.to_owned(),
            port,
        }
    }

    #[test]
    fn parses_the_forms_kubelet_and_crictl_accept() {
        let cases = [
            (
                "unix URL with an absolute path",
                "unix:///run/containerd/containerd.sock",
                unix("/run/containerd/containerd.sock"),
            ),
            ("unix: with a relative path", "unix:run/cri.sock", unix("run/cri.sock")),
            ("unix: with a dot-relative path", "unix:./cri.sock", unix("./cri.sock")),
            (
                "unix: with an absolute path",
                "unix:/run/cri.sock",
                unix("/run/cri.sock"),
            ),
            (
                "bare absolute socket path",
                "/run/containerd/containerd.sock",
                unix("/run/containerd/containerd.sock"),
            ),
            (
                "tcp with an IPv4 address",
                "tcp://127.0.0.1:10010",
                tcp("127.0.0.1", 10010),
            ),
            ("tcp with a host name", "tcp://localhost:1234", tcp("localhost", 1234)),
            ("tcp with an IPv6 literal", "tcp://[::1]:1234", tcp("::1", 1234)),
            (
                "tcp with a trailing slash",
                "tcp://localhost:1234/",
                tcp("localhost", 1234),
            ),
        ];
        for (desc, input, want) in cases {
            assert_eq!(Endpoint::parse(input), Ok(want), "{desc}: {input:?}");
        }
    }

    #[test]
    fn refuses_anything_else_with_a_reason() {
        let cases = [
            ("empty string", "", "empty"),
            ("unix:// without a path", "unix://", "no socket path"),
            ("unix: without a path", "unix:", "no socket path"),
            ("unix:// with a relative path", "unix://run/cri.sock", "absolute path"),
            ("bare relative path", "cri.sock", "neither"),
            ("host:port without a scheme", "localhost:1234", "neither"),
            ("http scheme", "http://localhost:1234", "unsupported scheme"),
            (
                "windows named pipe",
                "npipe:////./pipe/containerd",
                "unsupported scheme",
            ),
            ("tcp without a port", "tcp://localhost", "missing :port"),
            ("tcp without a host", "tcp://:1234", "missing host"),
            ("tcp with port 0", "tcp://localhost:0", "between 1 and 65535"),
            (
                "tcp with a port too large",
                "tcp://localhost:65536",
                "between 1 and 65535",
            ),
            (
                "tcp with a non-numeric port",
                "tcp://localhost:http",
                "between 1 and 65535",
            ),
            ("tcp with a path", "tcp://localhost:1234/cri", "only host:port"),
            ("tcp with an unbracketed IPv6 address", "tcp://::1:1234", "in brackets"),
            ("tcp with an unclosed bracket", "tcp://[::1:1234", "unclosed"),
            ("tcp with user info", "tcp://user@host:1234", "only host:port"),
        ];
        for (desc, input, want) in cases {
            let err = Endpoint::parse(input).expect_err(desc);
            assert_eq!(err.endpoint, input, "{desc}");
            assert!(err.reason.contains(want), "{desc}: {input:?} gave {:?}", err.reason);
        }
    }

    #[test]
    fn displays_the_canonical_form_that_parses_back() {
        let cases = [
            ("absolute unix path", "/run/cri.sock", "unix:///run/cri.sock"),
            ("relative unix path", "unix:cri.sock", "unix:cri.sock"),
            ("tcp host", "tcp://localhost:1234/", "tcp://localhost:1234"),
            ("tcp IPv6 literal", "tcp://[::1]:1234", "tcp://[::1]:1234"),
        ];
        for (desc, input, want) in cases {
            let endpoint = Endpoint::parse(input).expect(desc);
            assert_eq!(endpoint.to_string(), want, "{desc}");
            assert_eq!(Endpoint::parse(want), Ok(endpoint), "{desc}");
        }
    }

    #[test]
    fn error_message_names_the_endpoint_and_the_reason() {
        let err = Endpoint::parse("http://x:1").expect_err("http is refused");
        assert_eq!(
            err.to_string(),
            "invalid endpoint \"http://x:1\": unsupported scheme (expected unix:// or tcp://)"
        );
    }
}
