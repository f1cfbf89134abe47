//! The pod CIDR the control plane allocates to a node becomes its pods' network: the
//! controller-manager (`--allocate-node-cidrs`) writes the Node's `spec.podCIDRs`, the
//! node agent passes them to the runtime through UpdateRuntimeConfig, and runtime-core,
//! which has a CNI configuration template (`cni_conf_template`, as containerd's
//! `conf_template`) and no network until then, renders its network on that CIDR.
//!
//! One environment: a local registry with the busybox test images, a control plane
//! allocating /24s of [`CLUSTER_CIDR`], and two nodes, each on a runtime-core of its own
//! that starts without a network: kubelet-lite as `klt-cidr-lite` (`198.18.103.1`, pods on
//! bridge `kltcidr0`) and the real kubelet 1.20 as `klt-cidr-kubelet` (`198.18.103.2`,
//! pods on `kltcidr1`). Needs root, the Kubernetes 1.20 binaries, etcd, runc, the CNI
//! plugins, docker-registry and busybox-static (skipped without them, failed with
//! `CI=true`).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, ensure};
use e2e::eventually;
use test_harness::cni::in_cidr;
use test_harness::suite::{self, Test};
use test_harness::{
    ControlPlane, ControlPlaneOptions, Kubelet, KubeletLite, KubeletLiteOptions, KubeletOptions, Registry, RuntimeCore,
    RuntimeCoreOptions, note,
};

/// The Kubernetes binaries the test runs.
const KUBERNETES_BINARIES: [&str; 4] = ["kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet"];

/// What the controller-manager allocates node CIDRs from (a /24 each).
const CLUSTER_CIDR: &str = "198.18.104.0/21";

/// The kubelet-lite node.
const LITE_NODE: &str = "klt-cidr-lite";

/// The real kubelet's node.
const KUBELET_NODE: &str = "klt-cidr-kubelet";

/// How long a pod may take to run (first pull included).
const POD_TIMEOUT: Duration = Duration::from_secs(120);

struct Env {
    // Dropped in this order: the nodes before the runtimes they drive, the runtimes
    // before the control plane and the registry.
    lite: KubeletLite,
    kubelet: Kubelet,
    lite_runtime: RuntimeCore,
    kubelet_runtime: RuntimeCore,
    control_plane: ControlPlane,
    _registry: Registry,
    busybox: String,
}

/// runtime-core whose CNI network is a template on bridge `bridge`.
fn templated_runtime(registry: &Registry, bridge: &str) -> anyhow::Result<RuntimeCore> {
    let binary = e2e::workspace_binary("runtime-core", "runtime-core")?;
    let options = RuntimeCoreOptions {
        network_template: true,
        // Unused by a template; the rendered network takes the node's CIDR instead.
        ..RuntimeCoreOptions::with_network(bridge, "198.18.103.128/25")
    };
    RuntimeCore::start(&binary, registry, options)
}

impl Env {
    fn setup() -> anyhow::Result<Env> {
        test_harness::control_plane::kubernetes_binaries(&KUBERNETES_BINARIES)?;
        let registry = Registry::start()?;
        let images = test_harness::push_test_images(&registry)?;
        let lite_runtime = templated_runtime(&registry, "kltcidr0")?;
        let kubelet_runtime = templated_runtime(&registry, "kltcidr1")?;
        let control_plane = ControlPlane::start_with(ControlPlaneOptions {
            cluster_cidr: Some(CLUSTER_CIDR.into()),
            ..ControlPlaneOptions::default()
        })?;
        let binary = e2e::workspace_binary("kubelet-lite", "kubelet-lite")?;
        let lite = KubeletLite::start(
            &binary,
            &control_plane,
            &registry,
            KubeletLiteOptions {
                node_name: LITE_NODE.into(),
                node_ip: [198, 18, 103, 1].into(),
                node_bridge: "kltcidrnode0".into(),
                runtime_endpoint: Some(lite_runtime.endpoint()),
                ..KubeletLiteOptions::default()
            },
        )
        .with_context(|| format!("runtime-core's log ends with:\n{}", lite_runtime.log_tail(30)))?;
        let kubelet = Kubelet::start(
            &control_plane,
            &kubelet_runtime.endpoint(),
            KubeletOptions {
                node_name: KUBELET_NODE.into(),
                node_ip: [198, 18, 103, 2].into(),
                node_bridge: "kltcidrnode1".into(),
                ..KubeletOptions::default()
            },
        )
        .with_context(|| format!("runtime-core's log ends with:\n{}", kubelet_runtime.log_tail(30)))?;
        Ok(Env {
            lite,
            kubelet,
            lite_runtime,
            kubelet_runtime,
            control_plane,
            _registry: registry,
            busybox: images.busybox,
        })
    }

    /// The node's `spec.podCIDR`, once the controller-manager allocated it.
    fn pod_cidr_of(&self, node: &str) -> anyhow::Result<String> {
        eventually(Duration::from_secs(30), || {
            let cidr = self
                .control_plane
                .kubectl(["get", "node", node, "-o", "jsonpath={.spec.podCIDR}"])?;
            Ok((!cidr.trim().is_empty()).then(|| cidr.trim().to_owned()))
        })
        .with_context(|| format!("node {node} gets no pod CIDR"))
    }

    /// Runs a pod bound to `node`; returns its IP once it runs.
    fn run_pod_on(&self, node: &str, diagnostics: impl Fn() -> String) -> anyhow::Result<String> {
        let name = format!("{node}-pod");
        let pod = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name},
            "spec": {
                "nodeName": node,
                "terminationGracePeriodSeconds": 1,
                "containers": [{"name": "c", "image": self.busybox, "command": ["sleep", "3600"]}]
            }
        });
        self.control_plane
            .kubectl_with_input(["apply", "-f", "-"], &pod.to_string())?;
        let field = |path: &str| {
            self.control_plane
                .kubectl(["get", "pod", &name, "-o", &format!("jsonpath={{{path}}}")])
        };
        eventually(POD_TIMEOUT, || {
            Ok((field(".status.phase")?.trim() == "Running").then_some(()))
        })
        .with_context(|| {
            let describe =
                (self.control_plane.kubectl(["describe", "pod", &name])).unwrap_or_else(|err| format!("{err:#}"));
            format!("pod {name} does not run:\n{describe}\n{}", diagnostics())
        })?;
        let ip = field(".status.podIP")?;
        self.control_plane.kubectl(["delete", "pod", &name, "--wait=false"])?;
        Ok(ip)
    }

    /// Checks that `runtime` rendered its network on `node`'s allocated CIDR and that a
    /// pod on `node` gets an address in it.
    fn check_node(&self, node: &str, runtime: &RuntimeCore, diagnostics: impl Fn() -> String) -> anyhow::Result<()> {
        let cidr = self.pod_cidr_of(node)?;
        ensure!(
            in_cidr(cidr.split('/').next().unwrap_or_default(), CLUSTER_CIDR)?,
            "{node}'s pod CIDR {cidr} is not from {CLUSTER_CIDR}"
        );
        let rendered = runtime.dir().join("cni/net.d/10-runtime-core-net.conflist");
        let text = std::fs::read_to_string(&rendered)
            .with_context(|| format!("runtime-core rendered no network into {}", rendered.display()))?;
        let network: serde_json::Value = serde_json::from_str(&text)?;
        ensure!(
            network["plugins"][0]["ipam"]["ranges"] == serde_json::json!([[{"subnet": cidr}]]),
            "the rendered network is not on {cidr}: {text}"
        );
        let ip = self.run_pod_on(node, diagnostics)?;
        note(format!("{node}: pod CIDR {cidr}, pod IP {ip}"));
        ensure!(
            in_cidr(&ip, &cidr)?,
            "the pod's IP {ip} is not in {node}'s pod CIDR {cidr}"
        );
        Ok(())
    }
}

fn main() -> ExitCode {
    suite::run(
        Env::setup,
        vec![
            Test::new(
                "kubelet_lite_gives_the_runtime_the_pod_cidr_the_control_plane_allocated",
                |env: &Env| {
                    env.check_node(LITE_NODE, &env.lite_runtime, || {
                        format!(
                            "kubelet-lite's log ends with:\n{}\nruntime-core's:\n{}",
                            env.lite.log_tail(30),
                            env.lite_runtime.log_tail(30)
                        )
                    })
                },
            ),
            Test::new(
                "the_real_kubelet_gives_runtime_core_the_pod_cidr_the_control_plane_allocated",
                |env: &Env| {
                    env.check_node(KUBELET_NODE, &env.kubelet_runtime, || {
                        format!(
                            "the kubelet's log ends with:\n{}\nruntime-core's:\n{}",
                            env.kubelet.log_tail(30),
                            env.kubelet_runtime.log_tail(30)
                        )
                    })
                },
            ),
        ],
    )
}
