//! A pod sandbox's record.

use std::path::PathBuf;

use cri_api::v1::PodSandboxConfig;
use serde::{Deserialize, Serialize};

/// Whether the sandbox's namespaces and network are up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SandboxState {
    /// Namespaces pinned and the network attached: containers may run.
    Ready,
    /// Stopped: its containers are stopped and its network is released.
    NotReady,
}

/// Everything the runtime keeps about one sandbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SandboxRecord {
    /// The sandbox id.
    pub id: String,
    /// The reserved name: `<name>_<namespace>_<uid>_<attempt>`.
    pub name: String,
    /// The config the kubelet sent.
    #[serde(with = "crate::store::proto")]
    pub config: PodSandboxConfig,
    /// The runtime handler asked for (empty for the default).
    pub runtime_handler: String,
    /// Creation time, nanoseconds since the epoch.
    pub created_at: i64,
    /// The sandbox's own directory: namespace files, resolv.conf, hostname, hosts.
    pub dir: PathBuf,
    /// The pinned network namespace; `None` for a host-network pod (or before pinning).
    pub netns: Option<PathBuf>,
    /// The pinned IPC namespace (`None` before pinning); containers join it unless the pod
    /// asks for the host's.
    pub ipc_ns: Option<PathBuf>,
    /// The pinned UTS namespace (`None` before pinning); containers join it unless the pod
    /// uses the host network.
    pub uts_ns: Option<PathBuf>,
    /// The pod's own user namespace, owning the others; `None`: the host's. Its ranges are
    /// the config's `userns_options`.
    #[serde(default)]
    pub user_ns: Option<PathBuf>,
    /// The host pid of the init of the pod's shared PID namespace (see
    /// [`crate::sandbox::pid_holder`]); `None` unless the pod's PID mode is POD.
    #[serde(default)]
    pub pid_holder: Option<u32>,
    /// The cgroup parent of the pod's containers.
    pub cgroup_parent: String,
    /// What changes over the sandbox's life.
    pub status: SandboxStatus,
}

/// The mutable part of a sandbox record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxStatus {
    /// Ready or not.
    pub state: SandboxState,
    /// The pod's primary IP, if its network is attached.
    pub ip: Option<String>,
    /// Further IPs (dual stack).
    pub additional_ips: Vec<String>,
    /// Whether the CNI network is attached (so a stop must detach it).
    pub network_attached: bool,
}

impl SandboxRecord {
    /// The record of a sandbox about to be set up (NotReady, nothing pinned or attached):
    /// `id`, made from `config` for `runtime_handler`, with its files in `dir`.
    pub fn new(id: String, config: PodSandboxConfig, runtime_handler: String, dir: PathBuf, created_at: i64) -> Self {
        Self {
            name: Self::name_of(&config),
            cgroup_parent: config
                .linux
                .as_ref()
                .map(|l| l.cgroup_parent.clone())
                .unwrap_or_default(),
            id,
            config,
            runtime_handler,
            created_at,
            dir,
            netns: None,
            ipc_ns: None,
            uts_ns: None,
            user_ns: None,
            pid_holder: None,
            status: SandboxStatus {
                state: SandboxState::NotReady,
                ip: None,
                additional_ips: Vec::new(),
                network_attached: false,
            },
        }
    }

    /// The reserved name of a sandbox with this config.
    pub fn name_of(config: &PodSandboxConfig) -> String {
        let metadata = config.metadata.clone().unwrap_or_default();
        format!(
            "{}_{}_{}_{}",
            metadata.name, metadata.namespace, metadata.uid, metadata.attempt
        )
    }
}
