//! StopContainer: the stop signal, the grace period, then SIGKILL.

use std::time::Duration;

use cri_api::v1::{StopContainerRequest, StopContainerResponse};
use tonic::Status;

use super::{Pods, internal, state_status};
use crate::monitor;
use crate::state::StateError;
use crate::state::container::{ContainerRecord, ContainerState};

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
    pub(super) async fn stop_container(&self, request: StopContainerRequest) -> Result<StopContainerResponse, Status> {
        let id = match self.registry.container(&request.container_id) {
            Ok(container) => container.id,
            Err(StateError::NotFound { .. }) => return Ok(StopContainerResponse {}),
            Err(e) => return Err(state_status(e)),
        };
        let _busy = self.busy.lock(id.clone()).await;
        let grace = Duration::from_secs(u64::try_from(request.timeout).unwrap_or(0));
        self.stop_container_process(&id, grace).await?;
        Ok(StopContainerResponse {})
    }

    /// Stops the container's process if it runs: the stop signal and `grace` first (skipped
    /// when `grace` is zero), then SIGKILL to all its processes. Returns once the monitor
    /// recorded the exit.
    pub(super) async fn stop_container_process(&self, id: &str, grace: Duration) -> Result<(), Status> {
        let container = self.refresh_container(id)?;
        if container.status.state != ContainerState::Running {
            return Ok(());
        }
        let runc = self.runc(&container)?;
        if !grace.is_zero() {
            runc.kill(id, container.stop_signal, false)
                .await
                .map_err(|e| internal("signalling the container", e))?;
            if let Some(exit) = monitor::wait_for_exit(&container.monitor_dir, grace).await {
                return self.record_exit(&container, exit);
            }
        }
        runc.kill(id, SIGKILL, true)
            .await
            .map_err(|e| internal("killing the container", e))?;
        match monitor::wait_for_exit(&container.monitor_dir, KILL_WAIT).await {
            Some(exit) => self.record_exit(&container, exit),
            None => Err(internal("killing the container", "its exit was not recorded in time")),
        }
    }

    /// Writes a monitor's exit record into the container's status.
    fn record_exit(&self, container: &ContainerRecord, exit: monitor::ExitRecord) -> Result<(), Status> {
        self.registry
            .update_container(&container.id, |c| {
                c.status.exited(exit.exit_code, exit.finished_at_nanos, exit.oom_killed)
            })
            .map(drop)
            .map_err(state_status)
    }

    /// The record of a container that must be running (FailedPrecondition otherwise),
    /// looked up by id or unique prefix.
    pub(super) fn running_container(&self, id: &str) -> Result<ContainerRecord, Status> {
        let container = self.registry.container(id).map_err(state_status)?;
        let container = self.refresh_container(&container.id)?;
        if container.status.state != ContainerState::Running {
            return Err(Status::failed_precondition(format!(
                "container {} is not running",
                container.id
            )));
        }
        Ok(container)
    }

    /// The container's record, brought up to date with what its monitor knows: a running
    /// container whose monitor recorded an exit is Exited; one whose monitor vanished
    /// without a record is Unknown.
    pub(super) fn refresh_container(&self, id: &str) -> Result<ContainerRecord, Status> {
        let container = self.registry.container(id).map_err(state_status)?;
        if container.status.state != ContainerState::Running {
            return Ok(container);
        }
        if let Some(exit) = monitor::exit_status(&container.monitor_dir) {
            self.record_exit(&container, exit)?;
        } else if !monitor::monitor_running(&container.monitor_dir) {
            // The monitor may have written the record just before it exited.
            match monitor::exit_status(&container.monitor_dir) {
                Some(exit) => self.record_exit(&container, exit)?,
                None => {
                    self.registry
                        .update_container(id, |c| {
                            c.status.state = ContainerState::Unknown;
                            c.status.message = "the container's monitor ended without recording an exit".into();
                        })
                        .map_err(state_status)?;
                }
            }
        }
        self.registry.container(id).map_err(state_status)
    }
}
