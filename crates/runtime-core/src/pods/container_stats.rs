//! ContainerStats and ListContainerStats: CPU, memory, swap and writable-layer usage of
//! containers, read from their cgroups and overlay upper directories.

use cri_api::v1::{
    ContainerAttributes, ContainerStats, ContainerStatsFilter, ContainerStatsRequest, ContainerStatsResponse, CpuUsage,
    FilesystemIdentifier, FilesystemUsage, ListContainerStatsRequest, ListContainerStatsResponse, MemoryUsage,
    SwapUsage, UInt64Value,
};

use super::container_create::cgroups_path;
use super::{Pods, PodsError, labels_match, now_nanos};
use crate::container::rootfs::Rootfs;
use crate::state::container::ContainerRecord;
use crate::stats::cgroup::{CgroupError, CgroupStats, CpuTime, Memory};
use crate::stats::cpu::{CpuSample, CpuSampler};
use crate::stats::hierarchy::Hierarchy;
use crate::stats::writable_layer::{LayerUsage, Usage};

/// What stats calls share: the host's cgroup hierarchy, the previous CPU sample of each
/// container and pod (for `usage_nano_cores`), recent writable-layer walks.
#[derive(Debug)]
pub(super) struct UsageSources {
    pub(super) hierarchy: Hierarchy,
    pub(super) cpu: CpuSampler,
    layers: LayerUsage,
}

impl Default for UsageSources {
    fn default() -> Self {
        Self {
            hierarchy: Hierarchy::detect(),
            cpu: CpuSampler::default(),
            layers: LayerUsage::default(),
        }
    }
}

/// One container's usage: the CRI message and the cgroup figures it came from (the pod
/// sums those and the metrics use them).
#[derive(Debug, Clone)]
pub(super) struct ContainerSample {
    pub(super) stats: ContainerStats,
    pub(super) cgroup: CgroupStats,
    pub(super) layer: Option<Usage>,
}

impl Pods {
    /// ContainerStats: NotFound for an unknown id. A container that is not running has
    /// only what is left of it (its writable layer; its cgroup is gone).
    pub fn container_stats(&self, request: ContainerStatsRequest) -> Result<ContainerStatsResponse, PodsError> {
        let container = self.registry.container(&request.container_id)?;
        Ok(ContainerStatsResponse {
            stats: Some(self.sample_container(&container).stats),
        })
    }

    /// ListContainerStats: the running containers that match every field of the filter
    /// that is set (id or unique id prefix, sandbox id or prefix, labels).
    pub fn list_container_stats(&self, request: ListContainerStatsRequest) -> ListContainerStatsResponse {
        let filter = request.filter.unwrap_or_default();
        let stats = self
            .running_containers(&filter)
            .iter()
            .map(|container| self.sample_container(container).stats)
            .collect();
        ListContainerStatsResponse { stats }
    }

    /// The running containers that `filter` selects.
    fn running_containers(&self, filter: &ContainerStatsFilter) -> Vec<ContainerRecord> {
        // An id that names nothing selects nothing (rather than NotFound): it is a filter.
        let resolve = |id: &str, kind: fn(&Self, &str) -> Option<String>| {
            if id.is_empty() {
                Ok(None)
            } else {
                kind(self, id).map(Some).ok_or(())
            }
        };
        let container_id = resolve(&filter.id, |pods, id| pods.registry.container(id).ok().map(|c| c.id));
        let sandbox_id = resolve(&filter.pod_sandbox_id, |pods, id| {
            pods.registry.sandbox(id).ok().map(|s| s.id)
        });
        let (Ok(container_id), Ok(sandbox_id)) = (container_id, sandbox_id) else {
            return Vec::new();
        };
        self.registry
            .containers()
            .into_iter()
            .filter(|c| c.status.is_running())
            .filter(|c| container_id.as_ref().is_none_or(|id| *id == c.id))
            .filter(|c| sandbox_id.as_ref().is_none_or(|id| *id == c.sandbox_id))
            .filter(|c| labels_match(&filter.label_selector, &c.config.labels))
            .collect()
    }

    /// Reads the usage of `container` now.
    pub(super) fn sample_container(&self, container: &ContainerRecord) -> ContainerSample {
        let timestamp = now_nanos();
        let cgroup = match self.registry.sandbox(&container.sandbox_id) {
            Ok(sandbox) => self.read_cgroup(&cgroups_path(&sandbox, &container.id)),
            Err(_) => CgroupStats::default(),
        };
        let upper = Rootfs::in_bundle(&container.bundle).upper;
        let layer = match self.usage.layers.of(&upper) {
            Ok(usage) => Some(usage),
            Err(error) => {
                tracing::debug!(container = %container.id, %error, "no writable layer usage");
                None
            }
        };
        let stats = ContainerStats {
            attributes: Some(ContainerAttributes {
                id: container.id.clone(),
                metadata: container.config.metadata.clone(),
                labels: container.config.labels.clone(),
                annotations: container.config.annotations.clone(),
            }),
            cpu: cgroup.cpu.map(|cpu| self.cpu_usage(&container.id, timestamp, cpu)),
            memory: cgroup.memory.map(|memory| memory_usage(timestamp, &memory)),
            writable_layer: layer.map(|usage| FilesystemUsage {
                timestamp,
                fs_id: Some(FilesystemIdentifier {
                    mountpoint: self.dirs.containers.display().to_string(),
                }),
                used_bytes: Some(UInt64Value { value: usage.bytes }),
                inodes_used: Some(UInt64Value { value: usage.inodes }),
            }),
            swap: cgroup.memory.and_then(|memory| {
                Some(SwapUsage {
                    timestamp,
                    swap_usage_bytes: Some(UInt64Value {
                        value: memory.swap_usage?,
                    }),
                    swap_available_bytes: memory.swap_available().map(|value| UInt64Value { value }),
                })
            }),
        };
        ContainerSample { stats, cgroup, layer }
    }

    /// The cgroup at `path`, or nothing if it is gone or unreadable.
    pub(super) fn read_cgroup(&self, path: &str) -> CgroupStats {
        match self.usage.hierarchy.read(path) {
            Ok(stats) => stats,
            Err(CgroupError::Missing(_)) => CgroupStats::default(),
            Err(error) => {
                tracing::debug!(cgroup = path, %error, "cgroup unreadable");
                CgroupStats::default()
            }
        }
    }

    /// The CRI CPU usage of `key` (a container or pod id) at `timestamp`, with the nano
    /// cores since its previous sample.
    pub(super) fn cpu_usage(&self, key: &str, timestamp: i64, cpu: CpuTime) -> CpuUsage {
        let nano_cores = self.usage.cpu.nano_cores(
            key,
            CpuSample {
                at_ns: timestamp,
                usage_ns: cpu.usage_ns,
            },
        );
        CpuUsage {
            timestamp,
            usage_core_nano_seconds: Some(UInt64Value { value: cpu.usage_ns }),
            usage_nano_cores: Some(UInt64Value { value: nano_cores }),
        }
    }
}

/// The CRI memory usage of a cgroup's memory figures.
pub(super) fn memory_usage(timestamp: i64, memory: &Memory) -> MemoryUsage {
    let value = |value| Some(UInt64Value { value });
    MemoryUsage {
        timestamp,
        working_set_bytes: value(memory.working_set),
        available_bytes: memory.available().and_then(value),
        usage_bytes: value(memory.usage),
        rss_bytes: value(memory.rss),
        page_faults: value(memory.page_faults),
        major_page_faults: value(memory.major_page_faults),
    }
}
