//! The real kubelet 1.20 drives runtime-core over CRI v1alpha2 against a real control
//! plane: a pod created with `kubectl` runs, reports Running with its IP, its logs show in
//! `kubectl logs`, and deleting it removes its containers and sandbox.
//!
//! One environment: a local registry with the busybox test images (pulled as
//! `docker.io/library/busybox:1.36` through runtime-core's mirrors), runtime-core on
//! bridge `klte2e0` (`198.18.20.0/24`), a control plane (etcd, kube-apiserver,
//! kube-controller-manager, kube-scheduler 1.20.2) and the kubelet 1.20.2 as node
//! `klt-e2e-0` at `198.18.255.1` pointed at runtime-core's socket. Needs root and the
//! Kubernetes binaries of `scripts/build-kubernetes.sh` (skipped without them, failed
//! with `CI=true`).

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use cri_api::v1::{ContainerFilter, ListContainersRequest, ListPodSandboxRequest, PodSandboxFilter};
use e2e::eventually;
use test_harness::cni::in_cidr;
use test_harness::suite::{self, Test};
use test_harness::{
    ControlPlane, Kubelet, KubeletOptions, Registry, RuntimeCore, RuntimeCoreOptions, TestImages, note,
};

/// The pod network of runtime-core in this test.
const BRIDGE: &str = "klte2e0";
const SUBNET: &str = "198.18.20.0/24";

/// The node the kubelet registers.
const NODE: &str = "klt-e2e-0";

/// The Kubernetes binaries the test runs (`scripts/build-kubernetes.sh` builds them).
const KUBERNETES_BINARIES: [&str; 4] = ["kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet"];

/// The label the kubelet puts on the sandboxes and containers of a pod: its UID.
const POD_UID_LABEL: &str = "io.kubernetes.pod.uid";

/// What the pod prints before it sleeps.
const HELLO: &str = "hello from runtime-core";

/// How long the pod may take to run: a first pull, sandbox, container.
const RUNNING_TIMEOUT: Duration = Duration::from_secs(60);

/// How long the kubelet may take to remove a deleted pod's containers and sandbox: its
/// garbage collection runs once a minute.
const REMOVAL_TIMEOUT: Duration = Duration::from_secs(90);

struct Env {
    // Dropped in this order: the kubelet stops before the runtime it drives goes, the
    // runtime before the registry it may pull from.
    kubelet: Kubelet,
    runtime: RuntimeCore,
    control_plane: ControlPlane,
    images: TestImages,
    _registry: Registry,
}

impl Env {
    fn setup() -> anyhow::Result<Env> {
        // Before anything starts: without the Kubernetes binaries the test is skipped.
        test_harness::control_plane::kubernetes_binaries(&KUBERNETES_BINARIES)?;
        let registry = Registry::start()?;
        let images = test_harness::push_test_images(&registry)?;
        let building = Instant::now();
        let binary = e2e::workspace_binary("runtime-core", "runtime-core")?;
        note(format!(
            "runtime-core built (or up to date) in {:.2?}",
            building.elapsed()
        ));
        let runtime = RuntimeCore::start(&binary, &registry, RuntimeCoreOptions::with_network(BRIDGE, SUBNET))?;
        let control_plane = ControlPlane::start()?;
        let options = KubeletOptions {
            node_name: NODE.into(),
            ..KubeletOptions::default()
        };
        let kubelet = Kubelet::start(&control_plane, &runtime.endpoint(), options)
            .with_context(|| format!("runtime-core's log ends with:\n{}", runtime.log_tail(30)))?;
        Ok(Env {
            kubelet,
            runtime,
            control_plane,
            images,
            _registry: registry,
        })
    }

    /// What a failed step shows: the pod as the apiserver sees it and the ends of the
    /// kubelet's and runtime-core's logs.
    fn diagnostics(&self, pod: &str) -> String {
        let describe = self
            .control_plane
            .kubectl(["describe", "pod", pod])
            .unwrap_or_else(|err| format!("{err:#}"));
        format!(
            "kubectl describe pod {pod}:\n{describe}\n\nthe kubelet's log ends with:\n{}\n\n\
             runtime-core's log ends with:\n{}",
            self.kubelet.log_tail(40),
            self.runtime.log_tail(40)
        )
    }

    /// The ids of the sandboxes and containers runtime-core has for pod `uid`.
    fn cri_objects_of(&self, uid: &str) -> anyhow::Result<(Vec<String>, Vec<String>)> {
        let selector: HashMap<String, String> = [(POD_UID_LABEL.to_string(), uid.to_string())].into();
        let mut client = self.runtime.runtime_client();
        let sandboxes = self.runtime.block_on(client.list_pod_sandbox(ListPodSandboxRequest {
            filter: Some(PodSandboxFilter {
                label_selector: selector.clone(),
                ..PodSandboxFilter::default()
            }),
        }))?;
        let containers = self.runtime.block_on(client.list_containers(ListContainersRequest {
            filter: Some(ContainerFilter {
                label_selector: selector,
                ..ContainerFilter::default()
            }),
        }))?;
        Ok((
            sandboxes.into_inner().items.into_iter().map(|s| s.id).collect(),
            containers.into_inner().containers.into_iter().map(|c| c.id).collect(),
        ))
    }
}

fn main() -> ExitCode {
    suite::run(
        Env::setup,
        vec![Test::new(
            "a_pod_runs_logs_and_is_removed_through_the_real_kubelet",
            a_pod_runs_logs_and_is_removed_through_the_real_kubelet,
        )],
    )
}

/// A pod running `sh -c 'echo hello from runtime-core; sleep 3600'`. `sh` as PID 1
/// ignores SIGTERM, so deleting it waits for its grace period: keep that short.
fn pod_manifest(name: &str, image: &str) -> String {
    format!(
        r#"{{
  "apiVersion": "v1",
  "kind": "Pod",
  "metadata": {{"name": "{name}", "labels": {{"app": "{name}"}}}},
  "spec": {{
    "terminationGracePeriodSeconds": 2,
    "containers": [{{
      "name": "hello",
      "image": "{image}",
      "command": ["sh", "-c", "echo {HELLO}; sleep 3600"]
    }}]
  }}
}}"#
    )
}

fn a_pod_runs_logs_and_is_removed_through_the_real_kubelet(env: &Env) -> anyhow::Result<()> {
    let kubectl = |args: &[&str]| env.control_plane.kubectl(args);
    let pod = "hello";
    let created = Instant::now();
    env.control_plane
        .kubectl_with_input(["apply", "-f", "-"], &pod_manifest(pod, &env.images.busybox))?;

    // Running, on our node, with an address of runtime-core's pod network.
    let phase = |field: &str| kubectl(&["get", "pod", pod, "-o", &format!("jsonpath={{{field}}}")]);
    eventually(RUNNING_TIMEOUT, || {
        Ok((phase(".status.phase")?.trim() == "Running").then_some(()))
    })
    .with_context(|| env.diagnostics(pod))?;
    note(format!(
        "pod {pod} Running {:.2?} after kubectl apply",
        created.elapsed()
    ));
    let node = phase(".spec.nodeName")?;
    ensure!(node == NODE, "the pod was scheduled to {node:?}, not {NODE}");
    let pod_ip = phase(".status.podIP")?;
    ensure!(
        in_cidr(&pod_ip, SUBNET)?,
        "the pod's IP {pod_ip:?} is not in runtime-core's subnet {SUBNET}"
    );
    let uid = phase(".metadata.uid")?;
    let (sandboxes, containers) = env.cri_objects_of(&uid)?;
    ensure!(
        sandboxes.len() == 1 && containers.len() == 1,
        "runtime-core has sandboxes {sandboxes:?} and containers {containers:?} for the pod"
    );

    // kubectl logs: apiserver -> kubelet's API -> the CRI log file runtime-core writes.
    let logs = eventually(Duration::from_secs(10), || {
        let logs = kubectl(&["logs", pod])?;
        Ok(logs.contains(HELLO).then_some(logs))
    })
    .with_context(|| env.diagnostics(pod))?;
    ensure!(logs.trim() == HELLO, "kubectl logs says {logs:?}");

    // Deleted: the kubelet stops the pod, the apiserver forgets it, and the kubelet's
    // garbage collection removes its containers and sandbox through CRI.
    let deleting = Instant::now();
    kubectl(&["delete", "pod", pod, "--wait=true", "--timeout=60s"]).with_context(|| env.diagnostics(pod))?;
    note(format!("pod {pod} deleted in {:.2?}", deleting.elapsed()));
    eventually(REMOVAL_TIMEOUT, || {
        let (sandboxes, containers) = env.cri_objects_of(&uid)?;
        Ok((sandboxes.is_empty() && containers.is_empty()).then_some(()))
    })
    .with_context(|| {
        format!(
            "runtime-core still holds the pod's sandbox or containers: {:?}\n{}",
            env.cri_objects_of(&uid),
            env.diagnostics(pod)
        )
    })?;
    note(format!(
        "the pod's containers and sandbox removed {:.2?} after kubectl delete",
        deleting.elapsed()
    ));
    Ok(())
}
