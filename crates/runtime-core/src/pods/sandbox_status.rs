//! PodSandboxStatus: the CRI view of one sandbox.

use std::collections::HashMap;

use cri_api::v1::{
    LinuxPodSandboxStatus, Namespace, PodIp, PodSandboxNetworkStatus, PodSandboxState, PodSandboxStatus,
    PodSandboxStatusRequest, PodSandboxStatusResponse,
};

use super::{Pods, PodsError};
use crate::state::sandbox::{SandboxRecord, SandboxState};

impl Pods {
    /// PodSandboxStatus: state, creation time, network, namespace options, labels and
    /// annotations; NotFound for an unknown id. Verbose adds the record as JSON under `info`.
    pub fn pod_sandbox_status(&self, request: PodSandboxStatusRequest) -> Result<PodSandboxStatusResponse, PodsError> {
        let sandbox = self.registry.sandbox(&request.pod_sandbox_id)?;
        let mut info = HashMap::new();
        if request.verbose {
            let verbose = serde_json::json!({
                "dir": sandbox.dir,
                "netns": sandbox.netns,
                "ipcNamespace": sandbox.ipc_ns,
                "utsNamespace": sandbox.uts_ns,
                "cgroupParent": sandbox.cgroup_parent,
                "networkAttached": sandbox.status.network_attached,
            });
            info.insert("info".to_string(), verbose.to_string());
        }
        Ok(PodSandboxStatusResponse {
            status: Some(to_cri(&sandbox)),
            info,
            ..Default::default()
        })
    }
}

/// The CRI state of a sandbox.
pub(super) fn cri_state(state: SandboxState) -> PodSandboxState {
    match state {
        SandboxState::Ready => PodSandboxState::SandboxReady,
        SandboxState::NotReady => PodSandboxState::SandboxNotready,
    }
}

pub(super) fn to_cri(sandbox: &SandboxRecord) -> PodSandboxStatus {
    let config = &sandbox.config;
    let namespace_options = config.namespace_options().cloned();
    PodSandboxStatus {
        id: sandbox.id.clone(),
        metadata: config.metadata.clone(),
        state: cri_state(sandbox.status.state) as i32,
        created_at: sandbox.created_at,
        network: Some(PodSandboxNetworkStatus {
            ip: sandbox.status.ip.clone().unwrap_or_default(),
            additional_ips: sandbox
                .status
                .additional_ips
                .iter()
                .map(|ip| PodIp { ip: ip.clone() })
                .collect(),
        }),
        linux: Some(LinuxPodSandboxStatus {
            namespaces: Some(Namespace {
                options: Some(namespace_options.unwrap_or_default()),
            }),
        }),
        labels: config.labels.clone(),
        annotations: config.annotations.clone(),
        runtime_handler: sandbox.runtime_handler.clone(),
    }
}
