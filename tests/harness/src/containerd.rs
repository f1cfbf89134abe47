//! containerd 1.6 with its CRI plugin, private to one test environment.
//!
//! Everything it touches is its own: root, state, sockets and logs in a scratch
//! directory, a CNI network on its own bridge and subnet, runc state under its own root,
//! image pulls for `docker.io` and `registry.k8s.io` sent to the local [`Registry`]
//! through `hosts.toml` mirrors. Dropping it removes all of that, and a later run reaps it
//! if the test process died first (see [`crate::scratch`]).

use std::fs::{self, OpenOptions};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use cri_api::client::{ImageServiceClient, RuntimeServiceClient};
use tonic::transport::Channel;

use crate::cni::BridgeNetwork;
use crate::host::{self, InstanceRecord};
use crate::registry::tail_from;
use crate::scratch::{self, NamedLock, ScratchDir};
use crate::{Registry, TestImages, cri, mirrors, process};

/// The tools [`Containerd::start`] needs.
pub const CONTAINERD_TOOLS: &[&str] = &[
    "containerd",
    "containerd-shim-runc-v2",
    "runc",
    "setpriv",
    "ip",
    "iptables-save",
    "iptables-restore",
    "bridge",
    "host-local",
    "portmap",
    "loopback",
];

/// The CRI namespace of containerd (where CRI keeps pods, containers and images).
pub const CRI_NAMESPACE: &str = "k8s.io";

/// How long SIGTERM has to stop the daemon before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// How long each CRI call of the cleanup may take.
const CLEANUP_CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// What may differ between two containerd environments on one machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerdOptions {
    /// The bridge its CNI network creates (at most 15 characters). Default `kltctr0`.
    pub bridge: String,
    /// The pod subnet. Default `198.18.0.0/24`.
    pub subnet: String,
    /// The CNI network name. Default `kltctr0`.
    pub network_name: String,
    /// How long the daemon may take to answer CRI. Default 60 s.
    pub start_timeout: Duration,
    /// How long to wait for another test process using the same bridge to finish.
    /// Default 10 minutes.
    pub network_lock_timeout: Duration,
}

impl Default for ContainerdOptions {
    fn default() -> ContainerdOptions {
        ContainerdOptions {
            bridge: "kltctr0".into(),
            subnet: "198.18.0.0/24".into(),
            network_name: "kltctr0".into(),
            start_timeout: Duration::from_secs(60),
            network_lock_timeout: Duration::from_secs(600),
        }
    }
}

impl ContainerdOptions {
    /// Options for another network: bridge `bridge` (also the network's name) on `subnet`.
    pub fn with_network(bridge: impl Into<String>, subnet: impl Into<String>) -> ContainerdOptions {
        let bridge = bridge.into();
        ContainerdOptions {
            network_name: bridge.clone(),
            bridge,
            subnet: subnet.into(),
            ..ContainerdOptions::default()
        }
    }
}

/// The files and directories of one containerd, all inside its scratch directory.
#[derive(Debug, Clone)]
struct Paths {
    dir: PathBuf,
    root: PathBuf,
    state: PathBuf,
    socket: PathBuf,
    config: PathBuf,
    log: PathBuf,
    pod_logs: PathBuf,
    cni_conf: PathBuf,
    certs_d: PathBuf,
    runc_root: PathBuf,
}

impl Paths {
    fn new(dir: &Path) -> Paths {
        Paths {
            dir: dir.to_path_buf(),
            root: dir.join("root"),
            state: dir.join("state"),
            socket: dir.join("containerd.sock"),
            config: dir.join("config.toml"),
            log: dir.join("containerd.log"),
            pod_logs: dir.join("pod-logs"),
            cni_conf: dir.join("cni/net.d"),
            certs_d: dir.join("certs.d"),
            runc_root: dir.join("state/runc"),
        }
    }
}

/// A running containerd with the CRI plugin. Dropping it stops every pod, the daemon and
/// its shims, and removes its mounts, bridge, iptables rules and files.
///
/// It holds a tokio runtime: tests (plain sync functions) run their async CRI calls with
/// [`Containerd::block_on`]. Do not drop it or call `block_on` from inside async code.
pub struct Containerd {
    options: ContainerdOptions,
    paths: Paths,
    child: Option<Child>,
    /// Offset of this run's output in the shared log file, for error messages.
    log_offset: u64,
    runtime: Option<tokio::runtime::Runtime>,
    channel: Option<Channel>,
    cleaned: bool,
    dir: ScratchDir,
    network_lock: Option<NamedLock>,
}

impl std::fmt::Debug for Containerd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Containerd")
            .field("socket", &self.paths.socket)
            .field("pid", &self.pid())
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Containerd {
    /// Starts containerd with the default options (bridge `kltctr0`, `198.18.0.0/24`),
    /// pulling through mirrors onto `registry`, with `images.pause` as sandbox image.
    ///
    /// Fails with [`crate::Missing`] in the chain if a tool is absent or not root.
    pub fn start(registry: &Registry, images: &TestImages) -> anyhow::Result<Containerd> {
        Containerd::start_with(registry, images, ContainerdOptions::default())
    }

    /// Starts containerd with `options` (see [`Containerd::start`]).
    pub fn start_with(
        registry: &Registry,
        images: &TestImages,
        options: ContainerdOptions,
    ) -> anyhow::Result<Containerd> {
        crate::require_root()?;
        crate::require_tools(CONTAINERD_TOOLS)?;
        let started = Instant::now();
        scratch::reap_stale();
        let network_lock = NamedLock::acquire(&host::network_lock_name(&options.bridge), options.network_lock_timeout)?;
        // Holding the lock, nothing alive uses the bridge: whatever is there is a leftover.
        if host::link_exists(&options.bridge) {
            crate::note(format!(
                "removing bridge {} left behind by an earlier run",
                options.bridge
            ));
        }
        host::teardown_network(&options.bridge, Some(&options.network_name))?;

        let dir = ScratchDir::create("containerd").context("creating containerd's scratch directory")?;
        let paths = Paths::new(dir.path());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("harness-containerd")
            .enable_all()
            .build()
            .context("building a tokio runtime")?;
        let channel = {
            let _guard = runtime.enter();
            cri::lazy_unix_channel(&paths.socket)
        };
        // From here on, a failure drops `containerd`, which cleans up.
        let mut containerd = Containerd {
            options,
            paths,
            child: None,
            log_offset: 0,
            runtime: Some(runtime),
            channel: Some(channel),
            cleaned: false,
            dir,
            network_lock: Some(network_lock),
        };
        containerd.write_files(registry, images)?;
        host::enable_ip_forward().context("setting net.ipv4.ip_forward=1")?;
        containerd.spawn()?;
        crate::note(format!(
            "containerd ready in {:.2?} (pid {}, {}, bridge {} on {})",
            started.elapsed(),
            containerd.pid().unwrap_or_default(),
            containerd.endpoint(),
            containerd.options.bridge,
            containerd.options.subnet
        ));
        Ok(containerd)
    }

    fn write_files(&self, registry: &Registry, images: &TestImages) -> anyhow::Result<()> {
        let p = &self.paths;
        InstanceRecord {
            bridge: Some(self.options.bridge.clone()),
            network: Some(self.options.network_name.clone()),
            runc_roots: vec![p.runc_root.clone()],
            containerd: Some((p.socket.clone(), p.state.clone())),
        }
        .write(&p.dir)?;
        for dir in [&p.root, &p.state, &p.pod_logs, &p.dir.join("tmp"), &p.dir.join("opt")] {
            fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let mut network = BridgeNetwork::new(&self.options.network_name, &self.options.bridge, &self.options.subnet);
        network.ipam_data_dir = Some(p.dir.join("cni/ipam"));
        network.write(&p.cni_conf)?;
        mirrors::write_test_mirrors(&p.certs_d, &registry.url())?;
        let cni_bin_dir = crate::cni_bin_dir().unwrap_or_else(|| PathBuf::from("/usr/lib/cni"));
        let runc = crate::find_tool("runc").unwrap_or_else(|| PathBuf::from("runc"));
        fs::write(&p.config, config_toml(p, &images.pause, &cni_bin_dir, &runc))
            .with_context(|| format!("writing {}", p.config.display()))?;
        Ok(())
    }

    /// Starts the daemon on the existing config and state and waits until CRI answers
    /// and reports the runtime and the network ready.
    fn spawn(&mut self) -> anyhow::Result<()> {
        let log = OpenOptions::new().create(true).append(true).open(&self.paths.log)?;
        self.log_offset = log.metadata()?.len();
        let mut command =
            process::daemon_command(crate::find_tool("containerd").unwrap_or_else(|| "containerd".into()));
        command
            .arg("--config")
            .arg(&self.paths.config)
            .env("TMPDIR", self.paths.dir.join("tmp"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        self.child = Some(process::spawn_daemon(command).context("starting containerd")?);
        self.wait_ready()
            .with_context(|| format!("containerd's log ends with:\n{}", self.log_tail(30)))
    }

    fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + self.options.start_timeout;
        let mut last_error = anyhow::anyhow!("not started");
        loop {
            if let Some(status) = self.child.as_mut().map(Child::try_wait).transpose()?.flatten() {
                self.child = None;
                bail!("containerd exited with {status} while starting");
            }
            if self.paths.socket.exists() {
                let socket = self.paths.socket.clone();
                match self.block_on(ready(socket)) {
                    Ok(()) => return Ok(()),
                    Err(err) => last_error = err,
                }
            }
            if Instant::now() >= deadline {
                return Err(last_error.context(format!("containerd not ready within {:?}", self.options.start_timeout)));
            }
            std::thread::sleep(process::POLL_INTERVAL);
        }
    }

    /// `unix:///ABS/PATH/containerd.sock`: the CRI endpoint.
    pub fn endpoint(&self) -> String {
        format!("unix://{}", self.paths.socket.display())
    }

    /// The CRI (and containerd API) socket.
    pub fn socket(&self) -> &Path {
        &self.paths.socket
    }

    /// The pod subnet (`198.18.0.0/24` by default).
    pub fn pod_cidr(&self) -> &str {
        &self.options.subnet
    }

    /// The bridge of the pod network.
    pub fn bridge(&self) -> &str {
        &self.options.bridge
    }

    /// The CNI network name.
    pub fn network_name(&self) -> &str {
        &self.options.network_name
    }

    /// A directory tests may use for pod log directories (`PodSandboxConfig.log_directory`
    /// = a subdirectory of it); removed with the environment.
    pub fn log_dir(&self) -> &Path {
        &self.paths.pod_logs
    }

    /// The scratch directory holding everything of this containerd.
    pub fn dir(&self) -> &Path {
        &self.paths.dir
    }

    /// containerd's root directory (content, snapshots, metadata).
    pub fn root_dir(&self) -> &Path {
        &self.paths.root
    }

    /// containerd's state directory (task bundles, fifos, network namespaces).
    pub fn state_dir(&self) -> &Path {
        &self.paths.state
    }

    /// containerd's own log file (all runs of this environment, restarts included).
    pub fn log_file(&self) -> &Path {
        &self.paths.log
    }

    /// The last `lines` lines the current daemon wrote to its log.
    pub fn log_tail(&self, lines: usize) -> String {
        tail_from(&self.paths.log, self.log_offset, lines)
    }

    /// The daemon's pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The tokio runtime this environment holds.
    ///
    /// # Panics
    ///
    /// After [`Containerd::cleanup`] (the runtime is kept until drop, so never in practice).
    pub fn runtime(&self) -> &tokio::runtime::Runtime {
        self.runtime.as_ref().expect("the runtime lives until drop")
    }

    /// Runs a future to completion on the environment's runtime (for sync tests).
    ///
    /// # Panics
    ///
    /// When called from inside an async context, like tokio's `Runtime::block_on`.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime().block_on(future)
    }

    /// A channel to the CRI socket; it connects lazily and reconnects after a restart.
    pub fn channel(&self) -> Channel {
        self.channel.clone().expect("the channel lives until drop")
    }

    /// A CRI runtime service client (raw tonic client from `cri-api`).
    pub fn runtime_client(&self) -> RuntimeServiceClient<Channel> {
        RuntimeServiceClient::new(self.channel())
    }

    /// A CRI image service client (raw tonic client from `cri-api`).
    pub fn image_client(&self) -> ImageServiceClient<Channel> {
        ImageServiceClient::new(self.channel())
    }

    /// Kills the daemon (SIGTERM, SIGKILL after a few seconds; its shims and containers
    /// keep running) and starts it again on the same config and state; returns once CRI
    /// answers again.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        let started = Instant::now();
        if let Some(mut child) = self.child.take() {
            process::stop_child(&mut child, STOP_GRACE).context("stopping containerd")?;
        }
        self.spawn()?;
        crate::note(format!("containerd restarted in {:.2?}", started.elapsed()));
        Ok(())
    }

    /// Tears everything down: every pod through CRI (so containerd runs CNI DEL and
    /// removes the network namespaces), the daemon, leftover shims and containers of this
    /// instance, mounts under its directories, its bridge and iptables rules, its files.
    ///
    /// Idempotent: once it succeeded, calling it again does nothing; after a failure, a
    /// second call retries what is left. [`Drop`] calls it.
    pub fn cleanup(&mut self) -> anyhow::Result<()> {
        if self.cleaned {
            return Ok(());
        }
        let started = Instant::now();
        let mut errors: Vec<String> = Vec::new();
        let mut step = |what: &str, result: anyhow::Result<()>| {
            if let Err(err) = result {
                errors.push(format!("{what}: {err:#}"));
            }
        };

        let daemon_running = self
            .child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)));
        if let (true, Some(channel), Some(runtime)) = (daemon_running, self.channel.clone(), self.runtime.as_ref()) {
            // On a thread of its own: `block_on` would panic if cleanup ran inside async
            // code (a drop in an async test, say).
            let result = std::thread::scope(|scope| {
                scope
                    .spawn(|| runtime.block_on(cri::remove_all_pods(channel, CLEANUP_CALL_TIMEOUT)))
                    .join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("panicked")))
            });
            step("removing pods through CRI", result.map(drop));
        }
        if let Some(mut child) = self.child.take() {
            step(
                "stopping containerd",
                process::stop_child(&mut child, STOP_GRACE)
                    .map(drop)
                    .map_err(Into::into),
            );
        }
        let needle = format!("{}/", self.paths.dir.display());
        let survivors = process::kill_and_wait(&process::pids_with_cmdline_containing(&needle), Duration::from_secs(5));
        step(
            "killing shims",
            if survivors.is_empty() {
                Ok(())
            } else {
                Err(anyhow::anyhow!("still alive: {survivors:?}"))
            },
        );
        step("deleting runc containers", host::runc_delete_all(&self.paths.runc_root));
        host::remove_containerd_shim_sockets(&self.paths.socket, &self.paths.state);
        step("unmounting", host::unmount_all_under(&self.paths.dir).map(drop));
        step(
            "removing the pod network",
            host::teardown_network(&self.options.bridge, Some(&self.options.network_name)),
        );
        scratch::keep_log(&self.paths.log, &self.paths.dir);
        step("removing the scratch directory", self.dir.remove().map_err(Into::into));

        if !errors.is_empty() {
            bail!("containerd cleanup incomplete: {}", errors.join("; "));
        }
        self.network_lock = None;
        self.cleaned = true;
        crate::note(format!(
            "containerd ({}) cleaned up in {:.2?}",
            self.options.bridge,
            started.elapsed()
        ));
        Ok(())
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if let Err(err) = self.cleanup() {
            crate::note(format!("{err:#}"));
        }
        self.channel = None;
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Ready means: Version answers (the CRI plugin refuses calls until it has initialized)
/// and Status reports RuntimeReady and NetworkReady (a CNI config is loaded).
async fn ready(socket: PathBuf) -> anyhow::Result<()> {
    let channel = cri::connect_unix(&socket).await?;
    cri::version(channel.clone(), Duration::from_secs(2)).await?;
    let mut client = RuntimeServiceClient::new(channel);
    let status = cri::within(
        Duration::from_secs(2),
        client.status(cri_api::v1::StatusRequest::default()),
    )
    .await?;
    let conditions = status.status.map(|s| s.conditions).unwrap_or_default();
    for wanted in ["RuntimeReady", "NetworkReady"] {
        match conditions.iter().find(|c| c.r#type == wanted) {
            Some(condition) if condition.status => {}
            Some(condition) => bail!("{wanted} is false: {} {}", condition.reason, condition.message),
            None => bail!("Status reports no {wanted} condition"),
        }
    }
    Ok(())
}

/// containerd's config (version 2): private paths and sockets, no debug or metrics
/// listener, the CRI plugin with runc, overlayfs, CNI from `cni_bin_dir` and the
/// mirrors in `certs.d`.
fn config_toml(p: &Paths, sandbox_image: &str, cni_bin_dir: &Path, runc: &Path) -> String {
    let cri = r#"plugins."io.containerd.grpc.v1.cri""#;
    format!(
        r#"# Written by kubelet-lite's test harness.
version = 2
root = "{root}"
state = "{state}"
temp = "{temp}"
oom_score = 0
# Snapshotters that cannot work here and only slow start-up down.
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
]

[grpc]
  address = "{socket}"

[ttrpc]
  address = "{socket}.ttrpc"

# No debug socket and no metrics listener: they would collide with another containerd.
[debug]
  address = ""
  level = "info"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{opt}"

[{cri}]
  sandbox_image = "{sandbox_image}"
  # oom_score_adj cannot be lowered below ours here (ENVIRONMENT.md).
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false

  [{cri}.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"

    [{cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [{cri}.containerd.runtimes.runc.options]
        BinaryName = "{runc}"
        Root = "{runc_root}"
        SystemdCgroup = false

  [{cri}.cni]
    bin_dir = "{cni_bin_dir}"
    conf_dir = "{cni_conf}"
    max_conf_num = 1

  [{cri}.registry]
    config_path = "{certs_d}"
"#,
        root = p.root.display(),
        state = p.state.display(),
        temp = p.dir.join("tmp").display(),
        socket = p.socket.display(),
        opt = p.dir.join("opt").display(),
        runc = runc.display(),
        runc_root = p.runc_root.display(),
        cni_bin_dir = cni_bin_dir.display(),
        cni_conf = p.cni_conf.display(),
        certs_d = p.certs_d.display(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_keeps_everything_private() {
        let paths = Paths::new(Path::new("/t/c-1"));
        let toml = config_toml(
            &paths,
            "registry.k8s.io/pause:3.9",
            Path::new("/usr/lib/cni"),
            Path::new("/usr/sbin/runc"),
        );
        for line in [
            "version = 2",
            r#"root = "/t/c-1/root""#,
            r#"state = "/t/c-1/state""#,
            "oom_score = 0",
            r#"  address = "/t/c-1/containerd.sock""#,
            r#"  address = "/t/c-1/containerd.sock.ttrpc""#,
            r#"  sandbox_image = "registry.k8s.io/pause:3.9""#,
            "  restrict_oom_score_adj = true",
            r#"      runtime_type = "io.containerd.runc.v2""#,
            "        SystemdCgroup = false",
            r#"        Root = "/t/c-1/state/runc""#,
            r#"    snapshotter = "overlayfs""#,
            r#"    bin_dir = "/usr/lib/cni""#,
            r#"    conf_dir = "/t/c-1/cni/net.d""#,
            r#"    config_path = "/t/c-1/certs.d""#,
        ] {
            assert!(toml.lines().any(|l| l == line), "missing {line:?} in\n{toml}");
        }
        assert_eq!(
            toml.matches("address = \"\"").count(),
            2,
            "debug and metrics listeners stay off"
        );
    }

    #[test]
    fn options_default_to_the_containerd_network() {
        let options = ContainerdOptions::default();
        assert_eq!(
            (options.bridge.as_str(), options.subnet.as_str()),
            ("kltctr0", "198.18.0.0/24")
        );
        let other = ContainerdOptions::with_network("kltctr3", "198.18.3.0/24");
        assert_eq!(
            (other.bridge.as_str(), other.network_name.as_str()),
            ("kltctr3", "kltctr3")
        );
        assert_eq!(other.start_timeout, options.start_timeout);
    }
}
