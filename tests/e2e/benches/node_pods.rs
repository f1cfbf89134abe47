//! Pods created at once on a node: kubelet-lite (with its embedded runtime-core) against
//! the real kubelet 1.20 with containerd 1.6, both registered with one real Kubernetes 1.20
//! control plane in the same run, pulling one local registry's busybox through mirrors.
//!
//! ```text
//! cargo bench -p e2e --bench node_pods [-- --pods N] [--only kubelet|kubelet-lite]
//! ```
//!
//! **Create-to-Ready.** The nodes take turns (the real kubelet first, then kubelet-lite;
//! each is stopped before the other starts, so neither pays for the other's CPU). For each,
//! 20 pods of one busybox `sleep 3600` container each are created with one
//! `kubectl create` of a List, bound to the node (`spec.nodeName`: the node is measured,
//! not the scheduler). A `kubectl get --watch` started beforehand timestamps, on this
//! machine's clock, the moment each pod is first seen and the moment its Ready condition
//! turns True: the apiserver's own timestamps have a resolution of one second. The image
//! is not on the node before: the first pods pay for a pull, on both nodes alike.
//!
//! **Memory.** Rss and Pss (`/proc/PID/smaps_rollup`) of the node agent (the kubelet;
//! kubelet-lite, whose runtime runs in the same process), and of the whole node: the
//! agent, the runtime (containerd; embedded in kubelet-lite) and the runtime's per-pod
//! processes (containerd's shims; runtime-core's monitors), with every pod running. The
//! containers' own processes (and containerd's pause processes) count for neither. Pss
//! shares each page among the processes that map it, so it is what adds up across many
//! copies of one binary.
//!
//! **Idle.** Then the node is left alone for [`IDLE`] with every pod running: the CPU time
//! the whole node's processes used meanwhile (`utime` + `stime` of `/proc/PID/stat`), as
//! a share of one core. **Deletion.** Then every pod is deleted with one `kubectl
//! delete`, timed until listing them finds none.
//!
//! With `--pods 110` (the kubelet's `--max-pods`) it is the density benchmark of issue
//! #16. Targets (kubelet-lite): p99 at most 1 s for 20 pods, 3 s for more; agent Rss at
//! most 25 MB; the whole node at most 50 MB Pss; idle at most 1 % of a core and a tenth
//! of the kubelet's node; all pods gone at most 3 s after the delete.
//!
//! Needs root, the Kubernetes 1.20 binaries (`scripts/build-kubernetes.sh`), etcd,
//! containerd, runc, the CNI plugins, docker-registry and busybox-static. Without them it
//! says what is missing and exits 0 (1 with `CI=true`).

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use test_harness::{
    Containerd, ContainerdOptions, ControlPlane, Kubelet, KubeletLite, KubeletLiteOptions, KubeletOptions, Missing,
    Registry, TestImages, note, process,
};

/// The real kubelet's node and containerd's pod network.
const KUBELET_NODE: &str = "klt-bench-kubelet";
const KUBELET_NODE_IP: [u8; 4] = [198, 18, 56, 1];
const KUBELET_NODE_BRIDGE: &str = "kltbrknode";
const CONTAINERD_BRIDGE: &str = "kltbrk0";
const CONTAINERD_SUBNET: &str = "198.18.55.0/24";

/// kubelet-lite's node and its runtime's pod network.
const LITE_NODE: &str = "klt-bench-lite";
const LITE_NODE_IP: [u8; 4] = [198, 18, 54, 1];
const LITE_NODE_BRIDGE: &str = "kltbklnode";
const LITE_BRIDGE: &str = "kltbkl0";
const LITE_SUBNET: &str = "198.18.53.0/24";

/// The Kubernetes binaries the benchmark runs.
const KUBERNETES_BINARIES: [&str; 4] = ["kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet"];

/// Pods created at once, by default.
const DEFAULT_PODS: usize = 20;
/// How long the node is left alone with every pod running while its CPU time is counted.
const IDLE: Duration = Duration::from_secs(60);
/// How long all the pods may take to go once deleted.
const DELETE_TIMEOUT: Duration = Duration::from_secs(300);
/// The clock ticks of `/proc/PID/stat`'s times (`USER_HZ`, 100 on every Linux this runs on).
const USER_HZ: f64 = 100.0;

/// How long all the pods may take to become Ready.
const READY_TIMEOUT: Duration = Duration::from_secs(240);
/// How long the watch gets to be established before the pods are created.
const WATCH_SETTLE: Duration = Duration::from_secs(3);
/// How long the node gets, once every pod is Ready, before it is measured idle.
const SETTLE: Duration = Duration::from_secs(5);

/// The issues' targets for kubelet-lite: create-to-Ready p99 of a burst of up to
/// [`SMALL_BURST`] pods, and of a bigger one.
const TARGET_P99_SMALL: Duration = Duration::from_secs(1);
const SMALL_BURST: usize = 20;
const TARGET_P99: Duration = Duration::from_secs(3);
const TARGET_AGENT_RSS_MB: f64 = 25.0;
const TARGET_NODE_MB: f64 = 50.0;
/// Idle, as a share of one core, and as a share of the kubelet's node.
const TARGET_IDLE_CPU: f64 = 0.01;
const TARGET_IDLE_VS_KUBELET: f64 = 0.1;
const TARGET_DELETE: Duration = Duration::from_secs(3);

/// The two nodes, as the tables name them.
const KUBELET: &str = "kubelet";
const KUBELET_LITE: &str = "kubelet-lite";

fn main() -> ExitCode {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(err) => {
            eprintln!("node_pods: {err:#}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => match Missing::find(&err) {
            Some(missing) if !test_harness::in_ci() => {
                eprintln!("node_pods: skipped, missing:\n{}", missing.explain());
                ExitCode::SUCCESS
            }
            _ => {
                eprintln!("node_pods: {err:#}");
                ExitCode::FAILURE
            }
        },
    }
}

/// The command line: `--pods N`, `--only NODE`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Args {
    pods: usize,
    only: Option<String>,
}

impl Args {
    /// Parses the arguments `cargo bench` passes on (its `--bench` flag and a name
    /// filter are dropped).
    fn parse(args: impl IntoIterator<Item = String>) -> anyhow::Result<Args> {
        let mut parsed = Args {
            pods: DEFAULT_PODS,
            only: None,
        };
        let mut args = args.into_iter().filter(|arg| arg != "--bench");
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((flag, value)) => (flag.to_owned(), Some(value.to_owned())),
                None => (arg.clone(), None),
            };
            if !flag.starts_with("--") {
                continue; // a name filter
            }
            let value = match inline {
                Some(value) => value,
                None => args.next().with_context(|| format!("{flag} needs a value"))?,
            };
            match flag.as_str() {
                "--pods" => {
                    parsed.pods = value
                        .parse()
                        .with_context(|| format!("--pods takes a number, not {value:?}"))?;
                    if parsed.pods == 0 {
                        bail!("--pods must be at least 1");
                    }
                }
                "--only" if value == KUBELET || value == KUBELET_LITE => parsed.only = Some(value),
                "--only" => bail!("--only takes {KUBELET} or {KUBELET_LITE}, not {value:?}"),
                other => bail!("unknown option {other}"),
            }
        }
        Ok(parsed)
    }

    fn runs(&self, node: &str) -> bool {
        self.only.as_deref().is_none_or(|only| only == node)
    }
}

/// What one node measured.
#[derive(Debug, Clone)]
struct Measured {
    /// Create-to-Ready of each pod, sorted.
    ready: Vec<Duration>,
    /// The agent with all the pods running.
    agent: Memory,
    /// The whole node with all the pods running.
    node: Memory,
    /// How many processes the whole node is made of then.
    node_processes: usize,
    /// The CPU time the whole node used over [`IDLE`], as a share of one core.
    idle_cpu: f64,
    /// From the delete of every pod until the last was gone.
    deleted_in: Duration,
}

fn run(args: &Args) -> anyhow::Result<()> {
    test_harness::control_plane::kubernetes_binaries(&KUBERNETES_BINARIES)?;
    test_harness::require_tools(&["docker-registry", "busybox", "containerd", "runc"])?;
    let registry = Registry::start()?;
    let images = test_harness::push_test_images(&registry)?;
    let control_plane = ControlPlane::start()?;
    let mut results: Vec<(&str, Measured)> = Vec::new();
    if args.runs(KUBELET) {
        let measured = measure_kubelet(&control_plane, &registry, &images, args.pods)?;
        results.push((KUBELET, measured));
    }
    if args.runs(KUBELET_LITE) {
        let measured = measure_kubelet_lite(&control_plane, &registry, &images, args.pods)?;
        results.push((KUBELET_LITE, measured));
    }
    print!("{}", report(args.pods, &results));
    Ok(())
}

/// The real kubelet 1.20 on containerd 1.6.
fn measure_kubelet(
    control_plane: &ControlPlane,
    registry: &Registry,
    images: &TestImages,
    pods: usize,
) -> anyhow::Result<Measured> {
    let containerd = Containerd::start_with(
        registry,
        images,
        ContainerdOptions::with_network(CONTAINERD_BRIDGE, CONTAINERD_SUBNET),
    )?;
    let options = KubeletOptions {
        node_name: KUBELET_NODE.into(),
        node_ip: KUBELET_NODE_IP.into(),
        node_bridge: KUBELET_NODE_BRIDGE.into(),
        ..KubeletOptions::default()
    };
    let kubelet = Kubelet::start(control_plane, &containerd.endpoint(), options)?;
    let agent = kubelet.pid().context("the kubelet is not running")?;
    let daemon = containerd.pid().context("containerd is not running")?;
    let containerd_dir = containerd.dir().to_path_buf();
    let node_processes = || {
        let mut pids = BTreeSet::from([agent, daemon]);
        pids.extend(process::pids_with_cmdline_containing(&containerd_dir.to_string_lossy()));
        pids
    };
    let measured = measure(
        control_plane,
        KUBELET_NODE,
        &images.busybox,
        pods,
        agent,
        node_processes,
    )
    .with_context(|| format!("the kubelet's log ends with:\n{}", kubelet.log_tail(30)));
    drop(kubelet);
    drop(containerd);
    forget_pods(control_plane, KUBELET_NODE);
    measured
}

/// kubelet-lite with its embedded runtime-core.
fn measure_kubelet_lite(
    control_plane: &ControlPlane,
    registry: &Registry,
    images: &TestImages,
    pods: usize,
) -> anyhow::Result<Measured> {
    // Built with this bench's profile (release): the monitor goes beside kubelet-lite.
    e2e::workspace_binary("runtime-core", "runtime-core")?;
    let binary = e2e::workspace_binary("kubelet-lite", "kubelet-lite")?;
    let options = KubeletLiteOptions {
        node_name: LITE_NODE.into(),
        node_ip: LITE_NODE_IP.into(),
        node_bridge: LITE_NODE_BRIDGE.into(),
        pod_bridge: LITE_BRIDGE.into(),
        pod_subnet: LITE_SUBNET.into(),
        log_filter: "info".into(),
        ..KubeletLiteOptions::default()
    };
    let node = KubeletLite::start(&binary, control_plane, registry, options)?;
    let agent = node.pid().context("kubelet-lite is not running")?;
    // The monitors' command lines name the node's scratch directory, which holds its root.
    let node_dir = node.root_dir().parent().unwrap_or(node.root_dir()).to_path_buf();
    let node_processes = || {
        let mut pids = BTreeSet::from([agent]);
        pids.extend(process::pids_with_cmdline_containing(&node_dir.to_string_lossy()));
        pids
    };
    let measured = measure(control_plane, LITE_NODE, &images.busybox, pods, agent, node_processes)
        .with_context(|| format!("kubelet-lite's log ends with:\n{}", node.log_tail(30)));
    drop(node);
    forget_pods(control_plane, LITE_NODE);
    measured
}

/// Creates `pods` pods on `node` at once, times them to Ready, reads the agent's and the
/// whole node's memory, counts the node's CPU time over [`IDLE`], then deletes every pod
/// and times that.
fn measure(
    control_plane: &ControlPlane,
    node: &str,
    image: &str,
    pods: usize,
    agent: u32,
    node_processes: impl Fn() -> BTreeSet<u32>,
) -> anyhow::Result<Measured> {
    let names: Vec<String> = (0..pods).map(|i| format!("{node}-{i:02}")).collect();
    let mut watch = Watch::start(control_plane, node)?;
    std::thread::sleep(WATCH_SETTLE);
    control_plane.kubectl_with_input(["create", "-f", "-"], &pod_list(&names, node, image))?;
    let ready = watch.until_ready(&names, READY_TIMEOUT);
    watch.stop();
    let mut ready = ready.with_context(|| {
        let status = control_plane
            .kubectl(["get", "pods", "-l", &format!("bench-node={node}"), "-o", "wide"])
            .unwrap_or_else(|err| format!("{err:#}"));
        format!("pods on {node}:\n{status}")
    })?;
    ready.sort();
    note(format!(
        "{node}: {pods} pods Ready, the last {:.2?} after it was created",
        ready.last().copied().unwrap_or_default()
    ));
    let agent_memory = Memory::of(agent)?;
    std::thread::sleep(SETTLE);
    let processes = node_processes();
    let node_memory = Memory::sum(&processes)?;
    let idle_cpu = cpu_share(&processes, IDLE)?;
    note(format!(
        "{node}: idle for {IDLE:?} with {pods} pods: {:.2} % of a core",
        idle_cpu * 100.0
    ));
    let deleting = Instant::now();
    let selector = format!("bench-node={node}");
    // Not `kubectl delete --wait`: it waits for the objects one after the other under
    // kubectl's client-side rate limit (5 requests a second), about 20 s for 110 pods
    // however fast the node is. The list is read until it is empty instead.
    control_plane.kubectl(["delete", "pods", "-l", &selector, "--wait=false"])?;
    e2e::eventually(DELETE_TIMEOUT, || {
        let left = control_plane.kubectl(["get", "pods", "-l", &selector, "-o", "name"])?;
        Ok(left.trim().is_empty().then_some(()))
    })
    .context("the pods are not gone")?;
    let deleted_in = deleting.elapsed();
    note(format!("{node}: {pods} pods deleted and gone in {deleted_in:.2?}"));
    Ok(Measured {
        ready,
        agent: agent_memory,
        node: node_memory,
        node_processes: processes.len(),
        idle_cpu,
        deleted_in,
    })
}

/// Removes the pod objects of a node that is gone, at once.
fn forget_pods(control_plane: &ControlPlane, node: &str) {
    let selector = format!("bench-node={node}");
    let args = [
        "delete",
        "pods",
        "-l",
        &selector,
        "--force",
        "--grace-period=0",
        "--wait=false",
    ];
    if let Err(err) = control_plane.kubectl(args) {
        note(format!("removing the pods of {node}: {err:#}"));
    }
}

/// A List of pods `names` bound to `node`, each one busybox `sleep 3600` (killed after a
/// grace period of 1 s: `sleep` as PID 1 ignores SIGTERM).
fn pod_list(names: &[String], node: &str, image: &str) -> String {
    let pod = |name: &String| {
        serde_json::json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "labels": {"bench-node": node}},
            "spec": {
                "nodeName": node,
                "terminationGracePeriodSeconds": 1,
                "containers": [{
                    "name": "sleeper",
                    "image": image,
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["sleep", "3600"],
                }],
            },
        })
    };
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "List",
        "items": names.iter().map(pod).collect::<Vec<_>>(),
    })
    .to_string()
}

/// `kubectl get pods --watch` on a node's pods, its lines timestamped as they arrive.
struct Watch {
    child: Child,
    lines: mpsc::Receiver<(Instant, String)>,
}

impl Watch {
    /// Starts watching the pods labelled `bench-node=node`: one line `NAME READY` per
    /// change, READY being the status of the Ready condition (`True`, `False` or empty).
    fn start(control_plane: &ControlPlane, node: &str) -> anyhow::Result<Watch> {
        let mut command = control_plane.kubectl_command();
        command
            .args(["get", "pods", "--watch", "-l", &format!("bench-node={node}")])
            .arg("--request-timeout=0")
            .arg("-o")
            .arg(r#"jsonpath={.metadata.name} {.status.conditions[?(@.type=="Ready")].status}{"\n"}"#)
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = command.spawn().context("starting kubectl get --watch")?;
        let stdout = child.stdout.take().context("kubectl's standard output")?;
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send((Instant::now(), line)).is_err() {
                    break;
                }
            }
        });
        Ok(Watch { child, lines })
    }

    /// Waits until every pod of `names` has been seen Ready; returns, for each, the time
    /// from its first sighting to its first Ready.
    fn until_ready(&mut self, names: &[String], timeout: Duration) -> anyhow::Result<Vec<Duration>> {
        let deadline = Instant::now() + timeout;
        let mut seen: HashMap<String, Instant> = HashMap::new();
        let mut ready: HashMap<String, Duration> = HashMap::new();
        while ready.len() < names.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok((at, line)) = self.lines.recv_timeout(left) else {
                bail!(
                    "{} of {} pods Ready within {timeout:?} (kubectl's watch {})",
                    ready.len(),
                    names.len(),
                    if self.child.try_wait().ok().flatten().is_some() {
                        "ended"
                    } else {
                        "goes on"
                    }
                );
            };
            let mut fields = line.split_whitespace();
            let (Some(name), status) = (fields.next(), fields.next()) else {
                continue;
            };
            if !names.iter().any(|n| n == name) {
                continue;
            }
            let created = *seen.entry(name.to_owned()).or_insert(at);
            if status == Some("True") {
                ready.entry(name.to_owned()).or_insert(at - created);
            }
        }
        Ok(ready.into_values().collect())
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Rss and Pss of processes, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Memory {
    rss: u64,
    pss: u64,
}

impl Memory {
    /// Of process `pid`, from `/proc/PID/smaps_rollup`.
    fn of(pid: u32) -> anyhow::Result<Memory> {
        let path = Path::new("/proc").join(pid.to_string()).join("smaps_rollup");
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let kilobytes = |key: &str| {
            text.lines()
                .filter_map(|line| line.strip_prefix(key))
                .find_map(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
                .with_context(|| format!("{key} in {}", path.display()))
        };
        Ok(Memory {
            rss: kilobytes("Rss:")? * 1024,
            pss: kilobytes("Pss:")? * 1024,
        })
    }

    /// Summed over `pids`; a process gone meanwhile counts nothing.
    fn sum(pids: &BTreeSet<u32>) -> anyhow::Result<Memory> {
        let mut total = Memory::default();
        for &pid in pids {
            if let Ok(memory) = Memory::of(pid) {
                total.rss += memory.rss;
                total.pss += memory.pss;
            }
        }
        if total == Memory::default() {
            bail!("none of processes {pids:?} could be read");
        }
        Ok(total)
    }
}

/// The CPU time `pids` use over `period`, as a share of one core: `utime` + `stime` of
/// `/proc/PID/stat` before and after, of the processes alive at both ends.
fn cpu_share(pids: &BTreeSet<u32>, period: Duration) -> anyhow::Result<f64> {
    let ticks = |pid: u32| -> Option<u64> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // After the command in parentheses: state is field 3, utime 14 and stime 15.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
    };
    let before: HashMap<u32, u64> = pids.iter().filter_map(|&pid| Some((pid, ticks(pid)?))).collect();
    if before.is_empty() {
        bail!("none of processes {pids:?} could be read");
    }
    let started = Instant::now();
    std::thread::sleep(period);
    let used: u64 = (before.iter())
        .filter_map(|(&pid, &then)| Some(ticks(pid)?.saturating_sub(then)))
        .sum();
    Ok(used as f64 / USER_HZ / started.elapsed().as_secs_f64())
}

/// Megabytes (10^6 bytes).
fn megabytes(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

/// The nearest-rank percentile `p` (0-100) of sorted `samples`.
fn percentile(samples: &[Duration], p: usize) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    let rank = (samples.len() * p).div_ceil(100).clamp(1, samples.len());
    samples[rank - 1]
}

/// The tables, the ratios (kubelet / kubelet-lite) and the targets.
fn report(pods: usize, results: &[(&str, Measured)]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let secs = |d: Duration| d.as_secs_f64();
    let _ = writeln!(out, "\n{pods} pods created at once, create-to-Ready (s):");
    let _ = writeln!(
        out,
        "{:<14} {:>7} {:>7} {:>7} {:>7}",
        "node", "min", "p50", "p99", "max"
    );
    for (name, m) in results {
        let _ = writeln!(
            out,
            "{name:<14} {:>7.2} {:>7.2} {:>7.2} {:>7.2}",
            secs(percentile(&m.ready, 0)),
            secs(percentile(&m.ready, 50)),
            secs(percentile(&m.ready, 99)),
            secs(percentile(&m.ready, 100)),
        );
    }
    let _ = writeln!(out, "\nmemory (MB), idle CPU and deletion, with {pods} pods:");
    let _ = writeln!(
        out,
        "{:<14} {:>10} {:>10} {:>22} {:>12} {:>12}",
        "node", "agent Rss", "agent Pss", "node Rss / Pss", "idle CPU %", "deleted (s)"
    );
    for (name, m) in results {
        let _ = writeln!(
            out,
            "{name:<14} {:>10.1} {:>10.1} {:>12.1} / {:<7.1} {:>12.2} {:>12.2}   ({} processes)",
            megabytes(m.agent.rss),
            megabytes(m.agent.pss),
            megabytes(m.node.rss),
            megabytes(m.node.pss),
            m.idle_cpu * 100.0,
            secs(m.deleted_in),
            m.node_processes,
        );
    }
    let find = |name: &str| results.iter().find(|(n, _)| *n == name).map(|(_, m)| m);
    if let (Some(kubelet), Some(lite)) = (find(KUBELET), find(KUBELET_LITE)) {
        let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
        let _ = writeln!(out, "\nkubelet / kubelet-lite:");
        for (what, a, b) in [
            (
                "p50",
                secs(percentile(&kubelet.ready, 50)),
                secs(percentile(&lite.ready, 50)),
            ),
            (
                "p99",
                secs(percentile(&kubelet.ready, 99)),
                secs(percentile(&lite.ready, 99)),
            ),
            ("agent Rss", megabytes(kubelet.agent.rss), megabytes(lite.agent.rss)),
            ("node Pss", megabytes(kubelet.node.pss), megabytes(lite.node.pss)),
            ("idle CPU", kubelet.idle_cpu, lite.idle_cpu),
            ("deletion", secs(kubelet.deleted_in), secs(lite.deleted_in)),
        ] {
            let _ = writeln!(out, "  {what:<10} {:.1}x", ratio(a, b));
        }
    }
    if let Some(lite) = find(KUBELET_LITE) {
        let verdict = |met: bool| if met { "met" } else { "NOT met" };
        let p99 = percentile(&lite.ready, 99);
        let target_p99 = if pods <= SMALL_BURST {
            TARGET_P99_SMALL
        } else {
            TARGET_P99
        };
        let _ = writeln!(out, "\ntargets (kubelet-lite):");
        let _ = writeln!(
            out,
            "  p99 {:.2} s <= {:.0} s: {}",
            secs(p99),
            secs(target_p99),
            verdict(p99 <= target_p99)
        );
        let rss = megabytes(lite.agent.rss);
        let _ = writeln!(
            out,
            "  agent Rss {rss:.1} MB <= {TARGET_AGENT_RSS_MB} MB: {}",
            verdict(rss <= TARGET_AGENT_RSS_MB)
        );
        let node = megabytes(lite.node.pss);
        let _ = writeln!(
            out,
            "  whole node with {pods} pods, Pss {node:.1} MB (Rss {:.1} MB) <= {TARGET_NODE_MB} MB: {}",
            megabytes(lite.node.rss),
            verdict(node <= TARGET_NODE_MB)
        );
        let _ = writeln!(
            out,
            "  idle {:.2} % of a core <= {:.0} %: {}",
            lite.idle_cpu * 100.0,
            TARGET_IDLE_CPU * 100.0,
            verdict(lite.idle_cpu <= TARGET_IDLE_CPU)
        );
        if let Some(kubelet) = find(KUBELET) {
            let _ = writeln!(
                out,
                "  idle at most a tenth of the kubelet's node ({:.2} %): {}",
                kubelet.idle_cpu * 100.0,
                verdict(lite.idle_cpu <= kubelet.idle_cpu * TARGET_IDLE_VS_KUBELET)
            );
        }
        let _ = writeln!(
            out,
            "  all pods gone {:.2} s after the delete <= {:.0} s: {}",
            secs(lite.deleted_in),
            secs(TARGET_DELETE),
            verdict(lite.deleted_in <= TARGET_DELETE)
        );
    }
    out
}
