//! How a pod ends on a kubelet-lite node (embedded runtime-core, runc) joined to a real
//! Kubernetes 1.20 control plane, checked as the upstream `[NodeConformance]` specs of
//! Kubernetes 1.20 check it on a real kubelet, with pods made with kubectl:
//!
//! - termination messages (`test/e2e/common/runtime.go`, "on terminated container"): from
//!   the file at `terminationMessagePath` (as root; as a non-root user at a path of its
//!   own), and with `FallbackToLogsOnError` from the log of a failed container, nothing
//!   for one that succeeded, the file for one that wrote it;
//! - init containers that fail (`test/e2e/common/init_container.go`): under
//!   `restartPolicy: Always` they restart with back-off while the app container waits
//!   (`PodInitializing`) and the pod stays Pending and not Initialized; under `Never` the
//!   pod fails and the app container never starts. Each pod is watched from before its
//!   creation and every version of it is checked, as the specs' watches do;
//! - `activeDeadlineSeconds` added to a running pod (`test/e2e/common/pods.go`): the pod
//!   fails with `DeadlineExceeded` and its container is killed.
//!
//! One environment: a local registry with the busybox and pause test images, one control
//! plane, and node `klt-lifecycle` (`198.18.81.1` on `kltlcnode`, pods on `kltlc0`,
//! `198.18.80.0/24`). Needs root, the Kubernetes 1.20 binaries, etcd, runc, the CNI
//! plugins, docker-registry and busybox-static (skipped without them, failed with
//! `CI=true`).

use std::io::BufReader;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail, ensure};
use e2e::eventually;
use serde_json::{Value, json};
use test_harness::suite::{self, Test};
use test_harness::{ControlPlane, KubeletLite, KubeletLiteOptions, Registry, TestImages, note};

/// The control plane binaries the test runs.
const KUBERNETES_BINARIES: [&str; 3] = ["kube-apiserver", "kube-controller-manager", "kube-scheduler"];

/// The node under test.
const NODE: &str = "klt-lifecycle";

/// The specs' `ContainerStatusRetryTimeout`: how long a container may take to end.
const CONTAINER_STATUS_TIMEOUT: Duration = Duration::from_secs(120);

/// The specs' `PodStartTimeout`: how long the init-container watches may take.
const POD_START_TIMEOUT: Duration = Duration::from_secs(300);

/// How long a pod may take to run (a first pull, sandbox, container).
const RUNNING_TIMEOUT: Duration = Duration::from_secs(120);

/// The name the termination-message specs give their container.
const TERMINATION_CONTAINER: &str = "termination-message-container";

struct Env {
    // Dropped in this order: the node, the control plane, the registry.
    node: KubeletLite,
    control_plane: ControlPlane,
    images: TestImages,
    _registry: Registry,
}

impl Env {
    fn setup() -> anyhow::Result<Env> {
        test_harness::control_plane::kubernetes_binaries(&KUBERNETES_BINARIES)?;
        let registry = Registry::start()?;
        let images = test_harness::push_test_images(&registry)?;
        e2e::workspace_binary("runtime-core", "runtime-core-monitor")?;
        let binary = e2e::workspace_binary("kubelet-lite", "kubelet-lite")?;
        let control_plane = ControlPlane::start()?;
        let node = KubeletLite::start(
            &binary,
            &control_plane,
            &registry,
            KubeletLiteOptions {
                node_name: NODE.into(),
                node_ip: [198, 18, 81, 1].into(),
                node_bridge: "kltlcnode".into(),
                pod_bridge: "kltlc0".into(),
                pod_subnet: "198.18.80.0/24".into(),
                ..KubeletLiteOptions::default()
            },
        )?;
        Ok(Env {
            node,
            control_plane,
            images,
            _registry: registry,
        })
    }

    fn kubectl(&self, args: &[&str]) -> anyhow::Result<String> {
        self.control_plane.kubectl(args)
    }

    /// Creates the object `manifest` (JSON).
    fn create(&self, manifest: &Value) -> anyhow::Result<()> {
        self.control_plane
            .kubectl_with_input(["create", "-f", "-"], &manifest.to_string())
            .map(drop)
    }

    /// The pod `name` as the apiserver has it.
    fn pod(&self, name: &str) -> anyhow::Result<Value> {
        let json = self.kubectl(&["get", "pod", name, "-o", "json"])?;
        serde_json::from_str(&json).with_context(|| format!("parsing pod {name}"))
    }

    /// Waits until pod `name` passes `check`, and returns it.
    fn wait_pod(
        &self,
        name: &str,
        timeout: Duration,
        mut check: impl FnMut(&Value) -> anyhow::Result<bool>,
    ) -> anyhow::Result<Value> {
        eventually(timeout, || {
            let pod = self.pod(name)?;
            Ok(check(&pod)?.then_some(pod))
        })
        .with_context(|| self.diagnostics(name))
    }

    /// What a failed step shows: the pod and the end of the node's log.
    fn diagnostics(&self, name: &str) -> String {
        let described = self
            .kubectl(&["get", "pod", name, "-o", "yaml"])
            .unwrap_or_else(|err| format!("{err:#}"));
        format!(
            "pod {name}:\n{described}\n\n{NODE}'s log ends with:\n{}",
            self.node.log_tail(60)
        )
    }

    /// Deletes pod `name` at once (grace 0, as the specs' clean-up) and waits until it is
    /// gone.
    fn delete_now(&self, name: &str) -> anyhow::Result<()> {
        self.kubectl(&[
            "delete",
            "pod",
            name,
            "--grace-period=0",
            "--wait=false",
            "--ignore-not-found",
        ])?;
        eventually(CONTAINER_STATUS_TIMEOUT, || {
            let left = self.kubectl(&["get", "pod", name, "--ignore-not-found", "-o", "name"])?;
            Ok(left.trim().is_empty().then_some(()))
        })
        .with_context(|| format!("pod {name} is not gone after its deletion"))
    }
}

fn main() -> ExitCode {
    suite::run(
        Env::setup,
        vec![
            Test::new(
                "termination_message_from_the_file_as_root",
                termination_message_from_the_file_as_root,
            ),
            Test::new(
                "termination_message_from_the_file_as_non_root_at_a_non_default_path",
                termination_message_from_the_file_as_non_root_at_a_non_default_path,
            ),
            Test::new(
                "termination_message_from_the_log_of_a_failed_container_with_fallback_to_logs_on_error",
                termination_message_from_the_log_of_a_failed_container_with_fallback_to_logs_on_error,
            ),
            Test::new(
                "termination_message_empty_when_the_pod_succeeds_with_fallback_to_logs_on_error",
                termination_message_empty_when_the_pod_succeeds_with_fallback_to_logs_on_error,
            ),
            Test::new(
                "termination_message_from_the_file_when_the_pod_succeeds_with_fallback_to_logs_on_error",
                termination_message_from_the_file_when_the_pod_succeeds_with_fallback_to_logs_on_error,
            ),
            Test::new(
                "failing_init_containers_restart_and_app_containers_never_start_under_restart_always",
                failing_init_containers_restart_and_app_containers_never_start_under_restart_always,
            ),
            Test::new(
                "a_failing_init_container_fails_the_pod_under_restart_never",
                a_failing_init_container_fails_the_pod_under_restart_never,
            ),
            Test::new(
                "active_deadline_seconds_added_to_a_running_pod_fails_it",
                active_deadline_seconds_added_to_a_running_pod_fails_it,
            ),
        ],
    )
}

// ---------------------------------------------------------------------------------------
// Termination messages.

/// The specs' `matchTerminationMessage`: a pod `name` with `container` (named
/// [`TERMINATION_CONTAINER`], busybox) and `restartPolicy: Never` reaches `phase`; its
/// container is terminated with the termination message `message`; the pod is deleted.
fn match_termination_message(
    env: &Env,
    name: &str,
    mut container: Value,
    phase: &str,
    message: &str,
) -> anyhow::Result<()> {
    container["name"] = json!(TERMINATION_CONTAINER);
    container["image"] = json!(env.images.busybox);
    env.create(&json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"restartPolicy": "Never", "containers": [container]},
    }))?;
    let result = (|| {
        let pod = env.wait_pod(
            name,
            CONTAINER_STATUS_TIMEOUT,
            |pod| Ok(pod["status"]["phase"] == phase),
        )?;
        let statuses = list(&pod["status"]["containerStatuses"]);
        ensure!(
            statuses.len() == 1 && statuses[0]["name"] == TERMINATION_CONTAINER,
            "unexpected container statuses {statuses:?}"
        );
        let state = &statuses[0]["state"];
        ensure!(
            state_name(state) == "Terminated",
            "the container is not terminated: {state}"
        );
        // An empty message is left out of the status.
        let got = state["terminated"]["message"].as_str().unwrap_or_default();
        ensure!(
            got == message,
            "termination message {got:?}, expected {message:?}: {}",
            statuses[0]
        );
        Ok(())
    })();
    let deleted = env.delete_now(name);
    result.with_context(|| env.diagnostics(name))?;
    deleted
}

/// "should report termination message [LinuxOnly] if TerminationMessagePath is set
/// [NodeConformance]": as root, at the default path.
fn termination_message_from_the_file_as_root(env: &Env) -> anyhow::Result<()> {
    let container = json!({
        "command": ["/bin/sh", "-c"],
        "args": ["/bin/echo -n DONE > /dev/termination-log"],
        "terminationMessagePath": "/dev/termination-log",
        "securityContext": {"runAsUser": 0},
    });
    match_termination_message(env, "termination-root", container, "Succeeded", "DONE")
}

/// "should report termination message [LinuxOnly] if TerminationMessagePath is set as
/// non-root user and at a non-default path [NodeConformance]": user 10000 writes the file
/// the node made for it.
fn termination_message_from_the_file_as_non_root_at_a_non_default_path(env: &Env) -> anyhow::Result<()> {
    let container = json!({
        "command": ["/bin/sh", "-c"],
        "args": ["/bin/echo -n DONE > /dev/termination-custom-log"],
        "terminationMessagePath": "/dev/termination-custom-log",
        "securityContext": {"runAsUser": 10000},
    });
    match_termination_message(env, "termination-non-root", container, "Succeeded", "DONE")
}

/// "should report termination message [LinuxOnly] from log output if
/// TerminationMessagePolicy FallbackToLogsOnError is set [NodeConformance]".
fn termination_message_from_the_log_of_a_failed_container_with_fallback_to_logs_on_error(
    env: &Env,
) -> anyhow::Result<()> {
    let container = json!({
        "command": ["/bin/sh", "-c"],
        "args": ["/bin/echo -n DONE; /bin/false"],
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "FallbackToLogsOnError",
    });
    match_termination_message(env, "termination-from-log", container, "Failed", "DONE")
}

/// "should report termination message [LinuxOnly] as empty when pod succeeds and
/// TerminationMessagePolicy FallbackToLogsOnError is set [NodeConformance]".
fn termination_message_empty_when_the_pod_succeeds_with_fallback_to_logs_on_error(env: &Env) -> anyhow::Result<()> {
    let container = json!({
        "command": ["/bin/sh", "-c"],
        "args": ["/bin/echo -n DONE; /bin/true"],
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "FallbackToLogsOnError",
    });
    match_termination_message(env, "termination-empty", container, "Succeeded", "")
}

/// "should report termination message [LinuxOnly] from file when pod succeeds and
/// TerminationMessagePolicy FallbackToLogsOnError is set [NodeConformance]".
fn termination_message_from_the_file_when_the_pod_succeeds_with_fallback_to_logs_on_error(
    env: &Env,
) -> anyhow::Result<()> {
    let container = json!({
        "command": ["/bin/sh", "-c"],
        "args": ["/bin/echo -n OK > /dev/termination-log; /bin/echo DONE; /bin/true"],
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "FallbackToLogsOnError",
    });
    match_termination_message(env, "termination-file-wins", container, "Succeeded", "OK")
}

// ---------------------------------------------------------------------------------------
// Init containers that fail.

/// "should not start app containers if init containers fail on a RestartAlways pod": init1
/// fails, init2 would succeed, run1 (pause, 100m CPU limit) must never start. Every
/// version of the pod: run1 and init2 wait with `PodInitializing`, init1 never succeeds;
/// until init1 was seen restarted (a last state), then until it restarted 3 times. Then
/// the pod is Pending, Initialized False with `ContainersNotInitialized` and
/// `containers with incomplete status: [init1 init2]`.
fn failing_init_containers_restart_and_app_containers_never_start_under_restart_always(
    env: &Env,
) -> anyhow::Result<()> {
    let name = "pod-init-fails-restart-always";
    let watch = PodWatch::start(env, name)?;
    env.create(&json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"name": "foo", "time": nanos()}},
        "spec": {
            "initContainers": [
                {"name": "init1", "image": env.images.busybox, "command": ["/bin/false"]},
                {"name": "init2", "image": env.images.busybox, "command": ["/bin/true"]},
            ],
            "containers": [{
                "name": "run1",
                "image": env.images.pause,
                "resources": {"limits": {"cpu": "100m"}},
            }],
        },
    }))?;
    let started = Instant::now();
    let result = (|| {
        let end = watch.until(
            POD_START_TIMEOUT,
            vec![
                Box::new(|pod: &Value| -> anyhow::Result<bool> {
                    app_containers_wait_for_init(pod)?;
                    let init = list(&pod["status"]["initContainerStatuses"]);
                    if init.len() != 2 {
                        return Ok(false);
                    }
                    ensure!(
                        waiting_reason(&init[1]) == Some("PodInitializing"),
                        "the second init container should wait with PodInitializing: {}",
                        init[1]
                    );
                    ensure!(
                        exit_code(&init[0]) != Some(0),
                        "the first init container should not succeed: {}",
                        init[0]
                    );
                    Ok(!init[0]["lastState"]["terminated"].is_null())
                }) as Condition<'_>,
                Box::new(|pod: &Value| -> anyhow::Result<bool> {
                    app_containers_wait_for_init(pod)?;
                    let init = list(&pod["status"]["initContainerStatuses"]);
                    Ok(init.first().and_then(|s| s["restartCount"].as_i64()).unwrap_or(0) >= 3)
                }) as Condition<'_>,
            ],
        )?;
        note(format!("init1 restarted 3 times in {:.1?}", started.elapsed()));
        ensure!(end["status"]["phase"] == "Pending", "phase {}", end["status"]["phase"]);
        let initialized = condition(&end, "Initialized").context("no Initialized condition")?;
        ensure!(initialized["status"] == "False", "{initialized}");
        ensure!(initialized["reason"] == "ContainersNotInitialized", "{initialized}");
        ensure!(
            initialized["message"] == "containers with incomplete status: [init1 init2]",
            "{initialized}"
        );
        ensure!(list(&end["status"]["initContainerStatuses"]).len() == 2);
        Ok(())
    })();
    drop(watch);
    let deleted = env.delete_now(name);
    result.with_context(|| env.diagnostics(name))?;
    deleted
}

/// "should not start app containers and fail the pod if init containers fail on a
/// RestartNever pod": init1 succeeds, init2 fails, run1 must never start. Every version of
/// the pod until init2 failed: run1 waits with `PodInitializing`, init1 waits with it or
/// runs or succeeds; then until the pod is Failed or Succeeded. Then it is Failed,
/// Initialized False with `containers with incomplete status: [init2]`, and run1 waits.
fn a_failing_init_container_fails_the_pod_under_restart_never(env: &Env) -> anyhow::Result<()> {
    let name = "pod-init-fails-restart-never";
    let watch = PodWatch::start(env, name)?;
    env.create(&json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"name": "foo", "time": nanos()}},
        "spec": {
            "restartPolicy": "Never",
            "initContainers": [
                {"name": "init1", "image": env.images.busybox, "command": ["/bin/true"]},
                {"name": "init2", "image": env.images.busybox, "command": ["/bin/false"]},
            ],
            "containers": [{
                "name": "run1",
                "image": env.images.busybox,
                "command": ["/bin/true"],
                "resources": {"limits": {"cpu": "100m"}},
            }],
        },
    }))?;
    let result = (|| {
        let end = watch.until(
            POD_START_TIMEOUT,
            vec![
                Box::new(|pod: &Value| -> anyhow::Result<bool> {
                    app_containers_wait_for_init(pod)?;
                    let init = list(&pod["status"]["initContainerStatuses"]);
                    if init.len() != 2 {
                        return Ok(false);
                    }
                    if init[0]["state"]["terminated"].is_null() {
                        let reason = waiting_reason(&init[0]);
                        ensure!(
                            reason.is_none() || reason == Some("PodInitializing"),
                            "the first init container should wait with PodInitializing: {}",
                            init[0]
                        );
                        return Ok(false);
                    }
                    ensure!(
                        exit_code(&init[0]) == Some(0),
                        "the first init container should succeed: {}",
                        init[0]
                    );
                    match exit_code(&init[1]) {
                        None => Ok(false),
                        Some(0) => bail!("the second init container should fail: {}", init[1]),
                        Some(_) => Ok(true),
                    }
                }) as Condition<'_>,
                Box::new(|pod: &Value| -> anyhow::Result<bool> {
                    app_containers_wait_for_init(pod)?;
                    let phase = &pod["status"]["phase"];
                    Ok(phase == "Failed" || phase == "Succeeded")
                }) as Condition<'_>,
            ],
        )?;
        ensure!(end["status"]["phase"] == "Failed", "phase {}", end["status"]["phase"]);
        let initialized = condition(&end, "Initialized").context("no Initialized condition")?;
        ensure!(initialized["status"] == "False", "{initialized}");
        ensure!(initialized["reason"] == "ContainersNotInitialized", "{initialized}");
        ensure!(
            initialized["message"] == "containers with incomplete status: [init2]",
            "{initialized}"
        );
        ensure!(list(&end["status"]["initContainerStatuses"]).len() == 2);
        let run1 = list(&end["status"]["containerStatuses"]);
        ensure!(
            run1.first().is_some_and(|s| !s["state"]["waiting"].is_null()),
            "run1 is not waiting: {run1:?}"
        );
        // And it stays so: the failed pod is done, nothing of it starts again.
        std::thread::sleep(Duration::from_secs(3));
        let later = env.pod(name)?;
        ensure!(
            later["status"]["phase"] == "Failed",
            "phase {}",
            later["status"]["phase"]
        );
        app_containers_wait_for_init(&later)?;
        let init = list(&later["status"]["initContainerStatuses"]);
        ensure!(
            init.iter().all(|s| s["restartCount"] == 0),
            "an init container restarted: {init:?}"
        );
        Ok(())
    })();
    drop(watch);
    let deleted = env.delete_now(name);
    result.with_context(|| env.diagnostics(name))?;
    deleted
}

/// The specs' invariant for a pod not initialized: its containers wait with the reason
/// `PodInitializing`, never restarted.
fn app_containers_wait_for_init(pod: &Value) -> anyhow::Result<()> {
    for status in list(&pod["status"]["containerStatuses"]) {
        ensure!(
            waiting_reason(status) == Some("PodInitializing") && status["restartCount"] == 0,
            "container {} should wait with PodInitializing: {status}",
            status["name"]
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// activeDeadlineSeconds.

/// "should allow activeDeadlineSeconds to be updated [NodeConformance]": a running pod
/// (found by its label) gets `activeDeadlineSeconds: 5`, and fails with the reason
/// `DeadlineExceeded`. Beyond the spec: the message, and its container killed.
fn active_deadline_seconds_added_to_a_running_pod_fails_it(env: &Env) -> anyhow::Result<()> {
    let name = "pod-update-activedeadlineseconds";
    let time = nanos();
    // Ends at once on SIGTERM, as the spec's nginx does.
    let script = "trap 'exit 0' TERM; while true; do sleep 1; done";
    env.create(&json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"name": "foo", "time": time}},
        "spec": {
            "containers": [{"name": "nginx", "image": env.images.busybox, "command": ["sh", "-c", script]}],
        },
    }))?;
    let result = (|| {
        env.wait_pod(name, RUNNING_TIMEOUT, |pod| Ok(pod["status"]["phase"] == "Running"))?;
        let found = env.kubectl(&["get", "pods", "-l", &format!("time={time}"), "-o", "name"])?;
        ensure!(found.lines().count() == 1, "pods with the label: {found:?}");
        env.kubectl(&[
            "patch",
            "pod",
            name,
            "--type=merge",
            "-p",
            r#"{"spec":{"activeDeadlineSeconds":5}}"#,
        ])?;
        let updated = Instant::now();
        let failed = env.wait_pod(name, POD_START_TIMEOUT, |pod| {
            let status = &pod["status"];
            if status["phase"] != "Failed" {
                return Ok(false);
            }
            ensure!(
                status["reason"] == "DeadlineExceeded",
                "the pod failed with the reason {}, not DeadlineExceeded",
                status["reason"]
            );
            Ok(true)
        })?;
        note(format!(
            "the pod failed with DeadlineExceeded {:.1?} after its update",
            updated.elapsed()
        ));
        let message = &failed["status"]["message"];
        ensure!(
            message == "Pod was active on the node longer than the specified deadline",
            "message {message}"
        );
        // The node kills the failed pod's container, and the pod stays Failed.
        let killed = env.wait_pod(name, CONTAINER_STATUS_TIMEOUT, |pod| {
            let statuses = list(&pod["status"]["containerStatuses"]);
            Ok(statuses.first().is_some_and(|s| !s["state"]["terminated"].is_null()))
        })?;
        ensure!(
            killed["status"]["phase"] == "Failed",
            "phase {}",
            killed["status"]["phase"]
        );
        ensure!(killed["status"]["reason"] == "DeadlineExceeded");
        let status = &list(&killed["status"]["containerStatuses"])[0];
        ensure!(status["restartCount"] == 0, "the container restarted: {status}");
        std::thread::sleep(Duration::from_secs(3));
        let later = env.pod(name)?;
        let statuses = list(&later["status"]["containerStatuses"]);
        ensure!(
            later["status"]["phase"] == "Failed"
                && statuses
                    .first()
                    .is_some_and(|s| s["restartCount"] == 0 && !s["state"]["terminated"].is_null()),
            "the failed pod changed: {}",
            later["status"]
        );
        Ok(())
    })();
    let deleted = env.delete_now(name);
    result.with_context(|| env.diagnostics(name))?;
    deleted
}

// ---------------------------------------------------------------------------------------
// Watching a pod.

/// A condition on one version of the pod: `Ok(true)` when met, an error when the pod is
/// in a state it must never be in.
type Condition<'a> = Box<dyn FnMut(&Value) -> anyhow::Result<bool> + 'a>;

/// `kubectl get pods -w -o json` of one pod name, started before the pod exists so that
/// every version of it is seen, as the specs' watches from its creation see them.
struct PodWatch {
    child: Child,
    versions: mpsc::Receiver<anyhow::Result<Value>>,
    reader: Option<JoinHandle<()>>,
}

impl PodWatch {
    fn start(env: &Env, name: &str) -> anyhow::Result<PodWatch> {
        let mut command: Command = env.control_plane.kubectl_command();
        command
            // No request timeout for the watch (the harness's 30 s would end it).
            .args(["--request-timeout=0", "get", "pods", "--watch", "--output=json"])
            .arg(format!("--field-selector=metadata.name={name}"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = command.spawn().with_context(|| format!("running {command:?}"))?;
        let stdout = child.stdout.take().context("kubectl's stdout")?;
        let (tx, versions) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for value in serde_json::Deserializer::from_reader(BufReader::new(stdout)).into_iter::<Value>() {
                let end = value.is_err();
                if tx.send(value.map_err(anyhow::Error::from)).is_err() || end {
                    return;
                }
            }
        });
        // The watch must be open before the pod is made: its first answer is the empty list.
        std::thread::sleep(Duration::from_secs(1));
        Ok(PodWatch {
            child,
            versions,
            reader: Some(reader),
        })
    }

    /// `watchtools.Until`: the versions of the pod go to the first condition until it is
    /// met, then to the next (beginning with the version that met the previous one).
    /// Returns the version that met the last; fails when a condition fails, the watch
    /// ends, or `timeout` passes.
    fn until(&self, timeout: Duration, conditions: Vec<Condition<'_>>) -> anyhow::Result<Value> {
        let deadline = Instant::now() + timeout;
        let mut last: Option<Value> = None;
        let mut seen = 0;
        for (index, mut condition) in conditions.into_iter().enumerate() {
            if let Some(pod) = &last
                && condition(pod).with_context(|| format!("condition {index}, version {seen}"))?
            {
                continue;
            }
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                let pod = match self.versions.recv_timeout(left) {
                    Ok(pod) => pod.context("reading the watch")?,
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        bail!("condition {index} not met within {timeout:?} ({seen} versions seen)")
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => bail!("the watch ended"),
                };
                seen += 1;
                let met = condition(&pod).with_context(|| format!("condition {index}, version {seen}: {pod}"))?;
                last = Some(pod);
                if met {
                    break;
                }
            }
        }
        last.context("no version of the pod")
    }
}

impl Drop for PodWatch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

// ---------------------------------------------------------------------------------------
// Reading pods.

/// The array at `value`, empty if there is none.
fn list(value: &Value) -> &[Value] {
    value.as_array().map_or(&[], Vec::as_slice)
}

/// `Waiting`, `Running`, `Terminated` or `Unknown`, as the specs' `GetContainerState`.
fn state_name(state: &Value) -> &'static str {
    if !state["waiting"].is_null() {
        "Waiting"
    } else if !state["running"].is_null() {
        "Running"
    } else if !state["terminated"].is_null() {
        "Terminated"
    } else {
        "Unknown"
    }
}

/// The waiting reason of a container status, if it waits.
fn waiting_reason(status: &Value) -> Option<&str> {
    status["state"]["waiting"]
        .is_object()
        .then(|| status["state"]["waiting"]["reason"].as_str().unwrap_or_default())
}

/// The exit code of a container status, if it is terminated.
fn exit_code(status: &Value) -> Option<i64> {
    status["state"]["terminated"]["exitCode"].as_i64()
}

/// The pod's condition of type `type_`.
fn condition<'a>(pod: &'a Value, type_: &str) -> Option<&'a Value> {
    list(&pod["status"]["conditions"]).iter().find(|c| c["type"] == type_)
}

/// Nanoseconds of the current second, as the specs label their pods.
fn nanos() -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    now.subsec_nanos().to_string()
}
