//! UpdateContainerResources: new cgroup limits for a container.

use cri_api::v1::{UpdateContainerResourcesRequest, UpdateContainerResourcesResponse};

use super::{Pods, PodsError};
use crate::container::spec;

impl Pods {
    /// UpdateContainerResources: applied to a running container through `runc update` and
    /// kept in the record, so a container started later gets them too.
    #[tracing::instrument(skip_all, fields(container = %request.container_id))]
    pub async fn update_container_resources(
        &self,
        request: UpdateContainerResourcesRequest,
    ) -> Result<UpdateContainerResourcesResponse, PodsError> {
        let Some(resources) = request.linux else {
            return Ok(UpdateContainerResourcesResponse {});
        };
        let container = self.registry.container(&request.container_id)?;
        let _busy = self.busy.lock(container.id.clone()).await;
        let container = self.refresh_container(&container.id)?;
        if container.status.is_running() {
            let json = serde_json::to_vec(&spec::resources(&resources))
                .map_err(|e| PodsError::failed("encoding resources", e))?;
            self.runtime_of(&container)?
                .update(&container.id, &json)
                .await
                .map_err(|e| PodsError::failed("updating resources", e))?;
        }
        self.registry.update_container(&container.id, |c| {
            if let Some(linux) = c.config.linux.as_mut() {
                linux.resources = Some(resources);
            }
        })?;
        Ok(UpdateContainerResourcesResponse {})
    }
}
