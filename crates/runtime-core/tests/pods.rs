//! runtime-core's RuntimeService against real runc, CNI plugins and a local registry,
//! called over its unix socket through `cri-client`, as the kubelet would.
//!
//! One registry, one runtime-core daemon (bridge `kltrc0`, `198.18.1.0/24`, log lines
//! split at 64 bytes) and one client are shared by all tests, which run in parallel: each
//! makes its own pods (named after the test) and removes them. The tests that kill or
//! restart the daemon live in `pods_restart.rs`, with a daemon of their own. Needs root,
//! runc, the CNI plugins, docker-registry and busybox-static (skipped without them,
//! failed with `CI=true`).

mod common;

use std::collections::{BTreeSet, HashMap};
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use common::{Env, expect_code};
use cri_client::Code;
use cri_client::v1::{
    ContainerState, LinuxContainerConfig, LinuxContainerSecurityContext, LinuxPodSandboxConfig,
    LinuxSandboxSecurityContext, NamespaceMode, NamespaceOption, PodSandboxState, PortMapping, Protocol,
};
use futures_util::future::try_join_all;
use test_harness::cni::in_cidr;
use test_harness::pods::{self, LogLine, eventually, parse_log_line};
use test_harness::process;
use test_harness::suite::{self, Test};

/// The pod network of this binary's daemon.
const BRIDGE: &str = "kltrc0";
const SUBNET: &str = "198.18.1.0/24";

/// A container that runs until it is stopped, and ends at once (exit 0) on SIGTERM.
const TRAPS_TERM: &str = "trap \"exit 0\" TERM; echo trapping; while true; do sleep 1; done";
/// A container that runs until it is killed.
const RUNS: &str = "while true; do sleep 1; done";
/// A TCP server on port 8080 answering `hi` to every connection.
const SAYS_HI_ON_8080: &str = "nc -ll -p 8080 -e echo hi";

/// An id no runtime gave out.
const UNKNOWN_ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn main() -> ExitCode {
    suite::run(
        || Env::setup(BRIDGE, SUBNET),
        vec![
            Test::new("the_whole_pod_lifecycle", the_whole_pod_lifecycle),
            Test::new(
                "logs_are_in_the_cri_format_with_partial_lines",
                logs_are_in_the_cri_format_with_partial_lines,
            ),
            Test::new(
                "a_non_zero_exit_is_reported_as_error",
                a_non_zero_exit_is_reported_as_error,
            ),
            Test::new(
                "two_containers_in_a_pod_share_network_and_ipc",
                two_containers_in_a_pod_share_network_and_ipc,
            ),
            Test::new(
                "containers_of_a_pod_with_a_shared_pid_namespace_see_each_other",
                containers_of_a_pod_with_a_shared_pid_namespace_see_each_other,
            ),
            Test::new(
                "a_host_port_is_reachable_from_the_node",
                a_host_port_is_reachable_from_the_node,
            ),
            Test::new(
                "exec_sync_returns_output_and_exit_code",
                exec_sync_returns_output_and_exit_code,
            ),
            Test::new(
                "exec_sync_past_its_timeout_is_deadline_exceeded_and_leaves_no_process",
                exec_sync_past_its_timeout_is_deadline_exceeded_and_leaves_no_process,
            ),
            Test::new("stop_and_remove_are_idempotent", stop_and_remove_are_idempotent),
            Test::new("unknown_ids_are_not_found", unknown_ids_are_not_found),
            Test::new("bad_requests_are_invalid_argument", bad_requests_are_invalid_argument),
            Test::new("reused_names_are_already_exists", reused_names_are_already_exists),
            Test::new("twenty_pods_start_concurrently", twenty_pods_start_concurrently),
            Test::new(
                "crictl_call_patterns_work_with_short_ids",
                crictl_call_patterns_work_with_short_ids,
            ),
            Test::new(
                "reopen_container_log_moves_output_to_a_new_file",
                reopen_container_log_moves_output_to_a_new_file,
            ),
            Test::new(
                "checkpoint_container_archives_a_running_container_or_says_why_criu_cannot",
                checkpoint_container_archives_a_running_container_or_says_why_criu_cannot,
            ),
        ],
    )
}

fn the_whole_pod_lifecycle(env: &Env) -> anyhow::Result<()> {
    env.block_on(async {
        let pod = env.run_pod("lifecycle").await?;
        let sandbox = env
            .client
            .pod_sandbox_status(&pod.id, false)
            .await
            .context("PodSandboxStatus")?
            .status
            .context("no sandbox status")?;
        ensure!(sandbox.state == PodSandboxState::SandboxReady as i32, "{sandbox:?}");
        let ip = sandbox.network.context("no network status")?.ip;
        ensure!(in_cidr(&ip, SUBNET)?, "pod IP {ip:?} is not in {SUBNET}");

        let mut config = env.container_config(&pod, "worker", TRAPS_TERM)?;
        config.annotations = HashMap::from([("example.com/note".to_owned(), "kept".to_owned())]);
        let id = env
            .client
            .create_container(&pod.id, config.clone(), pod.config.clone())
            .await
            .context("CreateContainer")?;
        let created = env.status(&id).await?;
        ensure!(
            created.state == ContainerState::ContainerCreated as i32,
            "after CreateContainer: {created:?}"
        );
        ensure!(created.created_at > 0 && created.started_at == 0, "{created:?}");

        env.client.start_container(&id).await.context("StartContainer")?;
        let running = env.status(&id).await?;
        ensure!(
            running.state == ContainerState::ContainerRunning as i32,
            "after StartContainer: {running:?}"
        );
        ensure!(running.id == id && running.metadata == config.metadata, "{running:?}");
        let image = running.image.as_ref().map(|image| image.image.as_str());
        ensure!(image == Some(env.images.busybox.as_str()), "image {image:?}");
        ensure!(
            running.image_ref == env.busybox_id,
            "image_ref {:?}, PullImage said {:?}",
            running.image_ref,
            env.busybox_id
        );
        ensure!(
            Path::new(&running.log_path) == pods::container_log(&pod.config, "worker"),
            "log_path {:?}",
            running.log_path
        );
        for (kind, wanted, got) in [
            ("label", &config.labels, &running.labels),
            ("annotation", &config.annotations, &running.annotations),
        ] {
            for (key, value) in wanted {
                ensure!(got.get(key) == Some(value), "{kind} {key}={value} missing: {got:?}");
            }
        }
        ensure!(running.started_at >= running.created_at, "{running:?}");

        // StopContainer before the shell installed its trap would end it by SIGTERM (143).
        let log = pods::container_log(&pod.config, "worker");
        pods::eventually("the TERM trap", Duration::from_secs(10), || {
            let trapping = std::fs::read_to_string(&log).unwrap_or_default().contains("trapping");
            async move { Ok(trapping.then_some(())) }
        })
        .await?;
        let stopping = Instant::now();
        env.client
            .stop_container(&id, Duration::from_secs(5))
            .await
            .context("StopContainer")?;
        let took = stopping.elapsed();
        ensure!(
            took < Duration::from_secs(5),
            "the TERM trap ends the container at once, but StopContainer took {took:?}"
        );
        let exited = env.status(&id).await?;
        ensure!(
            exited.state == ContainerState::ContainerExited as i32 && exited.exit_code == 0,
            "after StopContainer: {exited:?}"
        );
        ensure!(exited.reason == "Completed", "reason {:?}", exited.reason);
        ensure!(exited.finished_at >= exited.started_at, "{exited:?}");

        env.client.remove_container(&id).await.context("RemoveContainer")?;
        expect_code(
            env.client.container_status(&id, false).await,
            Code::NotFound,
            "ContainerStatus after RemoveContainer",
        )?;

        env.client.stop_pod_sandbox(&pod.id).await.context("StopPodSandbox")?;
        let stopped = env
            .client
            .pod_sandbox_status(&pod.id, false)
            .await
            .context("PodSandboxStatus after StopPodSandbox")?
            .status
            .context("no sandbox status")?;
        ensure!(
            stopped.state == PodSandboxState::SandboxNotready as i32,
            "after StopPodSandbox: {stopped:?}"
        );
        env.client
            .remove_pod_sandbox(&pod.id)
            .await
            .context("RemovePodSandbox")?;
        expect_code(
            env.client.pod_sandbox_status(&pod.id, false).await,
            Code::NotFound,
            "PodSandboxStatus after RemovePodSandbox",
        )
    })
}

fn logs_are_in_the_cri_format_with_partial_lines(env: &Env) -> anyhow::Result<()> {
    // Letters in a cycle, so that pieces reassembled in the wrong order show.
    let long: String = (b'a'..=b'z').cycle().take(200).map(char::from).collect();
    let script = format!("echo out; echo err >&2; echo {long}");
    let pieces = long.len().div_ceil(common::LOG_MAX_LINE);
    env.block_on(async {
        let pod = env.run_pod("logs").await?;
        let id = env.start_script(&pod, "logger", &script).await?;
        env.exited(&id).await?;
        let path = pods::container_log(&pod.config, "logger");
        let log = eventually("every record in the log", Duration::from_secs(5), || async {
            let log = std::fs::read_to_string(&path).unwrap_or_default();
            Ok((log.lines().count() >= 2 + pieces).then_some(log))
        })
        .await?;
        let records = log.lines().map(parse_log_line).collect::<anyhow::Result<Vec<_>>>()?;
        let of =
            |stream: &str| -> Vec<LogLine<'_>> { records.iter().filter(|r| r.stream == stream).copied().collect() };
        let stderr: Vec<(&str, &str)> = of("stderr").iter().map(|r| (r.tag, r.text)).collect();
        ensure!(stderr == [("F", "err")], "{log}");
        let stdout = of("stdout");
        let (first, long_records) = stdout.split_first().context("no stdout records")?;
        ensure!((first.tag, first.text) == ("F", "out"), "{log}");
        let (last, partial) = long_records.split_last().context("no record of the long line")?;
        ensure!(
            last.tag == "F" && partial.iter().all(|r| r.tag == "P"),
            "want P records then one F: {log}"
        );
        ensure!(
            long_records.iter().all(|r| r.text.len() <= common::LOG_MAX_LINE),
            "a record exceeds {} bytes: {log}",
            common::LOG_MAX_LINE
        );
        let reassembled: String = long_records.iter().map(|r| r.text).collect();
        ensure!(reassembled == long, "reassembled {reassembled:?}");
        env.remove(&pod).await
    })
}

fn a_non_zero_exit_is_reported_as_error(env: &Env) -> anyhow::Result<()> {
    env.block_on(async {
        let pod = env.run_pod("exit-3").await?;
        let id = env.start_script(&pod, "failing", "exit 3").await?;
        let status = env.exited(&id).await?;
        ensure!(status.exit_code == 3, "exit code {}: {status:?}", status.exit_code);
        ensure!(status.reason == "Error", "reason {:?}", status.reason);
        ensure!(
            status.finished_at >= status.started_at && status.started_at > 0,
            "times out of order: {status:?}"
        );
        env.remove(&pod).await
    })
}

/// The namespaces the kubelet asks for: the pod's network and IPC, a PID namespace per
/// container (no `shareProcessNamespace`).
fn kubelet_namespaces() -> Option<NamespaceOption> {
    Some(NamespaceOption {
        network: NamespaceMode::Pod as i32,
        pid: NamespaceMode::Container as i32,
        ipc: NamespaceMode::Pod as i32,
        ..NamespaceOption::default()
    })
}

fn two_containers_in_a_pod_share_network_and_ipc(env: &Env) -> anyhow::Result<()> {
    env.block_on(async {
        let mut config = env.pod_config("shared-namespaces")?;
        config.linux = Some(LinuxPodSandboxConfig {
            security_context: Some(LinuxSandboxSecurityContext {
                namespace_options: kubelet_namespaces(),
                ..LinuxSandboxSecurityContext::default()
            }),
            ..LinuxPodSandboxConfig::default()
        });
        let pod = env.run_pod_with(config).await?;
        let mut ids = Vec::new();
        for (name, script) in [("server", SAYS_HI_ON_8080), ("client", RUNS)] {
            let mut container = env.container_config(&pod, name, script)?;
            container.linux = Some(LinuxContainerConfig {
                security_context: Some(LinuxContainerSecurityContext {
                    namespace_options: kubelet_namespaces(),
                    ..LinuxContainerSecurityContext::default()
                }),
                ..LinuxContainerConfig::default()
            });
            ids.push(env.start(&pod, container).await?);
        }
        let (server, client) = (&ids[0], &ids[1]);

        let reply = eventually(
            "an answer from the server over loopback",
            Duration::from_secs(10),
            || async {
                let (_, out) = env.exec(client, "nc 127.0.0.1 8080 </dev/null").await?;
                Ok((out == "hi\n").then_some(out))
            },
        )
        .await;
        reply.context("the client container cannot reach the server at 127.0.0.1:8080")?;

        let script = "for ns in net ipc pid; do readlink /proc/self/ns/$ns; done";
        let namespaces_of = |id: &str| {
            let id = id.to_owned();
            async move {
                let (code, out) = env.exec(&id, script).await?;
                ensure!(code == 0, "{script}: exit {code}");
                let lines: Vec<String> = out.lines().map(str::to_owned).collect();
                ensure!(lines.len() == 3, "{script}: {out:?}");
                anyhow::Ok(lines)
            }
        };
        let (a, b) = (namespaces_of(server).await?, namespaces_of(client).await?);
        ensure!(a[0] == b[0], "network namespaces differ: {a:?} / {b:?}");
        ensure!(a[1] == b[1], "IPC namespaces differ: {a:?} / {b:?}");
        ensure!(a[2] != b[2], "the PID namespace is shared: {a:?} / {b:?}");
        let host_net = std::fs::read_link("/proc/self/ns/net")?;
        ensure!(
            Path::new(&a[0]) != host_net,
            "the pod runs in the host's network namespace"
        );
        env.remove(&pod).await
    })
}

/// The namespaces the kubelet asks for with `shareProcessNamespace: true`.
fn shared_pid_namespaces() -> Option<NamespaceOption> {
    Some(NamespaceOption {
        pid: NamespaceMode::Pod as i32,
        ..kubelet_namespaces().unwrap_or_default()
    })
}

fn containers_of_a_pod_with_a_shared_pid_namespace_see_each_other(env: &Env) -> anyhow::Result<()> {
    env.block_on(async {
        let mut config = env.pod_config("shared-pid")?;
        config.linux = Some(LinuxPodSandboxConfig {
            security_context: Some(LinuxSandboxSecurityContext {
                namespace_options: shared_pid_namespaces(),
                ..LinuxSandboxSecurityContext::default()
            }),
            ..LinuxPodSandboxConfig::default()
        });
        let pod = env.run_pod_with(config).await?;
        // The pause mode's command line (`unshare ... -- <monitor> --pause <sandbox dir>`
        // also names the sandbox).
        let holders = || -> Vec<u32> {
            process::pids_with_cmdline_containing(&pod.id)
                .into_iter()
                .filter(|&pid| process::cmdline(pid).split(' ').nth(1) == Some("--pause"))
                .collect()
        };
        let holder = holders();
        ensure!(holder.len() == 1, "want one PID namespace holder, found {holder:?}");

        let mut ids = Vec::new();
        for (name, script) in [("first", "sleep 1001"), ("second", "sleep 1002"), ("failing", "exit 4")] {
            let mut container = env.container_config(&pod, name, script)?;
            container.linux = Some(LinuxContainerConfig {
                security_context: Some(LinuxContainerSecurityContext {
                    namespace_options: shared_pid_namespaces(),
                    ..LinuxContainerSecurityContext::default()
                }),
                ..LinuxContainerConfig::default()
            });
            ids.push(env.start(&pod, container).await?);
        }
        let (first, second, failing) = (&ids[0], &ids[1], &ids[2]);

        // The container's monitor, outside the namespace, still learns how its init ended.
        let status = env.exited(failing).await?;
        ensure!(status.exit_code == 4, "exit code {}: {status:?}", status.exit_code);

        let (code, out) = env.exec(first, "ps").await?;
        ensure!(code == 0, "ps: exit {code}");
        ensure!(
            out.contains("sleep 1002"),
            "ps in the first container does not show the second:\n{out}"
        );
        let (code, out) = env.exec(second, "ps").await?;
        ensure!(code == 0, "ps: exit {code}");
        ensure!(
            out.contains("sleep 1001"),
            "ps in the second container does not show the first:\n{out}"
        );

        let script = "readlink /proc/self/ns/pid";
        let (_, a) = env.exec(first, script).await?;
        let (_, b) = env.exec(second, script).await?;
        ensure!(!a.trim().is_empty() && a == b, "PID namespaces differ: {a:?} / {b:?}");
        let host = std::fs::read_link("/proc/self/ns/pid")?;
        ensure!(Path::new(a.trim()) != host, "the pod runs in the host's PID namespace");

        env.remove(&pod).await?;
        let left = holders();
        ensure!(left.is_empty(), "the PID namespace holder outlived its pod: {left:?}");
        ensure!(!process::is_alive(holder[0]), "the holder {} is still alive", holder[0]);
        Ok(())
    })
}

fn a_host_port_is_reachable_from_the_node(env: &Env) -> anyhow::Result<()> {
    const HOST_PORT: u16 = 18080;
    let free = TcpListener::bind((Ipv4Addr::LOCALHOST, HOST_PORT));
    ensure!(
        free.is_ok(),
        "port {HOST_PORT} is in use on this machine: the test would be ambiguous"
    );
    drop(free);
    env.block_on(async {
        let mut config = env.pod_config("host-port")?;
        config.port_mappings = vec![PortMapping {
            protocol: Protocol::Tcp as i32,
            container_port: 8080,
            host_port: HOST_PORT.into(),
            host_ip: String::new(),
        }];
        let pod = env.run_pod_with(config).await?;
        env.start_script(&pod, "server", SAYS_HI_ON_8080).await?;
        let reply = eventually("an answer on 127.0.0.1:18080", Duration::from_secs(10), || async {
            let reply = read_reply(SocketAddr::from((Ipv4Addr::LOCALHOST, HOST_PORT)));
            Ok(reply.ok().filter(|reply| reply == "hi\n"))
        })
        .await;
        reply.context("nothing answers on the host port")?;
        env.remove(&pod).await
    })
}

/// Connects, reads until the server closes, returns what it sent.
fn read_reply(address: SocketAddr) -> std::io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply)?;
    Ok(reply)
}

fn exec_sync_returns_output_and_exit_code(env: &Env) -> anyhow::Result<()> {
    env.block_on(async {
        let pod = env.run_pod("exec-sync").await?;
        let id = env.start_script(&pod, "target", RUNS).await?;
        let response = env
            .client
            .exec_sync(
                &id,
                ["sh", "-c", "echo out; echo err >&2; exit 5"],
                Duration::from_secs(10),
            )
            .await
            .context("ExecSync")?;
        ensure!(response.exit_code == 5, "{response:?}");
        ensure!(response.stdout == b"out\n", "{response:?}");
        ensure!(response.stderr == b"err\n", "{response:?}");
        let (code, out) = env.exec(&id, "echo fine").await?;
        ensure!((code, out.as_str()) == (0, "fine\n"), "exit {code}, stdout {out:?}");
        env.remove(&pod).await
    })
}

fn exec_sync_past_its_timeout_is_deadline_exceeded_and_leaves_no_process(env: &Env) -> anyhow::Result<()> {
    env.block_on(async {
        let pod = env.run_pod("exec-timeout").await?;
        let id = env.start_script(&pod, "target", RUNS).await?;
        let began = Instant::now();
        let result = env.client.exec_sync(&id, ["sleep", "37"], Duration::from_secs(1)).await;
        let took = began.elapsed();
        expect_code(result, Code::DeadlineExceeded, "ExecSync sleep 37 with timeout 1 s")?;
        ensure!(took < Duration::from_secs(10), "ExecSync answered after {took:?}");
        eventually("sleep 37 to be gone", Duration::from_secs(5), || async {
            Ok(process::pids_with_cmdline_containing("sleep 37")
                .is_empty()
                .then_some(()))
        })
        .await
        .with_context(|| format!("left: {:?}", process::pids_with_cmdline_containing("sleep 37")))?;
        env.remove(&pod).await
    })
}

fn stop_and_remove_are_idempotent(env: &Env) -> anyhow::Result<()> {
    env.block_on(async {
        let pod = env.run_pod("idempotent").await?;
        let id = env.start_script(&pod, "target", RUNS).await?;
        let c = &env.client;
        for (call, id) in [("", id.as_str()), (" of an unknown id", UNKNOWN_ID)] {
            for round in ["", " again"] {
                c.stop_container(id, Duration::from_secs(1))
                    .await
                    .with_context(|| format!("StopContainer{call}{round}"))?;
            }
            for round in ["", " again"] {
                c.remove_container(id)
                    .await
                    .with_context(|| format!("RemoveContainer{call}{round}"))?;
            }
        }
        for (call, id) in [("", pod.id.as_str()), (" of an unknown id", UNKNOWN_ID)] {
            for round in ["", " again"] {
                c.stop_pod_sandbox(id)
                    .await
                    .with_context(|| format!("StopPodSandbox{call}{round}"))?;
            }
            for round in ["", " again"] {
                c.remove_pod_sandbox(id)
                    .await
                    .with_context(|| format!("RemovePodSandbox{call}{round}"))?;
            }
        }
        Ok(())
    })
}

fn unknown_ids_are_not_found(env: &Env) -> anyhow::Result<()> {
    env.block_on(async {
        let c = &env.client;
        let not_found = Code::NotFound;
        expect_code(
            c.container_status(UNKNOWN_ID, false).await,
            not_found,
            "ContainerStatus",
        )?;
        expect_code(c.start_container(UNKNOWN_ID).await, not_found, "StartContainer")?;
        let exec = c.exec_sync(UNKNOWN_ID, ["true"], Duration::from_secs(5)).await;
        expect_code(exec, not_found, "ExecSync")?;
        expect_code(
            c.pod_sandbox_status(UNKNOWN_ID, false).await,
            not_found,
            "PodSandboxStatus",
        )?;
        expect_code(
            c.reopen_container_log(UNKNOWN_ID).await,
            not_found,
            "ReopenContainerLog",
        )
    })
}

fn bad_requests_are_invalid_argument(env: &Env) -> anyhow::Result<()> {
    env.block_on(async {
        let mut nameless = env.pod_config("no-metadata")?;
        nameless.metadata = None;
        let run = env.client.run_pod_sandbox(nameless, "").await;
        expect_code(run, Code::InvalidArgument, "RunPodSandbox without metadata")?;

        let pod = env.run_pod("no-image").await?;
        let mut imageless = env.container_config(&pod, "imageless", RUNS)?;
        imageless.image = None;
        let create = env
            .client
            .create_container(&pod.id, imageless, pod.config.clone())
            .await;
        expect_code(create, Code::InvalidArgument, "CreateContainer without image")?;
        env.remove(&pod).await
    })
}

fn reused_names_are_already_exists(env: &Env) -> anyhow::Result<()> {
    env.block_on(async {
        let pod = env.run_pod("reused-names").await?;
        let again = env.client.run_pod_sandbox(pod.config.clone(), "").await;
        expect_code(again, Code::AlreadyExists, "RunPodSandbox with the same metadata")?;

        let config = env.container_config(&pod, "twin", RUNS)?;
        env.client
            .create_container(&pod.id, config.clone(), pod.config.clone())
            .await
            .context("CreateContainer")?;
        let twin = env.client.create_container(&pod.id, config, pod.config.clone()).await;
        expect_code(twin, Code::AlreadyExists, "CreateContainer with the same name")?;
        env.remove(&pod).await
    })
}

/// The length of the ids crictl prints and users paste back.
const CRICTL_SHORT_ID: usize = 13;

/// What crictl does for `runp`, `create`, `start`, `pods`, `ps`, `inspect`, `logs`,
/// `exec -s`, `stop`, `rm`, `stopp` and `rmp`, with the truncated ids it prints.
fn crictl_call_patterns_work_with_short_ids(env: &Env) -> anyhow::Result<()> {
    let short = |id: &str| id[..CRICTL_SHORT_ID].to_string();
    env.block_on(async {
        // runp
        let pod = env.run_pod("crictl").await?;
        let pod_short = short(&pod.id);
        // create: crictl asks ImageStatus first and pulls only a missing image.
        let present = env.client.image_status(env.images.busybox.as_str(), false).await?.image;
        ensure!(present.is_some(), "the image is present, no pull needed");
        let config = env.container_config(&pod, "crictl", "echo from-crictl; while true; do sleep 1; done")?;
        let id = env
            .client
            .create_container(&pod_short, config, pod.config.clone())
            .await
            .context("create")?;
        let id_short = short(&id);
        // start
        env.client.start_container(&id_short).await.context("start")?;
        // pods, ps (running only, then by pod)
        let filter = cri_client::v1::PodSandboxFilter {
            id: pod_short.clone(),
            ..Default::default()
        };
        let pods = env.client.list_pod_sandbox(Some(filter)).await?;
        ensure!(pods.len() == 1 && pods[0].id == pod.id, "{pods:?}");
        let running = cri_client::v1::ContainerFilter {
            state: Some(cri_client::v1::ContainerStateValue {
                state: ContainerState::ContainerRunning as i32,
            }),
            pod_sandbox_id: pod_short.clone(),
            ..Default::default()
        };
        let listed = env.client.list_containers(Some(running)).await?;
        ensure!(listed.len() == 1 && listed[0].id == id, "{listed:?}");
        // inspect: verbose status with its info JSON
        let inspected = env.client.container_status(&id_short, true).await?;
        let info: serde_json::Value = serde_json::from_str(inspected.info.get("info").context("no verbose info")?)?;
        ensure!(info["pid"].as_u64().is_some_and(|pid| pid > 0), "{info}");
        // logs: crictl reads the file ContainerStatus names
        let log_path = inspected.status.context("no status")?.log_path;
        let logged = eventually("the log line", Duration::from_secs(10), || async {
            Ok(std::fs::read_to_string(&log_path)
                .ok()
                .filter(|log| log.contains("from-crictl")))
        })
        .await?;
        ensure!(logged.lines().all(|line| parse_log_line(line).is_ok()), "{logged}");
        // exec -s
        let (code, out) = env.exec(&id_short, "echo exec-ok").await?;
        ensure!(code == 0 && out.trim() == "exec-ok", "{code} {out:?}");
        // stop (crictl's default timeout is 0: kill at once), rm, stopp, rmp
        env.client
            .stop_container(&id_short, Duration::ZERO)
            .await
            .context("stop")?;
        let stopped = env.status(&id).await?;
        ensure!(stopped.state == ContainerState::ContainerExited as i32, "{stopped:?}");
        env.client.remove_container(&id_short).await.context("rm")?;
        env.client.stop_pod_sandbox(&pod_short).await.context("stopp")?;
        env.client.remove_pod_sandbox(&pod_short).await.context("rmp")?;
        let gone = env
            .client
            .pod_sandbox_status(&pod.id, false)
            .await
            .expect_err("removed");
        ensure!(gone.is_not_found(), "{gone}");
        Ok(())
    })
}

fn twenty_pods_start_concurrently(env: &Env) -> anyhow::Result<()> {
    const PODS: usize = 20;
    env.block_on(async {
        let began = Instant::now();
        let started = try_join_all((0..PODS).map(|_| async {
            let pod = env.run_pod("twenty").await?;
            let id = env.start_script(&pod, "sleeper", RUNS).await?;
            anyhow::Ok((pod, id))
        }))
        .await?;
        test_harness::note(format!("{PODS} pods running in {:.2?}", began.elapsed()));

        let mut ips = BTreeSet::new();
        for (pod, id) in &started {
            let state = env.status(id).await?.state;
            ensure!(state == ContainerState::ContainerRunning as i32, "{id}: state {state}");
            let status = env.client.pod_sandbox_status(&pod.id, false).await?.status;
            let ip = status.and_then(|s| s.network).map(|n| n.ip).unwrap_or_default();
            ensure!(in_cidr(&ip, SUBNET)?, "pod IP {ip:?} is not in {SUBNET}");
            ensure!(ips.insert(ip.clone()), "two pods have IP {ip}");
        }
        try_join_all(started.iter().map(|(pod, _)| env.remove(pod))).await?;
        Ok(())
    })
}

fn reopen_container_log_moves_output_to_a_new_file(env: &Env) -> anyhow::Result<()> {
    env.block_on(async {
        let pod = env.run_pod("reopen-log").await?;
        let id = env
            .start_script(&pod, "ticker", "while true; do echo tick; sleep 0.1; done")
            .await?;
        let log = pods::container_log(&pod.config, "ticker");
        let rotated = log.with_extension("log.1");
        let size = |path: &Path| std::fs::metadata(path).map_or(0, |m| m.len());
        eventually("a first line", Duration::from_secs(10), || async {
            Ok((size(&log) > 0).then_some(()))
        })
        .await?;

        std::fs::rename(&log, &rotated)?;
        env.client
            .reopen_container_log(&id)
            .await
            .context("ReopenContainerLog")?;
        let text = eventually("a line in the new file", Duration::from_secs(10), || async {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            Ok(text.contains('\n').then_some(text))
        })
        .await?;
        let first = text.lines().next().map(parse_log_line).transpose()?;
        ensure!(first.map(|line| line.text) == Some("tick"), "new file: {text:?}");

        let rotated_size = size(&rotated);
        tokio::time::sleep(Duration::from_millis(500)).await;
        if size(&rotated) != rotated_size {
            bail!("the rotated file still grows after ReopenContainerLog");
        }
        env.remove(&pod).await
    })
}

/// CheckpointContainer: bad requests are refused first; then, for a running container,
/// the outcome `criu check` predicts on this machine: an archive of CRIU's dump and the
/// container's config with the container still running, or FailedPrecondition giving
/// CRIU's reason and nothing written.
fn checkpoint_container_archives_a_running_container_or_says_why_criu_cannot(env: &Env) -> anyhow::Result<()> {
    test_harness::require_tools(&["criu"])?;
    let criu_works = std::process::Command::new("criu")
        .arg("check")
        .output()?
        .status
        .success();
    let dir = tempfile::tempdir()?;
    let archive = dir.path().join("checkpoint.tar");
    let location = archive.to_string_lossy().into_owned();
    let timeout = Duration::from_secs(60);
    env.block_on(async {
        let result = env
            .client
            .checkpoint_container("0123456789ab", &location, timeout)
            .await;
        expect_code(result, Code::NotFound, "CheckpointContainer of an unknown id")?;
        let pod = env.run_pod("checkpoint").await?;
        let id = env.start_script(&pod, "ticks", "while true; do sleep 1; done").await?;
        let result = env.client.checkpoint_container(&id, "relative.tar", timeout).await;
        expect_code(result, Code::InvalidArgument, "CheckpointContainer to a relative path")?;
        let quitter = env.start_script(&pod, "quitter", "exit 0").await?;
        env.exited(&quitter).await?;
        let result = env.client.checkpoint_container(&quitter, &location, timeout).await;
        expect_code(
            result,
            Code::FailedPrecondition,
            "CheckpointContainer of an exited container",
        )?;

        let result = env.client.checkpoint_container(&id, &location, timeout).await;
        if criu_works {
            result.context("CheckpointContainer where criu check passes")?;
            let mut names = BTreeSet::new();
            let mut entries = tar::Archive::new(std::fs::File::open(&archive)?);
            for entry in entries.entries()? {
                names.insert(entry?.path()?.to_string_lossy().into_owned());
            }
            ensure!(names.contains("config.json"), "no config.json in {names:?}");
            ensure!(
                names
                    .iter()
                    .any(|name| name.starts_with("checkpoint/") && name.ends_with(".img")),
                "no CRIU image in {names:?}"
            );
            let state = env.status(&id).await?.state;
            ensure!(
                state == ContainerState::ContainerRunning as i32,
                "after the checkpoint: state {state}"
            );
        } else {
            let error = result
                .err()
                .context("CheckpointContainer succeeded where criu check fails")?;
            ensure!(
                error.code() == Some(Code::FailedPrecondition),
                "want FailedPrecondition, got {error}"
            );
            ensure!(
                error.to_string().contains("CRIU cannot checkpoint"),
                "no reason given: {error}"
            );
            ensure!(!archive.exists(), "an archive was written");
            test_harness::note(format!("CheckpointContainer here: {error}"));
        }
        env.remove(&pod).await
    })
}
