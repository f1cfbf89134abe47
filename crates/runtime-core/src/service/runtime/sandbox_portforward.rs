//! PortForward: the URL of a streaming session forwarding ports of a pod sandbox (the
//! connections are made by `crate::stream::port_forward`).

use cri_api::v1::{PortForwardRequest, PortForwardResponse};
use tonic::Status;

use super::RuntimeServiceImpl;
use super::container_exec::stream_url;
use crate::service::status::pods_status;

impl RuntimeServiceImpl {
    /// PortForward: an unknown sandbox is NotFound, one that is not ready
    /// FailedPrecondition, a port outside 1-65535 InvalidArgument.
    #[tracing::instrument(skip_all, fields(sandbox = %request.pod_sandbox_id))]
    pub(super) fn port_forward_url(&self, request: PortForwardRequest) -> Result<PortForwardResponse, Status> {
        let sandbox_id = self
            .pods
            .port_forward_sandbox_id(&request.pod_sandbox_id)
            .map_err(|e| pods_status(&e))?;
        let url = self.stream_server()?.get_port_forward(streaming::PortForwardRequest {
            pod_sandbox_id: sandbox_id,
            port: request.port,
        });
        stream_url(url).map(|url| PortForwardResponse { url })
    }
}
