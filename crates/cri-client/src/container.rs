//! Containers: CreateContainer, StartContainer, StopContainer, RemoveContainer,
//! ListContainers, ContainerStatus, UpdateContainerResources, ReopenContainerLog and
//! CheckpointContainer.

use std::time::Duration;

use cri_api::client::RuntimeServiceClient;
use cri_api::v1::{
    CheckpointContainerRequest, Container, ContainerConfig, ContainerFilter, ContainerStatusRequest,
    ContainerStatusResponse, CreateContainerRequest, ListContainersRequest, PodSandboxConfig, RemoveContainerRequest,
    ReopenContainerLogRequest, StartContainerRequest, StopContainerRequest, UpdateContainerResourcesRequest,
};

use crate::client::{Client, Deadline, Result};

impl Client {
    /// CreateContainer: creates a container in the sandbox `pod_sandbox_id` and returns its
    /// id. `sandbox_config` is the config the sandbox was run with.
    pub async fn create_container(
        &self,
        pod_sandbox_id: &str,
        config: ContainerConfig,
        sandbox_config: PodSandboxConfig,
    ) -> Result<String> {
        let request = CreateContainerRequest {
            pod_sandbox_id: pod_sandbox_id.to_owned(),
            config: Some(config),
            sandbox_config: Some(sandbox_config),
        };
        self.call(
            "CreateContainer",
            pod_sandbox_id,
            Deadline::Default,
            request,
            RuntimeServiceClient::create_container,
        )
        .await
        .map(|response| response.container_id)
    }

    /// StartContainer: starts a created container.
    pub async fn start_container(&self, container_id: &str) -> Result<()> {
        let request = StartContainerRequest {
            container_id: container_id.to_owned(),
        };
        self.call(
            "StartContainer",
            container_id,
            Deadline::Default,
            request,
            RuntimeServiceClient::start_container,
        )
        .await
        .map(drop)
    }

    /// StopContainer: signals the container to stop and kills it after `grace` (whole
    /// seconds; 0 kills at once). The call's deadline is `grace` plus the call timeout.
    /// Idempotent: it "must not return an error if the container has already been stopped"
    /// (api.proto).
    pub async fn stop_container(&self, container_id: &str, grace: Duration) -> Result<()> {
        let request = StopContainerRequest {
            container_id: container_id.to_owned(),
            timeout: seconds(grace),
        };
        let deadline = Deadline::AfterDefault(grace);
        self.call(
            "StopContainer",
            container_id,
            deadline,
            request,
            RuntimeServiceClient::stop_container,
        )
        .await
        .map(drop)
    }

    /// RemoveContainer: removes the container, killing it first if it runs. Idempotent: it
    /// "must not return an error if the container has already been removed" (api.proto).
    pub async fn remove_container(&self, container_id: &str) -> Result<()> {
        let request = RemoveContainerRequest {
            container_id: container_id.to_owned(),
        };
        self.call(
            "RemoveContainer",
            container_id,
            Deadline::Default,
            request,
            RuntimeServiceClient::remove_container,
        )
        .await
        .map(drop)
    }

    /// ListContainers: the containers matching `filter` (all of them for `None`).
    pub async fn list_containers(&self, filter: Option<ContainerFilter>) -> Result<Vec<Container>> {
        let request = ListContainersRequest { filter };
        self.call(
            "ListContainers",
            "",
            Deadline::Default,
            request,
            RuntimeServiceClient::list_containers,
        )
        .await
        .map(|response| response.containers)
    }

    /// ContainerStatus: the container's state, exit code, times and log path; with
    /// `verbose`, runtime-specific details in `info`. An unknown id is
    /// [`Error::NotFound`](crate::Error::NotFound).
    pub async fn container_status(&self, container_id: &str, verbose: bool) -> Result<ContainerStatusResponse> {
        let request = ContainerStatusRequest {
            container_id: container_id.to_owned(),
            verbose,
        };
        self.call(
            "ContainerStatus",
            container_id,
            Deadline::Default,
            request,
            RuntimeServiceClient::container_status,
        )
        .await
    }

    /// UpdateContainerResources: changes a container's cgroup limits.
    pub async fn update_container_resources(&self, request: UpdateContainerResourcesRequest) -> Result<()> {
        let subject = request.container_id.clone();
        self.call(
            "UpdateContainerResources",
            &subject,
            Deadline::Default,
            request,
            RuntimeServiceClient::update_container_resources,
        )
        .await
        .map(drop)
    }

    /// ReopenContainerLog: asks the runtime to reopen the container's log file, after the
    /// caller rotated it.
    pub async fn reopen_container_log(&self, container_id: &str) -> Result<()> {
        let request = ReopenContainerLogRequest {
            container_id: container_id.to_owned(),
        };
        self.call(
            "ReopenContainerLog",
            container_id,
            Deadline::Default,
            request,
            RuntimeServiceClient::reopen_container_log,
        )
        .await
        .map(drop)
    }

    /// CheckpointContainer: checkpoints the container to `location` (a path on the node),
    /// within `timeout` (whole seconds; 0 leaves it to the runtime). The call's deadline is
    /// `timeout` plus the call timeout.
    pub async fn checkpoint_container(&self, container_id: &str, location: &str, timeout: Duration) -> Result<()> {
        let request = CheckpointContainerRequest {
            container_id: container_id.to_owned(),
            location: location.to_owned(),
            timeout: seconds(timeout),
        };
        let deadline = Deadline::AfterDefault(timeout);
        self.call(
            "CheckpointContainer",
            container_id,
            deadline,
            request,
            RuntimeServiceClient::checkpoint_container,
        )
        .await
        .map(drop)
    }
}

/// A duration in the whole seconds the CRI counts in, rounded up so that a non-zero
/// duration never becomes 0 (which means "none" or "at once" to the runtime).
pub(crate) fn seconds(duration: Duration) -> i64 {
    let whole = duration
        .as_secs()
        .saturating_add(u64::from(duration.subsec_nanos() > 0));
    i64::try_from(whole).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_become_whole_seconds_rounded_up() {
        let cases = [
            ("zero stays zero", Duration::ZERO, 0),
            ("whole seconds are kept", Duration::from_secs(30), 30),
            ("a fraction rounds up", Duration::from_millis(1500), 2),
            (
                "less than a second is one second, not none",
                Duration::from_millis(1),
                1,
            ),
            ("huge durations saturate", Duration::MAX, i64::MAX),
        ];
        for (desc, duration, want) in cases {
            assert_eq!(seconds(duration), want, "{desc}");
        }
    }
}
