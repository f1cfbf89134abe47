//! What the container verbs share: a container's record brought up to date with its
//! monitor, and the record of a container that must be running.

use cri_api::v1::ContainerEventType;

use super::{Pods, PodsError};
use crate::monitor;
use crate::state::container::ContainerRecord;

impl Pods {
    /// Writes a monitor's exit record into the status of a running container, and
    /// announces the exit; a container recorded as not running already is left as it is
    /// (two callers may find the same exit).
    pub(super) fn record_exit(&self, container: &ContainerRecord, exit: monitor::ExitRecord) -> Result<(), PodsError> {
        let mut recorded = false;
        let container = self.registry.update_container(&container.id, |c| {
            if c.status.is_running() {
                c.status.exited(exit.exit_code, exit.finished_at_nanos, exit.oom_killed);
                recorded = true;
            }
        })?;
        if recorded {
            self.announce(ContainerEventType::ContainerStoppedEvent, &container);
        }
        Ok(())
    }

    /// The record of a container that must be running (FailedPrecondition otherwise),
    /// looked up by id or unique prefix.
    pub(super) fn running_container(&self, id: &str) -> Result<ContainerRecord, PodsError> {
        let container = self.registry.container(id)?;
        let container = self.refresh_container(&container.id)?;
        if !container.status.is_running() {
            return Err(PodsError::wrong_state(format!(
                "container {} is not running",
                container.id
            )));
        }
        Ok(container)
    }

    /// The container's record, brought up to date with what its monitor knows: a running
    /// container whose monitor recorded an exit is Exited; one whose monitor vanished
    /// without a record is Unknown.
    pub(super) fn refresh_container(&self, id: &str) -> Result<ContainerRecord, PodsError> {
        let container = self.registry.container(id)?;
        if !container.status.is_running() {
            return Ok(container);
        }
        if let Some(exit) = monitor::exit_status(&container.monitor_dir) {
            self.record_exit(&container, exit)?;
        } else if !monitor::monitor_running(&container.monitor_dir) {
            // The monitor may have written the record just before it exited.
            match monitor::exit_status(&container.monitor_dir) {
                Some(exit) => self.record_exit(&container, exit)?,
                None => {
                    self.registry.update_container(id, |c| {
                        c.status
                            .lost("the container's monitor ended without recording an exit".into())
                    })?;
                }
            }
        }
        self.registry.container(id).map_err(PodsError::from)
    }
}
