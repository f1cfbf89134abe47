//! Statistics: ContainerStats, ListContainerStats, PodSandboxStats and
//! ListPodSandboxStats. The fake measures nothing: it reports who is there, with zero
//! usage stamped now.

use crate::v1::{
    ContainerStats, ContainerStatsFilter, CpuUsage, LinuxPodSandboxStats, MemoryUsage, PodSandboxStats,
    PodSandboxStatsFilter,
};

use super::container::Container;
use super::sandbox::Sandbox;
use super::{FakeError, State, id_matches, labels_match, now};

impl State {
    /// ContainerStats.
    pub(in crate::testing) fn container_stats(&self, id: &str) -> Result<ContainerStats, FakeError> {
        self.container(id).map(stats_of)
    }

    /// ListContainerStats: the running containers matching `filter`.
    pub(in crate::testing) fn list_container_stats(&self, filter: Option<ContainerStatsFilter>) -> Vec<ContainerStats> {
        let filter = filter.unwrap_or_default();
        self.containers()
            .filter(|container| container.is_running())
            .filter(|container| id_matches(&filter.id, &container.id))
            .filter(|container| id_matches(&filter.pod_sandbox_id, &container.sandbox_id))
            .filter(|container| labels_match(container.labels(), &filter.label_selector))
            .map(stats_of)
            .collect()
    }

    /// PodSandboxStats.
    pub(in crate::testing) fn pod_sandbox_stats(&self, id: &str) -> Result<PodSandboxStats, FakeError> {
        let sandbox = self.sandbox(id)?;
        Ok(self.sandbox_stats_of(sandbox))
    }

    /// ListPodSandboxStats: the sandboxes matching `filter`.
    pub(in crate::testing) fn list_pod_sandbox_stats(
        &self,
        filter: Option<PodSandboxStatsFilter>,
    ) -> Vec<PodSandboxStats> {
        let filter = filter.unwrap_or_default();
        self.sandboxes()
            .filter(|sandbox| id_matches(&filter.id, &sandbox.id))
            .filter(|sandbox| labels_match(sandbox.labels(), &filter.label_selector))
            .map(|sandbox| self.sandbox_stats_of(sandbox))
            .collect()
    }

    fn sandbox_stats_of(&self, sandbox: &Sandbox) -> PodSandboxStats {
        let (cpu, memory) = no_usage();
        PodSandboxStats {
            attributes: Some(sandbox.attributes()),
            linux: Some(LinuxPodSandboxStats {
                cpu,
                memory,
                network: None,
                process: None,
                containers: self
                    .containers_of(&sandbox.id)
                    .filter(|container| container.is_running())
                    .map(stats_of)
                    .collect(),
            }),
            windows: None,
        }
    }
}

/// A container's (zero) usage.
fn stats_of(container: &Container) -> ContainerStats {
    let (cpu, memory) = no_usage();
    ContainerStats {
        attributes: Some(container.attributes()),
        cpu,
        memory,
        writable_layer: None,
        swap: None,
    }
}

/// Zero CPU and memory usage, measured now.
fn no_usage() -> (Option<CpuUsage>, Option<MemoryUsage>) {
    let timestamp = now();
    let cpu = CpuUsage {
        timestamp,
        ..Default::default()
    };
    let memory = MemoryUsage {
        timestamp,
        ..Default::default()
    };
    (Some(cpu), Some(memory))
}
