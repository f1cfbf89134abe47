//! PodSandboxStats and ListPodSandboxStats: a pod's CPU, memory and process count, the
//! counters of its network interfaces, and the stats of its containers.
//!
//! A pod has no process of its own (its namespaces are pinned by bind mounts), so its
//! usage is its containers': read from the pod's cgroup when the kubelet gave one (it
//! holds every container of the pod), summed over its running containers otherwise (the
//! default parent is shared by all pods).

use cri_api::v1::{
    LinuxPodSandboxStats, ListPodSandboxStatsRequest, ListPodSandboxStatsResponse, NetworkInterfaceUsage, NetworkUsage,
    PodSandboxAttributes, PodSandboxStats, PodSandboxStatsRequest, PodSandboxStatsResponse, ProcessUsage, UInt64Value,
};

use super::container_stats::{ContainerSample, memory_usage};
use super::{Pods, PodsError, labels_match, now_nanos};
use crate::state::sandbox::{SandboxRecord, SandboxState};
use crate::stats::cgroup::{CgroupStats, CpuTime, Memory};
use crate::stats::network::{self, DEFAULT_INTERFACE, InterfaceCounters};

/// A pod's usage: the CRI message and the figures the metrics need besides it.
#[derive(Debug, Clone)]
pub(super) struct SandboxSample {
    pub(super) stats: PodSandboxStats,
    pub(super) containers: Vec<ContainerSample>,
    pub(super) interfaces: Vec<InterfaceCounters>,
}

impl Pods {
    /// PodSandboxStats: NotFound for an unknown id. A pod that is not ready has no network
    /// to read.
    pub async fn pod_sandbox_stats(
        &self,
        request: PodSandboxStatsRequest,
    ) -> Result<PodSandboxStatsResponse, PodsError> {
        let sandbox = self.registry.sandbox(&request.pod_sandbox_id)?;
        Ok(PodSandboxStatsResponse {
            stats: Some(self.sample_sandbox(&sandbox).await.stats),
        })
    }

    /// ListPodSandboxStats: the ready pods that match every field of the filter that is set
    /// (id or unique id prefix, labels).
    pub async fn list_pod_sandbox_stats(&self, request: ListPodSandboxStatsRequest) -> ListPodSandboxStatsResponse {
        let filter = request.filter.unwrap_or_default();
        let wanted_id = if filter.id.is_empty() {
            None
        } else {
            match self.registry.sandbox(&filter.id) {
                Ok(sandbox) => Some(sandbox.id),
                // A filter that names nothing selects nothing.
                Err(_) => return ListPodSandboxStatsResponse::default(),
            }
        };
        let mut stats = Vec::new();
        for sandbox in self.ready_sandboxes() {
            if wanted_id.as_ref().is_none_or(|id| *id == sandbox.id)
                && labels_match(&filter.label_selector, &sandbox.config.labels)
            {
                stats.push(self.sample_sandbox(&sandbox).await.stats);
            }
        }
        ListPodSandboxStatsResponse { stats }
    }

    /// The sandboxes whose pods are up.
    pub(super) fn ready_sandboxes(&self) -> Vec<SandboxRecord> {
        self.registry
            .sandboxes()
            .into_iter()
            .filter(|s| s.status.state == SandboxState::Ready)
            .collect()
    }

    /// Reads the usage of `sandbox` and its running containers now.
    pub(super) async fn sample_sandbox(&self, sandbox: &SandboxRecord) -> SandboxSample {
        let containers: Vec<ContainerSample> = self
            .registry
            .containers_of(&sandbox.id)
            .iter()
            .filter(|c| c.status.is_running())
            .map(|c| self.sample_container(c))
            .collect();
        let timestamp = now_nanos();
        let pod = if sandbox.cgroup_parent.is_empty() {
            sum(containers.iter().map(|c| &c.cgroup))
        } else {
            self.read_cgroup(&sandbox.cgroup_parent)
        };
        let interfaces = match (&sandbox.netns, sandbox.status.state) {
            (Some(netns), SandboxState::Ready) => network::interfaces(netns).await.unwrap_or_else(|error| {
                tracing::debug!(sandbox = %sandbox.id, %error, "no network counters");
                Vec::new()
            }),
            _ => Vec::new(),
        };
        let linux = LinuxPodSandboxStats {
            cpu: pod
                .cpu
                .map(|cpu| self.cpu_usage(&format!("pod/{}", sandbox.id), timestamp, cpu)),
            memory: pod.memory.map(|memory| memory_usage(timestamp, &memory)),
            network: (!interfaces.is_empty()).then(|| network_usage(timestamp, &interfaces)),
            process: pod.pids.map(|count| ProcessUsage {
                timestamp,
                process_count: Some(UInt64Value { value: count }),
            }),
            containers: containers.iter().map(|c| c.stats.clone()).collect(),
        };
        let stats = PodSandboxStats {
            attributes: Some(PodSandboxAttributes {
                id: sandbox.id.clone(),
                metadata: sandbox.config.metadata.clone(),
                labels: sandbox.config.labels.clone(),
                annotations: sandbox.config.annotations.clone(),
            }),
            linux: Some(linux),
            windows: None,
        };
        SandboxSample {
            stats,
            containers,
            interfaces,
        }
    }
}

/// The pod's usage as the sum of its containers' (limits are per container: left out).
fn sum<'a>(containers: impl Iterator<Item = &'a CgroupStats>) -> CgroupStats {
    let mut total = CgroupStats::default();
    for c in containers {
        if let Some(cpu) = c.cpu {
            let t = total.cpu.get_or_insert_with(CpuTime::default);
            t.usage_ns += cpu.usage_ns;
            t.user_ns += cpu.user_ns;
            t.system_ns += cpu.system_ns;
        }
        if let Some(memory) = c.memory {
            let t = total.memory.get_or_insert_with(Memory::default);
            t.usage += memory.usage;
            t.working_set += memory.working_set;
            t.rss += memory.rss;
            t.cache += memory.cache;
            t.page_faults += memory.page_faults;
            t.major_page_faults += memory.major_page_faults;
        }
        if let Some(pids) = c.pids {
            *total.pids.get_or_insert(0) += pids;
        }
    }
    total
}

/// The CRI network usage of a pod's interfaces: `eth0` as the default one.
fn network_usage(timestamp: i64, interfaces: &[InterfaceCounters]) -> NetworkUsage {
    let cri = |i: &InterfaceCounters| NetworkInterfaceUsage {
        name: i.name.clone(),
        rx_bytes: Some(UInt64Value { value: i.rx_bytes }),
        rx_errors: Some(UInt64Value { value: i.rx_errors }),
        tx_bytes: Some(UInt64Value { value: i.tx_bytes }),
        tx_errors: Some(UInt64Value { value: i.tx_errors }),
    };
    NetworkUsage {
        timestamp,
        default_interface: interfaces.iter().find(|i| i.name == DEFAULT_INTERFACE).map(cri),
        interfaces: interfaces
            .iter()
            .filter(|i| i.name != DEFAULT_INTERFACE)
            .map(cri)
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pod_without_a_cgroup_of_its_own_sums_its_containers() {
        let container = |usage_ns, usage, pids| CgroupStats {
            cpu: Some(CpuTime {
                usage_ns,
                ..CpuTime::default()
            }),
            memory: Some(Memory {
                usage,
                working_set: usage / 2,
                limit: Some(1 << 30),
                ..Memory::default()
            }),
            pids: Some(pids),
            io: None,
        };
        let total = sum([container(10, 100, 1), container(5, 50, 2)].iter());
        assert_eq!(total.cpu.map(|c| c.usage_ns), Some(15));
        let memory = total.memory.expect("memory");
        assert_eq!((memory.usage, memory.working_set, memory.limit), (150, 75, None));
        assert_eq!(total.pids, Some(3));
        assert_eq!(
            sum(std::iter::empty()),
            CgroupStats::default(),
            "no containers, no figures"
        );
    }

    #[test]
    fn eth0_is_the_default_interface() {
        let interface = |name: &str| InterfaceCounters {
            name: name.into(),
            rx_bytes: 1,
            rx_packets: 1,
            rx_errors: 0,
            tx_bytes: 2,
            tx_packets: 1,
            tx_errors: 0,
        };
        let usage = network_usage(1, &[interface("net1"), interface("eth0")]);
        assert_eq!(usage.default_interface.map(|i| i.name), Some("eth0".to_string()));
        assert_eq!(usage.interfaces.len(), 1);
        assert_eq!(usage.interfaces[0].name, "net1");
    }
}
