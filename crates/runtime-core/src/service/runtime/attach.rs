//! Attach: the URL of a streaming session joined to a running container's own stdio (the
//! session itself is `crate::stream::attach`).

use cri_api::v1::{AttachRequest, AttachResponse};
use tonic::Status;

use super::Pods;
use super::exec::{StreamingServer, stream_server, stream_url};
use crate::stream::AttachTarget;

impl Pods {
    /// Attach: an unknown container is NotFound, one that is not running
    /// FailedPrecondition, no stream asked for or a terminal with stderr InvalidArgument.
    /// Stdin reaches the container only if it was created with stdin.
    #[tracing::instrument(skip_all, fields(container = %request.container_id))]
    pub(super) fn attach(
        &self,
        request: AttachRequest,
        server: Option<&StreamingServer>,
    ) -> Result<AttachResponse, Status> {
        let container = self.running_container(&request.container_id)?;
        let url = stream_server(server)?.get_attach(streaming::AttachRequest {
            container_id: container.id,
            tty: request.tty,
            stdin: request.stdin,
            stdout: request.stdout,
            stderr: request.stderr,
        });
        stream_url(url).map(|url| AttachResponse { url })
    }

    /// What an attach session to running container `id` needs.
    pub(crate) fn attach_target(&self, id: &str) -> Result<AttachTarget, Status> {
        let container = self.running_container(id)?;
        Ok(AttachTarget {
            monitor_dir: container.monitor_dir,
            stdin: container.config.stdin,
            stdin_once: container.config.stdin_once,
        })
    }
}
