//! Pod sandboxes: RunPodSandbox, StopPodSandbox, RemovePodSandbox, PodSandboxStatus,
//! ListPodSandbox and PortForward.

use cri_api::client::RuntimeServiceClient;
use cri_api::v1::{
    ListPodSandboxRequest, PodSandbox, PodSandboxConfig, PodSandboxFilter, PodSandboxStatusRequest,
    PodSandboxStatusResponse, PortForwardRequest, RemovePodSandboxRequest, RunPodSandboxRequest, StopPodSandboxRequest,
};

use crate::client::{Client, Deadline, Result};

impl Client {
    /// RunPodSandbox: creates and starts a pod sandbox and returns its id.
    ///
    /// `runtime_handler` names a RuntimeClass's handler; `""` is the runtime's default.
    pub async fn run_pod_sandbox(&self, config: PodSandboxConfig, runtime_handler: &str) -> Result<String> {
        let subject = config.metadata.as_ref().map(|m| m.name.clone()).unwrap_or_default();
        let request = RunPodSandboxRequest {
            config: Some(config),
            runtime_handler: runtime_handler.to_owned(),
        };
        self.call(
            "RunPodSandbox",
            &subject,
            Deadline::Default,
            request,
            RuntimeServiceClient::run_pod_sandbox,
        )
        .await
        .map(|response| response.pod_sandbox_id)
    }

    /// StopPodSandbox: stops the sandbox's processes (containers included) and releases its
    /// network. Idempotent: the CRI says it "must not return an error if all relevant
    /// resources have already been reclaimed" (api.proto, StopPodSandbox).
    pub async fn stop_pod_sandbox(&self, pod_sandbox_id: &str) -> Result<()> {
        let request = StopPodSandboxRequest {
            pod_sandbox_id: pod_sandbox_id.to_owned(),
        };
        self.call(
            "StopPodSandbox",
            pod_sandbox_id,
            Deadline::Default,
            request,
            RuntimeServiceClient::stop_pod_sandbox,
        )
        .await
        .map(drop)
    }

    /// RemovePodSandbox: removes the sandbox and its containers. Idempotent: it "must not
    /// return an error if the sandbox has already been removed" (api.proto).
    pub async fn remove_pod_sandbox(&self, pod_sandbox_id: &str) -> Result<()> {
        let request = RemovePodSandboxRequest {
            pod_sandbox_id: pod_sandbox_id.to_owned(),
        };
        self.call(
            "RemovePodSandbox",
            pod_sandbox_id,
            Deadline::Default,
            request,
            RuntimeServiceClient::remove_pod_sandbox,
        )
        .await
        .map(drop)
    }

    /// PodSandboxStatus: the sandbox's state, IPs and namespaces; with `verbose`,
    /// runtime-specific details in `info`. An unknown id is [`Error::NotFound`].
    ///
    /// [`Error::NotFound`]: crate::Error::NotFound
    pub async fn pod_sandbox_status(&self, pod_sandbox_id: &str, verbose: bool) -> Result<PodSandboxStatusResponse> {
        let request = PodSandboxStatusRequest {
            pod_sandbox_id: pod_sandbox_id.to_owned(),
            verbose,
        };
        self.call(
            "PodSandboxStatus",
            pod_sandbox_id,
            Deadline::Default,
            request,
            RuntimeServiceClient::pod_sandbox_status,
        )
        .await
    }

    /// ListPodSandbox: the sandboxes matching `filter` (all of them for `None`).
    pub async fn list_pod_sandbox(&self, filter: Option<PodSandboxFilter>) -> Result<Vec<PodSandbox>> {
        let request = ListPodSandboxRequest { filter };
        self.call(
            "ListPodSandbox",
            "",
            Deadline::Default,
            request,
            RuntimeServiceClient::list_pod_sandbox,
        )
        .await
        .map(|response| response.items)
    }

    /// PortForward: the URL of the runtime's streaming server that forwards to `ports` of
    /// the sandbox.
    pub async fn port_forward(&self, pod_sandbox_id: &str, ports: &[i32]) -> Result<String> {
        let request = PortForwardRequest {
            pod_sandbox_id: pod_sandbox_id.to_owned(),
            port: ports.to_vec(),
        };
        self.call(
            "PortForward",
            pod_sandbox_id,
            Deadline::Default,
            request,
            RuntimeServiceClient::port_forward,
        )
        .await
        .map(|response| response.url)
    }
}
