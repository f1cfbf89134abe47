//! The CRI's Exec, Attach and PortForward requests, as far as the streaming server needs
//! them (the crate does not depend on the CRI types; a runtime copies the fields over).

/// A CRI `ExecRequest`: run `cmd` in a container with the named streams.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecRequest {
    /// The container to run in.
    pub container_id: String,
    /// The command and its arguments.
    pub cmd: Vec<String>,
    /// Run on a terminal.
    pub tty: bool,
    /// Stream stdin.
    pub stdin: bool,
    /// Stream stdout.
    pub stdout: bool,
    /// Stream stderr (never with `tty`).
    pub stderr: bool,
}

/// A CRI `AttachRequest`: attach to a running container's own stdio.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttachRequest {
    /// The container.
    pub container_id: String,
    /// The container runs on a terminal.
    pub tty: bool,
    /// Stream stdin.
    pub stdin: bool,
    /// Stream stdout.
    pub stdout: bool,
    /// Stream stderr (never with `tty`).
    pub stderr: bool,
}

/// A CRI `PortForwardRequest`: forward connections to ports in a pod's network namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortForwardRequest {
    /// The pod sandbox.
    pub pod_sandbox_id: String,
    /// The ports a WebSocket client forwards (a SPDY client names the port per stream).
    pub port: Vec<i32>,
}

/// Why a request was refused. [`RequestError::TooManyInFlight`] is the CRI's
/// `ResourceExhausted`; every other variant is `InvalidArgument`.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// No container id.
    #[error("missing required container_id")]
    MissingContainerId,
    /// No pod sandbox id.
    #[error("missing required pod_sandbox_id")]
    MissingPodSandboxId,
    /// `tty` with `stderr`: a terminal has one output.
    #[error("tty and stderr cannot both be true")]
    TtyWithStderr,
    /// No stream at all.
    #[error("one of stdin, stdout, or stderr must be set")]
    NoStreams,
    /// A port outside 1..=65535.
    #[error("invalid port {0}: must be between 1 and 65535")]
    InvalidPort(i32),
    /// 1000 URLs are already waiting to be used.
    #[error("maximum number of in-flight requests exceeded")]
    TooManyInFlight,
    /// The system's random source failed.
    #[error("cannot generate a token: {0}")]
    Random(String),
}

impl RequestError {
    /// Whether the caller's request was at fault (gRPC `InvalidArgument`), rather than
    /// the server's load or state.
    pub fn is_invalid_argument(&self) -> bool {
        !matches!(self, Self::TooManyInFlight | Self::Random(_))
    }
}

fn validate_streams(
    container_id: &str,
    tty: bool,
    stdin: bool,
    stdout: bool,
    stderr: bool,
) -> Result<(), RequestError> {
    if container_id.is_empty() {
        return Err(RequestError::MissingContainerId);
    }
    if tty && stderr {
        return Err(RequestError::TtyWithStderr);
    }
    if !stdin && !stdout && !stderr {
        return Err(RequestError::NoStreams);
    }
    Ok(())
}

impl ExecRequest {
    pub(crate) fn validate(&self) -> Result<(), RequestError> {
        validate_streams(&self.container_id, self.tty, self.stdin, self.stdout, self.stderr)
    }
}

impl AttachRequest {
    pub(crate) fn validate(&self) -> Result<(), RequestError> {
        validate_streams(&self.container_id, self.tty, self.stdin, self.stdout, self.stderr)
    }
}

impl PortForwardRequest {
    pub(crate) fn validate(&self) -> Result<(), RequestError> {
        if self.pod_sandbox_id.is_empty() {
            return Err(RequestError::MissingPodSandboxId);
        }
        match self.port.iter().find(|p| !(1..=65535).contains(*p)) {
            Some(&bad) => Err(RequestError::InvalidPort(bad)),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_validated_as_the_cri_requires() {
        let exec = ExecRequest {
            container_id: "c".into(),
            stdout: true,
            ..Default::default()
        };
        assert!(exec.validate().is_ok());
        let cases = [
            (
                "no container",
                ExecRequest {
                    container_id: String::new(),
                    ..exec.clone()
                },
                "missing required container_id",
            ),
            (
                "tty with stderr",
                ExecRequest {
                    tty: true,
                    stderr: true,
                    ..exec.clone()
                },
                "tty and stderr cannot both be true",
            ),
            (
                "no stream",
                ExecRequest {
                    stdout: false,
                    ..exec.clone()
                },
                "one of stdin, stdout, or stderr must be set",
            ),
        ];
        for (desc, request, message) in cases {
            let error = request.validate().expect_err(desc);
            assert_eq!(error.to_string(), message, "{desc}");
            assert!(error.is_invalid_argument(), "{desc}");
        }
        let forward = PortForwardRequest {
            pod_sandbox_id: "p".into(),
            port: vec![80, 65535],
        };
        assert!(forward.validate().is_ok());
        assert!(matches!(
            PortForwardRequest {
                port: vec![0],
                ..forward.clone()
            }
            .validate(),
            Err(RequestError::InvalidPort(0))
        ));
        assert!(matches!(
            PortForwardRequest {
                port: vec![70000],
                ..forward.clone()
            }
            .validate(),
            Err(RequestError::InvalidPort(70000))
        ));
        assert!(matches!(
            PortForwardRequest {
                pod_sandbox_id: String::new(),
                ..forward
            }
            .validate(),
            Err(RequestError::MissingPodSandboxId)
        ));
        assert!(!RequestError::TooManyInFlight.is_invalid_argument());
    }
}
