//! The Node's labels and status from what this machine and the CRI runtime say.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::{
    DaemonEndpoint, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeStatus, NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// The `kubeletVersion` this node reports: the Kubernetes API level it speaks, tagged.
pub const KUBELET_VERSION: &str = concat!("v1.20.2-kubelet-lite.", env!("CARGO_PKG_VERSION"));

/// What does not change while the node agent runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeFacts {
    /// The Node's name.
    pub node_name: String,
    /// The node's address.
    pub node_ip: Option<IpAddr>,
    /// The advertised kubelet API port.
    pub port: u16,
    /// `pods` capacity.
    pub max_pods: u32,
    /// `RUNTIME_NAME://RUNTIME_VERSION` from CRI Version.
    pub runtime_version: String,
    /// Where ephemeral storage lives (its filesystem's size is the capacity).
    pub root_dir: PathBuf,
}

impl NodeFacts {
    /// The Node's labels: host name, OS and architecture (and their beta twins, which
    /// 1.20-era controllers and manifests still select on).
    pub fn labels(&self) -> BTreeMap<String, String> {
        let os = std::env::consts::OS.to_owned();
        let arch = go_arch().to_owned();
        BTreeMap::from([
            ("kubernetes.io/hostname".to_owned(), self.node_name.clone()),
            ("kubernetes.io/os".to_owned(), os.clone()),
            ("kubernetes.io/arch".to_owned(), arch.clone()),
            ("beta.kubernetes.io/os".to_owned(), os),
            ("beta.kubernetes.io/arch".to_owned(), arch),
        ])
    }

    /// The status to report: conditions (Ready from `ready`: `Err(reason)` when the
    /// runtime is not ready; transition times kept from `previous` when unchanged),
    /// addresses, capacity and allocatable, node info, daemon endpoints.
    pub fn status(&self, ready: Result<(), String>, previous: Option<&NodeStatus>) -> NodeStatus {
        let now = Time(k8s_openapi::jiff::Timestamp::now());
        let previous_conditions = previous.and_then(|s| s.conditions.as_ref());
        let condition = |type_: &str, status: &str, reason: &str, message: String| {
            let transition = previous_conditions
                .and_then(|all| all.iter().find(|c| c.type_ == type_))
                .filter(|c| c.status == status)
                .and_then(|c| c.last_transition_time.clone())
                .unwrap_or_else(|| now.clone());
            NodeCondition {
                type_: type_.to_owned(),
                status: status.to_owned(),
                reason: Some(reason.to_owned()),
                message: Some(message),
                last_heartbeat_time: Some(now.clone()),
                last_transition_time: Some(transition),
            }
        };
        let ready_condition = match &ready {
            Ok(()) => condition(
                "Ready",
                "True",
                "KubeletReady",
                "kubelet is posting ready status".into(),
            ),
            Err(why) => condition("Ready", "False", "KubeletNotReady", why.clone()),
        };
        let conditions = vec![
            condition(
                "MemoryPressure",
                "False",
                "KubeletHasSufficientMemory",
                "kubelet has sufficient memory available".into(),
            ),
            condition(
                "DiskPressure",
                "False",
                "KubeletHasNoDiskPressure",
                "kubelet has no disk pressure".into(),
            ),
            condition(
                "PIDPressure",
                "False",
                "KubeletHasSufficientPID",
                "kubelet has sufficient PID available".into(),
            ),
            ready_condition,
        ];
        let mut addresses = Vec::new();
        if let Some(ip) = self.node_ip {
            addresses.push(NodeAddress {
                type_: "InternalIP".into(),
                address: ip.to_string(),
            });
        }
        addresses.push(NodeAddress {
            type_: "Hostname".into(),
            address: self.node_name.clone(),
        });
        let capacity = self.capacity();
        NodeStatus {
            addresses: Some(addresses),
            allocatable: Some(capacity.clone()),
            capacity: Some(capacity),
            conditions: Some(conditions),
            daemon_endpoints: Some(NodeDaemonEndpoints {
                kubelet_endpoint: Some(DaemonEndpoint {
                    port: i32::from(self.port),
                }),
            }),
            node_info: Some(self.node_info()),
            ..NodeStatus::default()
        }
    }

    /// cpu, memory, pods and ephemeral-storage of this machine.
    fn capacity(&self) -> BTreeMap<String, Quantity> {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut capacity = BTreeMap::from([
            ("cpu".to_owned(), Quantity(cpus.to_string())),
            ("pods".to_owned(), Quantity(self.max_pods.to_string())),
        ]);
        if let Some(kib) = mem_total_kib() {
            capacity.insert("memory".into(), Quantity(format!("{kib}Ki")));
        }
        if let Some(bytes) = filesystem_size(&self.root_dir) {
            capacity.insert("ephemeral-storage".into(), Quantity(bytes.to_string()));
        }
        capacity
    }

    fn node_info(&self) -> NodeSystemInfo {
        let read = |path: &str| {
            std::fs::read_to_string(path)
                .map(|text| text.trim().to_owned())
                .unwrap_or_default()
        };
        let machine_id = read("/etc/machine-id");
        let system_uuid = Some(read("/sys/class/dmi/id/product_uuid"))
            .filter(|uuid| !uuid.is_empty())
            .unwrap_or_else(|| machine_id.clone());
        NodeSystemInfo {
            architecture: go_arch().to_owned(),
            boot_id: read("/proc/sys/kernel/random/boot_id"),
            container_runtime_version: self.runtime_version.clone(),
            kernel_version: read("/proc/sys/kernel/osrelease"),
            kube_proxy_version: KUBELET_VERSION.to_owned(),
            kubelet_version: KUBELET_VERSION.to_owned(),
            machine_id,
            operating_system: std::env::consts::OS.to_owned(),
            os_image: os_image(&read("/etc/os-release")),
            system_uuid,
            swap: None,
        }
    }
}

/// `Ok` if CRI Status says RuntimeReady and NetworkReady, else why not.
pub async fn runtime_ready(runtime: &cri_client::Client) -> Result<(), String> {
    let status = runtime
        .status(false)
        .await
        .map_err(|err| format!("container runtime is down: {err}"))?;
    let conditions = status.status.map(|s| s.conditions).unwrap_or_default();
    for wanted in ["RuntimeReady", "NetworkReady"] {
        match conditions.iter().find(|c| c.r#type == wanted) {
            Some(c) if c.status => {}
            Some(c) => {
                return Err(format!(
                    "container runtime {wanted}=false reason:{} message:{}",
                    c.reason, c.message
                ));
            }
            None => return Err(format!("container runtime status has no {wanted} condition")),
        }
    }
    Ok(())
}

/// The status as JSON without heartbeat times: what decides whether it changed.
pub fn without_heartbeats(status: &NodeStatus) -> serde_json::Value {
    let mut status = status.clone();
    for condition in status.conditions.iter_mut().flatten() {
        condition.last_heartbeat_time = None;
    }
    serde_json::to_value(status).unwrap_or_default()
}

/// Go's name of this architecture (what `kubernetes.io/arch` holds).
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// `PRETTY_NAME` of an os-release file.
fn os_image(os_release: &str) -> String {
    os_release
        .lines()
        .find_map(|line| line.strip_prefix("PRETTY_NAME="))
        .map(|value| value.trim_matches('"').to_owned())
        .unwrap_or_else(|| "Linux".to_owned())
}

fn mem_total_kib() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|line| line.starts_with("MemTotal:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn filesystem_size(path: &std::path::Path) -> Option<u64> {
    let stat = nix::sys::statvfs::statvfs(path).ok()?;
    Some(stat.blocks().saturating_mul(stat.fragment_size()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> NodeFacts {
        NodeFacts {
            node_name: "n1".into(),
            node_ip: Some("198.18.51.1".parse().unwrap()),
            port: 10250,
            max_pods: 110,
            runtime_version: "runtime-core://0.1.0".into(),
            root_dir: "/".into(),
        }
    }

    #[test]
    fn ready_follows_the_runtime_and_keeps_transition_times() {
        let ready = facts().status(Ok(()), None);
        let condition = |status: &NodeStatus| {
            status
                .conditions
                .iter()
                .flatten()
                .find(|c| c.type_ == "Ready")
                .cloned()
                .unwrap()
        };
        assert_eq!(condition(&ready).status, "True");
        let again = facts().status(Ok(()), Some(&ready));
        assert_eq!(
            condition(&again).last_transition_time,
            condition(&ready).last_transition_time
        );
        let down = facts().status(Err("runtime down".into()), Some(&ready));
        assert_eq!(condition(&down).status, "False");
        assert_eq!(condition(&down).message.as_deref(), Some("runtime down"));
    }

    #[test]
    fn status_reports_capacity_addresses_and_port() {
        let status = facts().status(Ok(()), None);
        let capacity = status.capacity.unwrap();
        assert_eq!(capacity["pods"].0, "110");
        assert!(capacity.contains_key("cpu") && capacity.contains_key("memory"));
        assert_eq!(status.addresses.unwrap()[0].address, "198.18.51.1");
        assert_eq!(status.daemon_endpoints.unwrap().kubelet_endpoint.unwrap().port, 10250);
        assert_eq!(
            status.node_info.unwrap().container_runtime_version,
            "runtime-core://0.1.0"
        );
    }

    #[test]
    fn heartbeats_do_not_count_as_changes() {
        let first = facts().status(Ok(()), None);
        std::thread::sleep(std::time::Duration::from_millis(5));
        let second = facts().status(Ok(()), Some(&first));
        assert_eq!(without_heartbeats(&first), without_heartbeats(&second));
    }
}
