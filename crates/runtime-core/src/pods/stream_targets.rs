//! What the streaming sessions (`crate::stream`) and the calls that hand out their URLs
//! need of a container or sandbox; each session looks its target up again when it starts,
//! since a URL may be used a while after it was issued.

use std::path::PathBuf;

use cri_api::v1::NamespaceMode;

use super::sandbox_run::namespace_mode;
use super::{Pods, PodsError};
use crate::oci::runc::Runc;
use crate::state::sandbox::SandboxState;

/// What an attach session needs to know of its container.
#[derive(Debug, Clone)]
pub struct AttachTarget {
    /// The monitor's state directory.
    pub monitor_dir: PathBuf,
    /// Whether the container was created with stdin.
    pub stdin: bool,
    /// Whether the container's stdin closes when an attached client's stdin ends.
    pub stdin_once: bool,
}

impl Pods {
    /// The full id of running container `id` and its OCI runtime, for an exec session:
    /// NotFound for an unknown container, FailedPrecondition for one that is not running.
    pub fn exec_target(&self, id: &str) -> Result<(String, Runc), PodsError> {
        let container = self.running_container(id)?;
        let runc = self.runtime_of(&container)?.interactive().cloned().ok_or_else(|| {
            PodsError::invalid(format!(
                "the runtime of container {} has no interactive exec",
                container.id
            ))
        })?;
        Ok((container.id, runc))
    }

    /// The full id of running container `id`, for the URL of an attach session.
    pub fn running_container_id(&self, id: &str) -> Result<String, PodsError> {
        Ok(self.running_container(id)?.id)
    }

    /// What an attach session to running container `id` needs.
    pub fn attach_target(&self, id: &str) -> Result<AttachTarget, PodsError> {
        let container = self.running_container(id)?;
        Ok(AttachTarget {
            monitor_dir: container.monitor_dir,
            stdin: container.config.stdin,
            stdin_once: container.config.stdin_once,
        })
    }

    /// The full id of sandbox `id`, for the URL of a port-forward session: the sandbox
    /// must be ready, with a network to forward into.
    pub fn port_forward_sandbox_id(&self, id: &str) -> Result<String, PodsError> {
        let sandbox = self.registry.sandbox(id)?;
        self.port_forward_target(&sandbox.id)?;
        Ok(sandbox.id)
    }

    /// The network namespace of ready sandbox `id` (`None`: the host's).
    pub fn port_forward_target(&self, id: &str) -> Result<Option<PathBuf>, PodsError> {
        let sandbox = self.registry.sandbox(id)?;
        if sandbox.status.state != SandboxState::Ready {
            return Err(PodsError::wrong_state(format!("sandbox {} is not ready", sandbox.id)));
        }
        let host_network = namespace_mode(&sandbox.config, |o| o.network) == NamespaceMode::Node;
        match (&sandbox.netns, host_network) {
            (_, true) => Ok(None),
            (Some(netns), false) => Ok(Some(netns.clone())),
            (None, false) => Err(PodsError::wrong_state(format!(
                "sandbox {} has no network namespace",
                sandbox.id
            ))),
        }
    }
}
