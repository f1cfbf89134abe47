//! Version, Status and RuntimeConfig: what the runtime is and whether it can run pods.

use super::RuntimeServiceImpl;
use cri_api::v1::{
    CgroupDriver, LinuxRuntimeConfiguration, RuntimeCondition, RuntimeConfigResponse, RuntimeStatus, StatusRequest,
    StatusResponse, VersionRequest, VersionResponse,
};

/// The runtime's name in `Version`.
pub const RUNTIME_NAME: &str = "runtime-core";
/// The CRI version served.
pub const RUNTIME_API_VERSION: &str = "v1";
/// The kubelet-facing version of the CRI protocol (`VersionResponse.version`).
const KUBELET_API_VERSION: &str = "0.1.0";
/// The condition the kubelet needs before it runs any pod.
const RUNTIME_READY: &str = "RuntimeReady";
/// The condition the kubelet needs before it runs pods with their own network.
const NETWORK_READY: &str = "NetworkReady";

/// Version: the runtime's name and version and the CRI version.
pub(super) fn version(_: VersionRequest) -> VersionResponse {
    VersionResponse {
        version: KUBELET_API_VERSION.into(),
        runtime_name: RUNTIME_NAME.into(),
        runtime_version: env!("CARGO_PKG_VERSION").into(),
        runtime_api_version: RUNTIME_API_VERSION.into(),
    }
}

/// RuntimeConfig: this runtime manages cgroups through cgroupfs, not systemd.
pub(super) fn runtime_config() -> RuntimeConfigResponse {
    RuntimeConfigResponse {
        linux: Some(LinuxRuntimeConfiguration {
            cgroup_driver: CgroupDriver::Cgroupfs as i32,
        }),
    }
}

impl RuntimeServiceImpl {
    /// Status: RuntimeReady always (the daemon answers), NetworkReady when a CNI network is
    /// configured and its plugins are present.
    pub(super) fn runtime_status(&self, _: StatusRequest) -> StatusResponse {
        let network = match self.pods.network_ready() {
            Ok(()) => RuntimeCondition {
                r#type: NETWORK_READY.into(),
                status: true,
                ..Default::default()
            },
            Err(reason) => RuntimeCondition {
                r#type: NETWORK_READY.into(),
                status: false,
                reason: "NetworkPluginNotReady".into(),
                message: reason,
            },
        };
        let runtime = RuntimeCondition {
            r#type: RUNTIME_READY.into(),
            status: true,
            ..Default::default()
        };
        StatusResponse {
            status: Some(RuntimeStatus {
                conditions: vec![runtime, network],
            }),
            ..Default::default()
        }
    }
}
