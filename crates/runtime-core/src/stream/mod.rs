//! The runtime side of streaming: runtime-core's [`streaming::Runtime`], which the
//! streaming server calls to run exec, attach and port-forward sessions.
//!
//! - `exec`: `runc exec` with pipes, or with a terminal received over a console socket;
//! - `attach`: the container's own stdio, through its monitor's attach socket;
//! - `port_forward`: TCP connections made inside the pod's network namespace;
//! - [`terminal`] and [`orphan`]: a pty master as a tokio stream, and the detached exec
//!   process the daemon inherits as child subreaper.
//!
//! The CRI calls that hand out the sessions' URLs are `service/runtime/{container_exec,
//! container_attach, sandbox_portforward}.rs`; each session looks its container or sandbox
//! up again ([`crate::pods`]'s stream targets) when it starts, since the URL may be used a
//! while after it was issued.

mod attach;
mod exec;
pub mod orphan;
mod port_forward;
pub mod terminal;

use std::sync::Arc;

use streaming::{Connection, RuntimeError, Streams};

use crate::oci::runc::RuncError;
use crate::pods::{Pods, PodsError};

/// Why a streaming session could not run; the text reaches the client.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The container or sandbox is unknown or not in a state to stream from.
    #[error("{0}")]
    Refused(String),
    /// The container's monitor is not running (the container has exited).
    #[error("the container is not running")]
    NotRunning,
    /// runc could not run the command.
    #[error(transparent)]
    Runc(#[from] RuncError),
    /// Nothing accepts connections on the port in the pod.
    #[error("connecting to port {port} in the pod: {source}")]
    Connect {
        /// The port.
        port: u16,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A local operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Writing to the client failed: it went away. The session's process was killed.
    #[error("the client went away")]
    ClientGone,
}

impl From<PodsError> for StreamError {
    fn from(error: PodsError) -> Self {
        StreamError::Refused(error.to_string())
    }
}

/// The streaming server the Exec, Attach and PortForward URLs point at.
pub type StreamingServer = streaming::Server<StreamRuntime>;

/// runtime-core's sessions for the streaming server.
#[derive(Debug, Clone)]
pub struct StreamRuntime {
    pods: Arc<Pods>,
}

impl StreamRuntime {
    /// Sessions with the containers and sandboxes of `pods`.
    pub fn new(pods: Arc<Pods>) -> Self {
        Self { pods }
    }
}

impl streaming::Runtime for StreamRuntime {
    async fn exec(&self, container_id: &str, cmd: Vec<String>, streams: Streams) -> Result<i32, RuntimeError> {
        let (id, runc) = self.pods.exec_target(container_id).map_err(StreamError::from)?;
        Ok(exec::run(&runc, &id, &cmd, streams).await?)
    }

    async fn attach(&self, container_id: &str, streams: Streams) -> Result<(), RuntimeError> {
        let target = self.pods.attach_target(container_id).map_err(StreamError::from)?;
        Ok(attach::run(target, streams).await?)
    }

    async fn port_forward(&self, pod_sandbox_id: &str, port: u16) -> Result<Box<dyn Connection>, RuntimeError> {
        let netns = self
            .pods
            .port_forward_target(pod_sandbox_id)
            .map_err(StreamError::from)?;
        Ok(Box::new(port_forward::connect(netns, port).await?))
    }
}
