//! runtime-core's Exec, Attach and PortForward against real runc containers in real pods:
//! the URLs the CRI calls return are used with `streaming::client`, which speaks SPDY and
//! WebSocket as kubectl does. ExecSync's timeout, which kills what the command started
//! as a dropped exec session does, is here too.
//!
//! One registry, one runtime-core daemon (bridge `kltstr0`, `198.18.40.0/24`) and one CRI
//! client are shared by all tests, which run in parallel, each with pods of its own. Needs
//! root, runc, the CNI plugins, docker-registry and busybox-static (skipped without them,
//! failed with `CI=true`).

mod common;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use common::{Env, Pod, expect_code};
use cri_client::Code;
use cri_client::v1::{AttachRequest, ContainerConfig, ExecRequest};
use futures_util::future::try_join_all;
use streaming::TerminalSize;
use streaming::client::{self, ExitStatus, Output, Protocol, RemoteCommand};
use test_harness::pods::eventually;
use test_harness::process;
use test_harness::suite::{self, Test};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// The pod network of this binary's daemon.
const BRIDGE: &str = "kltstr0";
const SUBNET: &str = "198.18.40.0/24";

/// A container that runs until it is killed.
const RUNS: &str = "while true; do sleep 1; done";
/// A TCP echo server on port 8080, one `cat` per connection.
const ECHOES_ON_8080: &str = "nc -ll -p 8080 -e cat";
/// The port it listens on.
const ECHO_PORT: u16 = 8080;

/// A command for ExecSync to time out on: a shell waiting for one sleep with another in
/// the background, each writing its pid in the container first.
const TIMES_OUT: &str = "echo $$ > /tmp/shell.pid; sleep 4711 & echo $! > /tmp/background.pid; sleep 4712";
/// What the command of [`TIMES_OUT`] left in the container: `<name> <pid> <state>
/// [<command line>]` for each of its processes still in `/proc`, then every command line
/// in the container holding `sleep 471` (the bracket keeps this script's own out).
const LEFT_IN_CONTAINER: &str = r#"for name in shell background; do pid=$(cat /tmp/$name.pid); [ -e /proc/$pid ] && echo "$name $pid $(cut -d' ' -f3 /proc/$pid/stat) [$(tr '\0' ' ' < /proc/$pid/cmdline)]"; done; for f in /proc/[0-9]*/cmdline; do tr '\0' ' ' < $f; echo; done | grep 'sleep 47[1]'; true"#;

/// An id no runtime gave out.
const UNKNOWN_ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// The protocols kubectl speaks: SPDY (kubectl up to 1.29, and through older apiservers)
/// and WebSocket v5 (kubectl 1.30 and later).
const PROTOCOLS: [Protocol; 2] = [Protocol::SpdyV4, Protocol::WebSocketV5];

/// How long a session may take before the test gives up on it.
const SESSION_TIMEOUT: Duration = Duration::from_secs(60);

fn main() -> ExitCode {
    suite::run(
        || Env::setup(BRIDGE, SUBNET),
        vec![
            Test::new(
                "exec_without_a_terminal_keeps_stderr_apart_and_reports_exit_codes",
                exec_without_a_terminal_keeps_stderr_apart_and_reports_exit_codes,
            ),
            Test::new(
                "exec_pipes_stdin_through_and_closes_it",
                exec_pipes_stdin_through_and_closes_it,
            ),
            Test::new(
                "exec_with_a_terminal_sees_its_size_and_reports_its_exit_code",
                exec_with_a_terminal_sees_its_size_and_reports_its_exit_code,
            ),
            Test::new(
                "attach_receives_a_running_containers_output_with_stderr_apart",
                attach_receives_a_running_containers_output_with_stderr_apart,
            ),
            Test::new(
                "attach_feeds_stdin_and_stdin_once_closes_it",
                attach_feeds_stdin_and_stdin_once_closes_it,
            ),
            Test::new(
                "attach_to_a_terminal_feeds_and_resizes_it",
                attach_to_a_terminal_feeds_and_resizes_it,
            ),
            Test::new(
                "port_forward_carries_10_mb_each_way_intact",
                port_forward_carries_10_mb_each_way_intact,
            ),
            Test::new(
                "fifty_exec_sessions_run_concurrently",
                fifty_exec_sessions_run_concurrently,
            ),
            Test::new(
                "a_client_that_goes_away_mid_exec_leaves_no_process",
                a_client_that_goes_away_mid_exec_leaves_no_process,
            ),
            Test::new(
                "exec_sync_past_its_timeout_returns_once_what_it_started_is_gone",
                exec_sync_past_its_timeout_returns_once_what_it_started_is_gone,
            ),
            Test::new("bad_requests_get_the_cri_codes", bad_requests_get_the_cri_codes),
        ],
    )
}

/// ExecRequest for `cmd` in `container_id` with stdout and stderr, no stdin, no terminal.
fn exec_request(container_id: &str, cmd: &[&str]) -> ExecRequest {
    ExecRequest {
        container_id: container_id.to_owned(),
        cmd: cmd.iter().map(|arg| (*arg).to_owned()).collect(),
        tty: false,
        stdin: false,
        stdout: true,
        stderr: true,
    }
}

/// Exec through the CRI, then the session through the URL.
async fn exec(env: &Env, request: ExecRequest, command: RemoteCommand) -> anyhow::Result<Output> {
    let url = env.client.exec(request).await.context("Exec")?;
    session(&url, command).await
}

/// Runs a session at `url` to its end.
async fn session(url: &str, command: RemoteCommand) -> anyhow::Result<Output> {
    let protocol = command.protocol;
    tokio::time::timeout(SESSION_TIMEOUT, client::run(url, command))
        .await
        .with_context(|| format!("the {protocol:?} session did not end within {SESSION_TIMEOUT:?}"))?
        .with_context(|| format!("the {protocol:?} session at {url}"))
}

/// A pod for `test` with one busybox container `name` running `script`.
async fn pod_running(env: &Env, test: &str, name: &str, script: &str) -> anyhow::Result<(Pod, String)> {
    let pod = env.run_pod(test).await?;
    let id = env.start_script(&pod, name, script).await?;
    Ok((pod, id))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn exec_without_a_terminal_keeps_stderr_apart_and_reports_exit_codes(env: &Env) -> anyhow::Result<()> {
    env.block_on(async {
        let (pod, id) = pod_running(env, "exec-pipes", "target", RUNS).await?;
        for protocol in PROTOCOLS {
            let cmd = ["sh", "-c", "echo to-out; echo to-err >&2; exit 3"];
            let output = exec(env, exec_request(&id, &cmd), RemoteCommand::new(protocol)).await?;
            ensure!(text(&output.stdout) == "to-out\n", "{protocol:?} stdout: {output:?}");
            ensure!(text(&output.stderr) == "to-err\n", "{protocol:?} stderr: {output:?}");
            ensure!(output.status == ExitStatus::ExitCode(3), "{protocol:?}: {output:?}");

            let output = exec(env, exec_request(&id, &["true"]), RemoteCommand::new(protocol)).await?;
            ensure!(output.status == ExitStatus::Success, "{protocol:?} true: {output:?}");
        }
        env.remove(&pod).await
    })
}

fn exec_pipes_stdin_through_and_closes_it(env: &Env) -> anyhow::Result<()> {
    // A megabyte that shows reordering: the line number on every line.
    let input: Vec<u8> = (0..80_000)
        .flat_map(|i| format!("line {i:06}\n").into_bytes())
        .collect();
    env.block_on(async {
        let (pod, id) = pod_running(env, "exec-stdin", "target", RUNS).await?;
        for protocol in PROTOCOLS {
            let request = ExecRequest {
                stdin: true,
                ..exec_request(&id, &["sh", "-c", "cat; echo stdin-closed >&2"])
            };
            let command = RemoteCommand::new(protocol).stdin_bytes(input.clone());
            let output = exec(env, request, command).await?;
            ensure!(
                output.stdout == input,
                "{protocol:?}: {} bytes came back of {}",
                output.stdout.len(),
                input.len()
            );
            ensure!(
                text(&output.stderr) == "stdin-closed\n" && output.status == ExitStatus::Success,
                "{protocol:?}: cat did not end at the end of stdin: {:?} {:?}",
                text(&output.stderr),
                output.status
            );
        }
        env.remove(&pod).await
    })
}

fn exec_with_a_terminal_sees_its_size_and_reports_its_exit_code(env: &Env) -> anyhow::Result<()> {
    env.block_on(async {
        let (pod, id) = pod_running(env, "exec-tty", "target", RUNS).await?;
        for protocol in PROTOCOLS {
            let (sizes, resize) = mpsc::channel(4);
            sizes
                .send(TerminalSize { width: 100, height: 30 })
                .await
                .context("queueing a size")?;
            let request = ExecRequest {
                tty: true,
                stderr: false,
                // The size is set as the session starts; the process looks a moment later.
                ..exec_request(&id, &["sh", "-c", "sleep 1; stty size; tty; exit 5"])
            };
            let output = exec(env, request, RemoteCommand::new(protocol).tty(Some(resize))).await?;
            drop(sizes);
            let stdout = text(&output.stdout);
            ensure!(
                stdout.starts_with("30 100\r\n"),
                "{protocol:?}: stty size said {stdout:?}"
            );
            ensure!(
                stdout.contains("/dev/pts/"),
                "{protocol:?}: not on a terminal: {stdout:?}"
            );
            ensure!(output.status == ExitStatus::ExitCode(5), "{protocol:?}: {output:?}");
        }
        env.remove(&pod).await
    })
}

fn attach_receives_a_running_containers_output_with_stderr_apart(env: &Env) -> anyhow::Result<()> {
    // Time to attach before the output starts; the container's exit ends the session.
    let script = "sleep 2; for i in 1 2 3; do echo out-$i; echo err-$i >&2; sleep 0.2; done";
    env.block_on(async {
        let (pod, id) = pod_running(env, "attach-output", "talker", script).await?;
        let url = env
            .client
            .attach(AttachRequest {
                container_id: id.clone(),
                stdin: false,
                tty: false,
                stdout: true,
                stderr: true,
            })
            .await
            .context("Attach")?;
        let output = session(&url, RemoteCommand::new(Protocol::SpdyV4)).await?;
        ensure!(text(&output.stdout) == "out-1\nout-2\nout-3\n", "stdout: {output:?}");
        ensure!(text(&output.stderr) == "err-1\nerr-2\nerr-3\n", "stderr: {output:?}");
        ensure!(output.status == ExitStatus::Success, "{output:?}");
        // The log is written as before.
        let status = env.exited(&id).await?;
        let log = std::fs::read_to_string(&status.log_path).with_context(|| format!("reading {}", status.log_path))?;
        ensure!(
            log.contains("stdout F out-3") && log.contains("stderr F err-3"),
            "log: {log}"
        );
        env.remove(&pod).await
    })
}

fn attach_feeds_stdin_and_stdin_once_closes_it(env: &Env) -> anyhow::Result<()> {
    env.block_on(async {
        let pod = env.run_pod("attach-stdin").await?;
        let config = ContainerConfig {
            stdin: true,
            stdin_once: true,
            ..env.container_config(&pod, "reader", "cat; echo stdin-closed")?
        };
        let id = env.start(&pod, config).await?;
        let url = env
            .client
            .attach(AttachRequest {
                container_id: id.clone(),
                stdin: true,
                tty: false,
                stdout: true,
                stderr: true,
            })
            .await
            .context("Attach")?;
        let command = RemoteCommand::new(Protocol::WebSocketV5).stdin_bytes(b"typed\n".to_vec());
        let output = session(&url, command).await?;
        ensure!(
            text(&output.stdout) == "typed\nstdin-closed\n",
            "the container did not read stdin to its end: {output:?}"
        );
        let status = env.exited(&id).await?;
        ensure!(status.exit_code == 0, "{status:?}");
        env.remove(&pod).await
    })
}

fn attach_to_a_terminal_feeds_and_resizes_it(env: &Env) -> anyhow::Result<()> {
    env.block_on(async {
        let pod = env.run_pod("attach-tty").await?;
        let config = ContainerConfig {
            stdin: true,
            tty: true,
            // The size may arrive after the line: a moment before looking.
            ..env.container_config(&pod, "shell", "read line; sleep 1; stty size; echo got-$line")?
        };
        let id = env.start(&pod, config).await?;
        let url = env
            .client
            .attach(AttachRequest {
                container_id: id.clone(),
                stdin: true,
                tty: true,
                stdout: true,
                stderr: false,
            })
            .await
            .context("Attach")?;
        let (sizes, resize) = mpsc::channel(4);
        sizes
            .send(TerminalSize { width: 90, height: 20 })
            .await
            .context("queueing a size")?;
        let command = RemoteCommand::new(Protocol::SpdyV4)
            .tty(Some(resize))
            .stdin_bytes(b"hello\n".to_vec());
        let output = session(&url, command).await?;
        drop(sizes);
        let stdout = text(&output.stdout);
        ensure!(
            stdout.contains("20 90\r\n") && stdout.contains("got-hello\r\n"),
            "terminal output: {stdout:?}"
        );
        env.exited(&id).await?;
        env.remove(&pod).await
    })
}

/// `len` bytes of a pattern that shows lost, repeated or reordered blocks.
fn pattern(len: usize) -> Vec<u8> {
    let mut state: u32 = 0x9e37_79b9;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect()
}

/// Writes `data` to a forwarded connection while reading as much back.
async fn echo_through<S>(connection: S, data: &[u8]) -> anyhow::Result<Vec<u8>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut reader, mut writer) = tokio::io::split(connection);
    let write = async {
        writer.write_all(data).await.context("writing")?;
        writer.flush().await.context("flushing")
    };
    let read = async {
        let mut back = vec![0u8; data.len()];
        reader.read_exact(&mut back).await.context("reading the echo")?;
        anyhow::Ok(back)
    };
    let ((), back) = tokio::time::timeout(SESSION_TIMEOUT, async { tokio::try_join!(write, read) })
        .await
        .context("the echo did not come back in time")??;
    Ok(back)
}

fn port_forward_carries_10_mb_each_way_intact(env: &Env) -> anyhow::Result<()> {
    let data = pattern(10 * 1024 * 1024);
    env.block_on(async {
        let (pod, _) = pod_running(env, "port-forward", "echo", ECHOES_ON_8080).await?;
        let ports = [i32::from(ECHO_PORT)];
        // nc listens a moment after the container starts.
        eventually("the echo server to answer", Duration::from_secs(10), || async {
            let url = env.client.port_forward(&pod.id, &ports).await?;
            let forwarder = client::port_forward(&url).await?;
            let connection = forwarder.connect(ECHO_PORT).await?;
            let answered = echo_through(connection, b"ping")
                .await
                .ok()
                .filter(|back| back == b"ping");
            forwarder.close().await;
            Ok(answered.map(drop))
        })
        .await?;

        let url = env.client.port_forward(&pod.id, &ports).await.context("PortForward")?;
        let forwarder = client::port_forward(&url).await.context("SPDY port-forward")?;
        let connection = forwarder.connect(ECHO_PORT).await.context("opening the connection")?;
        let back = echo_through(connection, &data).await.context("over SPDY")?;
        ensure!(back == data, "SPDY: the echo differs from what was sent");
        forwarder.close().await;

        let url = env.client.port_forward(&pod.id, &ports).await.context("PortForward")?;
        let mut forwarded = client::port_forward_websocket(&url, &[ECHO_PORT], false)
            .await
            .context("WebSocket port-forward")?;
        let connection = forwarded.ports.pop().context("no connection for the port")?;
        let back = echo_through(connection, &data).await.context("over WebSocket")?;
        ensure!(back == data, "WebSocket: the echo differs from what was sent");
        env.remove(&pod).await
    })
}

fn fifty_exec_sessions_run_concurrently(env: &Env) -> anyhow::Result<()> {
    env.block_on(async {
        let (pod, id) = pod_running(env, "exec-fifty", "target", RUNS).await?;
        let sessions = (0..50).map(|n| {
            let id = id.clone();
            async move {
                let protocol = PROTOCOLS[n % PROTOCOLS.len()];
                let script = format!("echo session-{n}; exit {}", n % 3);
                let output = exec(
                    env,
                    exec_request(&id, &["sh", "-c", &script]),
                    RemoteCommand::new(protocol),
                )
                .await?;
                let want_status = match n % 3 {
                    0 => ExitStatus::Success,
                    code => ExitStatus::ExitCode(code as i32),
                };
                ensure!(
                    text(&output.stdout) == format!("session-{n}\n") && output.status == want_status,
                    "session {n}: {output:?}"
                );
                anyhow::Ok(())
            }
        });
        try_join_all(sessions).await?;
        env.remove(&pod).await
    })
}

fn a_client_that_goes_away_mid_exec_leaves_no_process(env: &Env) -> anyhow::Result<()> {
    env.block_on(async {
        let (pod, id) = pod_running(env, "exec-gone", "target", RUNS).await?;
        for (tty, marker) in [(false, "sleep 4141"), (true, "sleep 4242")] {
            let request = ExecRequest {
                tty,
                stderr: !tty,
                ..exec_request(&id, &["sh", "-c", &format!("{marker}; echo not-killed")])
            };
            let mut command = RemoteCommand::new(Protocol::SpdyV4);
            if tty {
                command = command.tty(None);
            }
            let url = env.client.exec(request).await.context("Exec")?;
            let running = tokio::spawn(async move { client::run(&url, command).await });
            eventually("the exec'd process to run", Duration::from_secs(10), || async {
                Ok((!process::pids_with_cmdline_containing(marker).is_empty()).then_some(()))
            })
            .await?;
            // The client goes away: its connection closes.
            running.abort();
            let _ = running.await;
            eventually(
                &format!("{marker} (tty {tty}) to be gone"),
                Duration::from_secs(10),
                || async { Ok(process::pids_with_cmdline_containing(marker).is_empty().then_some(())) },
            )
            .await
            .with_context(|| format!("left: {:?}", process::pids_with_cmdline_containing(marker)))?;
        }
        let (code, _) = env.exec(&id, "true").await?;
        ensure!(code == 0, "the container still takes execs");
        env.remove(&pod).await
    })
}

/// The shell is reaped (by runc, or by the daemon when runc died first) before ExecSync
/// answers. The background sleep may still be a zombie then: its parent died, so it is
/// the container init's to reap, as any orphan in the container; dead, it has no command
/// line left.
fn exec_sync_past_its_timeout_returns_once_what_it_started_is_gone(env: &Env) -> anyhow::Result<()> {
    env.block_on(async {
        let (pod, id) = pod_running(env, "exec-sync-timeout", "target", RUNS).await?;
        let began = std::time::Instant::now();
        let result = env
            .client
            .exec_sync(&id, ["sh", "-c", TIMES_OUT], Duration::from_secs(1))
            .await;
        let took = began.elapsed();
        expect_code(result, Code::DeadlineExceeded, "ExecSync with a 1 s timeout")?;
        ensure!(took < Duration::from_secs(8), "ExecSync answered after {took:?}");
        // At once: no waiting, no polling.
        let on_host = process::pids_with_cmdline_containing("sleep 471");
        ensure!(
            on_host.is_empty(),
            "right after ExecSync returned, the host still runs {:?}",
            on_host.iter().map(|&pid| process::cmdline(pid)).collect::<Vec<_>>()
        );
        let left = env.output(&id, LEFT_IN_CONTAINER).await?;
        let alive: Vec<&str> = left
            .lines()
            .filter(|line| !(line.starts_with("background ") && line.ends_with(" Z []")))
            .collect();
        ensure!(
            alive.is_empty(),
            "right after ExecSync returned, the container still has {alive:?}"
        );
        env.remove(&pod).await
    })
}

fn bad_requests_get_the_cri_codes(env: &Env) -> anyhow::Result<()> {
    env.block_on(async {
        let c = &env.client;
        let attach = |container_id: &str| AttachRequest {
            container_id: container_id.to_owned(),
            stdin: false,
            tty: false,
            stdout: true,
            stderr: false,
        };
        expect_code(
            c.exec(exec_request(UNKNOWN_ID, &["true"])).await,
            Code::NotFound,
            "Exec",
        )?;
        expect_code(c.attach(attach(UNKNOWN_ID)).await, Code::NotFound, "Attach")?;
        expect_code(c.port_forward(UNKNOWN_ID, &[80]).await, Code::NotFound, "PortForward")?;

        let (pod, id) = pod_running(env, "bad-requests", "target", RUNS).await?;
        let no_stream = ExecRequest {
            stdout: false,
            stderr: false,
            ..exec_request(&id, &["true"])
        };
        expect_code(c.exec(no_stream).await, Code::InvalidArgument, "Exec without streams")?;
        let tty_with_stderr = ExecRequest {
            tty: true,
            ..exec_request(&id, &["true"])
        };
        expect_code(
            c.exec(tty_with_stderr).await,
            Code::InvalidArgument,
            "Exec with tty and stderr",
        )?;
        expect_code(
            c.exec(exec_request(&id, &[])).await,
            Code::InvalidArgument,
            "Exec of nothing",
        )?;
        expect_code(
            c.port_forward(&pod.id, &[0]).await,
            Code::InvalidArgument,
            "PortForward to port 0",
        )?;

        let exited = env.start_script(&pod, "exited", "true").await?;
        env.exited(&exited).await?;
        let on_exited = c.exec(exec_request(&exited, &["true"])).await;
        expect_code(on_exited, Code::FailedPrecondition, "Exec in an exited container")?;
        expect_code(
            c.attach(attach(&exited)).await,
            Code::FailedPrecondition,
            "Attach to an exited container",
        )?;
        c.stop_pod_sandbox(&pod.id).await.context("StopPodSandbox")?;
        expect_code(
            c.port_forward(&pod.id, &[80]).await,
            Code::FailedPrecondition,
            "PortForward to a stopped pod",
        )?;
        if c.exec(exec_request(&id, &["true"])).await.is_ok() {
            bail!("Exec in a container of a stopped pod succeeded");
        }
        c.remove_pod_sandbox(&pod.id).await.context("RemovePodSandbox")?;
        Ok(())
    })
}
