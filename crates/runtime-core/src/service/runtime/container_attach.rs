//! Attach: the URL of a streaming session joined to a running container's own stdio (the
//! session itself is `crate::stream::attach`).

use cri_api::v1::{AttachRequest, AttachResponse};
use tonic::Status;

use super::RuntimeServiceImpl;
use super::container_exec::stream_url;
use crate::service::status::pods_status;

impl RuntimeServiceImpl {
    /// Attach: an unknown container is NotFound, one that is not running
    /// FailedPrecondition, no stream asked for or a terminal with stderr InvalidArgument.
    /// Stdin reaches the container only if it was created with stdin.
    #[tracing::instrument(skip_all, fields(container = %request.container_id))]
    pub(super) fn attach_url(&self, request: AttachRequest) -> Result<AttachResponse, Status> {
        let target = self
            .pods
            .running_container_id(&request.container_id)
            .map_err(|e| pods_status(&e))?;
        let url = self.stream_server()?.get_attach(streaming::AttachRequest {
            container_id: target,
            tty: request.tty,
            stdin: request.stdin,
            stdout: request.stdout,
            stderr: request.stderr,
        });
        stream_url(url).map(|url| AttachResponse { url })
    }
}
