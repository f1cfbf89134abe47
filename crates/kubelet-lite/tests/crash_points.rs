//! The node agent crashing between its CRI calls: kubelet-lite, built with the
//! `crash-points` feature and its embedded runtime-core, kills itself (SIGKILL) at a named
//! point of its pod worker; started again, it must bring the pod to where it was going —
//! running exactly once, or gone without a trace.
//!
//! For each point of [`START_POINTS`] a static pod is written while the point is armed;
//! after the crash and a plain start the pod must run once (one ready sandbox, one running
//! container), and after its manifest is removed nothing of it may be left. For each point
//! of [`STOP_POINTS`] the pod runs first and the crash comes while it is terminated; after
//! a plain start it must be gone. A matrix, point × outcome, is printed. Then a reboot:
//! every process of the node killed, every mount gone, the runtime's state directory (a
//! tmpfs in real life) emptied; kubelet-lite started again brings the pod back.
//!
//! Runs only with the features (`cargo test -p kubelet-lite --features crash-points --test
//! crash_points`; scripts/test.sh does). Standalone node (no apiserver), pods on bridge
//! `kltcrk0` (`198.18.122.0/24`), node address `198.18.123.1` on `kltcrknode0`.

mod common;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use cri_client::Client;
use cri_client::v1::{ContainerState, PodSandboxState};
use test_harness::pods::eventually;
use test_harness::suite::{self, Test};
use test_harness::{KubeletLite, KubeletLiteOptions, Registry, process};

/// The points passed while a pod starts.
const START_POINTS: &[&str] = &[
    "worker.after_run_sandbox",
    "worker.after_create_container",
    "worker.after_start_container",
];

/// The points passed while a pod is terminated.
const STOP_POINTS: &[&str] = &[
    "worker.after_stop_containers",
    "worker.after_stop_sandboxes",
    "worker.after_remove_sandboxes",
];

/// What the pod's container runs: unique, so leftover processes are found by it.
const WORKLOAD: &str = "trap 'exit 0' TERM; while true; do sleep 1; done # agent crash-points workload";

/// How long a pod may take to start, or to go, after a start of the agent.
const SETTLE: Duration = Duration::from_secs(90);

struct Env {
    node: std::sync::Mutex<KubeletLite>,
    image: String,
    rt: tokio::runtime::Runtime,
    _registry: Registry,
}

fn main() -> ExitCode {
    suite::run(
        setup,
        vec![
            Test::new("every_crash_point_is_listed", every_crash_point_is_listed),
            Test::new("a_crash_at_every_point_recovers", a_crash_at_every_point_recovers),
            Test::new(
                "after_a_reboot_the_node_brings_its_pod_back",
                after_a_reboot_the_node_brings_its_pod_back,
            ),
        ],
    )
}

fn setup() -> anyhow::Result<Env> {
    test_harness::require_tools(&["docker-registry", "busybox"])?;
    // The monitor must be beside the agent.
    common::runtime_core_binary()?;
    let registry = Registry::start()?;
    let image = test_harness::push_test_images(&registry)?.busybox.to_string();
    let options = KubeletLiteOptions {
        node_name: "klt-crash".into(),
        node_ip: Ipv4Addr::new(198, 18, 123, 1),
        node_bridge: "kltcrknode0".into(),
        pod_bridge: "kltcrk0".into(),
        pod_subnet: "198.18.122.0/24".into(),
        ..KubeletLiteOptions::default()
    };
    let node = KubeletLite::start_standalone(env!("CARGO_BIN_EXE_kubelet-lite").as_ref(), &registry, options)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("building a tokio runtime")?;
    Ok(Env {
        node: std::sync::Mutex::new(node),
        image,
        rt,
        _registry: registry,
    })
}

/// The points in the source are the points walked here.
fn every_crash_point_is_listed(_: &Env) -> anyhow::Result<()> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let in_source = crash_point::names_in_sources(&src)?;
    let walked: BTreeSet<String> = START_POINTS.iter().chain(STOP_POINTS).map(|p| p.to_string()).collect();
    ensure!(
        in_source == walked,
        "in the source but not walked: {:?}; walked but not in the source: {:?}",
        in_source.difference(&walked).collect::<Vec<_>>(),
        walked.difference(&in_source).collect::<Vec<_>>()
    );
    Ok(())
}

fn a_crash_at_every_point_recovers(env: &Env) -> anyhow::Result<()> {
    let mut node = env.node.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut rows = Vec::new();
    for (n, point) in START_POINTS.iter().chain(STOP_POINTS).enumerate() {
        let pod = format!("crash-{n}");
        let result = if START_POINTS.contains(point) {
            crash_while_starting(env, &mut node, point, &pod)
        } else {
            crash_while_stopping(env, &mut node, point, &pod)
        };
        let result = result.map_err(|e| e.context(format!("kubelet-lite's log ends with:\n{}", node.log_tail(30))));
        rows.push((point, result));
        // A failed row must not spoil the next one.
        node.set_env(crash_point::ENV_VAR, None);
        if node.pid().is_none() {
            let _ = node.start_again();
        }
        let _ = std::fs::remove_file(manifest(&node, &pod));
        let _ = env.rt.block_on(gone(env, &node, &pod));
    }
    println!("\n{:<34} outcome", "crash point");
    for (point, result) in &rows {
        let verdict = match result {
            Ok(()) => "crashed, recovered, nothing left".to_string(),
            Err(e) => format!("FAILED: {}", format!("{e:#}").lines().next().unwrap_or_default()),
        };
        println!("{point:<34} {verdict}");
    }
    println!();
    let failed: Vec<String> = rows
        .iter()
        .filter_map(|(point, r)| r.as_ref().err().map(|e| format!("{point}: {e:#}")))
        .collect();
    ensure!(
        failed.is_empty(),
        "{} points failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
    Ok(())
}

/// Arms `point`, writes the pod's manifest, waits for the crash, starts the agent
/// unarmed: the pod must then run once, and go without a trace once its manifest does.
fn crash_while_starting(env: &Env, node: &mut KubeletLite, point: &str, pod: &str) -> anyhow::Result<()> {
    arm(node, Some(point))?;
    std::fs::write(manifest(node, pod), pod_manifest(pod, &env.image))?;
    crashed_at(node, point)?;
    arm(node, None)?;
    env.rt.block_on(runs_once(env, node, pod))?;
    std::fs::remove_file(manifest(node, pod))?;
    env.rt.block_on(gone(env, node, pod))?;
    nothing_of_the_pod_is_left(node)
}

/// Starts the pod, arms `point` (a restart under the running pod), removes the manifest,
/// waits for the crash, starts the agent unarmed: the pod must then go without a trace.
fn crash_while_stopping(env: &Env, node: &mut KubeletLite, point: &str, pod: &str) -> anyhow::Result<()> {
    std::fs::write(manifest(node, pod), pod_manifest(pod, &env.image))?;
    env.rt.block_on(runs_once(env, node, pod))?;
    arm(node, Some(point))?;
    env.rt.block_on(runs_once(env, node, pod))?;
    std::fs::remove_file(manifest(node, pod))?;
    crashed_at(node, point)?;
    arm(node, None)?;
    env.rt.block_on(gone(env, node, pod))?;
    nothing_of_the_pod_is_left(node)
}

/// Restarts the agent (SIGKILL, start) with `point` armed, or with none.
fn arm(node: &mut KubeletLite, point: Option<&str>) -> anyhow::Result<()> {
    node.kill()?;
    node.set_env(crash_point::ENV_VAR, point);
    node.start_again()
}

/// Waits for the agent to die at `point`.
fn crashed_at(node: &mut KubeletLite, point: &str) -> anyhow::Result<()> {
    let Some(status) = node.wait_exit(SETTLE)? else {
        bail!("the agent did not reach {point}");
    };
    ensure!(
        node.log_tail(5).contains(&format!("crash point {point} reached")),
        "the agent ended ({status}), but not at {point}"
    );
    Ok(())
}

/// Where the static pod `pod`'s manifest goes.
fn manifest(node: &KubeletLite, pod: &str) -> std::path::PathBuf {
    node.manifests_dir().join(format!("{pod}.yaml"))
}

/// A static pod of one busybox container running [`WORKLOAD`].
fn pod_manifest(name: &str, image: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  terminationGracePeriodSeconds: 2\n  \
         containers:\n  - name: work\n    image: {image}\n    command: [\"sh\", \"-c\", \"{WORKLOAD}\"]\n"
    )
}

/// The pod's sandboxes and containers as the runtime lists them: (ready sandboxes, other
/// sandboxes, running containers, other containers).
async fn pod_in_runtime(
    client: &Client,
    node: &KubeletLite,
    pod: &str,
) -> anyhow::Result<(usize, usize, usize, usize)> {
    let name = format!("{pod}-{}", node.node_name());
    let sandboxes: Vec<_> = client
        .list_pod_sandbox(None)
        .await?
        .into_iter()
        .filter(|s| s.metadata.as_ref().is_some_and(|m| m.name == name))
        .collect();
    let ids: BTreeSet<&str> = sandboxes.iter().map(|s| s.id.as_str()).collect();
    let containers: Vec<_> = client
        .list_containers(None)
        .await?
        .into_iter()
        .filter(|c| ids.contains(c.pod_sandbox_id.as_str()))
        .collect();
    let ready = sandboxes
        .iter()
        .filter(|s| s.state == PodSandboxState::SandboxReady as i32)
        .count();
    let running = containers
        .iter()
        .filter(|c| c.state == ContainerState::ContainerRunning as i32)
        .count();
    Ok((ready, sandboxes.len() - ready, running, containers.len() - running))
}

/// Waits until the pod runs exactly once: one ready sandbox, one running container, and
/// nothing else of it (older attempts removed).
async fn runs_once(env: &Env, node: &KubeletLite, pod: &str) -> anyhow::Result<()> {
    let _ = env;
    let client = Client::connect(&node.runtime_endpoint()).await?;
    eventually("the pod to run exactly once", SETTLE, || async {
        let counts = pod_in_runtime(&client, node, pod).await?;
        Ok((counts == (1, 0, 1, 0)).then_some(()))
    })
    .await
    .with_context(|| format!("pod {pod}"))?;
    ensure!(
        process::pids_with_cmdline_containing(WORKLOAD).len() == 1,
        "the workload runs {} times",
        process::pids_with_cmdline_containing(WORKLOAD).len()
    );
    Ok(())
}

/// Waits until the runtime has nothing of the pod.
async fn gone(env: &Env, node: &KubeletLite, pod: &str) -> anyhow::Result<()> {
    let _ = env;
    let client = Client::connect(&node.runtime_endpoint()).await?;
    eventually("the pod to be gone from the runtime", SETTLE, || async {
        let counts = pod_in_runtime(&client, node, pod).await?;
        Ok((counts == (0, 0, 0, 0)).then_some(()))
    })
    .await
    .with_context(|| format!("pod {pod}"))
}

/// No workload process, no mount under the pods' directories, no pod directory.
fn nothing_of_the_pod_is_left(node: &KubeletLite) -> anyhow::Result<()> {
    let workloads = process::pids_with_cmdline_containing(WORKLOAD);
    ensure!(workloads.is_empty(), "workload processes left: {workloads:?}");
    let pods_dir = node.root_dir().join("pods");
    let mounts = test_harness::host::mounts_under(&pods_dir)?;
    ensure!(
        mounts.is_empty(),
        "mounts left under {}: {mounts:?}",
        pods_dir.display()
    );
    Ok(())
}

fn after_a_reboot_the_node_brings_its_pod_back(env: &Env) -> anyhow::Result<()> {
    let mut node = env.node.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let pod = "rebooted";
    std::fs::write(manifest(&node, pod), pod_manifest(pod, &env.image))?;
    let outcome = env.rt.block_on(runs_once(env, &node, pod)).and_then(|()| {
        reboot(&mut node)?;
        env.rt.block_on(runs_once(env, &node, pod))?;
        std::fs::remove_file(manifest(&node, pod))?;
        env.rt.block_on(gone(env, &node, pod))?;
        nothing_of_the_pod_is_left(&node)
    });
    let _ = std::fs::remove_file(manifest(&node, pod));
    outcome.map_err(|e| e.context(format!("kubelet-lite's log ends with:\n{}", node.log_tail(30))))
}

/// What a machine restart does to the node: the agent, the monitors, the PID namespace
/// holders and the containers gone, every mount under its directory gone, the runtime's
/// state directory empty (the root directory, the manifests and the pods' directories
/// kept). Then kubelet-lite starts again.
fn reboot(node: &mut KubeletLite) -> anyhow::Result<()> {
    node.kill()?;
    let dir = node.root_dir().parent().context("the node's directory")?.to_path_buf();
    test_harness::host::simulate_reboot(&dir, &node.runtime_dir().join("state"), WORKLOAD)?;
    node.start_again()
}
