//! RemovePodSandbox: remove the pod's containers and everything the sandbox held.

use cri_api::v1::{RemovePodSandboxRequest, RemovePodSandboxResponse, StopPodSandboxRequest};

use super::{Pods, PodsError};
use crate::state::StateError;

impl Pods {
    /// RemovePodSandbox: stops the sandbox if needed, removes its containers, its files and
    /// its record.
    ///
    /// api.proto: "This call is idempotent, and must not return an error if the sandbox has
    /// already been removed."
    #[tracing::instrument(skip_all, fields(sandbox = %request.pod_sandbox_id))]
    pub async fn remove_pod_sandbox(
        &self,
        request: RemovePodSandboxRequest,
    ) -> Result<RemovePodSandboxResponse, PodsError> {
        let id = match self.registry.sandbox(&request.pod_sandbox_id) {
            Ok(sandbox) => sandbox.id,
            Err(StateError::NotFound { .. }) => return Ok(RemovePodSandboxResponse {}),
            Err(e) => return Err(e.into()),
        };
        self.stop_pod_sandbox(StopPodSandboxRequest {
            pod_sandbox_id: id.clone(),
        })
        .await?;
        let _busy = self.busy.lock(id.clone()).await;
        for container in self.registry.containers_of(&id) {
            self.remove_container_files(&container.id).await?;
        }
        crash_point::hit("sandbox_remove.after_containers");
        let sandbox = self.registry.sandbox(&id)?;
        match std::fs::remove_dir_all(&sandbox.dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(PodsError::failed("removing the sandbox directory", e));
            }
            _ => {}
        }
        crash_point::hit("sandbox_remove.after_dir");
        self.registry.remove_sandbox(&id)?;
        crash_point::hit("sandbox_remove.after_record");
        Ok(RemovePodSandboxResponse {})
    }
}
