//! runtime-core going away under running containers: killed (a crash) and stopped
//! gracefully, then started again on the same state.
//!
//! These tests need the daemon to themselves, so they run here, against a daemon of their
//! own (bridge `kltrc1`, `198.18.2.0/24`), each holding it exclusively. Needs what
//! `pods.rs` needs.

mod common;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use common::{Env, nothing_is_left, with_daemon_log};
use cri_client::v1::{ContainerState, PodSandboxState};
use test_harness::pods::{self, eventually, parse_log_line};
use test_harness::suite::{self, Test};
use test_harness::{RuntimeCore, process};

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
    nothing_is_left(runtime, &[&survivor, &quitter], &[TICKS, EXITS_7_AFTER_2S])
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
