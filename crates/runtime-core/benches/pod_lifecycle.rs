//! Pod and container lifecycles and memory: runtime-core's daemon against containerd 1.6,
//! both called over CRI on their unix sockets, both with a CNI bridge network of their own
//! and pulling from one local registry through the same `hosts.toml` mirrors.
//!
//! ```text
//! cargo bench -p runtime-core --bench pod_lifecycle [-- --samples N] [--warmup N] [--only NAME]
//! ```
//!
//! **Latencies.** One sample is one fresh pod, taken through the whole lifecycle the kubelet
//! drives: RunPodSandbox, CreateContainer (busybox `sleep 3600`), StartContainer,
//! StopContainer (timeout 10 s), RemoveContainer, StopPodSandbox, RemovePodSandbox, each
//! call timed alone from request to response. The runtimes take turns, and which goes first
//! alternates, so what one leaves behind (page cache, CNI state) falls on both alike. The
//! warm-up lifecycles (not counted) absorb first-use costs such as loading the CNI plugins.
//! The container's shell traps SIGTERM and waits on a background `sleep`, so it exits as
//! soon as StopContainer signals it, as a well-behaved workload does: the stop measures the
//! runtime, not the grace period.
//!
//! **Memory.** Rss and Pss from `/proc/PID/smaps_rollup` of the daemon's own process, idle
//! (busybox pulled, no pod), then with 10 and with 50 running pods of one busybox
//! `sleep 3600` container each; and what each running pod costs outside the daemon, summed
//! over those processes and divided by the pods:
//! - runtime-core: the `runtime-core-monitor` of each container (the pod's namespaces are
//!   held by bind mounts, not by a process);
//! - containerd: the `containerd-shim-runc-v2` of each pod and the pod's pause process (the
//!   sandbox's init, whose pid `PodSandboxStatus` reports in its verbose info; the test
//!   pause image is a busybox shell script, and the `sleep` it waits on is left out, as the
//!   real pause has none).
//!
//! The containers' own processes (`sh`, `sleep`) are counted for neither. Pss shares each
//! page among the processes mapping it, which is how many copies of one small binary are
//! judged fairly; it also shares them with copies outside this benchmark (another test's
//! containerd, say), so a daemon's Pss reads lower while other instances run.
//!
//! Needs root, docker-registry, containerd, runc, the CNI plugins and a static busybox.
//! Without them it says what is missing and exits 0 (1 in CI, where they must be there).
//! When a runtime fails a call, the tables show what was measured before, and the program
//! names the call, its error and the end of that daemon's log, and exits 1.

mod common;

use std::fmt::Write as _;
use std::ops::Add;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use common::{Args, CONTAINERD, RUNTIME_CORE, Summary, mb, verdict};
use cri_api::client::{ImageServiceClient, RuntimeServiceClient};
use cri_api::v1;
use test_harness::daemon::{Daemon, DaemonKind};
use test_harness::{Containerd, ContainerdOptions, Registry, RuntimeCore, RuntimeCoreOptions, TestImages};
use test_harness::{cri, pods, process};
use tonic::transport::Channel;

/// containerd's pod network: its own, so the benchmark never waits for a test suite
/// holding another one.
const CONTAINERD_BRIDGE: &str = "kltbench1";
const CONTAINERD_SUBNET: &str = "198.18.201.0/24";
/// runtime-core's pod network.
const RUNTIME_CORE_BRIDGE: &str = "kltbench2";
const RUNTIME_CORE_SUBNET: &str = "198.18.202.0/24";

/// The Kubernetes namespace of the benchmark's pods.
const NAMESPACE: &str = "pod-lifecycle-bench";
/// The name of each pod's container.
const CONTAINER: &str = "sleeper";
/// busybox `sleep 3600` as PID 1 of the container, ending (exit 0) on SIGTERM at once: the
/// shell waits on a background `sleep`, and `wait` returns as soon as a trapped signal
/// arrives (a foreground `sleep` would hold the trap back until it ended).
const SLEEP_3600: &str = "trap 'kill $sleeper; exit 0' TERM; sleep 3600 & sleeper=$!; wait $sleeper";
/// StopContainer's grace period; the container exits on SIGTERM long before it ends.
const STOP_TIMEOUT_SECONDS: i64 = 10;
/// How long one CRI call may take (well above the stop timeout).
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Running pods at which memory is read, in increasing order.
const POD_COUNTS: [usize; 2] = [10, 50];
/// How long the processes get to settle (finish start-up work, collect garbage) before
/// their memory is read.
const SETTLE: Duration = Duration::from_secs(2);
/// How much of a failed daemon's log the report shows.
const LOG_TAIL_LINES: usize = 40;

/// The daemon's idle RSS must not exceed this (MB).
const TARGET_IDLE_RSS_MB: f64 = 15.0;
/// What a running container may cost outside the daemon, PSS (MB).
const TARGET_PER_CONTAINER_PSS_MB: f64 = 1.0;
/// containerd's medians on this kind of machine (critest's benchmark, ENVIRONMENT.md).
const CONTAINERD_REFERENCE: &str = "containerd here: RunPodSandbox 65 ms, StartContainer 42 ms";

/// Samples per runtime unless `--samples` says otherwise.
const DEFAULT_SAMPLES: usize = 50;

fn main() -> ExitCode {
    common::main("pod_lifecycle", DEFAULT_SAMPLES, run)
}

/// The CRI calls of one lifecycle, in the order a sample makes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    RunPodSandbox,
    CreateContainer,
    StartContainer,
    StopContainer,
    RemoveContainer,
    StopPodSandbox,
    RemovePodSandbox,
}

impl Call {
    const ALL: [Call; 7] = [
        Call::RunPodSandbox,
        Call::CreateContainer,
        Call::StartContainer,
        Call::StopContainer,
        Call::RemoveContainer,
        Call::StopPodSandbox,
        Call::RemovePodSandbox,
    ];

    fn name(self) -> &'static str {
        match self {
            Call::RunPodSandbox => "RunPodSandbox",
            Call::CreateContainer => "CreateContainer",
            Call::StartContainer => "StartContainer",
            Call::StopContainer => "StopContainer",
            Call::RemoveContainer => "RemoveContainer",
            Call::StopPodSandbox => "StopPodSandbox",
            Call::RemovePodSandbox => "RemovePodSandbox",
        }
    }
}

/// Awaits one CRI call, timed from request to response; the error names the call.
async fn timed<T>(
    call: Call,
    request: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> anyhow::Result<(T, f64)> {
    let started = Instant::now();
    let response = cri::within(CALL_TIMEOUT, request).await.context(call.name())?;
    Ok((response, started.elapsed().as_secs_f64() * 1e3))
}

/// Rss and Pss of one process or the sum over several, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Memory {
    rss: u64,
    pss: u64,
}

impl Add for Memory {
    type Output = Memory;
    fn add(self, other: Memory) -> Memory {
        Memory {
            rss: self.rss + other.rss,
            pss: self.pss + other.pss,
        }
    }
}

impl Memory {
    /// Process `pid`'s Rss and Pss, from `/proc/PID/smaps_rollup`.
    fn of(pid: u32) -> anyhow::Result<Memory> {
        let path = format!("/proc/{pid}/smaps_rollup");
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        let field = |name: &str| -> anyhow::Result<u64> {
            let line = text
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .with_context(|| format!("no {name} in {path}"))?;
            let kilobytes = line.trim().trim_end_matches("kB").trim();
            Ok(kilobytes
                .parse::<u64>()
                .with_context(|| format!("{name} {line:?} in {path}"))?
                * 1024)
        };
        Ok(Memory {
            rss: field("Rss:")?,
            pss: field("Pss:")?,
        })
    }

    /// The sum over `pids`.
    fn sum(pids: &[u32]) -> anyhow::Result<Memory> {
        pids.iter()
            .try_fold(Memory::default(), |total, &pid| Ok(total + Memory::of(pid)?))
    }

    /// This memory shared out over `n` (pods).
    fn per(self, n: usize) -> (f64, f64) {
        let n = n.max(1) as f64;
        (mb(self.rss) / n, mb(self.pss) / n)
    }
}

/// What a running pod costs a runtime outside its daemon, and how to find those processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Overhead {
    /// One `runtime-core-monitor` per container whose command line names the daemon's
    /// scratch directory.
    Monitors,
    /// One `containerd-shim-runc-v2` per pod whose command line names the daemon's socket
    /// (in its scratch directory), and each pod's pause process.
    ShimsAndPause,
}

const MONITOR_PROGRAM: &str = "runtime-core-monitor";
const SHIM_PROGRAM: &str = "containerd-shim-runc-v2";

/// One kind of per-pod process at one reading: how many there were and their sum.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Group {
    what: &'static str,
    processes: usize,
    total: Memory,
}

/// The memory of one runtime with `pods` running pods.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Reading {
    pods: usize,
    daemon: Memory,
    /// Empty when no pod runs.
    groups: Vec<Group>,
}

impl Reading {
    fn per_pod_total(&self) -> Memory {
        self.groups
            .iter()
            .fold(Memory::default(), |sum, group| sum + group.total)
    }
}

/// One runtime under test, and what was measured of it.
struct Peer<'d> {
    name: &'static str,
    overhead: Overhead,
    client: RuntimeServiceClient<Channel>,
    images: ImageServiceClient<Channel>,
    /// The daemon's process.
    pid: u32,
    /// The daemon's scratch directory, which the command lines of its per-pod processes name.
    dir: PathBuf,
    /// Where pod log directories go.
    log_dir: PathBuf,
    /// The end of the daemon's log, for a failure.
    log_tail: Box<dyn Fn() -> String + 'd>,
    /// Milliseconds, per call in [`Call::ALL`] order.
    latencies: [Vec<f64>; Call::ALL.len()],
    /// Idle, then at each of [`POD_COUNTS`].
    memory: Vec<Reading>,
    /// The first failure; nothing more is measured of this runtime after it.
    failure: Option<String>,
}

/// A pod started for the memory readings.
struct RunningPod {
    id: String,
}

impl<'d> Peer<'d> {
    /// Connects to `daemon`'s CRI socket (on the current tokio runtime, where the channel's
    /// task then lives).
    async fn connect<K: DaemonKind>(
        name: &'static str,
        overhead: Overhead,
        daemon: &'d Daemon<K>,
    ) -> anyhow::Result<Peer<'d>> {
        let pid = daemon.pid().with_context(|| format!("{name} is not running"))?;
        let channel = cri::connect_unix(daemon.socket())
            .await
            .with_context(|| format!("connecting to {name}"))?;
        Ok(Peer {
            name,
            overhead,
            client: RuntimeServiceClient::new(channel.clone()),
            images: ImageServiceClient::new(channel),
            pid,
            dir: daemon.dir().to_path_buf(),
            log_dir: daemon.log_dir().to_path_buf(),
            log_tail: Box::new(move || daemon.log_tail(LOG_TAIL_LINES)),
            latencies: Default::default(),
            memory: Vec::new(),
            failure: None,
        })
    }

    fn ok(&self) -> bool {
        self.failure.is_none()
    }

    /// Records `result`'s error, with the end of the daemon's log, as this runtime's
    /// failure unless an earlier one is recorded.
    fn record<T>(&mut self, what: &str, result: anyhow::Result<T>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(err) => {
                let failure = format!("{} failed: {what}: {err:#}", self.name);
                test_harness::note(&failure);
                if self.failure.is_none() {
                    let tail = (self.log_tail)();
                    self.failure = Some(format!("{failure}\n{}'s log ends with:\n{tail}", self.name));
                }
                None
            }
        }
    }

    async fn pull(&mut self, reference: &str) -> anyhow::Result<()> {
        let request = v1::PullImageRequest {
            image: Some(v1::ImageSpec {
                image: reference.to_string(),
                ..Default::default()
            }),
            ..Default::default()
        };
        cri::within(CALL_TIMEOUT, self.images.pull_image(request))
            .await
            .with_context(|| format!("PullImage {reference}"))?;
        Ok(())
    }

    /// One fresh pod through its whole lifecycle; returns each call's milliseconds.
    async fn lifecycle(&mut self, images: &TestImages) -> anyhow::Result<[f64; Call::ALL.len()]> {
        let pod = pods::pod_config(&self.log_dir, NAMESPACE, "lifecycle")?;
        let container = pods::busybox_container(&images.busybox, CONTAINER, SLEEP_3600, &pod)?;
        let mut ms = [0.0; Call::ALL.len()];
        let client = &mut self.client;

        let run = v1::RunPodSandboxRequest {
            config: Some(pod.clone()),
            runtime_handler: String::new(),
        };
        let (response, t) = timed(Call::RunPodSandbox, client.run_pod_sandbox(run)).await?;
        ms[Call::RunPodSandbox as usize] = t;
        let pod_sandbox_id = response.pod_sandbox_id;

        let create = v1::CreateContainerRequest {
            pod_sandbox_id: pod_sandbox_id.clone(),
            config: Some(container),
            sandbox_config: Some(pod),
        };
        let (response, t) = timed(Call::CreateContainer, client.create_container(create)).await?;
        ms[Call::CreateContainer as usize] = t;
        let container_id = response.container_id;

        let start = v1::StartContainerRequest {
            container_id: container_id.clone(),
        };
        ms[Call::StartContainer as usize] = timed(Call::StartContainer, client.start_container(start)).await?.1;

        let stop = v1::StopContainerRequest {
            container_id: container_id.clone(),
            timeout: STOP_TIMEOUT_SECONDS,
        };
        ms[Call::StopContainer as usize] = timed(Call::StopContainer, client.stop_container(stop)).await?.1;

        let remove = v1::RemoveContainerRequest { container_id };
        ms[Call::RemoveContainer as usize] = timed(Call::RemoveContainer, client.remove_container(remove)).await?.1;

        let stop = v1::StopPodSandboxRequest {
            pod_sandbox_id: pod_sandbox_id.clone(),
        };
        ms[Call::StopPodSandbox as usize] = timed(Call::StopPodSandbox, client.stop_pod_sandbox(stop)).await?.1;

        let remove = v1::RemovePodSandboxRequest { pod_sandbox_id };
        ms[Call::RemovePodSandbox as usize] = timed(Call::RemovePodSandbox, client.remove_pod_sandbox(remove))
            .await?
            .1;
        Ok(ms)
    }

    /// A pod with one running busybox `sleep 3600` container, for the memory readings.
    async fn start_pod(&mut self, images: &TestImages) -> anyhow::Result<RunningPod> {
        let pod = pods::pod_config(&self.log_dir, NAMESPACE, "resident")?;
        let container = pods::busybox_container(&images.busybox, CONTAINER, SLEEP_3600, &pod)?;
        let run = v1::RunPodSandboxRequest {
            config: Some(pod.clone()),
            runtime_handler: String::new(),
        };
        let id = timed(Call::RunPodSandbox, self.client.run_pod_sandbox(run))
            .await?
            .0
            .pod_sandbox_id;
        let create = v1::CreateContainerRequest {
            pod_sandbox_id: id.clone(),
            config: Some(container),
            sandbox_config: Some(pod),
        };
        let container_id = timed(Call::CreateContainer, self.client.create_container(create))
            .await?
            .0
            .container_id;
        let start = v1::StartContainerRequest { container_id };
        timed(Call::StartContainer, self.client.start_container(start)).await?;
        Ok(RunningPod { id })
    }

    /// StopPodSandbox and RemovePodSandbox (which removes its container).
    async fn remove_pod(&mut self, pod: &RunningPod) -> anyhow::Result<()> {
        let stop = v1::StopPodSandboxRequest {
            pod_sandbox_id: pod.id.clone(),
        };
        timed(Call::StopPodSandbox, self.client.stop_pod_sandbox(stop)).await?;
        let remove = v1::RemovePodSandboxRequest {
            pod_sandbox_id: pod.id.clone(),
        };
        timed(Call::RemovePodSandbox, self.client.remove_pod_sandbox(remove)).await?;
        Ok(())
    }

    /// Reads the daemon's memory and that of the per-pod processes of `pods`.
    async fn read_memory(&mut self, pods: &[RunningPod]) -> anyhow::Result<Reading> {
        tokio::time::sleep(SETTLE).await;
        let mut groups = Vec::new();
        if !pods.is_empty() {
            match self.overhead {
                Overhead::Monitors => {
                    groups.push(self.group("monitor", &processes_of(MONITOR_PROGRAM, &self.dir))?);
                }
                Overhead::ShimsAndPause => {
                    groups.push(self.group("shim", &processes_of(SHIM_PROGRAM, &self.dir))?);
                    let mut pauses = Vec::new();
                    for pod in pods {
                        pauses.push(self.sandbox_pid(&pod.id).await?);
                    }
                    groups.push(self.group("pause", &pauses)?);
                }
            }
        }
        Ok(Reading {
            pods: pods.len(),
            daemon: Memory::of(self.pid).with_context(|| format!("{}'s daemon", self.name))?,
            groups,
        })
    }

    fn group(&self, what: &'static str, pids: &[u32]) -> anyhow::Result<Group> {
        Ok(Group {
            what,
            processes: pids.len(),
            total: Memory::sum(pids).with_context(|| format!("{}'s {what} processes", self.name))?,
        })
    }

    /// The pid of a pod's sandbox init (containerd's pause), from PodSandboxStatus's
    /// verbose info: `info["info"]` is JSON with a `pid` field.
    async fn sandbox_pid(&mut self, pod_sandbox_id: &str) -> anyhow::Result<u32> {
        let request = v1::PodSandboxStatusRequest {
            pod_sandbox_id: pod_sandbox_id.to_string(),
            verbose: true,
        };
        let response = cri::within(CALL_TIMEOUT, self.client.pod_sandbox_status(request))
            .await
            .context("PodSandboxStatus")?;
        let info = response
            .info
            .get("info")
            .context("PodSandboxStatus has no verbose info")?;
        let info: serde_json::Value = serde_json::from_str(info).context("PodSandboxStatus's info")?;
        let pid = info
            .get("pid")
            .and_then(serde_json::Value::as_u64)
            .context("PodSandboxStatus's info has no pid")?;
        u32::try_from(pid).context("sandbox pid")
    }
}

/// The live processes running `program` (the file name of their first argument) whose
/// command line names a path in `dir`.
fn processes_of(program: &str, dir: &Path) -> Vec<u32> {
    let needle = format!("{}/", dir.display());
    process::pids_with_cmdline_containing(&needle)
        .into_iter()
        .filter(|&pid| {
            let cmdline = process::cmdline(pid);
            let argv0 = cmdline.split_whitespace().next().unwrap_or_default();
            Path::new(argv0).file_name().is_some_and(|name| name == program)
        })
        .collect()
}

fn run(args: &Args) -> anyhow::Result<()> {
    test_harness::require_root()?;
    test_harness::require_tools(&[
        "docker-registry",
        "containerd",
        "containerd-shim-runc-v2",
        "runc",
        "busybox",
    ])?;
    let wanted = |name: &str| args.only.as_deref().is_none_or(|only| only == name);
    let registry = Registry::start()?;
    let images = test_harness::push_test_images(&registry)?;
    let containerd = wanted(CONTAINERD)
        .then(|| {
            let options = ContainerdOptions::with_network(CONTAINERD_BRIDGE, CONTAINERD_SUBNET);
            Containerd::start_with(&registry, &images, options)
        })
        .transpose()?;
    let runtime_core = wanted(RUNTIME_CORE)
        .then(|| {
            let options = RuntimeCoreOptions::with_network(RUNTIME_CORE_BRIDGE, RUNTIME_CORE_SUBNET);
            RuntimeCore::start(Path::new(env!("CARGO_BIN_EXE_runtime-core")), &registry, options)
        })
        .transpose()?;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building a tokio runtime")?;
    let mut peers = rt.block_on(async {
        let mut peers = Vec::new();
        if let Some(daemon) = &runtime_core {
            peers.push(Peer::connect(RUNTIME_CORE, Overhead::Monitors, daemon).await?);
        }
        if let Some(daemon) = &containerd {
            peers.push(Peer::connect(CONTAINERD, Overhead::ShimsAndPause, daemon).await?);
        }
        anyhow::Ok(peers)
    })?;
    let load_before = load_average();
    rt.block_on(measure(args, &images, &mut peers));
    let load = (load_before, load_average());
    print!("{}", report(args, &peers, load));
    let failures: Vec<String> = peers.iter().filter_map(|peer| peer.failure.clone()).collect();

    drop(peers);
    drop(rt);
    drop(runtime_core);
    drop(containerd);
    drop(registry);
    if !failures.is_empty() {
        bail!("{}", failures.join("\n\n"));
    }
    Ok(())
}

/// Pulls, reads idle memory, times the lifecycles, then reads memory with running pods. A
/// runtime that fails is left out of every later step; the others go on.
async fn measure(args: &Args, images: &TestImages, peers: &mut [Peer<'_>]) {
    for peer in peers.iter_mut() {
        // Both runtimes hold the sandbox image as a node does: containerd would otherwise
        // pull it in its first RunPodSandbox.
        for reference in [&images.busybox, &images.pause] {
            let result = peer.pull(reference).await;
            if peer.record("pulling the test images", result).is_none() {
                break;
            }
        }
    }
    for peer in peers.iter_mut().filter(|peer| peer.ok()) {
        let reading = peer.read_memory(&[]).await;
        if let Some(reading) = peer.record("reading idle memory", reading) {
            peer.memory.push(reading);
        }
    }

    for round in 0..args.warmup + args.samples {
        let counted = round >= args.warmup;
        for index in common::turns(round, peers.len()) {
            let peer = &mut peers[index];
            if !peer.ok() {
                continue;
            }
            let what = if counted {
                format!("lifecycle sample {}", round - args.warmup)
            } else {
                format!("warm-up lifecycle {round}")
            };
            let result = peer.lifecycle(images).await;
            let Some(ms) = peer.record(&what, result) else {
                continue;
            };
            if counted {
                for (series, t) in peer.latencies.iter_mut().zip(ms) {
                    series.push(t);
                }
            }
            test_harness::note(format!(
                "{what}: {} {}",
                peer.name,
                ms.iter().map(|t| format!("{t:.1}")).collect::<Vec<_>>().join(" ")
            ));
        }
    }

    // One runtime at a time, the other idle, so that neither's start-ups disturb the
    // other's readings.
    for peer in peers.iter_mut().filter(|peer| peer.ok()) {
        let mut running = Vec::new();
        for pods in POD_COUNTS {
            while running.len() < pods {
                let result = peer.start_pod(images).await;
                let Some(pod) = peer.record(&format!("starting resident pod {}", running.len()), result) else {
                    break;
                };
                running.push(pod);
            }
            if !peer.ok() {
                break;
            }
            let reading = peer.read_memory(&running).await;
            let Some(reading) = peer.record(&format!("reading memory with {pods} pods"), reading) else {
                break;
            };
            test_harness::note(format!(
                "{}: {pods} pods: daemon {:.1} MB RSS, {:.1} MB PSS",
                peer.name,
                mb(reading.daemon.rss),
                mb(reading.daemon.pss)
            ));
            peer.memory.push(reading);
        }
        for pod in &running {
            let result = peer.remove_pod(pod).await;
            if peer.record("removing resident pods", result).is_none() {
                break;
            }
        }
    }
}

/// The machine's 1-minute load average (`/proc/loadavg`), or `?`: other work on the
/// machine slows both runtimes, and the report says how busy it was.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".to_string())
}

/// Both tables and the target lines; `load` is the load average before and after.
fn report(args: &Args, peers: &[Peer<'_>], load: (String, String)) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\npod_lifecycle: {} lifecycles per runtime after {} warm-up, alternating; each a fresh pod \
         with one busybox `sleep 3600` container (StopContainer timeout {STOP_TIMEOUT_SECONDS} s); \
         load average {} before, {} after ({} cores)\n",
        args.samples,
        args.warmup,
        load.0,
        load.1,
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    latency_table(&mut out, peers);
    out.push('\n');
    memory_table(&mut out, peers);
    out
}

fn find<'a, 'd>(peers: &'a [Peer<'d>], name: &str) -> Option<&'a Peer<'d>> {
    peers.iter().find(|peer| peer.name == name)
}

fn latency_table(out: &mut String, peers: &[Peer<'_>]) {
    let ours = find(peers, RUNTIME_CORE);
    let theirs = find(peers, CONTAINERD);
    let summary = |peer: Option<&Peer<'_>>, call: Call| peer.and_then(|p| Summary::of(&p.latencies[call as usize]));
    let _ = writeln!(
        out,
        "{:<17} {:-^28}  {:-^28}",
        "latency (ms)", " runtime-core ", " containerd "
    );
    let _ = writeln!(
        out,
        "{:<17} {:>8} {:>9} {:>9}  {:>8} {:>9} {:>9}  {:>7}  target",
        "call", "median", "p90", "min", "median", "p90", "min", "ratio"
    );
    let mut met = Vec::new();
    let mut not_met = Vec::new();
    for call in Call::ALL {
        let cells = |summary: Option<Summary>| match summary {
            Some(s) => format!("{:>8.1} {:>9.1} {:>9.1}", s.median, s.p90, s.min),
            None => format!("{:>8} {:>9} {:>9}", "-", "-", "-"),
        };
        let (a, b) = (summary(ours, call), summary(theirs, call));
        let (ratio, target) = match (a, b) {
            (Some(a), Some(b)) => {
                let ratio = a.median / b.median;
                let ok = a.median <= b.median;
                if ok { &mut met } else { &mut not_met }.push(call.name());
                (format!("{ratio:.2}"), verdict(ok))
            }
            _ => ("-".to_string(), "not measured"),
        };
        let _ = writeln!(
            out,
            "{:<17} {}  {}  {ratio:>7}  {target}",
            call.name(),
            cells(a),
            cells(b)
        );
    }
    let _ = writeln!(out, "ratio: runtime-core median / containerd median");
    let overall = if met.len() + not_met.len() < Call::ALL.len() {
        "not measured for every call".to_string()
    } else if not_met.is_empty() {
        "met for every call".to_string()
    } else {
        format!("NOT met for {}", not_met.join(", "))
    };
    let _ = writeln!(
        out,
        "target: every latency at or below containerd's ({CONTAINERD_REFERENCE}): {overall}"
    );
}

/// `peer`'s memory with `pods` running pods (0: idle), if it was read.
fn reading<'a>(peer: Option<&'a Peer<'_>>, pods: usize) -> Option<&'a Reading> {
    peer.and_then(|p| p.memory.iter().find(|reading| reading.pods == pods))
}

/// The processes `what` of `reading`, with the reading.
fn group<'a>(reading: Option<&'a Reading>, what: &str) -> Option<(&'a Reading, &'a Group)> {
    reading.and_then(|r| r.groups.iter().find(|g| g.what == what).map(|g| (r, g)))
}

fn memory_table(out: &mut String, peers: &[Peer<'_>]) {
    let ours = find(peers, RUNTIME_CORE);
    let theirs = find(peers, CONTAINERD);
    let cells = |values: Option<(f64, f64)>| match values {
        Some((rss, pss)) => format!("{rss:>8.2} {pss:>8.2}"),
        None => format!("{:>8} {:>8}", "-", "-"),
    };
    let _ = writeln!(
        out,
        "{:<32} {:-^17}  {:-^17}",
        "memory (MB)", " runtime-core ", " containerd "
    );
    let _ = writeln!(out, "{:<32} {:>8} {:>8}  {:>8} {:>8}", "", "RSS", "PSS", "RSS", "PSS");
    let daemon = |r: &Reading| (mb(r.daemon.rss), mb(r.daemon.pss));
    for pods in std::iter::once(0).chain(POD_COUNTS) {
        let label = if pods == 0 {
            "daemon, idle".to_string()
        } else {
            format!("daemon, {pods} pods")
        };
        let _ = writeln!(
            out,
            "{label:<32} {}  {}",
            cells(reading(ours, pods).map(daemon)),
            cells(reading(theirs, pods).map(daemon))
        );
    }
    for pods in POD_COUNTS {
        let (a, b) = (reading(ours, pods), reading(theirs, pods));
        let _ = writeln!(
            out,
            "{:<32} {}  {}",
            format!("per pod at {pods} pods"),
            cells(a.map(|r| r.per_pod_total().per(r.pods))),
            cells(b.map(|r| r.per_pod_total().per(r.pods)))
        );
        for what in ["monitor", "shim", "pause"] {
            let (ga, gb) = (group(a, what), group(b, what));
            let Some(processes) = ga.or(gb).map(|(_, g)| g.processes) else {
                continue;
            };
            let _ = writeln!(
                out,
                "{:<32} {}  {}",
                format!("  {what} ({processes} processes)"),
                cells(ga.map(|(r, g)| g.total.per(r.pods))),
                cells(gb.map(|(r, g)| g.total.per(r.pods)))
            );
        }
    }
    let _ = writeln!(
        out,
        "per pod: the processes a running pod adds outside the daemon, summed and divided by the pods \
         (containers' own processes excluded)"
    );

    let idle = |peer| reading(peer, 0).map(|r| mb(r.daemon.rss));
    let line = match idle(ours) {
        Some(rss) => format!(
            "runtime-core {rss:.1} MB (containerd {}): {}",
            idle(theirs).map_or("-".to_string(), |rss| format!("{rss:.1} MB")),
            verdict(rss <= TARGET_IDLE_RSS_MB)
        ),
        None => "not measured".to_string(),
    };
    let _ = writeln!(out, "target: daemon idle RSS <= {TARGET_IDLE_RSS_MB} MB: {line}");

    let per_pod_pss = |peer| -> Vec<(usize, f64)> {
        POD_COUNTS
            .iter()
            .filter_map(|&pods| reading(peer, pods).map(|r| (pods, r.per_pod_total().per(r.pods).1)))
            .collect()
    };
    let listed = |values: &[(usize, f64)]| {
        values
            .iter()
            .map(|(pods, pss)| format!("{pss:.2} MB at {pods} pods"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (a, b) = (per_pod_pss(ours), per_pod_pss(theirs));
    let line = if a.len() == POD_COUNTS.len() {
        format!(
            "runtime-core {} (containerd shim + pause: {}): {}",
            listed(&a),
            if b.is_empty() { "-".to_string() } else { listed(&b) },
            verdict(a.iter().all(|&(_, pss)| pss <= TARGET_PER_CONTAINER_PSS_MB))
        )
    } else {
        "not measured".to_string()
    };
    let _ = writeln!(
        out,
        "target: <= {TARGET_PER_CONTAINER_PSS_MB} MB per running container (PSS): {line}"
    );
}
