//! StartContainer: the OCI runtime creates the container (runc, under a monitor process),
//! then starts it.

use cri_api::v1::{ContainerEventType, StartContainerRequest, StartContainerResponse};

use super::{Pods, PodsError, now_nanos};
use crate::oci::Creation;

impl Pods {
    /// StartContainer: only a created container can start (FailedPrecondition otherwise).
    /// Its monitor holds its stdio and log and records its exit, so the container outlives a
    /// restart of the daemon. A failed start leaves the container Exited with reason
    /// `StartError`, as containerd does, so the kubelet sees why.
    #[tracing::instrument(skip_all, fields(container = %request.container_id))]
    pub async fn start_container(&self, request: StartContainerRequest) -> Result<StartContainerResponse, PodsError> {
        let container = self.registry.container(&request.container_id)?;
        let _busy = self.busy.lock(container.id.clone()).await;
        let container = self.registry.container(&container.id)?;
        if !container.status.can_start() {
            return Err(PodsError::wrong_state(format!(
                "container {} is {:?}, only a created container can start",
                container.id, container.status.state
            )));
        }
        let runtime = self.runtime_of(&container)?;
        let creation = Creation {
            id: container.id.clone(),
            bundle: container.bundle.clone(),
            monitor_dir: container.monitor_dir.clone(),
            log_path: container.log_path.clone(),
            log_max_line: self.log_max_line,
            stdin: container.config.stdin,
            tty: container.config.tty,
        };
        let started = async {
            let pid = runtime.create(&creation).await.map_err(|e| e.to_string())?;
            crash_point::hit("container_start.after_create");
            // Taken before `runc start`, so a process that exits at once still finishes after
            // it started.
            let started_at = now_nanos();
            runtime.start(&container.id).await.map_err(|e| e.to_string())?;
            crash_point::hit("container_start.after_start");
            Ok::<_, String>((pid, started_at))
        }
        .await;
        match started {
            Ok((pid, started_at)) => {
                let started = self.registry.update_container(&container.id, |c| {
                    c.status.started(pid, started_at);
                })?;
                self.announce(ContainerEventType::ContainerStartedEvent, &started);
                self.watch_exit(&started);
                Ok(StartContainerResponse {})
            }
            Err(message) => {
                let _ = runtime.delete(&container.id, true).await;
                if let Ok(failed) = self.registry.update_container(&container.id, |c| {
                    c.status.start_failed(message.clone(), now_nanos());
                }) {
                    self.announce(ContainerEventType::ContainerStoppedEvent, &failed);
                }
                Err(PodsError::failed("starting the container", message))
            }
        }
    }
}
