//! ExecSync: run a command in a running container and return its output.

use std::time::Duration;

use cri_api::v1::{ExecSyncRequest, ExecSyncResponse};

use super::{Pods, PodsError};
use crate::oci::OciError;
use crate::oci::runc::RuncError;

impl Pods {
    /// ExecSync: the command runs with the container's environment, user and working
    /// directory. With a timeout, a command still running at its end is killed (nothing is
    /// left behind) and the call fails with DeadlineExceeded, as with containerd.
    #[tracing::instrument(skip_all, fields(container = %request.container_id))]
    pub async fn exec_sync(&self, request: ExecSyncRequest) -> Result<ExecSyncResponse, PodsError> {
        if request.cmd.is_empty() {
            return Err(PodsError::invalid("cmd must not be empty"));
        }
        let container = self.running_container(&request.container_id)?;
        let timeout = (request.timeout > 0).then(|| Duration::from_secs(request.timeout as u64));
        match self
            .runtime_of(&container)?
            .exec(&container.id, &request.cmd, timeout)
            .await
        {
            Ok(output) => Ok(ExecSyncResponse {
                stdout: output.stdout,
                stderr: output.stderr,
                exit_code: output.exit_code,
            }),
            Err(OciError::Runc(RuncError::Timeout { .. })) => Err(PodsError::TimedOut(format!(
                "command {:?} did not finish within {}s and was killed",
                request.cmd, request.timeout
            ))),
            Err(error) => Err(PodsError::failed("exec in the container", error)),
        }
    }
}
