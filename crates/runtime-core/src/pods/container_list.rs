//! ListContainers: the containers, narrowed by a filter.

use cri_api::v1::{Container, ImageSpec, ListContainersRequest, ListContainersResponse};

use super::{Pods, PodsError, labels_match};

impl Pods {
    /// ListContainers, filtered by id (whole or prefix), state, sandbox id (whole or prefix)
    /// and label selector. States are brought up to date with the monitors first.
    pub fn list_containers(&self, request: ListContainersRequest) -> Result<ListContainersResponse, PodsError> {
        let filter = request.filter.unwrap_or_default();
        let mut containers = Vec::new();
        for container in self.registry.containers() {
            if !filter.id.is_empty() && !container.id.starts_with(&filter.id) {
                continue;
            }
            if !filter.pod_sandbox_id.is_empty() && !container.sandbox_id.starts_with(&filter.pod_sandbox_id) {
                continue;
            }
            // Labels never change: only the containers they select are brought up to date
            // (a kubelet lists one pod's containers at a time).
            if !labels_match(&filter.label_selector, &container.config.labels) {
                continue;
            }
            let container = self.refresh_container(&container.id)?;
            let state = container.status.state.to_cri() as i32;
            if filter.state.as_ref().is_some_and(|wanted| wanted.state != state) {
                continue;
            }
            containers.push(Container {
                id: container.id.clone(),
                pod_sandbox_id: container.sandbox_id.clone(),
                metadata: container.config.metadata.clone(),
                image: Some(ImageSpec {
                    image: container.image_name.clone(),
                    ..Default::default()
                }),
                image_ref: container.image_id.clone(),
                image_id: container.image_id.clone(),
                state,
                created_at: container.created_at,
                labels: container.config.labels.clone(),
                annotations: container.config.annotations.clone(),
            });
        }
        Ok(ListContainersResponse { containers })
    }
}
