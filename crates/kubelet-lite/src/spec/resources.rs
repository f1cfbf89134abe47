//! Resources: the pod's QoS class and a container's CRI Linux resources (CPU shares and
//! quota, memory limit, OOM score adjustment), by the kubelet's formulas
//! (`pkg/apis/core/v1/helper/qos`, `pkg/kubelet/cm/helpers_linux.go`,
//! `pkg/kubelet/qos/policy.go`).

use std::collections::BTreeMap;

use cri_api::v1::LinuxContainerResources;
use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::SpecError;
use super::quantity::Amount;

/// The smallest `cpu.shares` the kernel takes (and the kubelet gives to BestEffort).
pub const MIN_SHARES: i64 = 2;
/// The largest `cpu.shares` the kernel takes.
pub const MAX_SHARES: i64 = 262_144;
/// The CFS period the kubelet sets with a CPU limit, in microseconds.
pub const QUOTA_PERIOD: i64 = 100_000;
/// The smallest CFS quota the kubelet sets, in microseconds.
pub const MIN_QUOTA: i64 = 1_000;
/// OOM score adjustment of Guaranteed pods' containers (and of node-critical pods).
pub const GUARANTEED_OOM_SCORE_ADJ: i64 = -997;
/// OOM score adjustment of BestEffort pods' containers.
pub const BEST_EFFORT_OOM_SCORE_ADJ: i64 = 1000;
/// Pods at or above this priority are system-critical.
const SYSTEM_CRITICAL_PRIORITY: i32 = 2_000_000_000;

/// The quality-of-service class of a pod, as the API's `status.qosClass` spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QosClass {
    /// Every container has equal CPU and memory requests and limits.
    Guaranteed,
    /// Some requests or limits, but not Guaranteed.
    Burstable,
    /// No CPU or memory requests or limits at all.
    BestEffort,
}

impl QosClass {
    /// The name used in `status.qosClass`.
    pub fn as_str(self) -> &'static str {
        match self {
            QosClass::Guaranteed => "Guaranteed",
            QosClass::Burstable => "Burstable",
            QosClass::BestEffort => "BestEffort",
        }
    }
}

impl std::fmt::Display for QosClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The QoS class of a pod, from the CPU and memory requests and limits of all its
/// containers (init containers included). Unparsable quantities count as absent.
pub fn qos_class(pod: &Pod) -> QosClass {
    let Some(spec) = &pod.spec else {
        return QosClass::BestEffort;
    };
    let mut requests: BTreeMap<&str, Amount> = BTreeMap::new();
    let mut limits: BTreeMap<&str, Amount> = BTreeMap::new();
    let mut guaranteed = true;
    for container in spec.containers.iter().chain(spec.init_containers.iter().flatten()) {
        let resources = container.resources.as_ref();
        let own_limits: BTreeMap<_, _> = qos_amounts(resources.and_then(|r| r.limits.as_ref())).collect();
        let mut own_requests: BTreeMap<_, _> = qos_amounts(resources.and_then(|r| r.requests.as_ref())).collect();
        // The API server defaults a missing request to the limit; static pods get the same.
        for (name, amount) in &own_limits {
            own_requests.entry(*name).or_insert(*amount);
        }
        for (name, amount) in own_requests {
            let total = requests.entry(name).or_default();
            *total = *total + amount;
        }
        for (name, amount) in &own_limits {
            let total = limits.entry(*name).or_default();
            *total = *total + *amount;
        }
        if own_limits.len() < 2 {
            guaranteed = false;
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return QosClass::BestEffort;
    }
    if guaranteed
        && requests.len() == limits.len()
        && requests.iter().all(|(name, amount)| limits.get(name) == Some(amount))
    {
        return QosClass::Guaranteed;
    }
    QosClass::Burstable
}

/// The nonzero cpu and memory amounts of a requests or limits map.
fn qos_amounts(map: Option<&BTreeMap<String, Quantity>>) -> impl Iterator<Item = (&'static str, Amount)> + '_ {
    map.into_iter().flatten().filter_map(|(name, quantity)| {
        let name = match name.as_str() {
            "cpu" => "cpu",
            "memory" => "memory",
            _ => return None,
        };
        Amount::of(quantity).ok().filter(|a| !a.is_zero()).map(|a| (name, a))
    })
}

/// `cpu.shares` for a CPU request in milli-CPU: 1024 per CPU, at least [`MIN_SHARES`].
pub fn milli_cpu_to_shares(milli_cpu: i64) -> i64 {
    if milli_cpu <= 0 {
        return MIN_SHARES;
    }
    (milli_cpu.saturating_mul(1024) / 1000).clamp(MIN_SHARES, MAX_SHARES)
}

/// The CFS quota for a CPU limit in milli-CPU over `period` microseconds; 0 (no quota)
/// without a limit, at least [`MIN_QUOTA`] with one.
pub fn milli_cpu_to_quota(milli_cpu: i64, period: i64) -> i64 {
    if milli_cpu <= 0 {
        return 0;
    }
    (milli_cpu.saturating_mul(period) / 1000).max(MIN_QUOTA)
}

/// The OOM score adjustment of a container, by the pod's QoS class: Guaranteed (and
/// node-critical pods) -997, BestEffort 1000, Burstable `1000 - 1000 * request / capacity`
/// kept within 3..=999 so Burstable stays between the other two.
pub fn oom_score_adj(pod: &Pod, container: &Container, memory_capacity: i64) -> i64 {
    if is_node_critical(pod) {
        return GUARANTEED_OOM_SCORE_ADJ;
    }
    match qos_class(pod) {
        QosClass::Guaranteed => GUARANTEED_OOM_SCORE_ADJ,
        QosClass::BestEffort => BEST_EFFORT_OOM_SCORE_ADJ,
        QosClass::Burstable => {
            let request = resource_amount(container, Kind::Requests, "memory").map_or(0, Amount::units);
            let adj = if memory_capacity > 0 {
                1000 - (1000_i128 * i128::from(request) / i128::from(memory_capacity)) as i64
            } else {
                1000
            };
            if adj < 1000 + GUARANTEED_OOM_SCORE_ADJ {
                1000 + GUARANTEED_OOM_SCORE_ADJ
            } else if adj >= BEST_EFFORT_OOM_SCORE_ADJ {
                BEST_EFFORT_OOM_SCORE_ADJ - 1
            } else {
                adj
            }
        }
    }
}

/// Node-critical pods: priority class `system-node-critical`, or critical by priority,
/// or static pods (config source `file`).
fn is_node_critical(pod: &Pod) -> bool {
    let spec = pod.spec.as_ref();
    let critical = spec
        .and_then(|s| s.priority)
        .is_some_and(|p| p >= SYSTEM_CRITICAL_PRIORITY)
        || pod
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(super::labels::CONFIG_SOURCE))
            .is_some_and(|s| s != "api");
    critical && spec.and_then(|s| s.priority_class_name.as_deref()) == Some("system-node-critical")
}

/// Which map of a container's resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `resources.requests`.
    Requests,
    /// `resources.limits`.
    Limits,
}

/// A container's request or limit of one resource, if set and parsable.
pub(crate) fn resource_amount(container: &Container, kind: Kind, name: &str) -> Option<Amount> {
    let resources = container.resources.as_ref()?;
    let map = match kind {
        Kind::Requests => resources.requests.as_ref(),
        Kind::Limits => resources.limits.as_ref(),
    }?;
    map.get(name).and_then(|q| Amount::of(q).ok())
}

/// Checks every quantity of a container's resources parses, naming the first bad one.
fn check_quantities(container: &Container) -> Result<(), SpecError> {
    let Some(resources) = &container.resources else {
        return Ok(());
    };
    for map in [&resources.requests, &resources.limits].into_iter().flatten() {
        for quantity in map.values() {
            Amount::of(quantity)?;
        }
    }
    Ok(())
}

/// The CRI Linux resources of a container: CPU shares from the request (the limit when
/// there is no request), CFS quota from the limit over a 100 ms period, the memory limit
/// and the OOM score adjustment.
pub fn container_resources(
    pod: &Pod,
    container: &Container,
    memory_capacity: i64,
) -> Result<LinuxContainerResources, SpecError> {
    check_quantities(container)?;
    let cpu_request = resource_amount(container, Kind::Requests, "cpu").map_or(0, Amount::milli);
    let cpu_limit = resource_amount(container, Kind::Limits, "cpu").map_or(0, Amount::milli);
    let memory_limit = resource_amount(container, Kind::Limits, "memory").map_or(0, Amount::units);
    let shares = if cpu_request == 0 && cpu_limit != 0 {
        milli_cpu_to_shares(cpu_limit)
    } else {
        milli_cpu_to_shares(cpu_request)
    };
    let quota = milli_cpu_to_quota(cpu_limit, QUOTA_PERIOD);
    Ok(LinuxContainerResources {
        cpu_shares: shares,
        cpu_quota: quota,
        cpu_period: if quota > 0 { QUOTA_PERIOD } else { 0 },
        memory_limit_in_bytes: memory_limit,
        oom_score_adj: oom_score_adj(pod, container, memory_capacity),
        ..Default::default()
    })
}

/// The node's memory in bytes (`MemTotal` of `/proc/meminfo`), 0 if unknown.
pub fn node_memory_capacity() -> i64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| parse_mem_total(&text))
        .unwrap_or(0)
}

fn parse_mem_total(meminfo: &str) -> Option<i64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: i64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// The node's CPUs in milli-CPU (for downward-API limits when a container has none).
pub fn node_milli_cpu() -> i64 {
    std::thread::available_parallelism().map_or(1000, |n| i64::try_from(n.get()).unwrap_or(1) * 1000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodSpec, ResourceRequirements};

    fn quantities(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, Quantity>> {
        if pairs.is_empty() {
            return None;
        }
        Some(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), Quantity((*v).to_owned())))
                .collect(),
        )
    }

    fn container(requests: &[(&str, &str)], limits: &[(&str, &str)]) -> Container {
        Container {
            name: "c".into(),
            resources: Some(ResourceRequirements {
                requests: quantities(requests),
                limits: quantities(limits),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn pod(containers: Vec<Container>) -> Pod {
        Pod {
            spec: Some(PodSpec {
                containers,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn qos_classes() {
        let full = [("cpu", "1"), ("memory", "1Gi")];
        let cases = [
            ("no resources", vec![container(&[], &[])], QosClass::BestEffort),
            (
                "equal requests and limits",
                vec![container(&full, &full)],
                QosClass::Guaranteed,
            ),
            (
                "limits only (requests default to them)",
                vec![container(&[], &full)],
                QosClass::Guaranteed,
            ),
            (
                "request below limit",
                vec![container(&[("cpu", "500m"), ("memory", "1Gi")], &full)],
                QosClass::Burstable,
            ),
            (
                "cpu limit only",
                vec![container(&[], &[("cpu", "1")])],
                QosClass::Burstable,
            ),
            (
                "request only",
                vec![container(&[("memory", "1Gi")], &[])],
                QosClass::Burstable,
            ),
            (
                "one guaranteed container and one best-effort",
                vec![container(&full, &full), container(&[], &[])],
                QosClass::Burstable,
            ),
            (
                "zero quantities and other resources are ignored",
                vec![container(&[("cpu", "0"), ("ephemeral-storage", "1Gi")], &[])],
                QosClass::BestEffort,
            ),
        ];
        for (desc, containers, want) in cases {
            assert_eq!(qos_class(&pod(containers)), want, "{desc}");
        }
        assert_eq!(QosClass::BestEffort.as_str(), "BestEffort");
    }

    #[test]
    fn cpu_formulas() {
        for (desc, milli, shares, quota) in [
            ("no cpu", 0, 2, 0),
            ("one millicpu", 1, 2, 1000),
            ("a tenth of a cpu", 100, 102, 10_000),
            ("one cpu", 1000, 1024, 100_000),
            ("two and a half cpus", 2500, 2560, 250_000),
            ("huge", 1_000_000, MAX_SHARES, 100_000_000),
        ] {
            assert_eq!(milli_cpu_to_shares(milli), shares, "{desc}: shares");
            assert_eq!(milli_cpu_to_quota(milli, QUOTA_PERIOD), quota, "{desc}: quota");
        }
    }

    #[test]
    fn container_resources_by_class() {
        let gib = 1 << 30;
        let cases = [
            ("best effort", container(&[], &[]), 2, 0, 0, 0, 1000),
            (
                "guaranteed",
                container(
                    &[("cpu", "500m"), ("memory", "1Gi")],
                    &[("cpu", "500m"), ("memory", "1Gi")],
                ),
                512,
                50_000,
                100_000,
                gib,
                -997,
            ),
            (
                "burstable: quarter of the node's memory requested",
                container(&[("cpu", "250m"), ("memory", "1Gi")], &[]),
                256,
                0,
                0,
                0,
                750,
            ),
            (
                "burstable: tiny request stays below best effort",
                container(&[("memory", "1")], &[]),
                2,
                0,
                0,
                0,
                999,
            ),
            (
                "burstable: huge request stays above guaranteed",
                container(&[("memory", "8Gi")], &[]),
                2,
                0,
                0,
                0,
                3,
            ),
            (
                "cpu limit without request gives shares",
                container(&[], &[("cpu", "2")]),
                2048,
                200_000,
                100_000,
                0,
                999,
            ),
        ];
        for (desc, c, shares, quota, period, memory, oom) in cases {
            let p = pod(vec![c.clone()]);
            let r = container_resources(&p, &c, 4 * gib).unwrap_or_else(|e| panic!("{desc}: {e}"));
            assert_eq!(
                (
                    r.cpu_shares,
                    r.cpu_quota,
                    r.cpu_period,
                    r.memory_limit_in_bytes,
                    r.oom_score_adj
                ),
                (shares, quota, period, memory, oom),
                "{desc}"
            );
        }
    }

    #[test]
    fn bad_quantity_is_an_error() {
        let c = container(&[("cpu", "lots")], &[]);
        assert!(matches!(
            container_resources(&pod(vec![c.clone()]), &c, 1),
            Err(SpecError::InvalidQuantity(_))
        ));
    }

    #[test]
    fn reads_mem_total() {
        assert_eq!(
            parse_mem_total("MemTotal:       16384 kB\nMemFree: 1 kB\n"),
            Some(16_777_216)
        );
        assert_eq!(parse_mem_total("nothing"), None);
    }
}
