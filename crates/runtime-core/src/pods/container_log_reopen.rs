//! ReopenContainerLog: after the kubelet rotated a log file.

use cri_api::v1::{ReopenContainerLogRequest, ReopenContainerLogResponse};

use super::{Pods, PodsError};
use crate::monitor;

impl Pods {
    /// ReopenContainerLog: the container's monitor reopens its log path, so new output goes
    /// to a new file after the kubelet renamed the old one. Only a running container has a
    /// log to reopen (FailedPrecondition otherwise).
    #[tracing::instrument(skip_all, fields(container = %request.container_id))]
    pub async fn reopen_container_log(
        &self,
        request: ReopenContainerLogRequest,
    ) -> Result<ReopenContainerLogResponse, PodsError> {
        let container = self.running_container(&request.container_id)?;
        let dir = container.monitor_dir.clone();
        tokio::task::spawn_blocking(move || monitor::reopen_log(&dir))
            .await
            .map_err(|e| PodsError::failed("reopening the log", e))?
            .map_err(|e| PodsError::failed("reopening the log", e))?;
        Ok(ReopenContainerLogResponse {})
    }
}
