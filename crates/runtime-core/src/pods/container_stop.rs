//! StopContainer: the stop signal, the grace period, then SIGKILL.

use std::time::Duration;

use cri_api::v1::{StopContainerRequest, StopContainerResponse};

use super::{Pods, PodsError};
use crate::monitor;
use crate::state::StateError;

/// The signal that cannot be ignored.
const SIGKILL: i32 = 9;
/// How long a SIGKILLed container may take to be reaped.
const KILL_WAIT: Duration = Duration::from_secs(10);

impl Pods {
    /// StopContainer: sends the image's stop signal (SIGTERM by default), waits up to the
    /// request's timeout, then kills every process of the container.
    ///
    /// api.proto: "This call is idempotent, and must not return an error if the container
    /// has already been stopped", and containerd also answers success for an id it does not
    /// know, which the kubelet relies on when it cleans up after a crash.
    #[tracing::instrument(skip_all, fields(container = %request.container_id))]
    pub async fn stop_container(&self, request: StopContainerRequest) -> Result<StopContainerResponse, PodsError> {
        let id = match self.registry.container(&request.container_id) {
            Ok(container) => container.id,
            Err(StateError::NotFound { .. }) => return Ok(StopContainerResponse {}),
            Err(e) => return Err(e.into()),
        };
        let _busy = self.busy.lock(id.clone()).await;
        let grace = Duration::from_secs(u64::try_from(request.timeout).unwrap_or(0));
        self.stop_container_process(&id, grace).await?;
        Ok(StopContainerResponse {})
    }

    /// Stops the container's process if it runs: the stop signal and `grace` first (skipped
    /// when `grace` is zero), then SIGKILL to all its processes. Returns once the monitor
    /// recorded the exit.
    pub(super) async fn stop_container_process(&self, id: &str, grace: Duration) -> Result<(), PodsError> {
        let container = self.refresh_container(id)?;
        if !container.status.is_running() {
            return Ok(());
        }
        let runtime = self.runtime_of(&container)?;
        if !grace.is_zero() {
            runtime
                .kill(id, container.stop_signal, false)
                .await
                .map_err(|e| PodsError::failed("signalling the container", e))?;
            if let Some(exit) = monitor::wait_for_exit(&container.monitor_dir, grace).await {
                return self.record_exit(&container, exit);
            }
        }
        runtime
            .kill(id, SIGKILL, true)
            .await
            .map_err(|e| PodsError::failed("killing the container", e))?;
        match monitor::wait_for_exit(&container.monitor_dir, KILL_WAIT).await {
            Some(exit) => self.record_exit(&container, exit),
            None => Err(PodsError::failed(
                "killing the container",
                "its exit was not recorded in time",
            )),
        }
    }
}
