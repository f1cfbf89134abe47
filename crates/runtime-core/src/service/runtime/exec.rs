//! Exec: the URL of a streaming session running a command in a running container (the
//! session itself is `crate::stream::exec`).

use cri_api::v1::{ExecRequest, ExecResponse};
use tonic::Status;

use super::Pods;
use crate::oci::runc::Runc;
use crate::stream::StreamRuntime;

/// The streaming server the Exec, Attach and PortForward URLs point at.
pub type StreamingServer = streaming::Server<StreamRuntime>;

impl Pods {
    /// Exec: an unknown container is NotFound, one that is not running
    /// FailedPrecondition; an empty command, no stream asked for, or a terminal with
    /// stderr is InvalidArgument (api.proto: "`stdin`, `stdout` and `stderr` cannot all be
    /// false"; stderr "must be false when `tty` is true").
    #[tracing::instrument(skip_all, fields(container = %request.container_id))]
    pub(super) fn exec(&self, request: ExecRequest, server: Option<&StreamingServer>) -> Result<ExecResponse, Status> {
        if request.cmd.is_empty() {
            return Err(Status::invalid_argument("cmd must not be empty"));
        }
        let (id, _) = self.exec_target(&request.container_id)?;
        let url = stream_server(server)?.get_exec(streaming::ExecRequest {
            container_id: id,
            cmd: request.cmd,
            tty: request.tty,
            stdin: request.stdin,
            stdout: request.stdout,
            stderr: request.stderr,
        });
        stream_url(url).map(|url| ExecResponse { url })
    }

    /// The full id of running container `id` and its OCI runtime, for an exec session.
    pub(crate) fn exec_target(&self, id: &str) -> Result<(String, Runc), Status> {
        let container = self.running_container(id)?;
        let runc = self.runc(&container)?.clone();
        Ok((container.id, runc))
    }
}

/// The streaming server, or Unavailable if the runtime runs without one.
pub(super) fn stream_server(server: Option<&StreamingServer>) -> Result<&StreamingServer, Status> {
    server.ok_or_else(|| Status::unavailable("the streaming server is not running"))
}

/// The URL the server handed out, or why it refused: InvalidArgument for the request's
/// fault, ResourceExhausted when too many URLs wait to be used, Internal otherwise.
pub(super) fn stream_url(url: Result<String, streaming::RequestError>) -> Result<String, Status> {
    url.map_err(|error| match error {
        error if error.is_invalid_argument() => Status::invalid_argument(error.to_string()),
        streaming::RequestError::TooManyInFlight => Status::resource_exhausted(error.to_string()),
        error => Status::internal(error.to_string()),
    })
}
