//! StopContainer: the stop signal, the grace period, then SIGKILL.

use std::sync::Arc;
use std::time::Duration;

use cri_api::v1::{ContainerEventType, StopContainerRequest, StopContainerResponse};

use super::{Pods, PodsError};
use crate::monitor;
use crate::oci::OciRuntime;
use crate::state::StateError;
use crate::state::container::{ContainerRecord, ContainerState};
use crate::stream::orphan::Orphan;

/// The signal that cannot be ignored.
const SIGKILL: i32 = 9;
/// How long a SIGKILLed container may take to be reaped.
const KILL_WAIT: Duration = Duration::from_secs(10);
/// How often the state of a container without a monitor is read while it dies.
const UNMONITORED_POLL: Duration = Duration::from_millis(100);
/// The exit code recorded for a container killed after its monitor died, whose own exit
/// status no one could collect: 128 + SIGKILL, as a shell reports a SIGKILLed process.
const UNMONITORED_EXIT_CODE: i32 = 128 + SIGKILL;

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
        match container.status.state {
            ContainerState::Running => {}
            ContainerState::Unknown => return self.kill_unmonitored(&container).await,
            ContainerState::Created | ContainerState::Exited => return Ok(()),
        }
        let runtime = self.runtime_of(&container)?;
        if !grace.is_zero() {
            runtime
                .kill(id, container.stop_signal, false)
                .await
                .map_err(|e| PodsError::failed("signalling the container", e))?;
            crash_point::hit("container_stop.after_signal");
            if let Some(exit) = monitor::wait_for_exit(&container.monitor_dir, grace).await {
                return self.record_exit(&container, exit);
            }
        }
        runtime
            .kill(id, SIGKILL, true)
            .await
            .map_err(|e| PodsError::failed("killing the container", e))?;
        crash_point::hit("container_stop.after_kill");
        match monitor::wait_for_exit(&container.monitor_dir, KILL_WAIT).await {
            Some(exit) => self.record_exit(&container, exit),
            None => Err(PodsError::failed(
                "killing the container",
                "its exit was not recorded in time",
            )),
        }
    }

    /// Stops a container whose monitor died (state Unknown): its processes may still run.
    /// If its init became this daemon's child when the monitor died (the daemon is the
    /// child subreaper of the monitors it started), it is reaped here, which lets the
    /// pod's PID namespace end and gives its exit code. Otherwise (the daemon restarted
    /// since) the runtime's own state says when it is gone, and [`UNMONITORED_EXIT_CODE`]
    /// is recorded.
    async fn kill_unmonitored(&self, container: &ContainerRecord) -> Result<(), PodsError> {
        let runtime = self.runtime_of(container)?;
        let id = &container.id;
        let mut exit_code = UNMONITORED_EXIT_CODE;
        if runtime.knows(id) {
            let mut orphan = (container.status.pid != 0)
                .then(|| Orphan::adopt(container.status.pid).ok())
                .flatten();
            runtime
                .kill(id, SIGKILL, true)
                .await
                .map_err(|e| PodsError::failed("killing a container without a monitor", e))?;
            match &mut orphan {
                Some(orphan) => match tokio::time::timeout(KILL_WAIT, orphan.wait()).await {
                    Ok(Ok(code)) => exit_code = code,
                    Ok(Err(error)) => tracing::warn!(container = %id, %error, "reaping a container without a monitor"),
                    Err(_) => {
                        return Err(PodsError::failed(
                            "killing a container without a monitor",
                            "it still runs after SIGKILL",
                        ));
                    }
                },
                None => self.wait_until_stopped(runtime, id).await?,
            }
        }
        let stopped = self.registry.update_container(id, |c| {
            let message = std::mem::take(&mut c.status.message);
            c.status.exited(exit_code, super::now_nanos(), false);
            c.status.message = message;
        })?;
        self.announce(ContainerEventType::ContainerStoppedEvent, &stopped);
        Ok(())
    }

    /// Polls the runtime's state of container `id` until it no longer runs (up to
    /// [`KILL_WAIT`]).
    async fn wait_until_stopped(&self, runtime: &Arc<dyn OciRuntime>, id: &str) -> Result<(), PodsError> {
        let deadline = tokio::time::Instant::now() + KILL_WAIT;
        loop {
            let state = runtime
                .state(id)
                .await
                .map_err(|e| PodsError::failed("reading the state of a container without a monitor", e))?;
            if state.is_none_or(|s| s.status != "running" && s.status != "paused") {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(PodsError::failed(
                    "killing a container without a monitor",
                    "it still runs after SIGKILL",
                ));
            }
            tokio::time::sleep(UNMONITORED_POLL).await;
        }
    }
}
