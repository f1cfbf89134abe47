//! ListPodSandbox: the sandboxes, narrowed by a filter.

use cri_api::v1::{ListPodSandboxRequest, ListPodSandboxResponse, PodSandbox};

use super::sandbox_status::cri_state;
use super::{Pods, labels_match};

impl Pods {
    /// ListPodSandbox, filtered by id (whole or prefix), state and label selector.
    pub fn list_pod_sandbox(&self, request: ListPodSandboxRequest) -> ListPodSandboxResponse {
        let filter = request.filter.unwrap_or_default();
        let items = self
            .registry
            .sandboxes()
            .into_iter()
            .filter(|s| filter.id.is_empty() || s.id.starts_with(&filter.id))
            .filter(|s| {
                filter
                    .state
                    .as_ref()
                    .is_none_or(|wanted| cri_state(s.status.state) as i32 == wanted.state)
            })
            .filter(|s| labels_match(&filter.label_selector, &s.config.labels))
            .map(|s| PodSandbox {
                id: s.id.clone(),
                metadata: s.config.metadata.clone(),
                state: cri_state(s.status.state) as i32,
                created_at: s.created_at,
                labels: s.config.labels.clone(),
                annotations: s.config.annotations.clone(),
                runtime_handler: s.runtime_handler.clone(),
            })
            .collect();
        ListPodSandboxResponse { items }
    }
}
