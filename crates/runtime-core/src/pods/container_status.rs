//! ContainerStatus: the CRI view of one container.

use std::collections::HashMap;

use cri_api::v1::{ContainerResources, ContainerStatus, ContainerStatusRequest, ContainerStatusResponse, ImageSpec};

use super::{Pods, PodsError};
use crate::state::container::ContainerRecord;

impl Pods {
    /// ContainerStatus: state, times, exit code and reason, image, mounts, log path, labels
    /// and annotations; NotFound for an unknown id. Verbose adds the pid and bundle as JSON
    /// under `info`.
    pub fn container_status(&self, request: ContainerStatusRequest) -> Result<ContainerStatusResponse, PodsError> {
        let container = self.registry.container(&request.container_id)?;
        let container = self.refresh_container(&container.id)?;
        let mut info = HashMap::new();
        if request.verbose {
            let verbose = serde_json::json!({
                "pid": container.status.pid,
                "sandboxID": container.sandbox_id,
                "bundle": container.bundle,
                "monitorDir": container.monitor_dir,
            });
            info.insert("info".to_string(), verbose.to_string());
        }
        Ok(ContainerStatusResponse {
            status: Some(to_cri(&container)),
            info,
        })
    }
}

/// The CRI status of a container record.
pub(super) fn to_cri(container: &ContainerRecord) -> ContainerStatus {
    let config = &container.config;
    ContainerStatus {
        id: container.id.clone(),
        metadata: config.metadata.clone(),
        state: container.status.state.to_cri() as i32,
        created_at: container.created_at,
        started_at: container.status.started_at,
        finished_at: container.status.finished_at,
        exit_code: container.status.exit_code,
        image: Some(ImageSpec {
            image: container.image_name.clone(),
            ..Default::default()
        }),
        image_ref: container.image_id.clone(),
        image_id: container.image_id.clone(),
        reason: container.status.reason.clone(),
        message: container.status.message.clone(),
        labels: config.labels.clone(),
        annotations: config.annotations.clone(),
        mounts: config.mounts.clone(),
        log_path: container
            .log_path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        // What CreateContainer or the last UpdateContainerResources applied.
        resources: config
            .linux
            .as_ref()
            .and_then(|linux| linux.resources.clone())
            .map(|linux| ContainerResources {
                linux: Some(linux),
                windows: None,
            }),
        ..Default::default()
    }
}
