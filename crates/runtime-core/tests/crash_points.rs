//! Crash recovery at every crash point: the daemon, built with the `crash-points` feature,
//! kills itself (SIGKILL) in the middle of a CRI call, and a restart must bring it back to
//! a state the kubelet can drive to the end.
//!
//! For each point of [`POINTS`] one pod lives its whole life as the kubelet drives it
//! (PullImage, RunPodSandbox, CreateContainer, StartContainer, StopContainer,
//! RemoveContainer, StopPodSandbox, RemovePodSandbox, RemoveImage). The step that reaches
//! the armed point must end the daemon; it is started again unarmed, the records are
//! checked against the system (every record has its directory and every directory its
//! record; a container runs in runc exactly when its record says Running), the step is
//! replayed as the kubelet would retry it, and the life goes on to its end, after which
//! nothing may be left: mounts, holder and monitor processes, IP reservations, veths,
//! cgroups, runc state, sandbox and container directories, image layers. The reconcile
//! points are armed at a restart under a running pod instead. A matrix, point × outcome,
//! is printed. Two more cases: a container whose monitor was killed, which must still be
//! stopped and removed; and a reboot (the state directory wiped, the processes gone),
//! after which the runtime starts clean.
//!
//! Runs only with the feature (`cargo test -p runtime-core --features crash-points
//! --test crash_points`; scripts/test.sh does). Bridge `kltcrash0`, `198.18.124.0/24`.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, ExitCode};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use common::{Env, Pod, nothing_is_left, with_daemon_log};
use cri_client::v1::{ContainerState, NamespaceMode, NamespaceOption, PortMapping, Protocol};
use test_harness::suite::{self, Test};
use test_harness::{RuntimeCore, process};

const BRIDGE: &str = "kltcrash0";
const SUBNET: &str = "198.18.124.0/24";

/// The environment variable that arms a crash point (the `crash-point` crate's).
const CRASH_POINT_ENV: &str = crash_point::ENV_VAR;

/// What the test container runs: unique, so leftover processes are found by it.
/// It ignores SIGTERM, so StopContainer needs its SIGKILL.
const WORKLOAD: &str = "trap '' TERM; while true; do sleep 1; done # crash-points workload";

/// The host port of the test pod.
const HOST_PORT: i32 = 18321;

/// How long a step may take to reach its point and kill the daemon.
const CRASH_WAIT: Duration = Duration::from_secs(30);

/// The steps of a pod's life, as the kubelet drives them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    Pull,
    RunSandbox,
    Create,
    Start,
    Stop,
    RemoveContainer,
    StopSandbox,
    RemoveSandbox,
    RemoveImage,
}

const STEPS: [Step; 9] = [
    Step::Pull,
    Step::RunSandbox,
    Step::Create,
    Step::Start,
    Step::Stop,
    Step::RemoveContainer,
    Step::StopSandbox,
    Step::RemoveSandbox,
    Step::RemoveImage,
];

/// Every crash point of the runtime's verbs and the step whose call reaches it.
const POINTS: &[(&str, Step)] = &[
    ("image_pull.after_layers", Step::Pull),
    ("sandbox_run.after_record", Step::RunSandbox),
    ("sandbox_run.after_pin", Step::RunSandbox),
    ("sandbox_run.after_pid_holder", Step::RunSandbox),
    ("sandbox_run.after_network", Step::RunSandbox),
    ("sandbox_run.before_ready", Step::RunSandbox),
    ("container_create.after_record", Step::Create),
    ("container_create.after_rootfs", Step::Create),
    ("container_create.after_config", Step::Create),
    ("container_start.after_create", Step::Start),
    ("container_start.after_start", Step::Start),
    ("container_stop.after_signal", Step::Stop),
    ("container_stop.after_kill", Step::Stop),
    ("container_remove.after_runc_delete", Step::RemoveContainer),
    ("container_remove.after_set_aside", Step::RemoveContainer),
    ("container_remove.after_record", Step::RemoveContainer),
    ("sandbox_stop.after_containers", Step::StopSandbox),
    ("sandbox_stop.after_network", Step::StopSandbox),
    ("sandbox_stop.before_not_ready", Step::StopSandbox),
    ("sandbox_remove.after_containers", Step::RemoveSandbox),
    ("sandbox_remove.after_dir", Step::RemoveSandbox),
    ("sandbox_remove.after_record", Step::RemoveSandbox),
    ("image_remove.after_record", Step::RemoveImage),
];

/// The crash points of start-up reconciliation, armed at a restart under a running pod.
const RECONCILE_POINTS: &[&str] = &["reconcile.after_containers", "reconcile.after_sandboxes"];

fn main() -> ExitCode {
    suite::run(
        || Env::setup(BRIDGE, SUBNET),
        vec![
            Test::new("every_crash_point_is_listed", every_crash_point_is_listed),
            Test::new("a_crash_at_every_point_recovers", a_crash_at_every_point_recovers),
            Test::new(
                "a_container_whose_monitor_died_is_still_stopped",
                a_container_whose_monitor_died_is_still_stopped,
            ),
            Test::new(
                "after_a_reboot_the_runtime_starts_clean",
                after_a_reboot_the_runtime_starts_clean,
            ),
        ],
    )
}

/// The points in the source are the points walked here: a new one cannot be left out.
fn every_crash_point_is_listed(_: &Env) -> anyhow::Result<()> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let in_source = crash_point::names_in_sources(&src)?;
    let walked: BTreeSet<String> = POINTS
        .iter()
        .map(|(name, _)| *name)
        .chain(RECONCILE_POINTS.iter().copied())
        .map(String::from)
        .collect();
    ensure!(
        in_source == walked,
        "crash points in the source but not walked: {:?}; walked but not in the source: {:?}",
        in_source.difference(&walked).collect::<Vec<_>>(),
        walked.difference(&in_source).collect::<Vec<_>>()
    );
    Ok(())
}

/// One row of the matrix.
struct Outcome {
    point: String,
    result: anyhow::Result<()>,
}

fn a_crash_at_every_point_recovers(env: &Env) -> anyhow::Result<()> {
    let mut runtime = env.runtime_mut();
    let mut outcomes = Vec::new();
    for (point, step) in POINTS {
        let result = crash_during_life(env, &mut runtime, point, *step);
        let result = with_daemon_log(&runtime, result);
        outcomes.push(Outcome {
            point: point.to_string(),
            result,
        });
        // A failed row must not spoil the next: bring the daemon back, unarmed and clean.
        recover_for_next(env, &mut runtime);
    }
    for point in RECONCILE_POINTS {
        let result = crash_during_reconcile(env, &mut runtime, point);
        let result = with_daemon_log(&runtime, result);
        outcomes.push(Outcome {
            point: point.to_string(),
            result,
        });
        recover_for_next(env, &mut runtime);
    }
    print_matrix(&outcomes);
    let failed: Vec<String> = outcomes
        .iter()
        .filter_map(|o| o.result.as_ref().err().map(|e| format!("{}: {e:#}", o.point)))
        .collect();
    ensure!(
        failed.is_empty(),
        "{} of {} points failed:\n{}",
        failed.len(),
        outcomes.len(),
        failed.join("\n")
    );
    Ok(())
}

/// Prints `point | crashed | recovered | nothing left` for every row.
fn print_matrix(outcomes: &[Outcome]) {
    println!("\n{:<38} outcome", "crash point");
    for outcome in outcomes {
        let verdict = match &outcome.result {
            Ok(()) => "crashed, recovered, nothing left".to_string(),
            Err(error) => format!("FAILED: {}", format!("{error:#}").lines().next().unwrap_or_default()),
        };
        println!("{:<38} {verdict}", outcome.point);
    }
    println!();
}

/// After a row: the daemon running unarmed, and no pod, container or image left.
fn recover_for_next(env: &Env, runtime: &mut RuntimeCore) {
    runtime.set_env(CRASH_POINT_ENV, None);
    if runtime.pid().is_none() {
        let _ = runtime.start_again();
    }
    let _ = env.rt.block_on(remove_everything(env));
}

/// What the pod's life has made so far.
#[derive(Default)]
struct Life {
    pod: Option<Pod>,
    container: Option<String>,
}

/// One life with `point` armed; `step` must reach it.
fn crash_during_life(env: &Env, runtime: &mut RuntimeCore, point: &str, step: Step) -> anyhow::Result<()> {
    runtime.kill()?;
    runtime.set_env(CRASH_POINT_ENV, Some(point));
    runtime.start_again()?;
    let mut life = Life::default();
    for current in STEPS {
        if current != step {
            env.rt.block_on(take_step(env, &mut life, current))?;
            continue;
        }
        let call = env.rt.block_on(take_step(env, &mut life, current));
        let status = runtime.wait_exit(CRASH_WAIT)?;
        let Some(status) = status else {
            bail!("{current:?} did not reach the crash point (the call returned {call:?})");
        };
        ensure!(
            call.is_err(),
            "{current:?} answered although the daemon died ({status})"
        );
        ensure!(
            runtime.log_tail(5).contains(&format!("crash point {point} reached")),
            "the daemon ended ({status}) but not at the crash point"
        );
        runtime.set_env(CRASH_POINT_ENV, None);
        runtime.start_again()?;
        env.rt.block_on(records_match_the_system(env, runtime))?;
        env.rt.block_on(replay(env, &mut life, current))?;
    }
    ended_clean(env, runtime)
}

/// A running pod, a restart with the reconcile `point` armed, which must end the daemon
/// while it starts; then a plain start, the pod still running, and its removal.
fn crash_during_reconcile(env: &Env, runtime: &mut RuntimeCore, point: &str) -> anyhow::Result<()> {
    let mut life = Life::default();
    env.rt.block_on(take_steps(env, &mut life, &UP))?;
    runtime.kill()?;
    runtime.set_env(CRASH_POINT_ENV, Some(point));
    let started = runtime.start_again();
    runtime.set_env(CRASH_POINT_ENV, None);
    ensure!(started.is_err(), "the daemon started although {point} was armed");
    ensure!(
        runtime.log_tail(5).contains(&format!("crash point {point} reached")),
        "the daemon did not start, but not because of the crash point"
    );
    runtime.start_again()?;
    env.rt.block_on(async {
        records_match_the_system(env, runtime).await?;
        let id = life.container.clone().context("no container")?;
        let status = env.status(&id).await?;
        ensure!(
            status.state == ContainerState::ContainerRunning as i32,
            "the container after the interrupted reconcile: {status:?}"
        );
        take_steps(env, &mut life, &DOWN).await?;
        anyhow::Ok(())
    })?;
    ended_clean(env, runtime)
}

/// The pod config of every life: a shared PID namespace, so the sandbox has its holder,
/// and a host port, so CNI writes iptables rules that must go with it.
fn pod_config(env: &Env) -> anyhow::Result<cri_client::v1::PodSandboxConfig> {
    let mut config = env.pod_config("crash")?;
    config.port_mappings = vec![PortMapping {
        protocol: Protocol::Tcp as i32,
        container_port: 8080,
        host_port: HOST_PORT,
        host_ip: String::new(),
    }];
    let linux = config.linux.get_or_insert_with(Default::default);
    let security = linux.security_context.get_or_insert_with(Default::default);
    security.namespace_options = Some(NamespaceOption {
        pid: NamespaceMode::Pod as i32,
        ..NamespaceOption::default()
    });
    Ok(config)
}

/// The steps that bring a pod up, with its image pulled.
const UP: [Step; 4] = [Step::Pull, Step::RunSandbox, Step::Create, Step::Start];
/// The steps that take a running pod and its image away.
const DOWN: [Step; 5] = [
    Step::Stop,
    Step::RemoveContainer,
    Step::StopSandbox,
    Step::RemoveSandbox,
    Step::RemoveImage,
];

/// Takes `steps` in order.
async fn take_steps(env: &Env, life: &mut Life, steps: &[Step]) -> anyhow::Result<()> {
    for step in steps {
        take_step(env, life, *step).await?;
    }
    Ok(())
}

/// Takes one step of the life.
async fn take_step(env: &Env, life: &mut Life, step: Step) -> anyhow::Result<()> {
    let client = &env.client;
    match step {
        Step::Pull => {
            client
                .pull_image(env.images.busybox.as_str(), None, None)
                .await
                .context("PullImage")?;
        }
        Step::RunSandbox => life.pod = Some(env.run_pod_with(pod_config(env)?).await?),
        Step::Create => {
            let pod = life.pod.as_ref().context("no pod")?;
            let config = env.container_config(pod, "workload", WORKLOAD)?;
            let id = client
                .create_container(&pod.id, config, pod.config.clone())
                .await
                .context("CreateContainer")?;
            life.container = Some(id);
        }
        Step::Start => {
            let id = life.container.as_deref().context("no container")?;
            client.start_container(id).await.context("StartContainer")?;
        }
        Step::Stop => {
            let id = life.container.as_deref().context("no container")?;
            client
                .stop_container(id, Duration::from_secs(1))
                .await
                .context("StopContainer")?;
        }
        Step::RemoveContainer => {
            let id = life.container.as_deref().context("no container")?;
            client.remove_container(id).await.context("RemoveContainer")?;
        }
        Step::StopSandbox => {
            let pod = life.pod.as_ref().context("no pod")?;
            client.stop_pod_sandbox(&pod.id).await.context("StopPodSandbox")?;
        }
        Step::RemoveSandbox => {
            let pod = life.pod.as_ref().context("no pod")?;
            client.remove_pod_sandbox(&pod.id).await.context("RemovePodSandbox")?;
        }
        Step::RemoveImage => {
            client
                .remove_image(env.images.busybox.as_str())
                .await
                .context("RemoveImage")?;
        }
    }
    Ok(())
}

/// Retries a step whose call the crash cut short, as the kubelet does: a pod whose
/// RunPodSandbox failed gets its leftover sandboxes stopped and removed and a new one; a
/// container whose creation failed is removed and created again; a container whose start
/// was cut short is adopted (Running) or, if it did not run, replaced; everything else is
/// called again.
async fn replay(env: &Env, life: &mut Life, step: Step) -> anyhow::Result<()> {
    let client = &env.client;
    match step {
        Step::RunSandbox => {
            for sandbox in client.list_pod_sandbox(None).await? {
                client.stop_pod_sandbox(&sandbox.id).await?;
                client.remove_pod_sandbox(&sandbox.id).await?;
            }
            take_step(env, life, step).await
        }
        Step::Create => {
            for container in client.list_containers(None).await? {
                client.remove_container(&container.id).await?;
            }
            take_step(env, life, step).await
        }
        Step::Start => {
            let id = life.container.clone().context("no container")?;
            let status = env.status(&id).await?;
            if status.state == ContainerState::ContainerRunning as i32 {
                let (code, out) = env.exec(&id, "echo adopted").await?;
                ensure!(
                    (code, out.as_str()) == (0, "adopted\n"),
                    "ExecSync in the adopted container: {code} {out:?}"
                );
                return Ok(());
            }
            client.remove_container(&id).await?;
            take_step(env, life, Step::Create).await?;
            take_step(env, life, Step::Start).await
        }
        _ => take_step(env, life, step).await,
    }
}

/// After a restart: every sandbox and container record has its directory and every
/// directory its record, and a container runs in runc exactly when its record says so.
async fn records_match_the_system(env: &Env, runtime: &RuntimeCore) -> anyhow::Result<()> {
    let sandboxes: BTreeSet<String> = env
        .client
        .list_pod_sandbox(None)
        .await?
        .into_iter()
        .map(|s| s.id)
        .collect();
    let containers = env.client.list_containers(None).await?;
    let container_ids: BTreeSet<String> = containers.iter().map(|c| c.id.clone()).collect();
    for (dir, records, what) in [
        (runtime.state_dir().join("sandboxes"), &sandboxes, "sandbox"),
        (runtime.root_dir().join("containers"), &container_ids, "container"),
    ] {
        let dirs = dir_names(&dir);
        ensure!(
            &dirs == records,
            "{what} directories {dirs:?} but records {records:?} (in {})",
            dir.display()
        );
    }
    // A container gets its monitor directory when it starts.
    let monitors = dir_names(&runtime.state_dir().join("monitors"));
    let unowned: Vec<&String> = monitors.difference(&container_ids).collect();
    ensure!(unowned.is_empty(), "monitor directories without a record: {unowned:?}");
    for container in &containers {
        let recorded_running = container.state == ContainerState::ContainerRunning as i32;
        let runc = runc_status(runtime, &container.id)?;
        let running = runc.as_deref() == Some("running");
        ensure!(
            recorded_running == running,
            "container {} is recorded as {:?} but runc says {runc:?}",
            container.id,
            ContainerState::try_from(container.state)
        );
    }
    Ok(())
}

/// The names of the entries of `dir` (none if it does not exist).
fn dir_names(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// What `runc state` says of container `id` under the daemon's runc root.
fn runc_status(runtime: &RuntimeCore, id: &str) -> anyhow::Result<Option<String>> {
    let output = Command::new("runc")
        .arg("--root")
        .arg(runtime.runc_handler_root())
        .args(["state", id])
        .output()
        .context("running runc state")?;
    if !output.status.success() {
        return Ok(None);
    }
    let state: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    Ok(state["status"].as_str().map(String::from))
}

/// At the end of a life: no record, no image, and nothing on the system.
fn ended_clean(env: &Env, runtime: &RuntimeCore) -> anyhow::Result<()> {
    env.rt.block_on(async {
        let sandboxes = env.client.list_pod_sandbox(None).await?;
        ensure!(sandboxes.is_empty(), "sandboxes left: {sandboxes:?}");
        let containers = env.client.list_containers(None).await?;
        ensure!(containers.is_empty(), "containers left: {containers:?}");
        let images = env.client.list_images(None).await?;
        ensure!(images.is_empty(), "images left: {images:?}");
        anyhow::Ok(())
    })?;
    let layers = runtime.root_dir().join("images");
    let content: Vec<String> = ["blobs", "snapshots"]
        .iter()
        .flat_map(|kind| walk_files(&layers.join(kind)))
        .collect();
    ensure!(content.is_empty(), "image content left: {content:?}");
    let veths = veths_on(runtime.bridge())?;
    ensure!(veths.is_empty(), "veths left on {}: {veths:?}", runtime.bridge());
    let rules = iptables_rules_of(runtime.network_name())?;
    ensure!(rules.is_empty(), "iptables rules left: {rules:?}");
    nothing_is_left(runtime, &[], &[WORKLOAD])
}

/// The files under `dir`, recursively.
fn walk_files(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(walk_files(&path));
        } else {
            found.push(path.display().to_string());
        }
    }
    found
}

/// The NAT rules CNI wrote for network `network` (their comments name it).
fn iptables_rules_of(network: &str) -> anyhow::Result<Vec<String>> {
    let output = Command::new("iptables-save")
        .args(["-t", "nat"])
        .output()
        .context("running iptables-save")?;
    ensure!(
        output.status.success(),
        "iptables-save: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let needle = format!("name: \\\"{network}\\\"");
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| line.contains(&needle))
        .map(String::from)
        .collect())
}

/// The interfaces enslaved to `bridge`.
fn veths_on(bridge: &str) -> anyhow::Result<Vec<String>> {
    Ok(dir_names(&Path::new("/sys/class/net").join(bridge).join("brif"))
        .into_iter()
        .collect())
}

/// Stops and removes every sandbox and container, and removes the images.
async fn remove_everything(env: &Env) -> anyhow::Result<()> {
    for sandbox in env.client.list_pod_sandbox(None).await? {
        env.client.stop_pod_sandbox(&sandbox.id).await?;
        env.client.remove_pod_sandbox(&sandbox.id).await?;
    }
    for container in env.client.list_containers(None).await? {
        env.client.remove_container(&container.id).await?;
    }
    for image in env.client.list_images(None).await? {
        env.client.remove_image(image.id.as_str()).await?;
    }
    Ok(())
}

fn a_container_whose_monitor_died_is_still_stopped(env: &Env) -> anyhow::Result<()> {
    let mut runtime = env.runtime_mut();
    let mut life = Life::default();
    let outcome = env.rt.block_on(async {
        take_steps(env, &mut life, &UP).await?;
        let id = life.container.clone().context("no container")?;
        let rules = iptables_rules_of(runtime.network_name())?;
        ensure!(
            !rules.is_empty(),
            "no iptables rules for the pod's host port: the leftover check would see none"
        );
        let monitors = process::pids_with_cmdline_containing(&format!("monitors/{id}"));
        ensure!(!monitors.is_empty(), "no monitor process of {id} found");
        for pid in monitors {
            process::signal(pid, nix::sys::signal::Signal::SIGKILL)?;
        }
        let status = test_harness::pods::eventually(
            "the container's state to be unknown",
            Duration::from_secs(10),
            || async {
                let status = env.status(&id).await?;
                Ok((status.state != ContainerState::ContainerRunning as i32).then_some(status))
            },
        )
        .await?;
        ensure!(
            status.state == ContainerState::ContainerUnknown as i32,
            "after its monitor died: {status:?}"
        );
        ensure!(
            !process::pids_with_cmdline_containing(WORKLOAD).is_empty(),
            "the workload died with its monitor"
        );
        take_steps(env, &mut life, &DOWN).await?;
        anyhow::Ok(())
    });
    let outcome = outcome.and_then(|()| ended_clean(env, &runtime));
    let outcome = with_daemon_log(&runtime, outcome);
    recover_for_next(env, &mut runtime);
    outcome
}

fn after_a_reboot_the_runtime_starts_clean(env: &Env) -> anyhow::Result<()> {
    let mut runtime = env.runtime_mut();
    let mut life = Life::default();
    let outcome = env
        .rt
        .block_on(take_steps(env, &mut life, &UP))
        .and_then(|()| reboot(&mut runtime))
        .and_then(|()| {
            env.rt.block_on(async {
                let id = life.container.clone().context("no container")?;
                let status = env.status(&id).await?;
                ensure!(
                    status.state != ContainerState::ContainerRunning as i32,
                    "a container still running after a reboot: {status:?}"
                );
                // Nothing runs to stop: the reboot ended it.
                take_steps(env, &mut life, &DOWN[1..]).await?;
                // The image again, and a new pod on it: the runtime works as before.
                take_steps(env, &mut life, &UP).await?;
                take_steps(env, &mut life, &DOWN).await?;
                anyhow::Ok(())
            })
        })
        .and_then(|()| ended_clean(env, &runtime));
    let outcome = with_daemon_log(&runtime, outcome);
    recover_for_next(env, &mut runtime);
    outcome
}

/// What a machine restart does to the runtime: the daemon, the monitors and the
/// containers gone, every mount gone, the state directory (a tmpfs in real life) empty;
/// the root directory kept. Then the daemon starts again.
fn reboot(runtime: &mut RuntimeCore) -> anyhow::Result<()> {
    runtime.kill()?;
    test_harness::host::simulate_reboot(runtime.dir(), runtime.state_dir(), WORKLOAD)?;
    runtime.start_again()
}
