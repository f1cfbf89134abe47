//! The client against the real containerd 1.6 CRI plugin: every behaviour a kubelet relies
//! on, from Version to a restart of the runtime.
//!
//! One registry, one containerd and one client are shared by all tests, which run in
//! parallel: each test makes its own pods (named after the test) and removes them. The
//! restart test gets a containerd of its own, on its own network, so that restarting it
//! does not disturb the others. Needs root, containerd, runc, docker-registry and
//! busybox-static (skipped without them, failed with `CI=true`).

mod containerd_support;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use containerd_support::{Env, busybox_container, eventually, in_cidr, parse_log_line, pod_config};
use cri_client::v1::{
    AttachRequest, ContainerFilter, ContainerState, ContainerStateValue, ExecRequest, PodSandboxState, RuntimeCondition,
};
use cri_client::{Client, Error};
use test_harness::suite::{self, Test};
use test_harness::{Containerd, ContainerdOptions};

/// The network of the restart test's own containerd.
const RESTART_BRIDGE: &str = "kltcrirst0";
const RESTART_SUBNET: &str = "198.18.5.0/24";

fn main() -> ExitCode {
    suite::run(
        Env::setup,
        vec![
            Test::new(
                "version_reports_containerd_serving_cri_v1",
                version_reports_containerd_serving_cri_v1,
            ),
            Test::new(
                "status_reports_runtime_and_network_ready",
                status_reports_runtime_and_network_ready,
            ),
            Test::new(
                "pull_image_fetches_docker_io_and_registry_k8s_io_names_through_the_mirror",
                pull_image_fetches_docker_io_and_registry_k8s_io_names_through_the_mirror,
            ),
            Test::new(
                "list_images_and_image_status_show_a_pulled_image",
                list_images_and_image_status_show_a_pulled_image,
            ),
            Test::new(
                "image_status_of_an_unknown_image_is_none",
                image_status_of_an_unknown_image_is_none,
            ),
            Test::new(
                "remove_image_removes_it_and_removing_again_is_fine",
                remove_image_removes_it_and_removing_again_is_fine,
            ),
            Test::new(
                "run_pod_sandbox_gives_the_pod_an_ip_in_the_pod_cidr",
                run_pod_sandbox_gives_the_pod_an_ip_in_the_pod_cidr,
            ),
            Test::new(
                "a_started_container_logs_stdout_and_stderr_in_the_cri_format",
                a_started_container_logs_stdout_and_stderr_in_the_cri_format,
            ),
            Test::new(
                "exec_sync_returns_stdout_stderr_and_a_non_zero_exit_code",
                exec_sync_returns_stdout_stderr_and_a_non_zero_exit_code,
            ),
            Test::new(
                "exec_sync_past_its_timeout_is_deadline_exceeded",
                exec_sync_past_its_timeout_is_deadline_exceeded,
            ),
            Test::new(
                "container_status_reports_running_then_exited_with_the_exit_code",
                container_status_reports_running_then_exited_with_the_exit_code,
            ),
            Test::new(
                "list_containers_filters_by_id_state_label_and_pod",
                list_containers_filters_by_id_state_label_and_pod,
            ),
            Test::new(
                "stop_container_exits_it_and_remove_container_forgets_it",
                stop_container_exits_it_and_remove_container_forgets_it,
            ),
            Test::new(
                "stop_pod_sandbox_makes_it_not_ready_and_remove_pod_sandbox_forgets_it",
                stop_pod_sandbox_makes_it_not_ready_and_remove_pod_sandbox_forgets_it,
            ),
            Test::new("unknown_ids_are_not_found", unknown_ids_are_not_found),
            Test::new(
                "container_stats_report_a_running_container_s_memory",
                container_stats_report_a_running_container_s_memory,
            ),
            Test::new(
                "image_fs_info_reports_the_image_filesystem",
                image_fs_info_reports_the_image_filesystem,
            ),
            Test::new(
                "exec_attach_and_port_forward_return_streaming_urls",
                exec_attach_and_port_forward_return_streaming_urls,
            ),
            Test::new(
                "reopen_container_log_starts_a_new_file_after_rotation",
                reopen_container_log_starts_a_new_file_after_rotation,
            ),
            Test::new(
                "get_container_events_is_unimplemented_by_containerd_1_6",
                get_container_events_is_unimplemented_by_containerd_1_6,
            ),
            Test::new(
                "the_client_keeps_working_across_a_containerd_restart",
                the_client_keeps_working_across_a_containerd_restart,
            ),
        ],
    )
}

fn version_reports_containerd_serving_cri_v1(env: &Env) -> anyhow::Result<()> {
    env.rt.block_on(async {
        let version = env.client.version().await?;
        ensure!(version.runtime_name == "containerd", "{version:?}");
        ensure!(version.runtime_api_version == "v1", "{version:?}");
        ensure!(!version.runtime_version.is_empty(), "{version:?}");
        Ok(())
    })
}

fn status_reports_runtime_and_network_ready(env: &Env) -> anyhow::Result<()> {
    env.rt.block_on(async {
        let status = env.client.status(false).await?;
        let conditions = status.status.context("no status")?.conditions;
        for wanted in ["RuntimeReady", "NetworkReady"] {
            let condition = conditions.iter().find(|c| c.r#type == wanted);
            ensure!(
                matches!(condition, Some(RuntimeCondition { status: true, .. })),
                "{wanted} is not true: {conditions:?}"
            );
        }
        Ok(())
    })
}

fn pull_image_fetches_docker_io_and_registry_k8s_io_names_through_the_mirror(env: &Env) -> anyhow::Result<()> {
    env.rt.block_on(async {
        for (prefix, image) in [
            ("docker.io/library/busybox:", &env.images.busybox),
            ("registry.k8s.io/pause:", &env.images.pause),
        ] {
            ensure!(image.starts_with(prefix), "{image} is not a {prefix}... name");
            let image_ref = env.client.pull_image(image, None, None).await?;
            ensure!(image_ref.starts_with("sha256:"), "{image} pulled as {image_ref:?}");
        }
        Ok(())
    })
}

fn list_images_and_image_status_show_a_pulled_image(env: &Env) -> anyhow::Result<()> {
    env.rt.block_on(async {
        let busybox = &env.images.busybox;
        let image_ref = env.client.pull_image(busybox, None, None).await?;

        let images = env.client.list_images(None).await?;
        let listed = images.iter().find(|i| i.id == image_ref).context("not listed")?;
        ensure!(listed.repo_tags.contains(busybox), "{listed:?}");

        let status = env.client.image_status(busybox, false).await?;
        let image = status.image.context("no image in ImageStatus")?;
        ensure!(image.id == image_ref, "{image:?}");
        ensure!(image.size > 0, "{image:?}");
        Ok(())
    })
}

fn image_status_of_an_unknown_image_is_none(env: &Env) -> anyhow::Result<()> {
    env.rt.block_on(async {
        let status = env
            .client
            .image_status("docker.io/library/no-such-image:0", false)
            .await?;
        ensure!(status.image.is_none(), "{status:?}");
        Ok(())
    })
}

/// Uses the non-root image, which no other test runs, so removing it races with nothing.
fn remove_image_removes_it_and_removing_again_is_fine(env: &Env) -> anyhow::Result<()> {
    env.rt.block_on(async {
        let nonroot = &env.images.nonroot;
        let image_ref = env.client.pull_image(nonroot, None, None).await?;
        ensure!(env.client.image_status(nonroot, false).await?.image.is_some());

        env.client.remove_image(nonroot).await?;
        ensure!(
            env.client.image_status(nonroot, false).await?.image.is_none(),
            "still there"
        );
        let images = env.client.list_images(None).await?;
        ensure!(!images.iter().any(|i| i.id == image_ref), "still listed");

        env.client.remove_image(nonroot).await.context("removing it again")?;
        Ok(())
    })
}

fn run_pod_sandbox_gives_the_pod_an_ip_in_the_pod_cidr(env: &Env) -> anyhow::Result<()> {
    env.rt.block_on(async {
        let (pod_id, _) = env.run_pod("run_pod_sandbox_ip").await?;
        let status = env
            .client
            .pod_sandbox_status(&pod_id, false)
            .await?
            .status
            .context("no status")?;
        ensure!(status.state == PodSandboxState::SandboxReady as i32, "{status:?}");
        let ip = status.network.context("no network status")?.ip;
        ensure!(
            in_cidr(&ip, env.containerd.pod_cidr())?,
            "{ip} is not in {}",
            env.containerd.pod_cidr()
        );
        env.remove_pod(&pod_id).await;
        Ok(())
    })
}

fn a_started_container_logs_stdout_and_stderr_in_the_cri_format(env: &Env) -> anyhow::Result<()> {
    env.rt.block_on(async {
        let (pod_id, pod) = env.run_pod("container_logs").await?;
        let script = "echo out; echo err >&2; sleep 3600";
        let id = env.run_container(&pod_id, &pod, "logger", script).await?;

        let log_path = PathBuf::from(&pod.log_directory).join("logger/0.log");
        let status = env
            .client
            .container_status(&id, false)
            .await?
            .status
            .context("no status")?;
        ensure!(
            std::path::Path::new(&status.log_path) == log_path,
            "log path {:?}",
            status.log_path
        );

        let log = eventually("two log lines", Duration::from_secs(10), || async {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            Ok((log.lines().count() >= 2).then_some(log))
        })
        .await?;
        let mut lines = log
            .lines()
            .map(|line| parse_log_line(line).map(|l| (l.stream, l.tag, l.text)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        lines.sort();
        ensure!(lines == [("stderr", "F", "err"), ("stdout", "F", "out")], "{log}");
        env.remove_pod(&pod_id).await;
        Ok(())
    })
}

fn exec_sync_returns_stdout_stderr_and_a_non_zero_exit_code(env: &Env) -> anyhow::Result<()> {
    env.rt.block_on(async {
        let (pod_id, pod) = env.run_pod("exec_sync").await?;
        let id = env.run_container(&pod_id, &pod, "sleeper", "sleep 3600").await?;
        let cmd = ["sh", "-c", "echo out; echo err >&2; exit 3"];
        let out = env.client.exec_sync(&id, cmd, Duration::from_secs(10)).await?;
        ensure!(
            out.stdout == b"out\n",
            "stdout {:?}",
            String::from_utf8_lossy(&out.stdout)
        );
        ensure!(
            out.stderr == b"err\n",
            "stderr {:?}",
            String::from_utf8_lossy(&out.stderr)
        );
        ensure!(out.exit_code == 3, "exit code {}", out.exit_code);
        env.remove_pod(&pod_id).await;
        Ok(())
    })
}

/// containerd kills the command when the timeout passes and answers DeadlineExceeded
/// (`failed to exec in container: timeout 1s exceeded: context deadline exceeded`), not
/// an exit code.
fn exec_sync_past_its_timeout_is_deadline_exceeded(env: &Env) -> anyhow::Result<()> {
    env.rt.block_on(async {
        let (pod_id, pod) = env.run_pod("exec_sync_timeout").await?;
        let id = env.run_container(&pod_id, &pod, "sleeper", "sleep 3600").await?;
        let started = Instant::now();
        let result = env.client.exec_sync(&id, ["sleep", "10"], Duration::from_secs(1)).await;
        let elapsed = started.elapsed();
        match result {
            Err(Error::DeadlineExceeded(message)) => {
                ensure!(message.contains("timeout 1s exceeded"), "{message}")
            }
            other => bail!("want DeadlineExceeded, got {other:?}"),
        }
        ensure!(
            elapsed >= Duration::from_secs(1) && elapsed < Duration::from_secs(9),
            "took {elapsed:?}"
        );
        env.remove_pod(&pod_id).await;
        Ok(())
    })
}

fn container_status_reports_running_then_exited_with_the_exit_code(env: &Env) -> anyhow::Result<()> {
    env.rt.block_on(async {
        let (pod_id, pod) = env.run_pod("container_status").await?;
        let id = env.run_container(&pod_id, &pod, "exits", "sleep 3; exit 7").await?;

        let status = env
            .client
            .container_status(&id, false)
            .await?
            .status
            .context("no status")?;
        ensure!(status.state == ContainerState::ContainerRunning as i32, "{status:?}");
        ensure!(status.started_at > 0, "{status:?}");

        let status = eventually("the container exits", Duration::from_secs(15), || async {
            let status = env
                .client
                .container_status(&id, false)
                .await?
                .status
                .context("no status")?;
            Ok((status.state == ContainerState::ContainerExited as i32).then_some(status))
        })
        .await?;
        ensure!(status.exit_code == 7, "{status:?}");
        ensure!(status.finished_at >= status.started_at, "{status:?}");
        env.remove_pod(&pod_id).await;
        Ok(())
    })
}

fn list_containers_filters_by_id_state_label_and_pod(env: &Env) -> anyhow::Result<()> {
    env.rt.block_on(async {
        let (pod_id, pod) = env.run_pod("list_containers").await?;
        let running = env.run_container(&pod_id, &pod, "running", "sleep 3600").await?;
        let config = busybox_container(&env.busybox().await?, "created", "sleep 3600", &pod)?;
        let created = env.client.create_container(&pod_id, config, pod.clone()).await?;

        let ids = |filter: ContainerFilter| async move {
            let list = env.client.list_containers(Some(filter)).await?;
            Ok::<_, anyhow::Error>(list.into_iter().map(|c| c.id).collect::<BTreeSet<_>>())
        };
        let set = |ids: &[&String]| ids.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        let state = |state: ContainerState| Some(ContainerStateValue { state: state as i32 });
        let mut selector = pod.labels.clone();
        selector.insert("container".to_owned(), "created".to_owned());

        let cases = [
            (
                "by id",
                ContainerFilter {
                    id: running.clone(),
                    ..Default::default()
                },
                set(&[&running]),
            ),
            (
                "by pod",
                ContainerFilter {
                    pod_sandbox_id: pod_id.clone(),
                    ..Default::default()
                },
                set(&[&running, &created]),
            ),
            (
                "by pod and state running",
                ContainerFilter {
                    pod_sandbox_id: pod_id.clone(),
                    state: state(ContainerState::ContainerRunning),
                    ..Default::default()
                },
                set(&[&running]),
            ),
            (
                "by pod and state created",
                ContainerFilter {
                    pod_sandbox_id: pod_id.clone(),
                    state: state(ContainerState::ContainerCreated),
                    ..Default::default()
                },
                set(&[&created]),
            ),
            (
                "by label selector",
                ContainerFilter {
                    label_selector: selector,
                    ..Default::default()
                },
                set(&[&created]),
            ),
            (
                "by the pod's label",
                ContainerFilter {
                    label_selector: pod.labels.clone(),
                    ..Default::default()
                },
                set(&[&running, &created]),
            ),
        ];
        for (desc, filter, want) in cases {
            let got = ids(filter).await?;
            ensure!(got == want, "{desc}: got {got:?}, want {want:?}");
        }

        let running_anywhere = env
            .client
            .list_containers(Some(ContainerFilter {
                state: state(ContainerState::ContainerRunning),
                ..Default::default()
            }))
            .await?;
        ensure!(
            running_anywhere.iter().any(|c| c.id == running),
            "by state alone: ours is missing"
        );
        ensure!(
            running_anywhere
                .iter()
                .all(|c| c.state == ContainerState::ContainerRunning as i32),
            "by state alone: {running_anywhere:?}"
        );
        env.remove_pod(&pod_id).await;
        Ok(())
    })
}

fn stop_container_exits_it_and_remove_container_forgets_it(env: &Env) -> anyhow::Result<()> {
    env.rt.block_on(async {
        let (pod_id, pod) = env.run_pod("stop_remove_container").await?;
        let id = env.run_container(&pod_id, &pod, "stopped", "sleep 3600").await?;

        env.client.stop_container(&id, Duration::from_secs(1)).await?;
        let status = env
            .client
            .container_status(&id, false)
            .await?
            .status
            .context("no status")?;
        ensure!(status.state == ContainerState::ContainerExited as i32, "{status:?}");
        env.client
            .stop_container(&id, Duration::from_secs(1))
            .await
            .context("stopping it again")?;

        env.client.remove_container(&id).await?;
        let err = env.client.container_status(&id, false).await.expect_err("removed");
        ensure!(err.is_not_found(), "{err:?}");
        env.client.remove_container(&id).await.context("removing it again")?;
        env.remove_pod(&pod_id).await;
        Ok(())
    })
}

fn stop_pod_sandbox_makes_it_not_ready_and_remove_pod_sandbox_forgets_it(env: &Env) -> anyhow::Result<()> {
    env.rt.block_on(async {
        let (pod_id, pod) = env.run_pod("stop_remove_pod").await?;
        env.run_container(&pod_id, &pod, "inside", "sleep 3600").await?;

        env.client.stop_pod_sandbox(&pod_id).await?;
        let status = env
            .client
            .pod_sandbox_status(&pod_id, false)
            .await?
            .status
            .context("no status")?;
        ensure!(status.state == PodSandboxState::SandboxNotready as i32, "{status:?}");
        env.client
            .stop_pod_sandbox(&pod_id)
            .await
            .context("stopping it again")?;

        env.client.remove_pod_sandbox(&pod_id).await?;
        match env.client.pod_sandbox_status(&pod_id, false).await {
            Err(Error::NotFound(_)) => {}
            other => bail!("want NotFound after removal, got {other:?}"),
        }
        let filter = ContainerFilter {
            pod_sandbox_id: pod_id.clone(),
            ..Default::default()
        };
        let left = env.client.list_containers(Some(filter)).await?;
        ensure!(left.is_empty(), "containers left: {left:?}");
        env.client
            .remove_pod_sandbox(&pod_id)
            .await
            .context("removing it again")?;
        Ok(())
    })
}

fn unknown_ids_are_not_found(env: &Env) -> anyhow::Result<()> {
    env.rt.block_on(async {
        let unknown = "0123456789abcdef-no-such-id";
        let results = [
            (
                "ContainerStatus",
                env.client.container_status(unknown, false).await.map(drop),
            ),
            ("StartContainer", env.client.start_container(unknown).await),
            (
                "ExecSync",
                env.client
                    .exec_sync(unknown, ["true"], Duration::from_secs(5))
                    .await
                    .map(drop),
            ),
            (
                "PodSandboxStatus",
                env.client.pod_sandbox_status(unknown, false).await.map(drop),
            ),
        ];
        for (rpc, result) in results {
            match result {
                Err(Error::NotFound(message)) => ensure!(!message.is_empty(), "{rpc}: no message"),
                other => bail!("{rpc}: want NotFound, got {other:?}"),
            }
        }
        Ok(())
    })
}

fn container_stats_report_a_running_container_s_memory(env: &Env) -> anyhow::Result<()> {
    env.rt.block_on(async {
        let (pod_id, pod) = env.run_pod("container_stats").await?;
        let id = env.run_container(&pod_id, &pod, "measured", "sleep 3600").await?;
        let stats = env.client.container_stats(&id).await?.context("no stats")?;
        let attributes = stats.attributes.context("no attributes")?;
        ensure!(attributes.id == id, "{attributes:?}");
        let memory = stats.memory.context("no memory stats")?;
        let working_set = memory.working_set_bytes.context("no working set")?.value;
        ensure!(working_set > 0, "{memory:?}");

        let listed = env.client.list_container_stats(None).await?;
        ensure!(
            listed.iter().any(|s| s.attributes.as_ref().is_some_and(|a| a.id == id)),
            "not listed"
        );
        env.remove_pod(&pod_id).await;
        Ok(())
    })
}

/// The usage figures are not checked: containerd samples them periodically and reports 0
/// until its first sample.
fn image_fs_info_reports_the_image_filesystem(env: &Env) -> anyhow::Result<()> {
    env.rt.block_on(async {
        env.busybox().await?;
        let info = env.client.image_fs_info().await?;
        let fs = info.image_filesystems.first().context("no image filesystem")?;
        let mountpoint = &fs.fs_id.as_ref().context("no fs id")?.mountpoint;
        ensure!(
            mountpoint.starts_with(&env.containerd.root_dir().display().to_string()),
            "{mountpoint} is not under containerd's root"
        );
        Ok(())
    })
}

/// Exec, Attach and PortForward only hand out URLs of containerd's streaming server.
fn exec_attach_and_port_forward_return_streaming_urls(env: &Env) -> anyhow::Result<()> {
    env.rt.block_on(async {
        let (pod_id, pod) = env.run_pod("streaming_urls").await?;
        let id = env.run_container(&pod_id, &pod, "target", "sleep 3600").await?;
        let exec = ExecRequest {
            container_id: id.clone(),
            cmd: vec!["sh".to_owned()],
            stdout: true,
            ..Default::default()
        };
        let attach = AttachRequest {
            container_id: id.clone(),
            stdout: true,
            ..Default::default()
        };
        let urls = [
            ("Exec", env.client.exec(exec).await?),
            ("Attach", env.client.attach(attach).await?),
            ("PortForward", env.client.port_forward(&pod_id, &[80]).await?),
        ];
        for (rpc, url) in urls {
            ensure!(
                url.starts_with("http://") && url.len() > "http://".len(),
                "{rpc}: {url:?}"
            );
        }
        env.remove_pod(&pod_id).await;
        Ok(())
    })
}

/// What the kubelet does to rotate a log: rename the file, then ReopenContainerLog.
fn reopen_container_log_starts_a_new_file_after_rotation(env: &Env) -> anyhow::Result<()> {
    env.rt.block_on(async {
        let (pod_id, pod) = env.run_pod("reopen_log").await?;
        let script = "while true; do echo tick; sleep 0.1; done";
        let id = env.run_container(&pod_id, &pod, "ticker", script).await?;
        let log = PathBuf::from(&pod.log_directory).join("ticker/0.log");
        let rotated = log.with_extension("log.1");
        eventually("a first line", Duration::from_secs(10), || async {
            Ok((std::fs::metadata(&log).map_or(0, |m| m.len()) > 0).then_some(()))
        })
        .await?;

        std::fs::rename(&log, &rotated)?;
        env.client.reopen_container_log(&id).await?;
        let text = eventually("a line in the new file", Duration::from_secs(10), || async {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            Ok(text.contains('\n').then_some(text))
        })
        .await?;
        let first = parse_log_line(text.lines().next().unwrap_or_default())?;
        ensure!((first.stream, first.text) == ("stdout", "tick"), "{text}");
        env.remove_pod(&pod_id).await;
        Ok(())
    })
}

fn get_container_events_is_unimplemented_by_containerd_1_6(env: &Env) -> anyhow::Result<()> {
    env.rt.block_on(async {
        match env.client.get_container_events().await {
            Err(err) if err.is_unimplemented() => Ok(()),
            Err(err) => bail!("want Unimplemented, got {err:?}"),
            Ok(_) => bail!("containerd 1.6 streams events now? update this test"),
        }
    })
}

/// Restarts a containerd of its own (restarting the shared one would break the tests
/// running beside this one). Two clients: one idle during the restart, whose first call
/// afterwards must succeed, and one calling all along, whose failures must all be
/// Unavailable.
fn the_client_keeps_working_across_a_containerd_restart(env: &Env) -> anyhow::Result<()> {
    let options = ContainerdOptions::with_network(RESTART_BRIDGE, RESTART_SUBNET);
    let mut containerd = Containerd::start_with(&env.registry, &env.images, options)?;
    let (idle, busy, pod_id) = env.rt.block_on(async {
        let idle = Client::connect(&containerd.endpoint()).await?;
        let busy = Client::connect(&containerd.endpoint()).await?;
        let pod = pod_config(containerd.log_dir(), "restart")?;
        let pod_id = idle.run_pod_sandbox(pod, "").await?;
        anyhow::Ok((idle, busy, pod_id))
    })?;

    let stop = Arc::new(AtomicBool::new(false));
    let poller = env.rt.spawn({
        let stop = Arc::clone(&stop);
        async move {
            let mut failures = Vec::new();
            let mut calls = 0;
            while !stop.load(Ordering::Relaxed) {
                calls += 1;
                if let Err(err) = busy.version().await {
                    failures.push(err);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (calls, failures)
        }
    });
    let restarted = containerd.restart();
    stop.store(true, Ordering::Relaxed);
    restarted?;
    let (calls, failures) = env.rt.block_on(poller)?;

    env.rt.block_on(async {
        let version = idle
            .version()
            .await
            .context("the idle client's first call after the restart")?;
        ensure!(version.runtime_name == "containerd");
        let status = idle
            .pod_sandbox_status(&pod_id, false)
            .await?
            .status
            .context("no status")?;
        ensure!(
            status.state == PodSandboxState::SandboxReady as i32,
            "the pod survives: {status:?}"
        );
        ensure!(
            !failures.is_empty(),
            "no call failed during the restart ({calls} calls): the test saw no outage"
        );
        for err in &failures {
            ensure!(
                matches!(err, Error::Unavailable(_)),
                "a call during the restart failed with {err:?}"
            );
        }
        let kinds: BTreeSet<String> = failures.iter().map(ToString::to_string).collect();
        test_harness::note(format!(
            "restart: {} of {calls} calls failed, all Unavailable: {kinds:?}",
            failures.len()
        ));
        Ok(())
    })
}
