//! The kubelet API of kubelet-lite, reached the way users reach it: the real `kubectl`
//! through the real kube-apiserver 1.20 to the node's HTTPS port. `kubectl exec` (plain,
//! `-i` with piped stdin, `-it` under a pseudo-terminal, exit codes), `kubectl attach`
//! (plain and `-i`), `kubectl logs` (`-f`, `--tail`, `--timestamps`, `--previous`) and
//! `kubectl port-forward` carrying an HTTP request, each with the machine's kubectl 1.32
//! (WebSocket first, SPDY as fallback) and Debian's kubectl 1.20 (SPDY only), on a node
//! running its embedded runtime-core and on a node driving containerd 1.6.
//!
//! One environment for all: a local registry with the busybox test images, one control
//! plane, node `klt-api-rc` (runtime-core; `198.18.61.1` on `kltapinode`, pods on
//! `kltapi1`, `198.18.60.0/24`) and node `klt-api-ctr` (containerd; `198.18.63.1` on
//! `kltapinode2`, containerd's pods on `kltapi2`, `198.18.62.0/24`). Each node gets a
//! serving certificate of the control plane's CA (the apiserver checks it with
//! `--kubelet-certificate-authority`) and that CA as its client CA; requests are
//! authorized by SubjectAccessReview. Both kubectl versions run against the same pods:
//! `work` (an httpd, a container printing a line a second, one reading its stdin) and
//! `restarter` (fails once, then runs), one of each per node.
//!
//! kubectl 1.20 is Debian's `kubernetes-client`, unpacked by `scripts/install-deps.sh`
//! into [`KUBECTL_120`]; without it the tests are skipped (failed under `CI=true`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use e2e::eventually;
use test_harness::suite::{self, Test};
use test_harness::{
    Containerd, ContainerdOptions, ControlPlane, KubeletLite, KubeletLiteOptions, Missing, Registry, note,
};

/// Where `scripts/install-deps.sh` unpacks Debian's kubectl 1.20.
const KUBECTL_120: &str = "/var/cache/kubelet-lite/kubectl-1.20/usr/bin/kubectl";

/// The control plane binaries the test runs.
const KUBERNETES_BINARIES: [&str; 3] = ["kube-apiserver", "kube-controller-manager", "kube-scheduler"];

/// How long the shared pods may take to run (first pulls included).
const RUNNING_TIMEOUT: Duration = Duration::from_secs(120);

/// How long one kubectl command may take.
const KUBECTL_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a stream (attach, logs -f, port-forward) may take to show what is awaited.
const STREAM_TIMEOUT: Duration = Duration::from_secs(30);

/// The port the httpd of pod `work` listens on.
const HTTP_PORT: u16 = 8080;

/// The two nodes under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// kubelet-lite with its embedded runtime-core.
    RuntimeCore,
    /// kubelet-lite driving containerd.
    Containerd,
}

impl Target {
    const ALL: [Target; 2] = [Target::RuntimeCore, Target::Containerd];

    fn node(self) -> &'static str {
        match self {
            Target::RuntimeCore => "klt-api-rc",
            Target::Containerd => "klt-api-ctr",
        }
    }

    /// The name of shared pod `base` on this node.
    fn pod(self, base: &str) -> String {
        format!("{base}-{}", self.node())
    }
}

/// A kubectl binary.
struct Kubectl {
    version: &'static str,
    binary: PathBuf,
    cache: PathBuf,
}

struct Env {
    // Dropped in this order: the nodes, containerd, the control plane, the registry.
    runtime_core: KubeletLite,
    containerd_node: KubeletLite,
    _containerd: Containerd,
    control_plane: ControlPlane,
    kubectls: Vec<Kubectl>,
    _registry: Registry,
}

impl Env {
    fn setup() -> anyhow::Result<Env> {
        test_harness::control_plane::kubernetes_binaries(&KUBERNETES_BINARIES)?;
        test_harness::require_tools(&["script"])?;
        if !Path::new(KUBECTL_120).is_file() {
            return Err(Missing::new([format!("kubectl 1.20 at {KUBECTL_120} (scripts/install-deps.sh)")]).into());
        }
        let registry = Registry::start()?;
        let images = test_harness::push_test_images(&registry)?;
        let building = Instant::now();
        e2e::workspace_binary("runtime-core", "runtime-core-monitor")?;
        let binary = e2e::workspace_binary("kubelet-lite", "kubelet-lite")?;
        note(format!(
            "kubelet-lite built (or up to date) in {:.2?}",
            building.elapsed()
        ));
        let containerd = Containerd::start_with(
            &registry,
            &images,
            ContainerdOptions::with_network("kltapi2", "198.18.62.0/24"),
        )?;
        let control_plane = ControlPlane::start()?;
        let runtime_core = KubeletLite::start(
            &binary,
            &control_plane,
            &registry,
            KubeletLiteOptions {
                node_name: Target::RuntimeCore.node().into(),
                node_ip: [198, 18, 61, 1].into(),
                node_bridge: "kltapinode".into(),
                pod_bridge: "kltapi1".into(),
                pod_subnet: "198.18.60.0/24".into(),
                ..KubeletLiteOptions::default()
            },
        )?;
        let containerd_node = KubeletLite::start(
            &binary,
            &control_plane,
            &registry,
            KubeletLiteOptions {
                node_name: Target::Containerd.node().into(),
                node_ip: [198, 18, 63, 1].into(),
                node_bridge: "kltapinode2".into(),
                runtime_endpoint: Some(containerd.endpoint()),
                ..KubeletLiteOptions::default()
            },
        )?;
        let kubectls = vec![
            Kubectl {
                version: "1.32",
                binary: PathBuf::from(control_plane.kubectl_command().get_program()),
                cache: control_plane.dir().join("kubectl-1.32-cache"),
            },
            Kubectl {
                version: "1.20",
                binary: PathBuf::from(KUBECTL_120),
                cache: control_plane.dir().join("kubectl-1.20-cache"),
            },
        ];
        let env = Env {
            runtime_core,
            containerd_node,
            _containerd: containerd,
            control_plane,
            kubectls,
            _registry: registry,
        };
        for target in Target::ALL {
            env.apply(&work_pod(target, &images.busybox))?;
            env.apply(&restarter_pod(target, &images.busybox))?;
        }
        for target in Target::ALL {
            env.wait_running(&target.pod("work"), target)?;
        }
        Ok(env)
    }

    fn node(&self, target: Target) -> &KubeletLite {
        match target {
            Target::RuntimeCore => &self.runtime_core,
            Target::Containerd => &self.containerd_node,
        }
    }

    fn apply(&self, manifest: &str) -> anyhow::Result<()> {
        self.control_plane
            .kubectl_with_input(["apply", "-f", "-"], manifest)
            .map(drop)
    }

    /// `kubectl get pod NAME -o jsonpath={FIELD}` (kubectl 1.32).
    fn pod_field(&self, pod: &str, field: &str) -> anyhow::Result<String> {
        self.control_plane
            .kubectl(["get", "pod", pod, "-o", &format!("jsonpath={{{field}}}")])
    }

    /// Waits until every container of `pod` is ready.
    fn wait_running(&self, pod: &str, target: Target) -> anyhow::Result<()> {
        eventually(RUNNING_TIMEOUT, || {
            let ready = self.pod_field(pod, ".status.containerStatuses[*].ready")?;
            Ok((!ready.is_empty() && ready.split_whitespace().all(|r| r == "true")).then_some(()))
        })
        .with_context(|| self.diagnostics(pod, target))
    }

    /// What a failed step shows: the pod and the end of the node's log.
    fn diagnostics(&self, pod: &str, target: Target) -> String {
        let described = self
            .control_plane
            .kubectl(["get", "pod", pod, "-o", "yaml"])
            .unwrap_or_else(|err| format!("{err:#}"));
        format!(
            "pod {pod}:\n{described}\n\n{}'s log ends with:\n{}",
            target.node(),
            self.node(target).log_tail(60)
        )
    }

    /// `kubectl ARGS` of `kubectl`, as the admin, with its own discovery cache.
    fn kubectl(&self, kubectl: &Kubectl, args: &[&str]) -> Command {
        let mut command = Command::new(&kubectl.binary);
        command
            .arg("--kubeconfig")
            .arg(self.control_plane.admin_kubeconfig())
            .arg("--cache-dir")
            .arg(&kubectl.cache)
            .args(args)
            .stdin(Stdio::null());
        command
    }

    /// Runs `kubectl ARGS` with `input` on its stdin; fails unless it exits with 0.
    fn kubectl_ok(&self, kubectl: &Kubectl, args: &[&str], input: Option<&str>) -> anyhow::Result<String> {
        let output = run(self.kubectl(kubectl, args), input, KUBECTL_TIMEOUT)?;
        ensure!(
            output.status.success(),
            "kubectl {} {} exited with {}: {}",
            kubectl.version,
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Runs `check` with each kubectl, naming the version in a failure.
    fn with_each_kubectl(&self, target: Target, check: impl Fn(&Kubectl) -> anyhow::Result<()>) -> anyhow::Result<()> {
        for kubectl in &self.kubectls {
            check(kubectl).with_context(|| {
                format!(
                    "with kubectl {} on node {}\n{}'s log ends with:\n{}",
                    kubectl.version,
                    target.node(),
                    target.node(),
                    self.node(target).log_tail(30)
                )
            })?;
        }
        Ok(())
    }
}

fn main() -> ExitCode {
    suite::run(
        Env::setup,
        vec![
            Test::new("runtime_core_exec_runs_a_command", |env| {
                exec_runs_a_command(env, Target::RuntimeCore)
            }),
            Test::new("containerd_exec_runs_a_command", |env| {
                exec_runs_a_command(env, Target::Containerd)
            }),
            Test::new("runtime_core_exec_i_carries_piped_stdin", |env| {
                exec_i_carries_piped_stdin(env, Target::RuntimeCore)
            }),
            Test::new("containerd_exec_i_carries_piped_stdin", |env| {
                exec_i_carries_piped_stdin(env, Target::Containerd)
            }),
            Test::new("runtime_core_exec_it_gives_a_terminal", |env| {
                exec_it_gives_a_terminal(env, Target::RuntimeCore)
            }),
            Test::new("containerd_exec_it_gives_a_terminal", |env| {
                exec_it_gives_a_terminal(env, Target::Containerd)
            }),
            Test::new("runtime_core_exec_propagates_the_exit_code", |env| {
                exec_propagates_the_exit_code(env, Target::RuntimeCore)
            }),
            Test::new("containerd_exec_propagates_the_exit_code", |env| {
                exec_propagates_the_exit_code(env, Target::Containerd)
            }),
            Test::new("runtime_core_attach_shows_the_output", |env| {
                attach_shows_the_output(env, Target::RuntimeCore)
            }),
            Test::new("containerd_attach_shows_the_output", |env| {
                attach_shows_the_output(env, Target::Containerd)
            }),
            Test::new("runtime_core_attach_i_feeds_stdin", |env| {
                attach_i_feeds_stdin(env, Target::RuntimeCore)
            }),
            Test::new("containerd_attach_i_feeds_stdin", |env| {
                attach_i_feeds_stdin(env, Target::Containerd)
            }),
            Test::new("runtime_core_logs_tail_and_timestamps", |env| {
                logs_tail_and_timestamps(env, Target::RuntimeCore)
            }),
            Test::new("containerd_logs_tail_and_timestamps", |env| {
                logs_tail_and_timestamps(env, Target::Containerd)
            }),
            Test::new("runtime_core_logs_follow_new_lines", |env| {
                logs_follow_new_lines(env, Target::RuntimeCore)
            }),
            Test::new("containerd_logs_follow_new_lines", |env| {
                logs_follow_new_lines(env, Target::Containerd)
            }),
            Test::new("runtime_core_logs_previous_shows_the_restarted_container", |env| {
                logs_previous_shows_the_restarted_container(env, Target::RuntimeCore)
            }),
            Test::new("containerd_logs_previous_shows_the_restarted_container", |env| {
                logs_previous_shows_the_restarted_container(env, Target::Containerd)
            }),
            Test::new("runtime_core_port_forward_carries_http", |env| {
                port_forward_carries_http(env, Target::RuntimeCore)
            }),
            Test::new("containerd_port_forward_carries_http", |env| {
                port_forward_carries_http(env, Target::Containerd)
            }),
        ],
    )
}

/// `kubectl exec POD -c main -- echo ...` prints the command's output.
fn exec_runs_a_command(env: &Env, target: Target) -> anyhow::Result<()> {
    let pod = target.pod("work");
    env.with_each_kubectl(target, |kubectl| {
        let out = env.kubectl_ok(
            kubectl,
            &[
                "exec",
                &pod,
                "-c",
                "main",
                "--",
                "sh",
                "-c",
                "echo exec-ok; cat /www/index.html",
            ],
            None,
        )?;
        ensure!(out == format!("exec-ok\nhello-from-{pod}\n"), "exec printed {out:?}");
        Ok(())
    })
}

/// `kubectl exec -i` with stdin piped: the command reads it to its end.
fn exec_i_carries_piped_stdin(env: &Env, target: Target) -> anyhow::Result<()> {
    let pod = target.pod("work");
    env.with_each_kubectl(target, |kubectl| {
        let input = format!("first line from kubectl {}\nsecond line\n", kubectl.version);
        let out = env.kubectl_ok(
            kubectl,
            &[
                "exec",
                "-i",
                &pod,
                "-c",
                "main",
                "--",
                "sh",
                "-c",
                "tr a-z A-Z; echo stdin-closed",
            ],
            Some(&input),
        )?;
        ensure!(
            out == format!("{}stdin-closed\n", input.to_uppercase()),
            "exec -i printed {out:?}"
        );
        Ok(())
    })
}

/// `kubectl exec -it` under a pseudo-terminal (`script`): the command runs on a terminal
/// of the client's size (kubectl sends it on the resize stream).
fn exec_it_gives_a_terminal(env: &Env, target: Target) -> anyhow::Result<()> {
    let pod = target.pod("work");
    env.with_each_kubectl(target, |kubectl| {
        let command = env.kubectl(
            kubectl,
            &[
                "exec",
                "-it",
                &pod,
                "-c",
                "main",
                "--",
                "sh",
                "-c",
                "tty; sleep 1; stty size; echo tty-done",
            ],
        );
        // `script`'s terminal has no size of its own (its stdin is not a terminal): give it one.
        let line = format!("stty rows 27 cols 91; {}", shell_line(&command));
        // `script` gives kubectl a terminal; its stdin stays open (a pipe nobody writes to)
        // until the command ends.
        let mut script = Command::new("script");
        script.args(["-qec", &line, "/dev/null"]).stdin(Stdio::piped());
        let output = run_keeping_stdin_open(script, KUBECTL_TIMEOUT)?;
        let out = String::from_utf8_lossy(&output.stdout).replace('\r', "");
        ensure!(
            output.status.success(),
            "script/kubectl exited with {}: {out}",
            output.status
        );
        ensure!(out.contains("/dev/pts/"), "the command had no terminal: {out:?}");
        ensure!(
            out.contains("27 91"),
            "the terminal's size did not reach the command: {out:?}"
        );
        ensure!(out.contains("tty-done"), "the command did not finish: {out:?}");
        Ok(())
    })
}

/// A command's non-zero exit code becomes kubectl's exit status.
fn exec_propagates_the_exit_code(env: &Env, target: Target) -> anyhow::Result<()> {
    let pod = target.pod("work");
    env.with_each_kubectl(target, |kubectl| {
        let command = env.kubectl(kubectl, &["exec", &pod, "-c", "main", "--", "sh", "-c", "exit 7"]);
        let output = run(command, None, KUBECTL_TIMEOUT)?;
        ensure!(
            output.status.code() == Some(7),
            "kubectl exited with {} ({})",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
        Ok(())
    })
}

/// `kubectl attach` to the container printing a line a second shows new lines.
fn attach_shows_the_output(env: &Env, target: Target) -> anyhow::Result<()> {
    let pod = target.pod("work");
    env.with_each_kubectl(target, |kubectl| {
        let mut stream = Stream::spawn(env.kubectl(kubectl, &["attach", &pod, "-c", "ticker"]), None)?;
        let lines = stream.wait_for(|lines| lines.iter().filter(|l| l.starts_with("line-")).count() >= 2)?;
        ensure!(lines.iter().any(|l| l.starts_with("line-")), "attach printed {lines:?}");
        Ok(())
    })
}

/// `kubectl attach -i` to a container created with stdin: what is written reaches it.
fn attach_i_feeds_stdin(env: &Env, target: Target) -> anyhow::Result<()> {
    let pod = target.pod("work");
    env.with_each_kubectl(target, |kubectl| {
        let word = format!("hello-{}", kubectl.version);
        let mut stream = Stream::spawn(
            env.kubectl(kubectl, &["attach", "-i", &pod, "-c", "reader"]),
            Some(&format!("{word}\n")),
        )?;
        let expected = format!("got:{word}");
        stream.wait_for(|lines| lines.contains(&expected))?;
        Ok(())
    })
}

/// `kubectl logs --tail` gives the last lines only; `--timestamps` prefixes each with
/// its RFC 3339 time.
fn logs_tail_and_timestamps(env: &Env, target: Target) -> anyhow::Result<()> {
    let pod = target.pod("work");
    env.with_each_kubectl(target, |kubectl| {
        let out = env.kubectl_ok(kubectl, &["logs", &pod, "-c", "ticker", "--tail=2"], None)?;
        let lines: Vec<&str> = out.lines().collect();
        ensure!(
            lines.len() == 2 && lines.iter().all(|l| l.starts_with("line-")),
            "--tail=2 gave {out:?}"
        );
        let numbers: Vec<u64> = lines
            .iter()
            .filter_map(|l| l.strip_prefix("line-")?.parse().ok())
            .collect();
        ensure!(
            numbers.len() == 2 && numbers[1] == numbers[0] + 1,
            "not the last two lines: {out:?}"
        );

        let out = env.kubectl_ok(
            kubectl,
            &["logs", &pod, "-c", "ticker", "--tail=3", "--timestamps"],
            None,
        )?;
        let lines: Vec<&str> = out.lines().collect();
        ensure!(lines.len() == 3, "--tail=3 --timestamps gave {out:?}");
        for line in lines {
            let (time, text) = line.split_once(' ').context("no timestamp")?;
            ensure!(is_rfc3339(time), "{time:?} is not an RFC 3339 time in {line:?}");
            ensure!(text.starts_with("line-"), "unexpected line {line:?}");
        }
        Ok(())
    })
}

/// `kubectl logs -f` keeps printing lines as the container writes them.
fn logs_follow_new_lines(env: &Env, target: Target) -> anyhow::Result<()> {
    let pod = target.pod("work");
    env.with_each_kubectl(target, |kubectl| {
        let mut stream = Stream::spawn(
            env.kubectl(kubectl, &["logs", "-f", "--tail=1", &pod, "-c", "ticker"]),
            None,
        )?;
        let lines = stream.wait_for(|lines| lines.len() >= 3)?;
        let numbers: Vec<u64> = lines
            .iter()
            .filter_map(|l| l.strip_prefix("line-")?.parse().ok())
            .collect();
        ensure!(
            numbers.len() >= 3 && numbers.windows(2).all(|w| w[1] == w[0] + 1),
            "logs -f printed {lines:?}"
        );
        Ok(())
    })
}

/// After a container restarted, `kubectl logs --previous` shows the one before.
fn logs_previous_shows_the_restarted_container(env: &Env, target: Target) -> anyhow::Result<()> {
    let pod = target.pod("restarter");
    eventually(RUNNING_TIMEOUT, || {
        let restarts = env.pod_field(&pod, ".status.containerStatuses[0].restartCount")?;
        let ready = env.pod_field(&pod, ".status.containerStatuses[0].ready")?;
        Ok((restarts.trim().parse::<u32>().unwrap_or(0) >= 1 && ready == "true").then_some(()))
    })
    .with_context(|| env.diagnostics(&pod, target))?;
    env.with_each_kubectl(target, |kubectl| {
        let previous = env.kubectl_ok(kubectl, &["logs", &pod, "--previous"], None)?;
        ensure!(previous == "run-1\n", "--previous gave {previous:?}");
        let current = env.kubectl_ok(kubectl, &["logs", &pod], None)?;
        ensure!(current == "run-2\n", "the current container's log is {current:?}");
        Ok(())
    })
}

/// `kubectl port-forward` carries an HTTP request to the pod's httpd and its answer back.
fn port_forward_carries_http(env: &Env, target: Target) -> anyhow::Result<()> {
    let pod = target.pod("work");
    env.with_each_kubectl(target, |kubectl| {
        let port = free_local_port()?;
        let mapping = format!("{port}:{HTTP_PORT}");
        let mut stream = Stream::spawn(
            env.kubectl(kubectl, &["port-forward", &format!("pod/{pod}"), &mapping]),
            None,
        )?;
        stream.wait_for(|lines| lines.iter().any(|l| l.starts_with("Forwarding from 127.0.0.1")))?;
        let answer = http_get(port)?;
        ensure!(
            answer.starts_with("HTTP/1.") && answer.contains(" 200 "),
            "httpd answered {answer:?}"
        );
        ensure!(
            answer.contains(&format!("hello-from-{pod}")),
            "httpd answered {answer:?}"
        );
        // A second connection through the same forward works too.
        let again = http_get(port)?;
        ensure!(again.contains(&format!("hello-from-{pod}")), "second answer {again:?}");
        Ok(())
    })
}

/// Pod `work` of `target`: an httpd serving a page naming the pod (`main`), a container
/// printing `line-N` every second (`ticker`), one echoing its stdin (`reader`).
fn work_pod(target: Target, image: &str) -> String {
    let name = target.pod("work");
    let main =
        format!("mkdir -p /www && echo hello-from-{name} > /www/index.html && exec httpd -f -p {HTTP_PORT} -h /www");
    let ticker = "i=0; while true; do echo line-$i; i=$((i+1)); sleep 1; done";
    let reader = "while read line; do echo got:$line; done";
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "nodeName": target.node(),
            "terminationGracePeriodSeconds": 2,
            "containers": [
                {"name": "main", "image": image, "command": ["sh", "-c", main]},
                {"name": "ticker", "image": image, "command": ["sh", "-c", ticker]},
                {"name": "reader", "image": image, "stdin": true, "command": ["sh", "-c", reader]},
            ],
        },
    })
    .to_string()
}

/// Pod `restarter` of `target`: its container prints `run-1` and fails, then (restarted,
/// counting runs in an emptyDir) prints `run-2` and keeps running.
fn restarter_pod(target: Target, image: &str) -> String {
    let script = "n=$(cat /data/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > /data/n; echo run-$n; \
                  if [ $n -ge 2 ]; then exec sleep 3600; fi; exit 1";
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": target.pod("restarter")},
        "spec": {
            "nodeName": target.node(),
            "terminationGracePeriodSeconds": 2,
            "volumes": [{"name": "data", "emptyDir": {}}],
            "containers": [{
                "name": "main",
                "image": image,
                "command": ["sh", "-c", script],
                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
            }],
        },
    })
    .to_string()
}

/// A process whose standard output is read line by line while it runs; killed on drop.
struct Stream {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    stderr: PathBuf,
    _stdin: Option<std::process::ChildStdin>,
}

impl Stream {
    /// Starts `command`, writing `input` to its stdin (kept open while it runs).
    fn spawn(mut command: Command, input: Option<&str>) -> anyhow::Result<Stream> {
        let stderr = std::env::temp_dir().join(format!(
            "kubelet-lite-api-stream-{}-{}.err",
            std::process::id(),
            STREAMS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        command
            .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr)?);
        let mut child = command.spawn().with_context(|| format!("starting {command:?}"))?;
        let mut stdin = child.stdin.take();
        if let (Some(pipe), Some(input)) = (stdin.as_mut(), input) {
            pipe.write_all(input.as_bytes())?;
            pipe.flush()?;
        }
        let stdout = child.stdout.take().context("no stdout pipe")?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Stream {
            child,
            lines,
            seen: Vec::new(),
            stderr,
            _stdin: stdin,
        })
    }

    /// Waits until the lines printed so far satisfy `done`; returns them.
    fn wait_for(&mut self, done: impl Fn(&[String]) -> bool) -> anyhow::Result<Vec<String>> {
        let deadline = Instant::now() + STREAM_TIMEOUT;
        while !done(&self.seen) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => {
                    let status = self.child.try_wait().ok().flatten();
                    bail!(
                        "after {STREAM_TIMEOUT:?} (exit status {status:?}) it printed {:?}; stderr: {}",
                        self.seen,
                        std::fs::read_to_string(&self.stderr).unwrap_or_default().trim()
                    );
                }
            }
        }
        Ok(self.seen.clone())
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.stderr);
    }
}

/// Numbers the stderr files of streams.
static STREAMS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Runs `command` to its end (killed after `timeout`), with `input` on its stdin.
fn run(mut command: Command, input: Option<&str>, timeout: Duration) -> anyhow::Result<Output> {
    command
        .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().with_context(|| format!("starting {command:?}"))?;
    if let (Some(mut stdin), Some(input)) = (child.stdin.take(), input) {
        stdin.write_all(input.as_bytes())?;
    }
    finish(child, timeout, &command)
}

/// Runs `command` (whose stdin is a pipe) to its end, keeping its stdin open meanwhile.
fn run_keeping_stdin_open(mut command: Command, timeout: Duration) -> anyhow::Result<Output> {
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().with_context(|| format!("starting {command:?}"))?;
    let stdin = child.stdin.take();
    let output = finish(child, timeout, &command);
    drop(stdin);
    output
}

/// Collects the output of `child`, killing it after `timeout`.
fn finish(mut child: Child, timeout: Duration, command: &Command) -> anyhow::Result<Output> {
    let read = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = read(child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let stderr = read(child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{command:?} did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    Ok(Output { status, stdout, stderr })
}

/// `command` as one shell line (its arguments have no quotes or spaces except those
/// quoted here).
fn shell_line(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|arg| {
            let arg = arg.to_string_lossy();
            if arg.contains(' ') || arg.contains(';') {
                format!("'{arg}'")
            } else {
                arg.into_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A local port nobody listens on right now.
fn free_local_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// `GET /` on 127.0.0.1:`port`, HTTP/1.0; the whole answer.
fn http_get(port: u16) -> anyhow::Result<String> {
    let mut connection = TcpStream::connect(("127.0.0.1", port))?;
    connection.set_read_timeout(Some(STREAM_TIMEOUT))?;
    connection.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    let mut answer = String::new();
    connection.read_to_string(&mut answer)?;
    Ok(answer)
}

/// Whether `text` looks like an RFC 3339 time (`2024-05-01T10:20:30.123456789Z`).
fn is_rfc3339(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() >= 20
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && bytes[10] == b'T'
        && bytes[13] == b':'
        && bytes[16] == b':'
        && (text.ends_with('Z') || text[19..].contains(['+', '-']))
}
