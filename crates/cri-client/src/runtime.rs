//! The runtime as a whole: Version, Status, UpdateRuntimeConfig, RuntimeConfig.

use cri_api::v1::{
    RuntimeConfig, RuntimeConfigRequest, RuntimeConfigResponse, StatusRequest, StatusResponse,
    UpdateRuntimeConfigRequest, VersionRequest, VersionResponse,
};

use cri_api::client::RuntimeServiceClient;

use crate::client::{Client, Deadline, Result};

/// The CRI API version this client speaks, sent in VersionRequest.
pub const CRI_API_VERSION: &str = "v1";

impl Client {
    /// Version: the runtime's name and version and the CRI API version it serves.
    pub async fn version(&self) -> Result<VersionResponse> {
        let request = VersionRequest {
            version: CRI_API_VERSION.to_owned(),
        };
        self.call("Version", "", Deadline::Default, request, RuntimeServiceClient::version)
            .await
    }

    /// Status: the runtime's conditions (`RuntimeReady`, `NetworkReady`), its handlers and
    /// features; with `verbose`, runtime-specific details in `info`.
    pub async fn status(&self, verbose: bool) -> Result<StatusResponse> {
        let request = StatusRequest { verbose };
        self.call("Status", "", Deadline::Default, request, RuntimeServiceClient::status)
            .await
    }

    /// UpdateRuntimeConfig: tells the runtime the node's configuration (its pod CIDR).
    pub async fn update_runtime_config(&self, config: RuntimeConfig) -> Result<()> {
        let request = UpdateRuntimeConfigRequest {
            runtime_config: Some(config),
        };
        self.call(
            "UpdateRuntimeConfig",
            "",
            Deadline::Default,
            request,
            RuntimeServiceClient::update_runtime_config,
        )
        .await
        .map(drop)
    }

    /// RuntimeConfig: the configuration the runtime asks the kubelet to follow (its cgroup
    /// driver).
    pub async fn runtime_config(&self) -> Result<RuntimeConfigResponse> {
        self.call(
            "RuntimeConfig",
            "",
            Deadline::Default,
            RuntimeConfigRequest {},
            RuntimeServiceClient::runtime_config,
        )
        .await
    }
}
