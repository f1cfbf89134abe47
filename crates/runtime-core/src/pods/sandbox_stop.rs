//! StopPodSandbox: stop the pod's containers and release its network and namespaces.

use std::time::Duration;

use cri_api::v1::{StopPodSandboxRequest, StopPodSandboxResponse};

use super::sandbox_run::attachment;
use super::{Pods, PodsError};
use crate::sandbox::namespaces::PinnedNamespaces;
use crate::sandbox::pid_holder;
use crate::state::StateError;
use crate::state::sandbox::SandboxState;

impl Pods {
    /// StopPodSandbox: forcibly stops every container of the pod, detaches its network (CNI
    /// DEL frees the IP) and releases its namespaces. The record stays, NotReady, until
    /// RemovePodSandbox.
    ///
    /// api.proto: "This call is idempotent, and must not return an error if all relevant
    /// resources have already been reclaimed": a stopped sandbox, and one that no longer
    /// exists, stop successfully (as CRI-O does).
    #[tracing::instrument(skip_all, fields(sandbox = %request.pod_sandbox_id))]
    pub async fn stop_pod_sandbox(&self, request: StopPodSandboxRequest) -> Result<StopPodSandboxResponse, PodsError> {
        let id = match self.registry.sandbox(&request.pod_sandbox_id) {
            Ok(sandbox) => sandbox.id,
            Err(StateError::NotFound { .. }) => return Ok(StopPodSandboxResponse {}),
            Err(e) => return Err(e.into()),
        };
        let _busy = self.busy.lock(id.clone()).await;
        for container in self.registry.containers_of(&id) {
            self.stop_container_process(&container.id, Duration::ZERO).await?;
        }
        crash_point::hit("sandbox_stop.after_containers");
        self.tear_down_sandbox(&id).await;
        let sandbox = self.registry.sandbox(&id)?;
        if sandbox.status.network_attached {
            return Err(PodsError::failed("detaching the pod network", "CNI DEL failed; retry"));
        }
        Ok(StopPodSandboxResponse {})
    }

    /// Detaches the network, kills the init of a shared PID namespace (and so what is left
    /// in it) and releases the namespaces of sandbox `id`, as far as it can:
    /// each step runs even if an earlier one failed, and the record says what is left
    /// (`network_attached`) so a later stop retries it.
    pub(super) async fn tear_down_sandbox(&self, id: &str) {
        let Ok(sandbox) = self.registry.sandbox(id) else {
            return;
        };
        // DEL is idempotent: it runs whenever the pod had a network namespace, in case the
        // daemon died between ADD and recording it.
        if let Some(netns) = &sandbox.netns {
            match self.network.teardown(&attachment(id, netns, &sandbox.config)).await {
                Ok(()) => {
                    crash_point::hit("sandbox_stop.after_network");
                    let _ = self.registry.update_sandbox(id, |r| r.status.network_attached = false);
                }
                Err(error) => tracing::warn!(%error, "CNI DEL failed"),
            }
        }
        if let Some(pid) = sandbox.pid_holder {
            match pid_holder::stop(pid, &sandbox.dir).await {
                Ok(()) => {
                    let _ = self.registry.update_sandbox(id, |r| r.pid_holder = None);
                }
                Err(error) => tracing::warn!(%error, "stopping the pod's PID namespace failed"),
            }
        }
        // A holder started but not recorded before a crash is found by its directory.
        for pid in pid_holder::holders_of(&sandbox.dir) {
            if let Err(error) = pid_holder::stop(pid, &sandbox.dir).await {
                tracing::warn!(%error, pid, "stopping an unrecorded PID namespace holder failed");
            }
        }
        // Every file pin may have made, whatever the record got to say before a failure.
        if let Err(error) = self.namespaces.unpin(&PinnedNamespaces::all_in(&sandbox.dir)).await {
            tracing::warn!(%error, "releasing the pod's namespaces failed");
        }
        crash_point::hit("sandbox_stop.before_not_ready");
        let _ = self
            .registry
            .update_sandbox(id, |r| r.status.state = SandboxState::NotReady);
    }
}
