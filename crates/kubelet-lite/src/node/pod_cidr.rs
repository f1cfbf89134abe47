//! The node's pod CIDRs, which the controller-manager allocates in the Node's
//! `spec.podCIDRs` (with `--allocate-node-cidrs`), passed on to the runtime through
//! UpdateRuntimeConfig whenever they change, as the kubelet does: a runtime with a CNI
//! configuration template (containerd's `conf_template`, runtime-core's
//! `cni_conf_template`) renders its pod network from them.

use cri_api::v1::{NetworkConfig, RuntimeConfig};
use k8s_openapi::api::core::v1::Node;

/// The pod CIDRs of `node` as the CRI carries them (comma-separated), if it has any.
pub fn of(node: &Node) -> Option<String> {
    let spec = node.spec.as_ref()?;
    let cidrs = match spec.pod_cidrs.as_deref() {
        Some(cidrs) if !cidrs.is_empty() => cidrs.join(","),
        _ => spec.pod_cidr.clone().unwrap_or_default(),
    };
    (!cidrs.is_empty()).then_some(cidrs)
}

/// Remembers what the runtime was told, so it is told each change once.
#[derive(Debug, Default)]
pub struct PodCidrFollower {
    sent: Option<String>,
}

impl PodCidrFollower {
    /// Tells `runtime` the pod CIDRs of `node` unless it was told them already; a failed
    /// call is tried again at the next one.
    pub async fn follow(&mut self, runtime: &cri_client::Client, node: &Node) {
        let Some(cidrs) = of(node) else {
            return;
        };
        if self.sent.as_deref() == Some(cidrs.as_str()) {
            return;
        }
        let config = RuntimeConfig {
            network_config: Some(NetworkConfig {
                pod_cidr: cidrs.clone(),
            }),
        };
        match runtime.update_runtime_config(config).await {
            Ok(()) => {
                tracing::info!(pod_cidr = %cidrs, "the runtime was given the node's pod CIDR");
                self.sent = Some(cidrs);
            }
            Err(err) => tracing::warn!(pod_cidr = %cidrs, error = %err, "giving the runtime the node's pod CIDR"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cri_api::v1::UpdateRuntimeConfigRequest;
    use cri_client::testing::{FakeRuntime, Fault, Rpc};
    use k8s_openapi::api::core::v1::NodeSpec;

    fn node(pod_cidr: Option<&str>, pod_cidrs: &[&str]) -> Node {
        Node {
            spec: Some(NodeSpec {
                pod_cidr: pod_cidr.map(str::to_owned),
                pod_cidrs: Some(pod_cidrs.iter().map(|c| c.to_string()).collect()),
                ..NodeSpec::default()
            }),
            ..Node::default()
        }
    }

    #[test]
    fn the_cidrs_come_from_pod_cidrs_else_pod_cidr() {
        assert_eq!(
            of(&node(Some("10.0.1.0/24"), &["10.0.1.0/24", "fd00:1::/64"])).as_deref(),
            Some("10.0.1.0/24,fd00:1::/64")
        );
        assert_eq!(of(&node(Some("10.0.2.0/24"), &[])).as_deref(), Some("10.0.2.0/24"));
        assert_eq!(of(&node(None, &[])), None);
        assert_eq!(of(&Node::default()), None);
    }

    #[tokio::test]
    async fn the_runtime_is_told_each_change_once_and_again_after_a_failure() {
        let dir = tempfile::tempdir().unwrap();
        let fake = FakeRuntime::new();
        let server = fake.serve(dir.path().join("cri.sock")).unwrap();
        let runtime = server.connect().await.unwrap();
        let mut follower = PodCidrFollower::default();
        follower.follow(&runtime, &node(None, &[])).await;
        follower.follow(&runtime, &node(None, &["10.0.1.0/24"])).await;
        follower.follow(&runtime, &node(None, &["10.0.1.0/24"])).await;
        fake.inject(
            Rpc::UpdateRuntimeConfig,
            Fault::error(tonic::Status::unavailable("restarting")),
        );
        follower.follow(&runtime, &node(None, &["10.0.2.0/24"])).await;
        follower.follow(&runtime, &node(None, &["10.0.2.0/24"])).await;
        let sent: Vec<String> = (fake.calls_to(Rpc::UpdateRuntimeConfig).iter())
            .map(|call| call.request::<UpdateRuntimeConfigRequest>().cloned().unwrap())
            .map(|r| r.runtime_config.unwrap().network_config.unwrap().pod_cidr)
            .collect();
        assert_eq!(sent, ["10.0.1.0/24", "10.0.2.0/24", "10.0.2.0/24"]);
    }
}
