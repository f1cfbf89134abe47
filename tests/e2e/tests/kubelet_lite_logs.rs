//! `kubectl logs` of a container that never stops printing, on a real kubelet-lite node
//! (embedded runtime-core, runc) joined to a real control plane: the log is streamed from
//! its file, so following it for a while (hundreds of MB through the kubelet API) keeps
//! kubelet-lite's resident memory under [`RSS_LIMIT_KIB`] (40 MiB, in an optimized build:
//! `cargo test --release`), and `--limit-bytes` and `--tail` answer at once however large
//! the file.
//!
//! The container prints lines of [`LINE_BYTES`] (512 times the 64 KiB a line may be
//! held before it is passed on in pieces): for the node, each is as good as endless,
//! while `kubectl logs`, which reads its input a line at a time, still prints as it goes.
//!
//! One environment: a local registry with the busybox test images, one control plane and
//! node `klt-logs` (`198.18.65.1` on `kltlognode`, pods on `kltlog0`, `198.18.64.0/24`).
//! Needs root, the Kubernetes 1.20 binaries, etcd, runc, the CNI plugins,
//! docker-registry and busybox-static (skipped without them, failed with `CI=true`).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use e2e::eventually;
use test_harness::suite::{self, Test};
use test_harness::{ControlPlane, KubeletLite, KubeletLiteOptions, Registry, note};

/// The control plane binaries the test runs.
const KUBERNETES_BINARIES: [&str; 3] = ["kube-apiserver", "kube-controller-manager", "kube-scheduler"];

/// The node under test.
const NODE: &str = "klt-logs";

/// The pod printing without end.
const POD: &str = "endless";

/// The length of each line the container prints, newline excluded (32 MiB).
const LINE_BYTES: u64 = 512 * 64 * 1024;

/// How long the log is followed.
const FOLLOW_FOR: Duration = Duration::from_secs(25);

/// How much the follow must carry for the test to mean something.
const MIN_FOLLOWED: u64 = 100 * 1024 * 1024;

/// The most kubelet-lite (with its embedded runtime) may hold while the log is followed,
/// built optimized as a node runs it (`cargo test --release`). Unoptimized, its code alone
/// is about 50 MiB resident, so a debug build is held to [`RSS_GROWTH_LIMIT_KIB`] only.
const RSS_LIMIT_KIB: u64 = 40 * 1024;

/// The most kubelet-lite's RSS may grow while the log is followed, in any build: the
/// log path's buffers (a read block, a few chunks waiting for the client, 64 KiB a
/// stream of a held line) and the allocator's slack, far below the 32 MiB of a line.
const RSS_GROWTH_LIMIT_KIB: u64 = 8 * 1024;

/// How often kubelet-lite's memory is read while the log is followed.
const RSS_SAMPLE: Duration = Duration::from_millis(200);

/// How long the pod may take to run (first pull included).
const RUNNING_TIMEOUT: Duration = Duration::from_secs(120);

/// How long a `kubectl logs` without `-f` may take.
const KUBECTL_TIMEOUT: Duration = Duration::from_secs(20);

struct Env {
    // Dropped in this order: the node, the control plane, the registry.
    node: KubeletLite,
    control_plane: ControlPlane,
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
                node_ip: [198, 18, 65, 1].into(),
                node_bridge: "kltlognode".into(),
                pod_bridge: "kltlog0".into(),
                pod_subnet: "198.18.64.0/24".into(),
                ..KubeletLiteOptions::default()
            },
        )?;
        let env = Env {
            node,
            control_plane,
            _registry: registry,
        };
        env.control_plane
            .kubectl_with_input(["apply", "-f", "-"], &endless_pod(&images.busybox))?;
        eventually(RUNNING_TIMEOUT, || {
            let ready = env.control_plane.kubectl([
                "get",
                "pod",
                POD,
                "-o",
                "jsonpath={.status.containerStatuses[*].ready}",
            ])?;
            Ok((ready == "true").then_some(()))
        })
        .with_context(|| env.diagnostics())?;
        Ok(env)
    }

    /// What a failed step shows: the pod and the end of the node's log.
    fn diagnostics(&self) -> String {
        let described = self
            .control_plane
            .kubectl(["get", "pod", POD, "-o", "yaml"])
            .unwrap_or_else(|err| format!("{err:#}"));
        format!(
            "pod {POD}:\n{described}\n\n{NODE}'s log ends with:\n{}",
            self.node.log_tail(60)
        )
    }

    /// kubelet-lite's resident memory now, in KiB.
    fn rss_kib(&self) -> anyhow::Result<u64> {
        let pid = self.node.pid().context("kubelet-lite is not running")?;
        rss_kib(&Path::new("/proc").join(pid.to_string()).join("smaps_rollup"))
    }

    /// `kubectl logs ARGS` of the pod, run to its end.
    fn logs(&self, args: &[&str]) -> anyhow::Result<Vec<u8>> {
        let mut command = self.control_plane.kubectl_command();
        command.args(["logs", POD]).args(args).stdin(Stdio::null());
        let started = Instant::now();
        let output = command.output().with_context(|| format!("running {command:?}"))?;
        ensure!(
            output.status.success(),
            "kubectl logs {} exited with {}: {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
        ensure!(
            started.elapsed() < KUBECTL_TIMEOUT,
            "kubectl logs {} took {:?}",
            args.join(" "),
            started.elapsed()
        );
        Ok(output.stdout)
    }
}

fn main() -> ExitCode {
    suite::run(
        Env::setup,
        vec![
            Test::new(
                "following_an_endless_line_keeps_kubelet_lite_under_40_mib",
                following_an_endless_line_keeps_kubelet_lite_under_40_mib,
            ),
            Test::new(
                "limit_bytes_and_tail_answer_at_once_from_a_large_log",
                limit_bytes_and_tail_answer_at_once_from_a_large_log,
            ),
        ],
    )
}

/// `kubectl logs -f` of the endless printer for [`FOLLOW_FOR`]: it carries at least
/// [`MIN_FOLLOWED`] bytes, all the container's, and kubelet-lite's RSS grows by less
/// than [`RSS_GROWTH_LIMIT_KIB`] and (optimized) stays under [`RSS_LIMIT_KIB`].
fn following_an_endless_line_keeps_kubelet_lite_under_40_mib(env: &Env) -> anyhow::Result<()> {
    let baseline = env.rss_kib()?;
    let mut follow = Follow::start(env.control_plane.kubectl_command())?;
    let started = Instant::now();
    let mut peak = baseline;
    while started.elapsed() < FOLLOW_FOR {
        std::thread::sleep(RSS_SAMPLE);
        peak = peak.max(env.rss_kib()?);
        if let Some(status) = follow.child.try_wait()? {
            bail!("kubectl logs -f ended early with {status}: {}", follow.stderr());
        }
    }
    let elapsed = started.elapsed();
    let (bytes, newlines) = follow.stop()?;
    let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    note(format!(
        "kubelet-lite ({}) RSS: {:.1} MiB before following, peak {:.1} MiB while `kubectl logs -f` carried \
         {:.0} MiB ({newlines} lines of {} MiB) in {elapsed:.1?} ({:.1} MiB/s)",
        if cfg!(debug_assertions) {
            "debug build"
        } else {
            "optimized build"
        },
        baseline as f64 / 1024.0,
        peak as f64 / 1024.0,
        mib(bytes),
        mib(LINE_BYTES),
        mib(bytes) / elapsed.as_secs_f64(),
    ));
    ensure!(
        bytes >= MIN_FOLLOWED,
        "kubectl logs -f carried only {bytes} bytes in {elapsed:?}\n{}",
        env.diagnostics()
    );
    ensure!(
        peak.saturating_sub(baseline) < RSS_GROWTH_LIMIT_KIB,
        "kubelet-lite's RSS grew from {baseline} KiB to {peak} KiB while following (limit: {RSS_GROWTH_LIMIT_KIB} KiB more)"
    );
    ensure!(
        cfg!(debug_assertions) || peak < RSS_LIMIT_KIB,
        "kubelet-lite's RSS reached {peak} KiB (limit {RSS_LIMIT_KIB} KiB, {baseline} KiB before following)"
    );
    Ok(())
}

/// `--limit-bytes` cuts the first line short and `--tail=1` starts at the last line's
/// start: both quickly, from a log of many 32 MiB lines.
fn limit_bytes_and_tail_answer_at_once_from_a_large_log(env: &Env) -> anyhow::Result<()> {
    let first = env.logs(&["--limit-bytes=1000"])?;
    ensure!(
        first.len() == 1000 && first.iter().all(|b| *b == b'x'),
        "--limit-bytes=1000 gave {} bytes: {:?}",
        first.len(),
        String::from_utf8_lossy(&first[..first.len().min(100)])
    );
    // The last complete line (from its start: the log rotates at 10 MiB, so that is
    // the start of a 32 MiB line or what of it the new file holds), then the start of the
    // line being written, cut at 1 MiB.
    let tail = env.logs(&["--tail=1", "--limit-bytes=1048576"])?;
    let newlines = tail.iter().filter(|b| **b == b'\n').count();
    ensure!(
        !tail.is_empty() && tail.len() <= 1 << 20 && newlines <= 1 && tail.iter().all(|b| *b == b'x' || *b == b'\n'),
        "--tail=1 gave {} bytes, {newlines} newlines",
        tail.len(),
    );
    Ok(())
}

/// A running `kubectl logs -f` whose output is counted (and checked: only the
/// container's `x`s and newlines) as it comes.
struct Follow {
    child: Child,
    reader: Option<JoinHandle<anyhow::Result<()>>>,
    bytes: Arc<AtomicU64>,
    newlines: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    stderr: PathBuf,
}

impl Follow {
    fn start(mut command: Command) -> anyhow::Result<Follow> {
        let stderr = std::env::temp_dir().join(format!("kubelet-lite-logs-follow-{}.err", std::process::id()));
        command
            .args(["logs", "-f", POD])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr)?);
        let mut child = command.spawn().with_context(|| format!("starting {command:?}"))?;
        let mut stdout = child.stdout.take().context("no stdout pipe")?;
        let (bytes, newlines, stop) = (
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let reader = {
            let (bytes, newlines, stop) = (bytes.clone(), newlines.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut buffer = vec![0; 1 << 20];
                loop {
                    let read = match stdout.read(&mut buffer) {
                        Ok(0) => return Ok(()),
                        Ok(read) => read,
                        Err(_) if stop.load(Ordering::SeqCst) => return Ok(()),
                        Err(err) => return Err(err).context("reading kubectl's output"),
                    };
                    let data = &buffer[..read];
                    if let Some(odd) = data.iter().find(|b| **b != b'x' && **b != b'\n') {
                        bail!("kubectl printed {odd:#04x}, which the container never wrote");
                    }
                    newlines.fetch_add(data.iter().filter(|b| **b == b'\n').count() as u64, Ordering::SeqCst);
                    bytes.fetch_add(read as u64, Ordering::SeqCst);
                }
            })
        };
        Ok(Follow {
            child,
            reader: Some(reader),
            bytes,
            newlines,
            stop,
            stderr,
        })
    }

    /// Stops kubectl; returns the bytes and newlines it printed.
    fn stop(&mut self) -> anyhow::Result<(u64, u64)> {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.child.kill();
        self.child.wait()?;
        if let Some(reader) = self.reader.take() {
            match reader.join() {
                Ok(result) => result?,
                Err(_) => bail!("the thread reading kubectl's output panicked"),
            }
        }
        Ok((self.bytes.load(Ordering::SeqCst), self.newlines.load(Ordering::SeqCst)))
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

impl Drop for Follow {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.stderr);
    }
}

/// The `Rss:` of a `smaps_rollup` file, in KiB.
fn rss_kib(path: &Path) -> anyhow::Result<u64> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .find_map(|line| line.strip_prefix("Rss:"))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .and_then(|kib| kib.trim().parse().ok())
        .with_context(|| format!("no Rss line in {}", path.display()))
}

/// The pod printing lines of [`LINE_BYTES`] `x`s without end, in writes of 64 KiB with
/// a millisecond's pause between them (about 40 MiB/s at most: a log of hundreds of MB
/// within the test, not gigabytes).
fn endless_pod(image: &str) -> String {
    let script = "x=xxxxxxxx; for i in 1 2 3 4 5 6 7 8 9 10 11 12 13; do x=$x$x; done; \
                  while true; do i=0; while [ $i -lt 512 ]; do printf %s \"$x\"; usleep 1000; i=$((i+1)); done; \
                  echo; done";
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": POD},
        "spec": {
            "nodeName": NODE,
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "printer", "image": image, "command": ["sh", "-c", script]}],
        },
    })
    .to_string()
}
