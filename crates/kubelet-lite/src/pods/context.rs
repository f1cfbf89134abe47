//! What every pod worker shares: the runtime, the apiserver client, the node, the status
//! manager.

use std::sync::Arc;

use crate::metrics::Metrics;
use crate::pods::admission::SysctlAllowlist;
use crate::pods::directory::PodSnapshot;
use crate::pods::known::KnownPods;
use crate::pods::pleg::Pleg;
use crate::pods::status_manager::StatusManager;
use crate::spec::NodeContext;

/// Shared by all pod workers.
#[derive(Clone)]
pub struct PodContext {
    /// The CRI runtime.
    pub runtime: cri_client::Client,
    /// The apiserver, unless standalone.
    pub client: Option<kube::Client>,
    /// The node, as the spec translation needs it.
    pub node: NodeContext,
    /// The Node object's UID (mirror pods name it as their owner), unless standalone.
    pub node_uid: Option<String>,
    /// The runtime's name (CRI Version `runtime_name`): the scheme of container IDs.
    pub runtime_name: String,
    /// Where statuses go.
    pub status: StatusManager,
    /// The pods with their latest status, for the kubelet API's `/pods`.
    pub pods: PodSnapshot,
    /// Where pod start latencies, CRI call durations and worker counts are recorded.
    pub metrics: Metrics,
    /// The sysctls pods may set (admission).
    pub sysctls: SysctlAllowlist,
    /// The pods the pod manager has a worker for, which housekeeping asks.
    pub known: KnownPods,
    /// What wakes a pod's worker when the runtime changes one of its containers.
    pub pleg: Arc<Pleg>,
}

impl std::fmt::Debug for PodContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodContext")
            .field("node", &self.node)
            .field("runtime_name", &self.runtime_name)
            .field("standalone", &self.client.is_none())
            .finish_non_exhaustive()
    }
}
