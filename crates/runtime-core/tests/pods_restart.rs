//! runtime-core going away under running containers: killed (a crash) and stopped
//! gracefully, then started again on the same state.
//!
//! These tests need the daemon to themselves, so they run here, against a daemon of their
//! own (bridge `kltrc1`, `198.18.2.0/24`), each holding it exclusively. Needs what
//! `pods.rs` needs.

mod common;

use std::net::IpAddr;
use std::path::Path;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use common::{Env, with_daemon_log};
use cri_client::v1::{ContainerState, PodSandboxState};
use test_harness::pods::{self, eventually, parse_log_line};
use test_harness::suite::{self, Test};
use test_harness::{RuntimeCore, host, process};

/// The pod network of this binary's daemon.
const BRIDGE: &str = "kltrc1";
const SUBNET: &str = "198.18.2.0/24";

/// Prints a line a second until it is killed.
const TICKS: &str = "while true; do echo tick; sleep 1; done";
/// Ends by itself two seconds after it starts, with exit code 7, logging around the wait.
const EXITS_7_AFTER_2S: &str = "echo before; sleep 2; echo after; exit 7";

fn main() -> ExitCode {
    suite::run(
        || Env::setup(BRIDGE, SUBNET),
        vec![
            Test::new(
                "the_daemon_crashing_loses_no_container_and_no_exit_code",
                the_daemon_crashing_loses_no_container_and_no_exit_code,
            ),
            Test::new(
                "a_graceful_restart_keeps_pods_and_containers_running",
                a_graceful_restart_keeps_pods_and_containers_running,
            ),
        ],
    )
}

fn the_daemon_crashing_loses_no_container_and_no_exit_code(env: &Env) -> anyhow::Result<()> {
    let mut runtime = env.runtime_mut();
    let outcome = crash_and_recover(env, &mut runtime);
    with_daemon_log(&runtime, outcome)
}

fn crash_and_recover(env: &Env, runtime: &mut RuntimeCore) -> anyhow::Result<()> {
    let (pod, survivor, quitter) = env.block_on(async {
        let pod = env.run_pod("crash").await?;
        let survivor = env.start_script(&pod, "survivor", TICKS).await?;
        let quitter = env.start_script(&pod, "quitter", EXITS_7_AFTER_2S).await?;
        for id in [&survivor, &quitter] {
            let state = env.status(id).await?.state;
            ensure!(state == ContainerState::ContainerRunning as i32, "{id}: state {state}");
        }
        Ok((pod, survivor, quitter))
    })?;

    let daemon = runtime.pid().context("the daemon is not running")?;
    runtime.kill()?;
    ensure!(!process::is_alive(daemon), "the daemon survived SIGKILL");
    let quitter_gone = wait_for(Duration::from_secs(10), || {
        process::pids_with_cmdline_containing(EXITS_7_AFTER_2S).is_empty()
    });
    ensure!(quitter_gone, "the quitting container still runs 10 s after it started");
    ensure!(
        !process::pids_with_cmdline_containing(TICKS).is_empty(),
        "the surviving container died with the daemon"
    );
    runtime.start_again()?;

    env.block_on(async {
        let alive = env.status(&survivor).await?;
        ensure!(
            alive.state == ContainerState::ContainerRunning as i32,
            "survivor after the crash: {alive:?}"
        );
        let (code, out) = env.exec(&survivor, "echo alive").await?;
        ensure!((code, out.as_str()) == (0, "alive\n"), "ExecSync: exit {code}, {out:?}");
        let log = pods::container_log(&pod.config, "survivor");
        let size = std::fs::metadata(&log)?.len();
        eventually("the survivor to keep logging", Duration::from_secs(5), || async {
            Ok((std::fs::metadata(&log)?.len() > size).then_some(()))
        })
        .await?;

        let quit = env.status(&quitter).await?;
        ensure!(
            quit.state == ContainerState::ContainerExited as i32 && quit.exit_code == 7,
            "the container that exited while the daemon was down: {quit:?}"
        );
        ensure!(quit.reason == "Error" && quit.finished_at > 0, "{quit:?}");
        let text = std::fs::read_to_string(pods::container_log(&pod.config, "quitter"))?;
        let records = text
            .lines()
            .map(|line| parse_log_line(line).map(|r| (r.stream, r.tag, r.text)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        ensure!(
            records == [("stdout", "F", "before"), ("stdout", "F", "after")],
            "its log: {text:?}"
        );
        env.remove(&pod).await
    })?;
    nothing_is_left(runtime, &[&survivor, &quitter])
}

fn a_graceful_restart_keeps_pods_and_containers_running(env: &Env) -> anyhow::Result<()> {
    let mut runtime = env.runtime_mut();
    let (pod, id) = env.block_on(async {
        let pod = env.run_pod("graceful").await?;
        let id = env.start_script(&pod, "steady", TICKS).await?;
        Ok((pod, id))
    })?;
    let outcome = runtime.restart().and_then(|()| {
        env.block_on(async {
            let sandbox = env.client.pod_sandbox_status(&pod.id, false).await?.status;
            let state = sandbox.map(|s| s.state);
            ensure!(
                state == Some(PodSandboxState::SandboxReady as i32),
                "pod state {state:?}"
            );
            let status = env.status(&id).await?;
            ensure!(status.state == ContainerState::ContainerRunning as i32, "{status:?}");
            let (code, out) = env.exec(&id, "echo still here").await?;
            ensure!(
                (code, out.as_str()) == (0, "still here\n"),
                "ExecSync: exit {code}, {out:?}"
            );
            env.remove(&pod).await
        })
    });
    with_daemon_log(&runtime, outcome)
}

/// Where containers of pods without a cgroup parent get their cgroups.
const DEFAULT_CGROUP_PARENT: &str = "runtime-core";

/// Checks that the runtime holds nothing any more: no mounts under its root and state,
/// no sandbox directories, no IP reservations, no monitor or container processes, no
/// containers in runc, and no cgroup of `containers` in any hierarchy.
fn nothing_is_left(runtime: &RuntimeCore, containers: &[&str]) -> anyhow::Result<()> {
    let hierarchies: Vec<_> = std::fs::read_dir("/sys/fs/cgroup")?
        .flatten()
        .map(|e| e.path())
        .collect();
    let cgroups: Vec<_> = containers
        .iter()
        .flat_map(|id| hierarchies.iter().map(move |h| h.join(DEFAULT_CGROUP_PARENT).join(id)))
        .filter(|path| path.exists())
        .collect();
    ensure!(cgroups.is_empty(), "cgroups left: {cgroups:?}");
    for dir in [runtime.root_dir(), runtime.state_dir()] {
        let mounts = host::mounts_under(dir)?;
        ensure!(mounts.is_empty(), "mounts left under {}: {mounts:?}", dir.display());
    }
    let sandboxes = runtime.state_dir().join("sandboxes");
    let entries: Vec<_> = match std::fs::read_dir(&sandboxes) {
        Ok(entries) => entries.flatten().map(|e| e.file_name()).collect(),
        Err(_) => Vec::new(),
    };
    ensure!(entries.is_empty(), "left in {}: {entries:?}", sandboxes.display());
    let reservations = ip_reservations(runtime.ipam_dir());
    ensure!(reservations.is_empty(), "IP reservations left: {reservations:?}");

    let needle = format!("{}/", runtime.dir().display());
    let daemon = runtime.pid();
    let processes: Vec<String> = process::pids_with_cmdline_containing(&needle)
        .into_iter()
        .chain(process::pids_with_cmdline_containing(TICKS))
        .chain(process::pids_with_cmdline_containing(EXITS_7_AFTER_2S))
        .filter(|&pid| Some(pid) != daemon)
        .map(|pid| format!("{pid}: {}", process::cmdline(pid)))
        .collect();
    ensure!(processes.is_empty(), "processes left: {processes:?}");

    let root = runtime.runc_handler_root();
    let runc = Command::new("runc")
        .arg("--root")
        .arg(&root)
        .args(["list", "--quiet"])
        .output()
        .context("running runc list")?;
    if !runc.status.success() {
        bail!(
            "runc --root {} list: {}",
            root.display(),
            String::from_utf8_lossy(&runc.stderr)
        );
    }
    let ids = String::from_utf8_lossy(&runc.stdout);
    ensure!(ids.trim().is_empty(), "runc still knows containers: {ids}");
    Ok(())
}

/// The files host-local keeps per reserved address (named after the address), anywhere
/// under its data directory.
fn ip_reservations(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(ip_reservations(&path));
        } else if entry.file_name().to_string_lossy().parse::<IpAddr>().is_ok() {
            found.push(path.display().to_string());
        }
    }
    found
}

/// Polls `done` every 100 ms for at most `timeout`; whether it came true.
fn wait_for(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while !done() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    true
}
