//! The node suite of kubelet-lite, shared by two test targets that run it on two
//! runtimes: `tests/kubelet_lite.rs` (kubelet-lite as built by default, its embedded
//! runtime-core in-process) and `tests/kubelet_lite_containerd.rs` (kubelet-lite built
//! without default features, hence without runtime-core, driving containerd 1.6 over CRI).
//!
//! kubelet-lite is a node of a real Kubernetes 1.20 control plane: it registers and turns
//! Ready, runs a Deployment applied with kubectl (env, config map and secret volumes),
//! backs off a crashing container and an image it cannot pull, keeps a pod with a failing
//! readiness probe un-Ready, terminates deleted pods gracefully (exec and HTTP preStop
//! hooks), runs static pods with their mirror pods, and adopts running pods after a
//! restart.
//!
//! One environment a run: a local registry with the busybox test images (pulled as
//! `docker.io/library/busybox:1.36` through mirrors), the control plane, containerd for
//! [`Runtime::Containerd`], and kubelet-lite as the node of [`Runtime::site`]. The tests
//! run in parallel, except the restart, which waits for the others (it holds the node's
//! write lock). Container output is read from the log files the runtime writes under
//! `/var/log/pods`, where kubelet-lite asks every runtime to write them.
//!
//! A test a runtime cannot pass for a reason of the runtime's own is not run on it, and
//! [`excluded`] says why; the run prints that reason.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use e2e::eventually;
use test_harness::cni::in_cidr;
use test_harness::suite::{self, Test};
use test_harness::{
    Containerd, ContainerdOptions, ControlPlane, KubeletLite, KubeletLiteOptions, Registry, TestImages, note,
};

/// The control plane binaries the test runs.
const KUBERNETES_BINARIES: [&str; 3] = ["kube-apiserver", "kube-controller-manager", "kube-scheduler"];

/// How long a pod may take to run (a first pull, sandbox, container).
const RUNNING_TIMEOUT: Duration = Duration::from_secs(90);

/// The runtime kubelet-lite drives in a run of the suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(dead_code, reason = "each test target runs the suite on one runtime")]
pub(crate) enum Runtime {
    /// runtime-core in-process: kubelet-lite built with its default features
    /// (`embedded`).
    Embedded,
    /// containerd 1.6 (the machine's `containerd`), started by the harness with mirrors
    /// onto the local registry and a CNI bridge network of its own, driven by kubelet-lite
    /// built without default features through `--container-runtime-endpoint`.
    Containerd,
}

/// Where a run's node lives: names and addresses no other suite uses.
#[derive(Debug, Clone, Copy)]
struct Site {
    /// The Node kubelet-lite registers.
    node: &'static str,
    /// Its address, on the port-less `node_bridge`.
    node_ip: Ipv4Addr,
    node_bridge: &'static str,
    /// The runtime's pod bridge and subnet (the embedded runtime's, or containerd's).
    pod_bridge: &'static str,
    pod_subnet: &'static str,
}

impl Runtime {
    fn site(self) -> Site {
        match self {
            Runtime::Embedded => Site {
                node: "klt-lite-e2e",
                node_ip: Ipv4Addr::new(198, 18, 51, 1),
                node_bridge: "kltklnode0",
                pod_bridge: "kltkl0",
                pod_subnet: "198.18.50.0/24",
            },
            Runtime::Containerd => Site {
                node: "klt-lite-ctr-e2e",
                node_ip: Ipv4Addr::new(198, 18, 71, 1),
                node_bridge: "kltkcnode0",
                pod_bridge: "kltkc0",
                pod_subnet: "198.18.70.0/24",
            },
        }
    }

    /// How the Node's `containerRuntimeVersion` starts on this runtime.
    fn version_prefix(self) -> &'static str {
        match self {
            Runtime::Embedded => "runtime-core://",
            Runtime::Containerd => "containerd://",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Runtime::Embedded => "the embedded runtime-core",
            Runtime::Containerd => "containerd",
        }
    }
}

/// Why test `test` is not run on `runtime`, if it is not.
fn excluded(test: &str, runtime: Runtime) -> Option<&'static str> {
    match (test, runtime) {
        // containerd 1.6's CRI plugin predates user namespaces for pods: it knows no
        // `userns_options` in the sandbox's and containers' security contexts (1.7 began
        // to read them), drops them unread, and the pod runs in the host's user namespace
        // (its uid_map reads `0 0 4294967295`). Nor does it list its runtime handlers'
        // features in CRI Status, whose `user_namespaces` would let a kubelet refuse
        // such a pod, as the kubelet does since 1.30; kubelet-lite does not ask yet.
        ("a_static_pod_without_host_users_runs_in_a_user_namespace_of_its_own", Runtime::Containerd) => {
            Some("containerd 1.6 does not support user namespaces for pods (no CRI userns_options before 1.7)")
        }
        _ => None,
    }
}

/// Runs the suite's tests (less those [`excluded`] on `runtime`) against kubelet-lite on
/// `runtime`; the `main` of each test target.
pub(crate) fn main(runtime: Runtime) -> ExitCode {
    let tests = all_tests()
        .into_iter()
        .filter(|test| match excluded(test.name, runtime) {
            Some(reason) => {
                note(format!("not run on {}: {}: {reason}", runtime.name(), test.name));
                false
            }
            None => true,
        })
        .collect();
    suite::run(|| Env::setup(runtime), tests)
}

fn all_tests() -> Vec<Test<Env>> {
    vec![
        Test::new(
            "the_node_registers_ready_with_its_status",
            the_node_registers_ready_with_its_status,
        ),
        Test::new(
            "a_deployment_runs_three_pods_with_env_config_maps_and_secrets",
            a_deployment_runs_three_pods_with_env_config_maps_and_secrets,
        ),
        Test::new(
            "a_crashing_container_backs_off_with_growing_delays",
            a_crashing_container_backs_off_with_growing_delays,
        ),
        Test::new(
            "an_image_that_cannot_be_pulled_backs_off",
            an_image_that_cannot_be_pulled_backs_off,
        ),
        Test::new(
            "a_failing_readiness_probe_keeps_the_pod_unready",
            a_failing_readiness_probe_keeps_the_pod_unready,
        ),
        Test::new(
            "kubectl_delete_terminates_gracefully_and_the_pod_goes",
            kubectl_delete_terminates_gracefully_and_the_pod_goes,
        ),
        Test::new(
            "an_http_pre_stop_hook_reaches_the_container",
            an_http_pre_stop_hook_reaches_the_container,
        ),
        Test::new(
            "a_static_pod_runs_and_its_mirror_pod_appears",
            a_static_pod_runs_and_its_mirror_pod_appears,
        ),
        Test::new(
            "a_static_pod_without_host_users_runs_in_a_user_namespace_of_its_own",
            a_static_pod_without_host_users_runs_in_a_user_namespace_of_its_own,
        ),
        Test::new(
            "a_restarted_node_adopts_its_running_pods",
            a_restarted_node_adopts_its_running_pods,
        ),
    ]
}

struct Env {
    runtime: Runtime,
    site: Site,
    // Dropped in this order: the node, then its runtime (containerd stops the pods the
    // node left), the control plane and the registry.
    node: RwLock<KubeletLite>,
    /// The node's log file (the same across restarts), read by [`Env::diagnostics`]
    /// without the lock: a test that fails holds a read guard, and taking another while
    /// the restart test waits to write would deadlock.
    node_log: PathBuf,
    containerd: Option<Containerd>,
    control_plane: ControlPlane,
    images: TestImages,
    registry: Registry,
}

impl Env {
    fn setup(runtime: Runtime) -> anyhow::Result<Env> {
        let site = runtime.site();
        test_harness::control_plane::kubernetes_binaries(&KUBERNETES_BINARIES)?;
        let registry = Registry::start()?;
        let images = test_harness::push_test_images(&registry)?;
        let building = Instant::now();
        let binary = match runtime {
            Runtime::Embedded => {
                e2e::workspace_binary("runtime-core", "runtime-core-monitor")?;
                e2e::workspace_binary("kubelet-lite", "kubelet-lite")?
            }
            Runtime::Containerd => e2e::workspace_binary_without_default_features("kubelet-lite", "kubelet-lite")?,
        };
        note(format!(
            "kubelet-lite for {} built (or up to date) in {:.2?}: {}",
            runtime.name(),
            building.elapsed(),
            binary.display()
        ));
        let containerd = match runtime {
            Runtime::Embedded => None,
            Runtime::Containerd => Some(Containerd::start_with(
                &registry,
                &images,
                ContainerdOptions::with_network(site.pod_bridge, site.pod_subnet),
            )?),
        };
        let control_plane = ControlPlane::start()?;
        let options = KubeletLiteOptions {
            node_name: site.node.into(),
            node_ip: site.node_ip,
            node_bridge: site.node_bridge.into(),
            pod_bridge: site.pod_bridge.into(),
            pod_subnet: site.pod_subnet.into(),
            runtime_endpoint: containerd.as_ref().map(Containerd::endpoint),
            ..KubeletLiteOptions::default()
        };
        let node = KubeletLite::start(&binary, &control_plane, &registry, options)?;
        Ok(Env {
            runtime,
            site,
            node_log: node.log_file().to_path_buf(),
            node: RwLock::new(node),
            containerd,
            control_plane,
            images,
            registry,
        })
    }

    fn kubectl(&self, args: &[&str]) -> anyhow::Result<String> {
        self.control_plane.kubectl(args)
    }

    fn apply(&self, manifest: &str) -> anyhow::Result<()> {
        self.control_plane
            .kubectl_with_input(["apply", "-f", "-"], manifest)
            .map(drop)
    }

    /// `kubectl get pod NAME -o jsonpath={FIELD}`.
    fn pod_field(&self, pod: &str, field: &str) -> anyhow::Result<String> {
        self.kubectl(&["get", "pod", pod, "-o", &format!("jsonpath={{{field}}}")])
    }

    /// Waits until pod `pod` is Running; returns how long it took.
    fn wait_running(&self, pod: &str) -> anyhow::Result<Duration> {
        let started = Instant::now();
        eventually(RUNNING_TIMEOUT, || {
            Ok((self.pod_field(pod, ".status.phase").unwrap_or_default() == "Running").then_some(()))
        })
        .with_context(|| self.diagnostics(pod))?;
        Ok(started.elapsed())
    }

    /// What a failed step shows: the pod and the end of kubelet-lite's log.
    fn diagnostics(&self, pod: &str) -> String {
        let describe = self
            .kubectl(&["get", "pod", pod, "-o", "yaml"])
            .unwrap_or_else(|err| format!("{err:#}"));
        let log = test_harness::tail_from(&self.node_log, 0, 60);
        let runtime_log = self
            .containerd
            .as_ref()
            .map(|containerd| format!("\n\ncontainerd's log ends with:\n{}", containerd.log_tail(30)))
            .unwrap_or_default();
        format!("pod {pod}:\n{describe}\n\nkubelet-lite's log ends with:\n{log}{runtime_log}")
    }

    /// Everything container `container` of pod `pod` wrote, from the runtime's log files.
    fn container_output(&self, pod: &str, container: &str) -> anyhow::Result<String> {
        let uid = self.pod_field(pod, ".metadata.uid")?;
        container_output_of(pod, &uid, container)
    }

    /// Waits until mirror pod `mirror` is gone (after its manifest was removed).
    fn wait_mirror_gone(&self, mirror: &str) -> anyhow::Result<()> {
        eventually(Duration::from_secs(30), || {
            Ok(self
                .kubectl(&["get", "pod", mirror, "--ignore-not-found", "-o", "name"])?
                .trim()
                .is_empty()
                .then_some(()))
        })
        .context("the mirror pod stays after its manifest was removed")
    }

    fn delete_quietly(&self, kind: &str, name: &str) {
        let _ = self.kubectl(&["delete", kind, name, "--wait=false", "--ignore-not-found"]);
    }
}

/// Everything container `container` of pod `pod` (UID `uid`) wrote, from the log files.
fn container_output_of(pod: &str, uid: &str, container: &str) -> anyhow::Result<String> {
    let dir = PathBuf::from("/var/log/pods")
        .join(format!("default_{pod}_{uid}"))
        .join(container);
    let mut text = String::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    for file in files {
        text.push_str(&std::fs::read_to_string(&file).unwrap_or_default());
    }
    Ok(text)
}

/// The log file of a pod's first container run, opened while the pod runs: kubelet-lite
/// removes a pod's logs as a step of its termination, possibly between two looks of a
/// test, and an open handle still reads the removed file to its end.
struct HeldLog {
    file: std::fs::File,
    text: String,
}

impl HeldLog {
    /// Opens `0.log` of container `container` of pod `pod` (UID `uid`).
    fn open(pod: &str, uid: &str, container: &str) -> anyhow::Result<HeldLog> {
        let path = PathBuf::from("/var/log/pods")
            .join(format!("default_{pod}_{uid}"))
            .join(container)
            .join("0.log");
        let file = std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        Ok(HeldLog {
            file,
            text: String::new(),
        })
    }

    /// Everything written to the file so far.
    fn read(&mut self) -> anyhow::Result<&str> {
        let mut more = Vec::new();
        std::io::Read::read_to_end(&mut self.file, &mut more).context("reading a held log")?;
        self.text.push_str(&String::from_utf8_lossy(&more));
        Ok(&self.text)
    }
}

/// A single-container pod running `script` in busybox, with a short grace period.
fn pod_manifest(name: &str, image: &str, script: &str, extra_container_fields: &str) -> String {
    let script = serde_json::Value::from(script);
    format!(
        r#"{{
  "apiVersion": "v1",
  "kind": "Pod",
  "metadata": {{"name": "{name}", "labels": {{"test": "{name}"}}}},
  "spec": {{
    "terminationGracePeriodSeconds": 5,
    "containers": [{{
      "name": "main",
      "image": "{image}",
      "command": ["sh", "-c", {script}]{extra_container_fields}
    }}]
  }}
}}"#
    )
}

fn the_node_registers_ready_with_its_status(env: &Env) -> anyhow::Result<()> {
    let _node = env.node.read().map_err(|_| anyhow::anyhow!("poisoned"))?;
    let node = env.site.node;
    let field = |path: &str| env.kubectl(&["get", "node", node, "-o", &format!("jsonpath={{{path}}}")]);
    ensure!(field(".status.conditions[?(@.type==\"Ready\")].status")? == "True");
    let address = field(".status.addresses[?(@.type==\"InternalIP\")].address")?;
    ensure!(address == env.site.node_ip.to_string(), "InternalIP {address}");
    ensure!(field(".status.capacity.pods")? == "110");
    ensure!(!field(".status.capacity.cpu")?.is_empty() && !field(".status.capacity.memory")?.is_empty());
    ensure!(!field(".status.allocatable.ephemeral-storage")?.is_empty());
    let runtime = field(".status.nodeInfo.containerRuntimeVersion")?;
    ensure!(
        runtime.starts_with(env.runtime.version_prefix()),
        "containerRuntimeVersion {runtime:?}"
    );
    ensure!(field(".metadata.labels.kubernetes\\.io/hostname")? == node);
    ensure!(field(".metadata.labels.kubernetes\\.io/os")? == "linux");
    ensure!(field(".status.daemonEndpoints.kubeletEndpoint.Port")? != "0");
    let holder = eventually(Duration::from_secs(20), || {
        let holder = env.kubectl(&[
            "get",
            "lease",
            "-n",
            "kube-node-lease",
            node,
            "--ignore-not-found",
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ])?;
        Ok((!holder.is_empty()).then_some(holder))
    })?;
    ensure!(holder == node, "the lease is held by {holder:?}");
    Ok(())
}

fn a_deployment_runs_three_pods_with_env_config_maps_and_secrets(env: &Env) -> anyhow::Result<()> {
    let _node = env.node.read().map_err(|_| anyhow::anyhow!("poisoned"))?;
    env.apply(
        r#"{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web-config"},
            "data": {"greeting": "hello from a config map", "color": "blue"}}"#,
    )?;
    env.apply(
        r#"{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "web-secret"},
            "stringData": {"password": "s3cret-value"}}"#,
    )?;
    let script = "echo \"GREETING=$GREETING\"; echo \"COLOR=$COLOR\"; echo \"POD=$POD_NAME\"; \
                  echo \"FILE=$(cat /etc/config/greeting)\"; echo \"SECRET=$(cat /etc/secret/password)\"; \
                  exec sleep 3600";
    let deployment = format!(
        r#"{{
  "apiVersion": "apps/v1",
  "kind": "Deployment",
  "metadata": {{"name": "web"}},
  "spec": {{
    "replicas": 3,
    "selector": {{"matchLabels": {{"app": "web"}}}},
    "template": {{
      "metadata": {{"labels": {{"app": "web"}}}},
      "spec": {{
        "terminationGracePeriodSeconds": 2,
        "containers": [{{
          "name": "web",
          "image": "{image}",
          "command": ["sh", "-c", {script}],
          "env": [
            {{"name": "GREETING", "value": "hi there"}},
            {{"name": "COLOR", "valueFrom": {{"configMapKeyRef": {{"name": "web-config", "key": "color"}}}}}},
            {{"name": "POD_NAME", "valueFrom": {{"fieldRef": {{"fieldPath": "metadata.name"}}}}}}
          ],
          "volumeMounts": [
            {{"name": "config", "mountPath": "/etc/config"}},
            {{"name": "secret", "mountPath": "/etc/secret", "readOnly": true}}
          ]
        }}],
        "volumes": [
          {{"name": "config", "configMap": {{"name": "web-config"}}}},
          {{"name": "secret", "secret": {{"secretName": "web-secret"}}}}
        ]
      }}
    }}
  }}
}}"#,
        image = env.images.busybox,
        script = serde_json::Value::from(script),
    );
    let started = Instant::now();
    env.apply(&deployment)?;
    let pods = eventually(RUNNING_TIMEOUT, || {
        let out = env.kubectl(&[
            "get",
            "pods",
            "-l",
            "app=web",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name} {.status.phase} {.status.podIP} {.spec.nodeName}{\"\\n\"}{end}",
        ])?;
        let running: Vec<Vec<String>> = out
            .lines()
            .map(|l| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
            .filter(|f| f.len() == 4 && f[1] == "Running")
            .collect();
        Ok((running.len() == 3).then_some(running))
    })
    .with_context(|| env.diagnostics("-l app=web"))?;
    note(format!(
        "3 deployment pods Running {:.2?} after kubectl apply",
        started.elapsed()
    ));
    for fields in &pods {
        let (name, ip, node) = (&fields[0], &fields[2], &fields[3]);
        ensure!(node == env.site.node, "{name} runs on {node}");
        ensure!(in_cidr(ip, env.site.pod_subnet)?, "{name} has IP {ip}");
        let output = eventually(Duration::from_secs(15), || {
            let text = env.container_output(name, "web").unwrap_or_default();
            Ok(text.contains("SECRET=").then_some(text))
        })
        .with_context(|| env.diagnostics(name))?;
        for expected in [
            "GREETING=hi there".to_owned(),
            "COLOR=blue".to_owned(),
            format!("POD={name}"),
            "FILE=hello from a config map".to_owned(),
            "SECRET=s3cret-value".to_owned(),
        ] {
            ensure!(
                output.contains(&expected),
                "{name} printed {output:?}, not {expected:?}"
            );
        }
        ensure!(
            env.pod_field(name, ".status.conditions[?(@.type==\"Ready\")].status")? == "True",
            "{name} is not Ready"
        );
        ensure!(env.pod_field(name, ".status.qosClass")? == "BestEffort");
        ensure!(env.pod_field(name, ".status.hostIP")? == env.site.node_ip.to_string());
    }
    env.kubectl(&["delete", "deployment", "web", "--wait=true", "--timeout=60s"])?;
    eventually(Duration::from_secs(60), || {
        Ok(env
            .kubectl(&["get", "pods", "-l", "app=web", "-o", "name"])?
            .trim()
            .is_empty()
            .then_some(()))
    })
    .context("the deployment's pods are not gone")?;
    env.delete_quietly("configmap", "web-config");
    env.delete_quietly("secret", "web-secret");
    Ok(())
}

fn a_crashing_container_backs_off_with_growing_delays(env: &Env) -> anyhow::Result<()> {
    let _node = env.node.read().map_err(|_| anyhow::anyhow!("poisoned"))?;
    let pod = "crasher";
    env.apply(&pod_manifest(pod, &env.images.busybox, "echo crashing; exit 3", ""))?;
    let waiting = |env: &Env| {
        env.pod_field(pod, ".status.containerStatuses[0].state.waiting.message")
            .unwrap_or_default()
    };
    let started = Instant::now();
    eventually(Duration::from_secs(60), || {
        let reason = env.pod_field(pod, ".status.containerStatuses[0].state.waiting.reason")?;
        Ok((reason == "CrashLoopBackOff" && waiting(env).contains("back-off 10s")).then_some(()))
    })
    .with_context(|| env.diagnostics(pod))?;
    note(format!("CrashLoopBackOff (10s) after {:.2?}", started.elapsed()));
    eventually(Duration::from_secs(60), || {
        Ok(waiting(env).contains("back-off 20s").then_some(()))
    })
    .with_context(|| env.diagnostics(pod))?;
    note(format!("CrashLoopBackOff (20s) after {:.2?}", started.elapsed()));
    let restarts: u32 = env
        .pod_field(pod, ".status.containerStatuses[0].restartCount")?
        .parse()?;
    ensure!(restarts >= 2, "restartCount {restarts}");
    let exit = env.pod_field(pod, ".status.containerStatuses[0].lastState.terminated.exitCode")?;
    ensure!(exit == "3", "lastState exit code {exit:?}");
    env.delete_quietly("pod", pod);
    Ok(())
}

fn an_image_that_cannot_be_pulled_backs_off(env: &Env) -> anyhow::Result<()> {
    let _node = env.node.read().map_err(|_| anyhow::anyhow!("poisoned"))?;
    let pod = "unpullable";
    // Through the test mirror to the local registry, which has no such repository.
    let image = "docker.io/library/no-such-image:1.0";
    let pulls = || -> anyhow::Result<usize> {
        let log = std::fs::read_to_string(env.registry.log_file())?;
        Ok(log.matches("/v2/library/no-such-image/manifests/").count())
    };
    let before = pulls()?;
    env.apply(&pod_manifest(pod, image, "true", ""))?;
    let started = Instant::now();
    let waiting = |field: &str| {
        env.pod_field(pod, &format!(".status.containerStatuses[0].state.waiting.{field}"))
            .unwrap_or_default()
    };
    eventually(Duration::from_secs(60), || {
        Ok((waiting("reason") == "ImagePullBackOff").then_some(()))
    })
    .with_context(|| env.diagnostics(pod))?;
    note(format!("ImagePullBackOff after {:.2?}", started.elapsed()));
    let message = waiting("message");
    ensure!(message.contains(image), "message {message:?}");
    // The first pull has failed; the next waits 10 s, the one after that 20 s more: 15 s
    // after the pod's creation the registry has seen exactly two pulls, not one a sync.
    let per_pull = pulls()? - before;
    ensure!(per_pull > 0, "the failed pull never reached the registry");
    std::thread::sleep(Duration::from_secs(15).saturating_sub(started.elapsed()));
    let requests = pulls()? - before;
    note(format!("{requests} manifest requests in 15 s, {per_pull} a pull"));
    ensure!(
        requests == 2 * per_pull,
        "{requests} manifest requests in 15 s, {per_pull} a pull"
    );
    let phase = env.pod_field(pod, ".status.phase")?;
    ensure!(phase == "Pending", "phase {phase:?}");
    env.delete_quietly("pod", pod);
    Ok(())
}

fn a_failing_readiness_probe_keeps_the_pod_unready(env: &Env) -> anyhow::Result<()> {
    let _node = env.node.read().map_err(|_| anyhow::anyhow!("poisoned"))?;
    let probe = |command: &str| {
        format!(
            r#",
      "readinessProbe": {{"exec": {{"command": ["{command}"]}}, "periodSeconds": 1, "failureThreshold": 1}}"#
        )
    };
    env.apply(&pod_manifest(
        "unready",
        &env.images.busybox,
        "exec sleep 3600",
        &probe("false"),
    ))?;
    env.apply(&pod_manifest(
        "ready",
        &env.images.busybox,
        "exec sleep 3600",
        &probe("true"),
    ))?;
    env.wait_running("unready")?;
    env.wait_running("ready")?;
    let ready = |pod: &str| {
        env.pod_field(pod, ".status.conditions[?(@.type==\"Ready\")].status")
            .unwrap_or_default()
    };
    eventually(Duration::from_secs(30), || Ok((ready("ready") == "True").then_some(())))
        .with_context(|| env.diagnostics("ready"))?;
    for _ in 0..12 {
        ensure!(ready("unready") == "False", "{}", env.diagnostics("unready"));
        ensure!(env.pod_field("unready", ".status.containerStatuses[0].ready")? == "false");
        std::thread::sleep(Duration::from_millis(500));
    }
    ensure!(env.pod_field("unready", ".status.phase")? == "Running");
    env.delete_quietly("pod", "unready");
    env.delete_quietly("pod", "ready");
    Ok(())
}

fn kubectl_delete_terminates_gracefully_and_the_pod_goes(env: &Env) -> anyhow::Result<()> {
    let _node = env.node.read().map_err(|_| anyhow::anyhow!("poisoned"))?;
    let pod = "graceful";
    let script = "trap 'echo got SIGTERM; exit 0' TERM; echo started; while true; do sleep 0.2; done";
    let hook = r#",
      "lifecycle": {"preStop": {"exec": {"command": ["sh", "-c", "echo prestop ran > /proc/1/fd/1"]}}}"#;
    env.apply(&pod_manifest(pod, &env.images.busybox, script, hook))?;
    env.wait_running(pod)?;
    eventually(Duration::from_secs(10), || {
        Ok(env.container_output(pod, "main")?.contains("started").then_some(()))
    })?;
    let uid = env.pod_field(pod, ".metadata.uid")?;
    let mut log = HeldLog::open(pod, &uid, "main")?;
    let deleting = Instant::now();
    env.kubectl(&["delete", "pod", pod, "--wait=false"])?;
    let output = eventually(Duration::from_secs(30), || {
        let text = log.read()?;
        Ok((text.contains("prestop ran") && text.contains("got SIGTERM")).then(|| text.to_owned()))
    })
    .with_context(|| env.diagnostics(pod))?;
    let prestop = output.find("prestop ran").unwrap_or_default();
    let sigterm = output.find("got SIGTERM").unwrap_or_default();
    ensure!(prestop < sigterm, "SIGTERM came before the preStop hook: {output:?}");
    eventually(Duration::from_secs(30), || {
        let left = env.kubectl(&[
            "get",
            "pod",
            pod,
            "--ignore-not-found",
            "-o",
            "jsonpath={.metadata.uid}",
        ])?;
        Ok((left != uid).then_some(()))
    })
    .with_context(|| env.diagnostics(pod))?;
    note(format!(
        "pod {pod} terminated gracefully and gone {:.2?} after kubectl delete",
        deleting.elapsed()
    ));
    Ok(())
}

fn an_http_pre_stop_hook_reaches_the_container(env: &Env) -> anyhow::Result<()> {
    let _node = env.node.read().map_err(|_| anyhow::anyhow!("poisoned"))?;
    let pod = "http-hook";
    // busybox httpd logs each URL it is asked for (-vv) to stderr, hence to the pod's log.
    let script = "mkdir -p /www && echo bye > /www/prestop && exec httpd -f -vv -p 8080 -h /www";
    let hook = r#",
      "lifecycle": {"preStop": {"httpGet": {"path": "/prestop", "port": 8080}}}"#;
    env.apply(&pod_manifest(pod, &env.images.busybox, script, hook))?;
    env.wait_running(pod)?;
    let uid = env.pod_field(pod, ".metadata.uid")?;
    // Give httpd a moment to listen: the hook is sent once.
    std::thread::sleep(Duration::from_secs(1));
    let mut log = HeldLog::open(pod, &uid, "main")?;
    env.kubectl(&["delete", "pod", pod, "--wait=false"])?;
    eventually(Duration::from_secs(30), || {
        let text = log.read()?;
        Ok((text.contains("url:/prestop") && text.contains("response:200")).then_some(()))
    })
    .with_context(|| env.diagnostics(pod))?;
    Ok(())
}

fn a_static_pod_runs_and_its_mirror_pod_appears(env: &Env) -> anyhow::Result<()> {
    let node = env.node.read().map_err(|_| anyhow::anyhow!("poisoned"))?;
    let manifest = node.manifests_dir().join("static-web.yaml");
    std::fs::write(
        &manifest,
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: static-web\n  labels:\n    app: static\nspec:\n  \
             terminationGracePeriodSeconds: 2\n  containers:\n  - name: web\n    image: {}\n    \
             command: [\"sh\", \"-c\", \"echo static pod up; exec sleep 3600\"]\n",
            env.images.busybox
        ),
    )?;
    drop(node);
    let mirror = format!("static-web-{}", env.site.node);
    let started = Instant::now();
    env.wait_running(&mirror)?;
    note(format!(
        "static pod's mirror Running {:.2?} after the manifest appeared",
        started.elapsed()
    ));
    let annotation = env.pod_field(&mirror, ".metadata.annotations.kubernetes\\.io/config\\.mirror")?;
    ensure!(!annotation.is_empty(), "the mirror pod has no config.mirror annotation");
    ensure!(in_cidr(&env.pod_field(&mirror, ".status.podIP")?, env.site.pod_subnet)?);
    // A mirror pod deleted by hand comes back, and the static pod runs on undisturbed.
    let first_uid = env.pod_field(&mirror, ".metadata.uid")?;
    let container = eventually(Duration::from_secs(10), || {
        let id = env.pod_field(&mirror, ".status.containerStatuses[0].containerID")?;
        Ok((!id.is_empty()).then_some(id))
    })?;
    env.kubectl(&["delete", "pod", &mirror, "--wait=false"])?;
    let deleted = Instant::now();
    eventually(Duration::from_secs(30), || {
        let uid = env.pod_field(&mirror, ".metadata.uid").unwrap_or_default();
        let id = env
            .pod_field(&mirror, ".status.containerStatuses[0].containerID")
            .unwrap_or_default();
        Ok((!uid.is_empty() && uid != first_uid && id == container).then_some(()))
    })
    .with_context(|| env.diagnostics(&mirror))?;
    note(format!(
        "mirror pod back with the same container {:.2?} after kubectl delete",
        deleted.elapsed()
    ));
    std::fs::remove_file(&manifest)?;
    env.wait_mirror_gone(&mirror)
}

/// `hostUsers: false` reaches kubelet-lite only from a manifest: the 1.20 API server
/// drops the field.
fn a_static_pod_without_host_users_runs_in_a_user_namespace_of_its_own(env: &Env) -> anyhow::Result<()> {
    let node = env.node.read().map_err(|_| anyhow::anyhow!("poisoned"))?;
    let manifest = node.manifests_dir().join("static-userns.yaml");
    let script = "cat /proc/self/uid_map; id -u; echo x > /data/mine; stat -c 'owner %u' /data/mine; \
                  echo done; exec sleep 3600";
    std::fs::write(
        &manifest,
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: static-userns\nspec:\n  hostUsers: false\n  \
             terminationGracePeriodSeconds: 1\n  volumes:\n  - name: data\n    emptyDir: {{}}\n  containers:\n  \
             - name: c\n    image: {}\n    command: [\"sh\", \"-c\", {}]\n    volumeMounts:\n    \
             - name: data\n      mountPath: /data\n",
            env.images.busybox,
            serde_json::Value::from(script)
        ),
    )?;
    let root_dir = node.root_dir().to_path_buf();
    drop(node);
    let mirror = format!("static-userns-{}", env.site.node);
    env.wait_running(&mirror)?;
    let uid = env.pod_field(&mirror, ".metadata.annotations.kubernetes\\.io/config\\.mirror")?;
    let output = eventually(Duration::from_secs(20), || {
        let output = container_output_of(&mirror, &uid, "c").unwrap_or_default();
        Ok(output.contains("done").then_some(output))
    })
    .with_context(|| env.diagnostics(&mirror))?;
    // The node's first block of ids (the test node's root directory is its own), the
    // container's root, and its file in the emptyDir as root's inside.
    let words: Vec<&str> = output
        .lines()
        .filter_map(|line| line.splitn(4, ' ').nth(3))
        .flat_map(str::split_whitespace)
        .collect();
    ensure!(
        words.starts_with(&["0", "65536", "65536", "0", "owner", "0"]),
        "output: {output}"
    );
    // On the host the file belongs to root too: the volume is id-mapped, not chowned.
    let file = root_dir.join(format!("pods/{uid}/volumes/kubernetes.io~empty-dir/data/mine"));
    let owner =
        std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&file).with_context(|| file.display().to_string())?);
    ensure!(owner == 0, "{} belongs to {owner}", file.display());
    std::fs::remove_file(&manifest)?;
    env.wait_mirror_gone(&mirror)
}

fn a_restarted_node_adopts_its_running_pods(env: &Env) -> anyhow::Result<()> {
    let pod = "adoptee";
    env.apply(&pod_manifest(pod, &env.images.busybox, "exec sleep 3600", ""))?;
    env.wait_running(pod)?;
    let id_before = eventually(Duration::from_secs(10), || {
        let id = env.pod_field(pod, ".status.containerStatuses[0].containerID")?;
        Ok((!id.is_empty()).then_some(id))
    })?;
    {
        let mut node = env.node.write().map_err(|_| anyhow::anyhow!("poisoned"))?;
        let restarting = Instant::now();
        node.restart()?;
        note(format!("kubelet-lite restarted in {:.2?}", restarting.elapsed()));
    }
    // Give the new process time to sync the pod (and to do something wrong, if it would).
    std::thread::sleep(Duration::from_secs(5));
    let id_after = env.pod_field(pod, ".status.containerStatuses[0].containerID")?;
    ensure!(id_after == id_before, "container {id_before} replaced by {id_after}");
    ensure!(env.pod_field(pod, ".status.containerStatuses[0].restartCount")? == "0");
    ensure!(env.pod_field(pod, ".status.phase")? == "Running");
    ensure!(env.pod_field(pod, ".status.conditions[?(@.type==\"Ready\")].status")? == "True");
    let log = env.node.read().map_err(|_| anyhow::anyhow!("poisoned"))?.log_tail(400);
    ensure!(log.contains("adopted the pod's sandbox"), "no adoption in the log");
    env.delete_quietly("pod", pod);
    Ok(())
}
