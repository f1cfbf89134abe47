//! `/stats/summary`: the node's and its pods' resource usage in the shape of the
//! kubelet's Summary API (`stats/v1alpha1`), which metrics-server reads.
//!
//! The node's figures come from `/proc` (CPU time from `/proc/stat`, its rate from the
//! previous request's sample; memory from `/proc/meminfo`, the working set being memory
//! in use minus inactive file pages, as cAdvisor counts it). The pods' come from the CRI
//! runtime: ListPodSandboxStats, or for runtimes without it, ListContainerStats summed
//! per pod.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use cri_client::v1::{ContainerStats, CpuUsage, MemoryUsage, NetworkInterfaceUsage, NetworkUsage, PodSandboxStats};
use jiff::Timestamp;
use serde::Serialize;

use super::error::ApiError;
use crate::spec::labels::{CONTAINER_NAME, POD_NAME, POD_NAMESPACE, POD_UID};

/// Nanoseconds per tick of `/proc/stat` (USER_HZ is 100 on Linux).
const NANOS_PER_TICK: u64 = 10_000_000;

/// The Summary.
#[derive(Debug, Clone, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// The node.
    pub node: NodeStats,
    /// Its pods.
    pub pods: Vec<PodStats>,
}

/// The node's usage.
#[derive(Debug, Clone, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct NodeStats {
    /// The node's name.
    pub node_name: String,
    /// When the machine booted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    /// CPU.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuStats>,
    /// Memory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryStats>,
}

/// A pod, as the Summary names it.
#[derive(Debug, Clone, Serialize, Default, PartialEq, Eq)]
pub struct PodReference {
    /// Name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// UID.
    pub uid: String,
}

/// A pod's usage.
#[derive(Debug, Clone, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct PodStats {
    /// The pod.
    pub pod_ref: PodReference,
    /// When its sandbox was created.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    /// Its containers.
    pub containers: Vec<ContainerUsage>,
    /// CPU of the whole pod.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuStats>,
    /// Memory of the whole pod.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryStats>,
    /// Network of the pod.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkStats>,
}

/// A container's usage.
#[derive(Debug, Clone, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ContainerUsage {
    /// The container's name in the pod spec.
    pub name: String,
    /// When the container was created.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    /// CPU.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuStats>,
    /// Memory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryStats>,
}

/// CPU usage.
#[derive(Debug, Clone, Serialize, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CpuStats {
    /// When sampled.
    pub time: String,
    /// Average use over the last sampling window, in nanocores.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage_nano_cores: Option<u64>,
    /// Cumulative CPU time in nanoseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage_core_nano_seconds: Option<u64>,
}

/// Memory usage.
#[derive(Debug, Clone, Serialize, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct MemoryStats {
    /// When sampled.
    pub time: String,
    /// Memory still available.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub available_bytes: Option<u64>,
    /// All memory in use.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage_bytes: Option<u64>,
    /// The working set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub working_set_bytes: Option<u64>,
    /// Anonymous memory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss_bytes: Option<u64>,
    /// Minor page faults.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page_faults: Option<u64>,
    /// Major page faults.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub major_page_faults: Option<u64>,
}

/// Counters of one interface.
#[derive(Debug, Clone, Serialize, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct InterfaceStats {
    /// The interface.
    pub name: String,
    /// Bytes received.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rx_bytes: Option<u64>,
    /// Receive errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rx_errors: Option<u64>,
    /// Bytes sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tx_bytes: Option<u64>,
    /// Transmit errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tx_errors: Option<u64>,
}

/// Network usage: the default interface's counters inline, and every interface.
#[derive(Debug, Clone, Serialize, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct NetworkStats {
    /// When sampled.
    pub time: String,
    /// The default interface.
    #[serde(flatten)]
    pub default_interface: InterfaceStats,
    /// All interfaces.
    pub interfaces: Vec<InterfaceStats>,
}

fn time(nanos: i64) -> String {
    Timestamp::from_nanosecond(i128::from(nanos))
        .unwrap_or(Timestamp::UNIX_EPOCH)
        .to_string()
}

fn cpu(usage: &CpuUsage) -> CpuStats {
    CpuStats {
        time: time(usage.timestamp),
        usage_nano_cores: usage.usage_nano_cores.map(|v| v.value),
        usage_core_nano_seconds: usage.usage_core_nano_seconds.map(|v| v.value),
    }
}

fn memory(usage: &MemoryUsage) -> MemoryStats {
    MemoryStats {
        time: time(usage.timestamp),
        available_bytes: usage.available_bytes.map(|v| v.value),
        usage_bytes: usage.usage_bytes.map(|v| v.value),
        working_set_bytes: usage.working_set_bytes.map(|v| v.value),
        rss_bytes: usage.rss_bytes.map(|v| v.value),
        page_faults: usage.page_faults.map(|v| v.value),
        major_page_faults: usage.major_page_faults.map(|v| v.value),
    }
}

fn interface(usage: &NetworkInterfaceUsage) -> InterfaceStats {
    InterfaceStats {
        name: usage.name.clone(),
        rx_bytes: usage.rx_bytes.map(|v| v.value),
        rx_errors: usage.rx_errors.map(|v| v.value),
        tx_bytes: usage.tx_bytes.map(|v| v.value),
        tx_errors: usage.tx_errors.map(|v| v.value),
    }
}

fn network(usage: &NetworkUsage) -> NetworkStats {
    NetworkStats {
        time: time(usage.timestamp),
        default_interface: usage.default_interface.as_ref().map(interface).unwrap_or_default(),
        interfaces: usage
            .default_interface
            .iter()
            .chain(&usage.interfaces)
            .map(interface)
            .collect(),
    }
}

fn container(stats: &ContainerStats, created: &HashMap<String, i64>) -> ContainerUsage {
    let attributes = stats.attributes.clone().unwrap_or_default();
    let name = attributes
        .labels
        .get(CONTAINER_NAME)
        .cloned()
        .or_else(|| attributes.metadata.map(|m| m.name))
        .unwrap_or_default();
    ContainerUsage {
        name,
        start_time: created.get(&attributes.id).copied().map(time),
        cpu: stats.cpu.as_ref().map(cpu),
        memory: stats.memory.as_ref().map(memory),
    }
}

/// The sum of the containers' CPU and memory: a pod's usage when the runtime gives
/// only its containers'.
fn summed(containers: &[ContainerUsage]) -> (Option<CpuStats>, Option<MemoryStats>) {
    let add = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(0).saturating_add(b.unwrap_or(0))),
    };
    let cpu = containers.iter().filter_map(|c| c.cpu.clone()).reduce(|a, b| CpuStats {
        time: a.time.max(b.time),
        usage_nano_cores: add(a.usage_nano_cores, b.usage_nano_cores),
        usage_core_nano_seconds: add(a.usage_core_nano_seconds, b.usage_core_nano_seconds),
    });
    let memory = containers
        .iter()
        .filter_map(|c| c.memory.clone())
        .reduce(|a, b| MemoryStats {
            time: a.time.max(b.time),
            available_bytes: None,
            usage_bytes: add(a.usage_bytes, b.usage_bytes),
            working_set_bytes: add(a.working_set_bytes, b.working_set_bytes),
            rss_bytes: add(a.rss_bytes, b.rss_bytes),
            page_faults: add(a.page_faults, b.page_faults),
            major_page_faults: add(a.major_page_faults, b.major_page_faults),
        });
    (cpu, memory)
}

/// Makes Summaries; keeps the node's previous CPU sample for its rate.
#[derive(Debug, Default)]
pub(crate) struct StatsProvider {
    previous_cpu: Mutex<Option<(i64, u64)>>,
}

impl StatsProvider {
    /// The Summary of node `node_name`, with pods from `cri` if there is a runtime.
    pub(crate) async fn summary(&self, node_name: &str, cri: Option<&cri_client::Client>) -> Result<Summary, ApiError> {
        let node = self.node(node_name).await;
        let pods = match cri {
            Some(cri) => pods(cri).await?,
            None => Vec::new(),
        };
        Ok(Summary { node, pods })
    }

    async fn node(&self, node_name: &str) -> NodeStats {
        let now = Timestamp::now();
        let now_nanos = i64::try_from(now.as_nanosecond()).unwrap_or(i64::MAX);
        let stat = tokio::fs::read_to_string("/proc/stat").await.unwrap_or_default();
        let meminfo = tokio::fs::read_to_string("/proc/meminfo").await.unwrap_or_default();
        let boot = stat
            .lines()
            .find_map(|line| line.strip_prefix("btime "))
            .and_then(|seconds| seconds.trim().parse::<i64>().ok());
        let cpu = cpu_time(&stat).map(|used| {
            let mut previous = self.previous_cpu.lock().unwrap_or_else(PoisonError::into_inner);
            let rate = previous.and_then(|(at, before)| {
                let elapsed = u64::try_from(now_nanos - at).ok().filter(|e| *e > 0)?;
                Some((u128::from(used.saturating_sub(before)) * 1_000_000_000 / u128::from(elapsed)) as u64)
            });
            *previous = Some((now_nanos, used));
            CpuStats {
                time: now.to_string(),
                usage_nano_cores: rate,
                usage_core_nano_seconds: Some(used),
            }
        });
        NodeStats {
            node_name: node_name.to_owned(),
            start_time: boot.map(|seconds| time(seconds.saturating_mul(1_000_000_000))),
            cpu,
            memory: node_memory(&meminfo, &now.to_string()),
        }
    }
}

/// Total CPU time of the machine in nanoseconds, from `/proc/stat`'s `cpu` line (user,
/// nice, system, irq, softirq and steal time).
fn cpu_time(stat: &str) -> Option<u64> {
    let fields: Vec<u64> = stat
        .lines()
        .find_map(|line| line.strip_prefix("cpu "))?
        .split_whitespace()
        .filter_map(|field| field.parse().ok())
        .collect();
    let busy = [0, 1, 2, 5, 6, 7].iter().filter_map(|i| fields.get(*i)).sum::<u64>();
    Some(busy.saturating_mul(NANOS_PER_TICK))
}

/// The node's memory from `/proc/meminfo` (values in KiB).
fn node_memory(meminfo: &str, now: &str) -> Option<MemoryStats> {
    let field = |name: &str| {
        meminfo
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
            .map(|kib| kib * 1024)
    };
    let total = field("MemTotal")?;
    let usage = total.saturating_sub(field("MemFree")?);
    let working_set = usage.saturating_sub(field("Inactive(file)").unwrap_or(0));
    Some(MemoryStats {
        time: now.to_owned(),
        available_bytes: Some(total.saturating_sub(working_set)),
        usage_bytes: Some(usage),
        working_set_bytes: Some(working_set),
        rss_bytes: field("AnonPages"),
        page_faults: None,
        major_page_faults: None,
    })
}

/// The pods' usage from the runtime.
async fn pods(cri: &cri_client::Client) -> Result<Vec<PodStats>, ApiError> {
    let sandboxes = cri
        .list_pod_sandbox(None)
        .await
        .map_err(|err| ApiError::from_cri("listing sandboxes", &err))?;
    let containers = cri
        .list_containers(None)
        .await
        .map_err(|err| ApiError::from_cri("listing containers", &err))?;
    let created: HashMap<String, i64> = (sandboxes.iter().map(|s| (s.id.clone(), s.created_at)))
        .chain(containers.iter().map(|c| (c.id.clone(), c.created_at)))
        .collect();
    match cri.list_pod_sandbox_stats(None).await {
        Ok(stats) => Ok(stats.iter().map(|s| pod_from_sandbox_stats(s, &created)).collect()),
        Err(cri_client::Error::Unimplemented(_)) => {
            let stats = cri
                .list_container_stats(None)
                .await
                .map_err(|err| ApiError::from_cri("listing container stats", &err))?;
            let mut pods: Vec<PodStats> = Vec::new();
            for stats in &stats {
                let labels = stats.attributes.as_ref().map(|a| a.labels.clone()).unwrap_or_default();
                let pod_ref = pod_reference(&labels);
                let usage = container(stats, &created);
                match pods.iter_mut().find(|p| p.pod_ref == pod_ref) {
                    Some(pod) => pod.containers.push(usage),
                    None => pods.push(PodStats {
                        start_time: sandboxes
                            .iter()
                            .filter(|s| s.labels.get(POD_UID) == Some(&pod_ref.uid))
                            .map(|s| time(s.created_at))
                            .next(),
                        pod_ref,
                        containers: vec![usage],
                        ..PodStats::default()
                    }),
                }
            }
            for pod in &mut pods {
                (pod.cpu, pod.memory) = summed(&pod.containers);
            }
            Ok(pods)
        }
        Err(err) => Err(ApiError::from_cri("listing sandbox stats", &err)),
    }
}

fn pod_reference(labels: &HashMap<String, String>) -> PodReference {
    let label = |key: &str| labels.get(key).cloned().unwrap_or_default();
    PodReference {
        name: label(POD_NAME),
        namespace: label(POD_NAMESPACE),
        uid: label(POD_UID),
    }
}

fn pod_from_sandbox_stats(stats: &PodSandboxStats, created: &HashMap<String, i64>) -> PodStats {
    let attributes = stats.attributes.clone().unwrap_or_default();
    let mut pod_ref = pod_reference(&attributes.labels);
    if let Some(metadata) = &attributes.metadata {
        pod_ref = PodReference {
            name: metadata.name.clone(),
            namespace: metadata.namespace.clone(),
            uid: metadata.uid.clone(),
        };
    }
    let linux = stats.linux.clone().unwrap_or_default();
    let containers: Vec<ContainerUsage> = linux.containers.iter().map(|c| container(c, created)).collect();
    let (summed_cpu, summed_memory) = summed(&containers);
    PodStats {
        pod_ref,
        start_time: created.get(&attributes.id).copied().map(time),
        cpu: linux.cpu.as_ref().map(cpu).or(summed_cpu),
        memory: linux.memory.as_ref().map(memory).or(summed_memory),
        network: linux.network.as_ref().map(network),
        containers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_figures_come_from_proc_files() {
        let stat = "cpu  100 5 50 1000 7 3 2 1 0 0\ncpu0 1 1 1 1\nbtime 1700000000\n";
        assert_eq!(cpu_time(stat), Some((100 + 5 + 50 + 3 + 2 + 1) * NANOS_PER_TICK));
        let meminfo = "MemTotal:       1000 kB\nMemFree:         400 kB\nInactive(file):  100 kB\nAnonPages:  50 kB\n";
        let memory = node_memory(meminfo, "t").unwrap();
        assert_eq!(memory.usage_bytes, Some(600 * 1024));
        assert_eq!(memory.working_set_bytes, Some(500 * 1024));
        assert_eq!(memory.available_bytes, Some(500 * 1024));
        assert_eq!(memory.rss_bytes, Some(50 * 1024));
    }

    #[test]
    fn the_summary_has_the_field_names_metrics_server_reads() {
        let summary = Summary {
            node: NodeStats {
                node_name: "n".into(),
                cpu: Some(CpuStats {
                    time: "t".into(),
                    usage_nano_cores: Some(1),
                    usage_core_nano_seconds: Some(2),
                }),
                ..NodeStats::default()
            },
            pods: vec![PodStats {
                pod_ref: PodReference {
                    name: "p".into(),
                    namespace: "d".into(),
                    uid: "u".into(),
                },
                containers: vec![ContainerUsage {
                    name: "c".into(),
                    memory: Some(MemoryStats {
                        time: "t".into(),
                        working_set_bytes: Some(3),
                        ..MemoryStats::default()
                    }),
                    ..ContainerUsage::default()
                }],
                ..PodStats::default()
            }],
        };
        let json = serde_json::to_value(&summary).unwrap();
        assert_eq!(json["node"]["nodeName"], "n");
        assert_eq!(json["node"]["cpu"]["usageNanoCores"], 1);
        assert_eq!(json["node"]["cpu"]["usageCoreNanoSeconds"], 2);
        assert_eq!(json["pods"][0]["podRef"]["namespace"], "d");
        assert_eq!(json["pods"][0]["containers"][0]["memory"]["workingSetBytes"], 3);
    }
}
