//! PortForward: the URL of a streaming session forwarding ports of a pod sandbox (the
//! connections are made by `crate::stream::port_forward`).

use std::path::PathBuf;

use cri_api::v1::{NamespaceMode, PortForwardRequest, PortForwardResponse};
use tonic::Status;

use super::exec::{StreamingServer, stream_server, stream_url};
use super::sandbox_run::namespace_mode;
use super::{Pods, state_status};
use crate::state::sandbox::SandboxState;

impl Pods {
    /// PortForward: an unknown sandbox is NotFound, one that is not ready
    /// FailedPrecondition, a port outside 1-65535 InvalidArgument.
    #[tracing::instrument(skip_all, fields(sandbox = %request.pod_sandbox_id))]
    pub(super) fn port_forward(
        &self,
        request: PortForwardRequest,
        server: Option<&StreamingServer>,
    ) -> Result<PortForwardResponse, Status> {
        let sandbox = self.registry.sandbox(&request.pod_sandbox_id).map_err(state_status)?;
        self.port_forward_target(&sandbox.id)?;
        let url = stream_server(server)?.get_port_forward(streaming::PortForwardRequest {
            pod_sandbox_id: sandbox.id,
            port: request.port,
        });
        stream_url(url).map(|url| PortForwardResponse { url })
    }

    /// The network namespace of ready sandbox `id` (`None`: the host's).
    pub(crate) fn port_forward_target(&self, id: &str) -> Result<Option<PathBuf>, Status> {
        let sandbox = self.registry.sandbox(id).map_err(state_status)?;
        if sandbox.status.state != SandboxState::Ready {
            return Err(Status::failed_precondition(format!(
                "sandbox {} is not ready",
                sandbox.id
            )));
        }
        let host_network = namespace_mode(&sandbox.config, |o| o.network) == NamespaceMode::Node;
        match (&sandbox.netns, host_network) {
            (_, true) => Ok(None),
            (Some(netns), false) => Ok(Some(netns.clone())),
            (None, false) => Err(Status::failed_precondition(format!(
                "sandbox {} has no network namespace",
                sandbox.id
            ))),
        }
    }
}
