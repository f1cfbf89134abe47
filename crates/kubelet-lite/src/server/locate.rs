//! Finding a request's pod and container in the CRI runtime, by the labels the node agent
//! puts on every sandbox and container (`io.kubernetes.pod.namespace`, `.name`, `.uid`,
//! `io.kubernetes.container.name`, see [`crate::spec::labels`]). Asking the runtime
//! rather than the agent's memory works for any CRI runtime and for pods adopted after a
//! restart.

use std::collections::HashMap;
use std::path::PathBuf;

use cri_client::v1::{Container, ContainerFilter, ContainerState, PodSandbox, PodSandboxFilter, PodSandboxState};

use super::error::ApiError;
use super::routes::{ContainerRef, PodRef};
use crate::spec::labels::{CONTAINER_NAME, POD_NAME, POD_NAMESPACE, POD_UID};

/// The sandbox of `pod`: the ready one if any, else the newest.
pub(crate) async fn sandbox(cri: &cri_client::Client, pod: &PodRef) -> Result<PodSandbox, ApiError> {
    let mut labels = HashMap::from([
        (POD_NAMESPACE.to_owned(), pod.namespace.clone()),
        (POD_NAME.to_owned(), pod.name.clone()),
    ]);
    if let Some(uid) = &pod.uid {
        labels.insert(POD_UID.to_owned(), uid.clone());
    }
    let filter = PodSandboxFilter {
        label_selector: labels,
        ..PodSandboxFilter::default()
    };
    let sandboxes = cri
        .list_pod_sandbox(Some(filter))
        .await
        .map_err(|err| ApiError::from_cri("listing sandboxes", &err))?;
    sandboxes
        .into_iter()
        .max_by_key(|s| (s.state == PodSandboxState::SandboxReady as i32, s.created_at))
        .ok_or_else(|| ApiError::not_found(format!("pod {}/{} not found", pod.namespace, pod.name)))
}

/// Every instance of `container` (across the pod's sandboxes), newest first, and the
/// pod's sandbox.
async fn instances(
    cri: &cri_client::Client,
    container: &ContainerRef,
) -> Result<(PodSandbox, Vec<Container>), ApiError> {
    let sandbox = sandbox(cri, &container.pod).await?;
    let uid = sandbox.labels.get(POD_UID).cloned().unwrap_or_default();
    let filter = ContainerFilter {
        label_selector: HashMap::from([
            (POD_UID.to_owned(), uid),
            (CONTAINER_NAME.to_owned(), container.container.clone()),
        ]),
        ..ContainerFilter::default()
    };
    let mut containers = cri
        .list_containers(Some(filter))
        .await
        .map_err(|err| ApiError::from_cri("listing containers", &err))?;
    containers.sort_by_key(|c| std::cmp::Reverse(c.created_at));
    Ok((sandbox, containers))
}

/// The id of the running instance of `container`.
pub(crate) async fn running_container(cri: &cri_client::Client, container: &ContainerRef) -> Result<String, ApiError> {
    let (_, instances) = instances(cri, container).await?;
    instances
        .into_iter()
        .find(|c| c.state == ContainerState::ContainerRunning as i32)
        .map(|c| c.id)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "container {:?} of pod {}/{} is not running",
                container.container, container.pod.namespace, container.pod.name
            ))
        })
}

/// The log file of `container`'s current instance, or (`previous`) of the one before it,
/// with the instance's id.
pub(crate) async fn log_file(
    cri: &cri_client::Client,
    container: &ContainerRef,
    previous: bool,
) -> Result<(String, PathBuf), ApiError> {
    let (_, instances) = instances(cri, container).await?;
    let pod = format!("{}/{}", container.pod.namespace, container.pod.name);
    let instance = if previous {
        instances.get(1).ok_or_else(|| {
            ApiError::bad_request(format!(
                "previous terminated container {:?} in pod {pod} not found",
                container.container
            ))
        })?
    } else {
        instances
            .first()
            .ok_or_else(|| ApiError::not_found(format!("container {:?} in pod {pod} not found", container.container)))?
    };
    let status = cri
        .container_status(&instance.id, false)
        .await
        .map_err(|err| ApiError::from_cri("container status", &err))?;
    let path = status.status.map(|s| s.log_path).unwrap_or_default();
    if path.is_empty() {
        return Err(ApiError::not_found(format!(
            "container {:?} in pod {pod} has no log file",
            container.container
        )));
    }
    Ok((instance.id.clone(), PathBuf::from(path)))
}

/// Whether container `id` is running (false if the runtime cannot say).
pub(crate) async fn is_running(cri: &cri_client::Client, id: &str) -> bool {
    match cri.container_status(id, false).await {
        Ok(response) => response
            .status
            .is_some_and(|s| s.state == ContainerState::ContainerRunning as i32),
        Err(_) => false,
    }
}
