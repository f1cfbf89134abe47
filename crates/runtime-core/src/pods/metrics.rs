//! ListMetricDescriptors and ListPodSandboxMetrics: cadvisor-named metrics of every ready
//! pod and its running containers, for a kubelet that takes its metrics from the runtime.
//!
//! Container metrics carry the labels `id` (the container id) and `name` (the container's
//! name); the pod's network metrics `id` (the sandbox id), `name` (the pod's name) and
//! `interface`. Values are whole numbers in the unit the name gives (a `_seconds_total`
//! counter is truncated to whole seconds: the CRI's values are integers).

use cri_api::v1::{
    ContainerMetrics, ListMetricDescriptorsRequest, ListMetricDescriptorsResponse, ListPodSandboxMetricsRequest,
    ListPodSandboxMetricsResponse, Metric, MetricDescriptor, MetricType, PodSandboxMetrics, UInt64Value,
};

use super::Pods;
use super::container_stats::ContainerSample;
use crate::stats::cgroup::CgroupStats;
use crate::stats::network::InterfaceCounters;

/// Nanoseconds in a second.
const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// The labels of a container metric.
const CONTAINER_LABELS: &[&str] = &["id", "name"];
/// The labels of a pod's network metric.
const INTERFACE_LABELS: &[&str] = &["id", "name", "interface"];

/// A metric family: name, help, whether it only grows, and how a container sample gives
/// its value (network families are read from interfaces instead).
struct Family {
    name: &'static str,
    help: &'static str,
    kind: MetricType,
    value: Source,
}

/// Where a family's value comes from.
enum Source {
    Container(fn(&ContainerSample) -> Option<u64>),
    Interface(fn(&InterfaceCounters) -> u64),
}

fn cgroup(sample: &ContainerSample) -> &CgroupStats {
    &sample.cgroup
}

/// A container counter.
const fn counter(name: &'static str, help: &'static str, value: fn(&ContainerSample) -> Option<u64>) -> Family {
    Family {
        name,
        help,
        kind: MetricType::Counter,
        value: Source::Container(value),
    }
}

/// A container gauge.
const fn gauge(name: &'static str, help: &'static str, value: fn(&ContainerSample) -> Option<u64>) -> Family {
    Family {
        name,
        help,
        kind: MetricType::Gauge,
        value: Source::Container(value),
    }
}

/// A counter of each of the pod's network interfaces.
const fn interface_counter(name: &'static str, help: &'static str, value: fn(&InterfaceCounters) -> u64) -> Family {
    Family {
        name,
        help,
        kind: MetricType::Counter,
        value: Source::Interface(value),
    }
}

/// Every metric this runtime reports.
const FAMILIES: &[Family] = &[
    counter(
        "container_cpu_usage_seconds_total",
        "Cumulative CPU time consumed, in seconds.",
        |s| cgroup(s).cpu.map(|c| c.usage_ns / NANOS_PER_SECOND),
    ),
    counter(
        "container_cpu_user_seconds_total",
        "Cumulative CPU time consumed in user mode, in seconds.",
        |s| cgroup(s).cpu.map(|c| c.user_ns / NANOS_PER_SECOND),
    ),
    counter(
        "container_cpu_system_seconds_total",
        "Cumulative CPU time consumed in kernel mode, in seconds.",
        |s| cgroup(s).cpu.map(|c| c.system_ns / NANOS_PER_SECOND),
    ),
    gauge(
        "container_memory_usage_bytes",
        "Current memory usage, page cache included, in bytes.",
        |s| cgroup(s).memory.map(|m| m.usage),
    ),
    gauge(
        "container_memory_working_set_bytes",
        "Current working set (usage minus inactive file cache), in bytes.",
        |s| cgroup(s).memory.map(|m| m.working_set),
    ),
    gauge(
        "container_memory_rss",
        "Anonymous memory and swap cache, in bytes.",
        |s| cgroup(s).memory.map(|m| m.rss),
    ),
    gauge("container_memory_cache", "Page cache, in bytes.", |s| {
        cgroup(s).memory.map(|m| m.cache)
    }),
    gauge("container_memory_swap", "Swap in use, in bytes.", |s| {
        cgroup(s).memory.and_then(|m| m.swap_usage)
    }),
    counter("container_memory_page_faults_total", "Cumulative page faults.", |s| {
        cgroup(s).memory.map(|m| m.page_faults)
    }),
    counter(
        "container_memory_major_page_faults_total",
        "Cumulative major page faults.",
        |s| cgroup(s).memory.map(|m| m.major_page_faults),
    ),
    gauge(
        "container_spec_memory_limit_bytes",
        "Memory limit, in bytes (absent when unlimited).",
        |s| cgroup(s).memory.and_then(|m| m.limit),
    ),
    gauge(
        "container_processes",
        "Number of processes running in the container.",
        |s| cgroup(s).pids,
    ),
    gauge(
        "container_fs_usage_bytes",
        "Bytes used by the container's writable layer.",
        |s| s.layer.map(|l| l.bytes),
    ),
    gauge(
        "container_fs_inodes_total",
        "Inodes used by the container's writable layer.",
        |s| s.layer.map(|l| l.inodes),
    ),
    counter(
        "container_fs_reads_bytes_total",
        "Cumulative bytes read from block devices.",
        |s| cgroup(s).io.map(|io| io.read_bytes),
    ),
    counter(
        "container_fs_writes_bytes_total",
        "Cumulative bytes written to block devices.",
        |s| cgroup(s).io.map(|io| io.write_bytes),
    ),
    interface_counter(
        "container_network_receive_bytes_total",
        "Cumulative bytes received.",
        |i| i.rx_bytes,
    ),
    interface_counter(
        "container_network_receive_packets_total",
        "Cumulative packets received.",
        |i| i.rx_packets,
    ),
    interface_counter(
        "container_network_receive_errors_total",
        "Cumulative errors while receiving.",
        |i| i.rx_errors,
    ),
    interface_counter(
        "container_network_transmit_bytes_total",
        "Cumulative bytes sent.",
        |i| i.tx_bytes,
    ),
    interface_counter(
        "container_network_transmit_packets_total",
        "Cumulative packets sent.",
        |i| i.tx_packets,
    ),
    interface_counter(
        "container_network_transmit_errors_total",
        "Cumulative errors while sending.",
        |i| i.tx_errors,
    ),
];

impl Family {
    fn labels(&self) -> &'static [&'static str] {
        match self.value {
            Source::Container(_) => CONTAINER_LABELS,
            Source::Interface(_) => INTERFACE_LABELS,
        }
    }

    fn metric(&self, value: u64, labels: Vec<String>) -> Metric {
        Metric {
            name: self.name.to_string(),
            // Read just now.
            timestamp: 0,
            metric_type: self.kind as i32,
            label_values: labels,
            value: Some(UInt64Value { value }),
        }
    }
}

impl Pods {
    /// ListMetricDescriptors: every metric ListPodSandboxMetrics reports.
    pub fn list_metric_descriptors(&self, _: ListMetricDescriptorsRequest) -> ListMetricDescriptorsResponse {
        let descriptors = FAMILIES
            .iter()
            .map(|family| MetricDescriptor {
                name: family.name.to_string(),
                help: family.help.to_string(),
                label_keys: family.labels().iter().map(|key| key.to_string()).collect(),
            })
            .collect();
        ListMetricDescriptorsResponse { descriptors }
    }

    /// ListPodSandboxMetrics: the metrics of every ready pod, its network's per interface,
    /// its running containers' each.
    pub async fn list_pod_sandbox_metrics(&self, _: ListPodSandboxMetricsRequest) -> ListPodSandboxMetricsResponse {
        let mut pod_metrics = Vec::new();
        for sandbox in self.ready_sandboxes() {
            let sample = self.sample_sandbox(&sandbox).await;
            let pod_name = sandbox
                .config
                .metadata
                .as_ref()
                .map(|m| m.name.clone())
                .unwrap_or_default();
            let mut metrics = Vec::new();
            for family in FAMILIES {
                if let Source::Interface(value) = family.value {
                    metrics.extend(sample.interfaces.iter().map(|interface| {
                        family.metric(
                            value(interface),
                            vec![sandbox.id.clone(), pod_name.clone(), interface.name.clone()],
                        )
                    }));
                }
            }
            let container_metrics = sample.containers.iter().map(container_metrics).collect();
            pod_metrics.push(PodSandboxMetrics {
                pod_sandbox_id: sandbox.id.clone(),
                metrics,
                container_metrics,
            });
        }
        ListPodSandboxMetricsResponse { pod_metrics }
    }
}

/// The metrics of one container sample.
fn container_metrics(sample: &ContainerSample) -> ContainerMetrics {
    let attributes = sample.stats.attributes.clone().unwrap_or_default();
    let name = attributes.metadata.map(|m| m.name).unwrap_or_default();
    let metrics = FAMILIES
        .iter()
        .filter_map(|family| match family.value {
            Source::Container(value) => {
                value(sample).map(|v| family.metric(v, vec![attributes.id.clone(), name.clone()]))
            }
            Source::Interface(_) => None,
        })
        .collect();
    ContainerMetrics {
        container_id: attributes.id.clone(),
        metrics,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn metric_names_are_unique_and_cadvisor_style() {
        let names: HashSet<&str> = FAMILIES.iter().map(|f| f.name).collect();
        assert_eq!(names.len(), FAMILIES.len());
        for family in FAMILIES {
            assert!(family.name.starts_with("container_"), "{}", family.name);
            if family.kind == MetricType::Counter {
                assert!(
                    family.name.ends_with("_total"),
                    "{}: counters end in _total",
                    family.name
                );
            }
        }
        for wanted in [
            "container_cpu_usage_seconds_total",
            "container_memory_working_set_bytes",
            "container_network_receive_bytes_total",
        ] {
            assert!(names.contains(wanted), "{wanted}");
        }
    }

    #[test]
    fn a_container_sample_gives_one_metric_per_known_figure_with_its_labels() {
        let sample = ContainerSample {
            stats: cri_api::v1::ContainerStats {
                attributes: Some(cri_api::v1::ContainerAttributes {
                    id: "c1".into(),
                    metadata: Some(cri_api::v1::ContainerMetadata {
                        name: "web".into(),
                        attempt: 0,
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            },
            cgroup: CgroupStats {
                cpu: Some(crate::stats::cgroup::CpuTime {
                    usage_ns: 3_500_000_000,
                    ..Default::default()
                }),
                ..Default::default()
            },
            layer: None,
        };
        let metrics = container_metrics(&sample);
        assert_eq!(metrics.container_id, "c1");
        let usage = metrics
            .metrics
            .iter()
            .find(|m| m.name == "container_cpu_usage_seconds_total")
            .expect("cpu usage");
        assert_eq!(usage.value.as_ref().map(|v| v.value), Some(3));
        assert_eq!(usage.label_values, ["c1", "web"]);
        assert!(
            !metrics.metrics.iter().any(|m| m.name == "container_memory_usage_bytes"),
            "no memory figures, no memory metrics"
        );
    }
}
