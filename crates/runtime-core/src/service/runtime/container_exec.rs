//! Exec: the URL of a streaming session running a command in a running container (the
//! session itself is `crate::stream::exec`).

use cri_api::v1::{ExecRequest, ExecResponse};
use tonic::Status;

use super::RuntimeServiceImpl;
use crate::service::status::pods_status;
use crate::stream::StreamingServer;

impl RuntimeServiceImpl {
    /// Exec: an unknown container is NotFound, one that is not running
    /// FailedPrecondition; an empty command, no stream asked for, or a terminal with
    /// stderr is InvalidArgument (api.proto: "`stdin`, `stdout` and `stderr` cannot all be
    /// false"; stderr "must be false when `tty` is true").
    #[tracing::instrument(skip_all, fields(container = %request.container_id))]
    pub(super) fn exec_url(&self, request: ExecRequest) -> Result<ExecResponse, Status> {
        if request.cmd.is_empty() {
            return Err(Status::invalid_argument("cmd must not be empty"));
        }
        let (id, _) = self
            .pods
            .exec_target(&request.container_id)
            .map_err(|e| pods_status(&e))?;
        let url = self.stream_server()?.get_exec(streaming::ExecRequest {
            container_id: id,
            cmd: request.cmd,
            tty: request.tty,
            stdin: request.stdin,
            stdout: request.stdout,
            stderr: request.stderr,
        });
        stream_url(url).map(|url| ExecResponse { url })
    }

    /// The streaming server, or Unavailable if the runtime runs without one.
    pub(super) fn stream_server(&self) -> Result<&StreamingServer, Status> {
        self.streaming
            .as_ref()
            .ok_or_else(|| Status::unavailable("the streaming server is not running"))
    }
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
