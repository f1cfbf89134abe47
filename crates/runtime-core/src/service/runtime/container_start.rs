//! StartContainer: a monitor process creates the container with runc, then runc starts it.

use cri_api::v1::{StartContainerRequest, StartContainerResponse};
use tonic::Status;

use super::{Pods, internal, now_nanos, state_status};
use crate::monitor::{self, MonitorConfig};
use crate::state::container::ContainerState;

/// Exit code recorded for a container whose process could not be started.
const START_ERROR_EXIT_CODE: i32 = 128;
/// The fifo `runc start` opens to let the container's process run, and removes after.
const START_FIFO: &str = "exec.fifo";
/// How long a start that lost the race with a fast exit waits for the exit record.
const EXIT_RECORD_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

impl Pods {
    /// StartContainer: only a created container can start (FailedPrecondition otherwise).
    /// Its monitor holds its stdio and log and records its exit, so the container outlives a
    /// restart of the daemon. A failed start leaves the container Exited with reason
    /// `StartError`, as containerd does, so the kubelet sees why.
    #[tracing::instrument(skip_all, fields(container = %request.container_id))]
    pub(super) async fn start_container(
        &self,
        request: StartContainerRequest,
    ) -> Result<StartContainerResponse, Status> {
        let container = self.registry.container(&request.container_id).map_err(state_status)?;
        let _busy = self.busy.lock(container.id.clone()).await;
        let container = self.registry.container(&container.id).map_err(state_status)?;
        if container.status.state != ContainerState::Created {
            return Err(Status::failed_precondition(format!(
                "container {} is {:?}, only a created container can start",
                container.id, container.status.state
            )));
        }
        let runc = self.runc(&container)?;
        let config = MonitorConfig {
            id: container.id.clone(),
            bundle: container.bundle.clone(),
            runc_binary: runc.binary().to_path_buf(),
            runc_root: runc.root().to_path_buf(),
            state_dir: container.monitor_dir.clone(),
            log_path: container.log_path.clone(),
            log_max_line: self.log_max_line,
            stdin: container.config.stdin,
            tty: container.config.tty,
        };
        let started = async {
            let started = monitor::start(&self.monitor_binary, &config)
                .await
                .map_err(|e| e.to_string())?;
            // Taken before `runc start`, so a process that exits at once still finishes after
            // it started.
            let started_at = now_nanos();
            if let Err(error) = runc.start(&container.id).await {
                let message = error.to_string();
                // A process that exits at once can be gone, and its runc state deleted by the
                // monitor, before `runc start` cleans up its start fifo: runc then reports the
                // missing fifo although the container ran. The monitor's exit record tells.
                let ran = message.contains(START_FIFO)
                    && monitor::wait_for_exit(&container.monitor_dir, EXIT_RECORD_WAIT)
                        .await
                        .is_some();
                if !ran {
                    return Err(message);
                }
            }
            Ok::<_, String>((started, started_at))
        }
        .await;
        match started {
            Ok((started, started_at)) => {
                self.registry
                    .update_container(&container.id, |c| {
                        c.status.state = ContainerState::Running;
                        c.status.pid = started.container_pid;
                        c.status.started_at = started_at;
                    })
                    .map_err(state_status)?;
                Ok(StartContainerResponse {})
            }
            Err(message) => {
                let _ = runc.delete(&container.id, true).await;
                let _ = self.registry.update_container(&container.id, |c| {
                    c.status.exited(START_ERROR_EXIT_CODE, now_nanos(), false);
                    c.status.reason = "StartError".into();
                    c.status.message = message.clone();
                });
                Err(internal("starting the container", message))
            }
        }
    }
}
