//! Pod isolation on a kubelet-lite node (embedded runtime-core, runc) of a real 1.20
//! control plane: a pod gets only what it was given.
//!
//! - subPath: a symbolic link to `/`, a chain of links, a new directory under a link and a
//!   directory swapped for a link while containers start never mount anything outside
//!   the volume; a link that stays inside the volume is followed.
//! - runAsNonRoot: a root image, a numeric non-root image, an image with a named user and
//!   a `runAsUser` override each get the kubelet's outcome.
//! - the kubelet API: `kubectl exec` through the apiserver works while 2,000 idle and
//!   some slow connections from other addresses hold the node's port, and the server
//!   closes them all.
//! - sysctls: a forbidden one fails the pod at admission (`SysctlForbidden`); a safe one
//!   and an unsafe one the node allows (`--allowed-unsafe-sysctls`) are set in the pod.
//!
//! Every attack is mounted for real and checked against the host: sentinel files outside
//! the volume must stay as they were.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use e2e::eventually;
use test_harness::suite::{self, Test};
use test_harness::{ControlPlane, KubeletLite, KubeletLiteOptions, Registry, TestImages, note};

/// The node kubelet-lite registers.
const NODE: &str = "klt-sec-e2e";

/// The control plane binaries the test runs.
const KUBERNETES_BINARIES: [&str; 3] = ["kube-apiserver", "kube-controller-manager", "kube-scheduler"];

/// How long a pod may take to reach the state a test waits for.
const TIMEOUT: Duration = Duration::from_secs(90);

/// The unsafe sysctls the node allows.
const ALLOWED_UNSAFE_SYSCTLS: &str = "kernel.msg*";

struct Env {
    // Dropped in this order: the node before the control plane and the registry.
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
        let options = KubeletLiteOptions {
            node_name: NODE.into(),
            node_ip: Ipv4Addr::new(198, 18, 75, 1),
            node_bridge: "kltsecnode0".into(),
            pod_bridge: "kltsec0".into(),
            pod_subnet: "198.18.74.0/24".into(),
            extra_args: vec![format!("--allowed-unsafe-sysctls={ALLOWED_UNSAFE_SYSCTLS}")],
            ..KubeletLiteOptions::default()
        };
        let node = KubeletLite::start(&binary, &control_plane, &registry, options)?;
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

    fn apply(&self, manifest: &serde_json::Value) -> anyhow::Result<()> {
        self.control_plane
            .kubectl_with_input(["apply", "-f", "-"], &manifest.to_string())
            .map(drop)
    }

    /// `kubectl get pod NAME -o jsonpath={FIELD}`.
    fn pod_field(&self, pod: &str, field: &str) -> anyhow::Result<String> {
        self.kubectl(&["get", "pod", pod, "-o", &format!("jsonpath={{{field}}}")])
    }

    /// The waiting reason and message of container `container` of pod `pod`, once it
    /// has one.
    fn wait_waiting(&self, pod: &str, container: &str) -> anyhow::Result<(String, String)> {
        let state = format!(".status.containerStatuses[?(@.name==\"{container}\")].state.waiting");
        eventually(TIMEOUT, || {
            let reason = self.pod_field(pod, &format!("{state}.reason")).unwrap_or_default();
            let message = self.pod_field(pod, &format!("{state}.message")).unwrap_or_default();
            Ok((!reason.is_empty() && reason != "ContainerCreating").then_some((reason, message)))
        })
        .with_context(|| self.diagnostics(pod))
    }

    /// Waits until container `container` of pod `pod` runs.
    fn wait_container_running(&self, pod: &str, container: &str) -> anyhow::Result<()> {
        let field = format!(".status.containerStatuses[?(@.name==\"{container}\")].state.running.startedAt");
        eventually(TIMEOUT, || {
            Ok((!self.pod_field(pod, &field).unwrap_or_default().is_empty()).then_some(()))
        })
        .with_context(|| self.diagnostics(pod))
    }

    /// Waits until pod `pod` is in phase `phase`.
    fn wait_phase(&self, pod: &str, phase: &str) -> anyhow::Result<()> {
        eventually(TIMEOUT, || {
            Ok((self.pod_field(pod, ".status.phase").unwrap_or_default() == phase).then_some(()))
        })
        .with_context(|| self.diagnostics(pod))
    }

    /// `kubectl logs POD -c CONTAINER`.
    fn logs(&self, pod: &str, container: &str) -> anyhow::Result<String> {
        self.kubectl(&["logs", pod, "-c", container])
    }

    /// What a failed step shows: the pod and the end of kubelet-lite's log.
    fn diagnostics(&self, pod: &str) -> String {
        let describe = self
            .kubectl(&["get", "pod", pod, "-o", "yaml"])
            .unwrap_or_else(|err| format!("{err:#}"));
        format!(
            "pod {pod}:\n{describe}\n\nkubelet-lite's log ends with:\n{}",
            self.node.log_tail(60)
        )
    }

    /// The host directory of emptyDir `volume` of pod `pod`.
    fn empty_dir(&self, pod: &str, volume: &str) -> anyhow::Result<PathBuf> {
        let uid = self.pod_field(pod, ".metadata.uid")?;
        Ok(self
            .node
            .root_dir()
            .join(format!("pods/{uid}/volumes/kubernetes.io~empty-dir/{volume}")))
    }

    fn delete(&self, pod: &str) {
        let _ = self.kubectl(&["delete", "pod", pod, "--wait=false", "--ignore-not-found"]);
    }
}

fn main() -> ExitCode {
    suite::run(
        Env::setup,
        vec![
            Test::new(
                "sub_paths_through_links_out_of_the_volume_fail_and_touch_nothing_outside",
                sub_paths_through_links_out_of_the_volume_fail_and_touch_nothing_outside,
            ),
            Test::new(
                "a_sub_path_swapped_for_a_link_while_containers_start_never_leaves_the_volume",
                a_sub_path_swapped_for_a_link_while_containers_start_never_leaves_the_volume,
            ),
            Test::new(
                "kubectl_exec_works_while_idle_and_slow_connections_hold_the_node_api",
                kubectl_exec_works_while_idle_and_slow_connections_hold_the_node_api,
            ),
            Test::new(
                "run_as_non_root_is_checked_against_the_image_user",
                run_as_non_root_is_checked_against_the_image_user,
            ),
            Test::new(
                "a_forbidden_sysctl_fails_the_pod_at_admission",
                a_forbidden_sysctl_fails_the_pod_at_admission,
            ),
            Test::new(
                "a_sysctl_value_smuggling_a_second_setting_never_reaches_the_kernel",
                a_sysctl_value_smuggling_a_second_setting_never_reaches_the_kernel,
            ),
            Test::new(
                "safe_and_allowed_unsafe_sysctls_are_set_in_the_pod",
                safe_and_allowed_unsafe_sysctls_are_set_in_the_pod,
            ),
        ],
    )
}

/// A pod of busybox containers (`name`, `script`, extra container fields) with an
/// emptyDir `vol`, an init container running `init`, and restartPolicy Never.
fn pod_with_volume(
    name: &str,
    image: &str,
    init: &str,
    containers: &[(&str, &str, serde_json::Value)],
) -> serde_json::Value {
    let containers: Vec<serde_json::Value> = containers
        .iter()
        .map(|(container, script, extra)| {
            let mut value = serde_json::json!({
                "name": container,
                "image": image,
                "command": ["sh", "-c", script],
            });
            if let (Some(value), Some(extra)) = (value.as_object_mut(), extra.as_object()) {
                value.extend(extra.clone());
            }
            value
        })
        .collect();
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "volumes": [{"name": "vol", "emptyDir": {}}],
            "initContainers": [{
                "name": "setup",
                "image": image,
                "command": ["sh", "-c", init],
                "volumeMounts": [{"name": "vol", "mountPath": "/vol"}]
            }],
            "containers": containers
        }
    })
}

/// The extra fields of a container mounting `sub_path` of `vol` at `path`.
fn sub_path_mount(path: &str, sub_path: &str) -> serde_json::Value {
    serde_json::json!({"volumeMounts": [{"name": "vol", "mountPath": path, "subPath": sub_path}]})
}

fn sub_paths_through_links_out_of_the_volume_fail_and_touch_nothing_outside(env: &Env) -> anyhow::Result<()> {
    let pod = "subpath-links";
    // Names the escaping containers would create on the host if they got out.
    let marker = format!("klt-subpath-escape-{}", std::process::id());
    let host_marker = Path::new("/tmp").join(&marker);
    let init = "ln -s / /vol/root; ln -s root /vol/chain; mkdir /vol/real; ln -s real /vol/inside";
    let write = format!("touch /mnt/tmp/{marker} /mnt/{marker}; ls /mnt; sleep 3600");
    let manifest = pod_with_volume(
        pod,
        &env.images.busybox,
        init,
        &[
            ("to-root", &write, sub_path_mount("/mnt", "root")),
            ("chain", &write, sub_path_mount("/mnt", "chain")),
            (
                "new-under-link",
                &write,
                sub_path_mount("/mnt", &format!("root/tmp/{marker}-dir")),
            ),
            (
                "inside",
                "echo kept > /mnt/by-inside; sleep 3600",
                sub_path_mount("/mnt", "inside"),
            ),
        ],
    );
    env.apply(&manifest)?;
    env.wait_container_running(pod, "inside")?;
    for (container, sub_path) in [
        ("to-root", "root".to_owned()),
        ("chain", "chain".to_owned()),
        ("new-under-link", format!("root/tmp/{marker}-dir")),
    ] {
        let (reason, message) = env.wait_waiting(pod, container)?;
        ensure!(
            reason == "CreateContainerConfigError",
            "{container}: waiting {reason}: {message}"
        );
        ensure!(
            message.contains("volume \"vol\"") && message.contains(&format!("subPath {sub_path:?}")),
            "{container}: the message names neither the volume nor the sub path: {message}"
        );
        ensure!(message.contains("outside the volume"), "{container}: {message}");
        note(format!("{container}: {reason}: {message}"));
    }
    // The link inside the volume was followed to its directory.
    let volume = env.empty_dir(pod, "vol")?;
    let kept = eventually(Duration::from_secs(20), || {
        Ok(std::fs::read_to_string(volume.join("real/by-inside")).ok())
    })?;
    ensure!(kept.trim() == "kept", "real/by-inside: {kept:?}");
    // Nothing was created outside the volume, with any of the names.
    for path in [
        host_marker.clone(),
        Path::new("/").join(&marker),
        Path::new("/tmp").join(format!("{marker}-dir")),
    ] {
        ensure!(!path.exists(), "{} exists: a container got out", path.display());
    }
    env.delete(pod);
    Ok(())
}

fn a_sub_path_swapped_for_a_link_while_containers_start_never_leaves_the_volume(env: &Env) -> anyhow::Result<()> {
    const PODS: usize = 8;
    let dir = tempfile_dir("klt-subpath-race")?;
    let volume = dir.join("volume");
    let sentinel = dir.join("sentinel");
    std::fs::create_dir_all(&volume)?;
    std::fs::create_dir_all(sentinel.join("tree"))?;
    std::fs::write(sentinel.join("keep"), "sentinel")?;
    std::fs::write(sentinel.join("tree/keep"), "sentinel")?;
    let before = tree(&sentinel)?;

    // The attacker: `volume/d` points at `real`, a directory inside the volume, then out
    // of it (by `..` or by an absolute path), again and again while the pods start; each
    // change is one atomic rename, so `d` always exists.
    std::fs::create_dir_all(volume.join("real"))?;
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let (stop, volume, sentinel) = (stop.clone(), volume.clone(), sentinel.clone());
        std::thread::spawn(move || {
            let (d, next) = (volume.join("d"), volume.join("d.next"));
            let targets = [PathBuf::from("real"), PathBuf::from("../sentinel"), sentinel];
            let mut swaps = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let target = &targets[usize::try_from(swaps % 3).unwrap_or(0)];
                let _ = std::fs::remove_file(&next);
                if std::os::unix::fs::symlink(target, &next).is_ok() && std::fs::rename(&next, &d).is_ok() {
                    swaps += 1;
                }
                // Each target holds long enough for some starts to see `real`.
                std::thread::sleep(Duration::from_millis(1));
            }
            swaps
        })
    };
    let started = Instant::now();
    let names: Vec<String> = (0..PODS).map(|i| format!("subpath-race-{i}")).collect();
    for name in &names {
        let manifest = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name},
            "spec": {
                "restartPolicy": "Never",
                "terminationGracePeriodSeconds": 1,
                "volumes": [{"name": "vol", "hostPath": {"path": volume.to_string_lossy()}}],
                "containers": [{
                    "name": "c",
                    "image": env.images.busybox,
                    "command": ["sh", "-c", "rm -rf /mnt/keep /mnt/tree; touch /mnt/written-$HOSTNAME"],
                    "volumeMounts": [{"name": "vol", "mountPath": "/mnt", "subPath": "d"}]
                }]
            }
        });
        env.apply(&manifest)?;
    }
    // Let the containers start (and be refused) while the swapping goes on.
    let mut outcomes = std::collections::BTreeSet::new();
    let racing = eventually(Duration::from_secs(40), || {
        for name in &names {
            let waiting = env
                .pod_field(name, ".status.containerStatuses[0].state.waiting.message")
                .unwrap_or_default();
            outcomes.insert(waiting.chars().take(70).collect::<String>());
        }
        let done = names
            .iter()
            .filter(|name| env.pod_field(name, ".status.phase").unwrap_or_default() == "Succeeded")
            .count();
        Ok((done == PODS).then_some(done))
    });
    stop.store(true, Ordering::Relaxed);
    let swaps = swapper
        .join()
        .map_err(|_| anyhow::anyhow!("the swapping thread panicked"))?;
    let succeeded_while_racing = racing.unwrap_or(0);
    // With `d` pointing inside for good, every pod finishes.
    std::fs::remove_file(volume.join("d"))?;
    std::os::unix::fs::symlink("real", volume.join("d"))?;
    for name in &names {
        env.wait_phase(name, "Succeeded")?;
    }
    note(format!(
        "{swaps} swaps in {:.1?}; {succeeded_while_racing} of {PODS} pods finished while swapping; \
         waiting messages seen: {outcomes:#?}",
        started.elapsed()
    ));
    let after = tree(&sentinel)?;
    ensure!(
        before == after,
        "the sentinel tree outside the volume changed: {before:?} -> {after:?}"
    );
    let written = std::fs::read_dir(volume.join("real"))?.count();
    ensure!(written == PODS, "{written} of {PODS} pods wrote into the volume");
    for name in &names {
        env.delete(name);
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

fn kubectl_exec_works_while_idle_and_slow_connections_hold_the_node_api(env: &Env) -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    /// Connections that send nothing.
    const IDLE: usize = 2000;
    /// Connections that send a TLS record header one byte a second.
    const SLOW: usize = 20;
    /// Connections opened from each loopback address (the server caps them per address).
    const PER_ADDRESS: usize = 500;
    /// The kubelet API's TLS handshake deadline, and a margin for a loaded machine.
    const CLOSED_WITHIN: Duration = Duration::from_secs(10 + 10);
    raise_open_file_limit(IDLE + SLOW + 256)?;
    let pod = "exec-under-abuse";
    env.apply(&pod_with_volume(
        pod,
        &env.images.busybox,
        "true",
        &[("c", "sleep 3600", serde_json::json!({}))],
    ))?;
    env.wait_container_running(pod, "c")?;
    let api = std::net::SocketAddr::from(([127, 0, 0, 1], env.node.port()));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    // The abusers connect from loopback addresses other than the apiserver's, as other
    // hosts would.
    let connect = |n: usize| async move {
        let octet = u8::try_from(2 + n / PER_ADDRESS).unwrap_or(u8::MAX);
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(std::net::SocketAddr::from(([127, 0, 0, octet], 0)))?;
        socket.connect(api).await
    };
    let opened = Instant::now();
    let mut held = tokio::task::JoinSet::new();
    runtime.block_on(async {
        for n in 0..IDLE + SLOW {
            let mut stream = connect(n).await.with_context(|| format!("connection {n}"))?;
            held.spawn(async move {
                if n >= IDLE {
                    // A TLS handshake record header, one byte a second, never finished.
                    for byte in [0x16u8, 0x03, 0x01, 0x02, 0x00].iter().cycle() {
                        if stream.write_all(&[*byte]).await.is_err() {
                            break;
                        }
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
                let mut buf = [0u8; 64];
                let closed = matches!(stream.read(&mut buf).await, Ok(0) | Err(_));
                (closed, opened.elapsed())
            });
        }
        anyhow::Ok(())
    })?;
    let open_took = opened.elapsed();
    let exec_started = Instant::now();
    let output = env.kubectl(&["exec", pod, "-c", "c", "--", "echo", "through"])?;
    let exec_took = exec_started.elapsed();
    ensure!(output.trim() == "through", "kubectl exec printed {output:?}");
    // Every abusive connection is closed by the server, not left to time out here.
    let (closed, slowest) = runtime.block_on(async {
        let mut closed = 0;
        let mut slowest = Duration::ZERO;
        let deadline = tokio::time::Instant::from_std(opened + CLOSED_WITHIN);
        while let Ok(Some(joined)) = tokio::time::timeout_at(deadline, held.join_next()).await {
            let (was_closed, at) = joined?;
            if was_closed {
                closed += 1;
                slowest = slowest.max(at);
            }
        }
        held.abort_all();
        anyhow::Ok((closed, slowest))
    })?;
    note(format!(
        "{IDLE} idle and {SLOW} slow connections opened in {open_took:.2?}; kubectl exec took {exec_took:.2?}; \
         {closed} closed by the server, the last {slowest:.1?} after opening"
    ));
    ensure!(
        closed == IDLE + SLOW,
        "only {closed} of {} connections were closed by the server within {CLOSED_WITHIN:?}",
        IDLE + SLOW
    );
    env.delete(pod);
    Ok(())
}

/// Raises this process's open file limit to at least `needed`, up to the hard limit.
fn raise_open_file_limit(needed: usize) -> anyhow::Result<()> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    let needed = u64::try_from(needed)?;
    ensure!(hard >= needed, "the hard open file limit {hard} is below {needed}");
    if soft < needed {
        setrlimit(Resource::RLIMIT_NOFILE, needed, hard)?;
    }
    Ok(())
}

fn run_as_non_root_is_checked_against_the_image_user(env: &Env) -> anyhow::Result<()> {
    let images = &env.images;
    let non_root = serde_json::json!({"runAsNonRoot": true});
    let cases = [
        (
            "nonroot-root-image",
            &images.busybox,
            non_root.clone(),
            Err("image will run as root"),
        ),
        ("nonroot-numeric-image", &images.nonroot, non_root.clone(), Ok("65532")),
        (
            "nonroot-named-image",
            &images.named_user,
            non_root.clone(),
            Err("image has non-numeric user (nonroot), cannot verify user is non-root"),
        ),
        (
            "nonroot-run-as-user",
            &images.busybox,
            serde_json::json!({"runAsNonRoot": true, "runAsUser": 1000}),
            Ok("1000"),
        ),
    ];
    for (name, image, security, _) in &cases {
        env.apply(&serde_json::json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name},
            "spec": {
                "restartPolicy": "Never",
                "terminationGracePeriodSeconds": 1,
                "containers": [{
                    "name": "c",
                    "image": image,
                    "command": ["sh", "-c", "id -u"],
                    "securityContext": security
                }]
            }
        }))?;
    }
    for (name, _, _, outcome) in &cases {
        match outcome {
            Ok(uid) => {
                env.wait_phase(name, "Succeeded")?;
                let output = env.logs(name, "c")?;
                ensure!(output.trim() == *uid, "{name}: ran as {output:?}, not {uid}");
            }
            Err(expected) => {
                let (reason, message) = env.wait_waiting(name, "c")?;
                ensure!(
                    reason == "CreateContainerConfigError"
                        && message.starts_with("container has runAsNonRoot and")
                        && message.contains(expected),
                    "{name}: waiting {reason}: {message}"
                );
                // It keeps retrying, as the kubelet does, and never runs.
                std::thread::sleep(Duration::from_secs(3));
                let phase = env.pod_field(name, ".status.phase")?;
                ensure!(phase == "Pending", "{name}: phase {phase}");
                note(format!("{name}: {reason}: {message}"));
            }
        }
    }
    for (name, ..) in &cases {
        env.delete(name);
    }
    Ok(())
}

fn sysctl_pod(name: &str, image: &str, sysctls: &[(&str, &str)], script: &str) -> serde_json::Value {
    let sysctls: Vec<_> = sysctls
        .iter()
        .map(|(name, value)| serde_json::json!({"name": name, "value": value}))
        .collect();
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "securityContext": {"sysctls": sysctls},
            "containers": [{"name": "c", "image": image, "command": ["sh", "-c", script]}]
        }
    })
}

fn a_forbidden_sysctl_fails_the_pod_at_admission(env: &Env) -> anyhow::Result<()> {
    let pod = "sysctl-forbidden";
    env.apply(&sysctl_pod(
        pod,
        &env.images.busybox,
        &[("kernel.shm_rmid_forced", "1"), ("net.core.somaxconn", "1024")],
        "echo ran",
    ))?;
    env.wait_phase(pod, "Failed")?;
    let reason = env.pod_field(pod, ".status.reason")?;
    let message = env.pod_field(pod, ".status.message")?;
    ensure!(reason == "SysctlForbidden", "reason {reason}: {message}");
    ensure!(
        message.contains("\"net.core.somaxconn\" not allowlisted"),
        "message: {message}"
    );
    // Nothing of it reached the runtime: no sandbox (no address), no container.
    let uid = env.pod_field(pod, ".metadata.uid")?;
    let ip = env.pod_field(pod, ".status.podIP")?;
    ensure!(ip.is_empty(), "the refused pod got an address: {ip}");
    let log = std::fs::read_to_string(env.node.log_file())?;
    let sandbox_lines: Vec<&str> = log
        .lines()
        .filter(|line| line.contains(&uid) && line.contains("sandbox ready"))
        .collect();
    ensure!(
        sandbox_lines.is_empty(),
        "the refused pod got a sandbox: {sandbox_lines:?}"
    );
    env.delete(pod);
    Ok(())
}

fn a_sysctl_value_smuggling_a_second_setting_never_reaches_the_kernel(env: &Env) -> anyhow::Result<()> {
    let pod = "sysctl-smuggle";
    let core_pattern = std::fs::read_to_string("/proc/sys/kernel/core_pattern")?;
    // An allowed name passes admission; the runtime refuses the value.
    env.apply(&sysctl_pod(
        pod,
        &env.images.busybox,
        &[(
            "kernel.shm_rmid_forced",
            "1+kernel.core_pattern=|/tmp/kubelet-lite-smuggled",
        )],
        "echo ran",
    ))?;
    let message = eventually(TIMEOUT, || {
        let message = env
            .pod_field(pod, ".status.containerStatuses[0].state.waiting.message")
            .unwrap_or_default();
        Ok(message.contains("sysctl \"kernel.shm_rmid_forced\"").then_some(message))
    })
    .with_context(|| env.diagnostics(pod))?;
    note(format!("{pod}: {message}"));
    ensure!(
        message.contains("InvalidArgument") || message.contains("invalid argument"),
        "{message}"
    );
    ensure!(
        std::fs::read_to_string("/proc/sys/kernel/core_pattern")? == core_pattern,
        "the host's kernel.core_pattern changed"
    );
    env.delete(pod);
    Ok(())
}

fn safe_and_allowed_unsafe_sysctls_are_set_in_the_pod(env: &Env) -> anyhow::Result<()> {
    let pod = "sysctl-allowed";
    env.apply(&sysctl_pod(
        pod,
        &env.images.busybox,
        &[("kernel.shm_rmid_forced", "1"), ("kernel.msgmax", "12345")],
        "cat /proc/sys/kernel/shm_rmid_forced /proc/sys/kernel/msgmax",
    ))?;
    env.wait_phase(pod, "Succeeded")?;
    let output = env.logs(pod, "c")?;
    let values: Vec<&str> = output.split_whitespace().collect();
    ensure!(values == ["1", "12345"], "inside the pod: {output:?}");
    let host = std::fs::read_to_string("/proc/sys/kernel/msgmax")?;
    ensure!(host.trim() != "12345", "the host's kernel.msgmax changed to {host}");
    env.delete(pod);
    Ok(())
}

/// A new directory under /tmp named after `prefix` and this process.
fn tempfile_dir(prefix: &str) -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("{prefix}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Every path under `root` with its contents (directories as empty), sorted.
fn tree(root: &Path) -> anyhow::Result<Vec<(PathBuf, String)>> {
    let mut entries = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            let relative = path.strip_prefix(root)?.to_path_buf();
            if path.is_dir() {
                pending.push(path);
                entries.push((relative, String::new()));
            } else {
                entries.push((relative, std::fs::read_to_string(&path)?));
            }
        }
    }
    entries.sort();
    Ok(entries)
}
