//! The lifecycle every CRI daemon under test shares: a private scratch directory, a CNI
//! network on its own bridge, registry mirrors, a child process logging to a file, a
//! readiness check over CRI, restarts and crashes, and a cleanup that leaves nothing
//! behind.
//!
//! What differs from one daemon to another (its configuration file, its command line, the
//! tools it needs) is a [`DaemonKind`]; [`Daemon`] does the rest. The daemons of this
//! crate are [`crate::Containerd`] (`Daemon<ContainerdKind>`) and [`crate::RuntimeCore`]
//! (`Daemon<RuntimeCoreKind>`).
//!
//! # Layout of the scratch directory
//!
//! ```text
//! NAME.sock  NAME.log  config.toml  instance.json
//! root/  state/  state/runc/  tmp/  pod-logs/  certs.d/  cni/net.d/  cni/ipam/
//! ```

use std::fs::{self, OpenOptions};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use cri_api::client::{ImageServiceClient, RuntimeServiceClient};
use nix::sys::signal::Signal;
use tonic::transport::Channel;

use crate::cni::BridgeNetwork;
use crate::host::{self, InstanceRecord};
use crate::output::tail_from;
use crate::scratch::{self, NamedLock, ScratchDir};
use crate::teardown::Teardown;
use crate::{Registry, cri, mirrors, process};

/// The tools every daemon's environment needs: `setpriv` to start it, iproute2 and
/// iptables to clean up its network, and the CNI plugins of [`BridgeNetwork`].
pub const NETWORK_TOOLS: &[&str] = &[
    "setpriv",
    "ip",
    "iptables-save",
    "iptables-restore",
    "bridge",
    "host-local",
    "portmap",
    "loopback",
];

/// How long SIGTERM has to stop a daemon before SIGKILL (and leftover processes have to
/// die after SIGKILL).
const STOP_GRACE: Duration = Duration::from_secs(5);

/// How long each CRI call of the cleanup may take.
const CLEANUP_CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// What may differ between two environments of a daemon on one machine.
///
/// [`crate::ContainerdOptions`] and [`crate::RuntimeCoreOptions`] are this type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonOptions {
    /// The bridge its CNI network creates (at most 15 characters). Default `kltctr0`.
    pub bridge: String,
    /// The pod subnet. Default `198.18.0.0/24`.
    pub subnet: String,
    /// Whether the CNI network is a template ([`crate::cni::BridgeNetwork::template`]) that
    /// the daemon renders once UpdateRuntimeConfig gives it the pod CIDR (a kubelet passes
    /// its Node's `spec.podCIDRs`), instead of a network on `subnet`; the daemon is then
    /// ready without NetworkReady. Default false.
    pub network_template: bool,
    /// The CNI network name. Default `kltctr0`.
    pub network_name: String,
    /// The longest line of container output a log record holds before the daemon splits
    /// it into partial (`P`) records; `None` keeps the daemon's default (16 KiB for both).
    pub log_max_line: Option<usize>,
    /// runtime-core only: how many container events a subscriber may fall behind before
    /// it is dropped; `None` keeps the daemon's default.
    pub container_events_buffer: Option<usize>,
    /// How long the daemon may take to answer CRI. Default 60 s.
    pub start_timeout: Duration,
    /// How long to wait for another test process using the same bridge to finish.
    /// Default 10 minutes.
    pub network_lock_timeout: Duration,
}

impl Default for DaemonOptions {
    /// containerd's network (`kltctr0` on `198.18.0.0/24`), kept as the default for
    /// [`crate::Containerd::start`]; other daemons name theirs with
    /// [`DaemonOptions::with_network`].
    fn default() -> DaemonOptions {
        DaemonOptions {
            bridge: "kltctr0".into(),
            subnet: "198.18.0.0/24".into(),
            network_template: false,
            network_name: "kltctr0".into(),
            log_max_line: None,
            container_events_buffer: None,
            start_timeout: Duration::from_secs(60),
            network_lock_timeout: Duration::from_secs(600),
        }
    }
}

impl DaemonOptions {
    /// Options for another network: bridge `bridge` (also the network's name) on `subnet`.
    pub fn with_network(bridge: impl Into<String>, subnet: impl Into<String>) -> DaemonOptions {
        let bridge = bridge.into();
        DaemonOptions {
            network_name: bridge.clone(),
            bridge,
            subnet: subnet.into(),
            ..DaemonOptions::default()
        }
    }
}

/// The files and directories of one daemon, all inside its scratch directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The scratch directory itself.
    pub dir: PathBuf,
    /// The daemon's persistent root (images, metadata, bundles).
    pub root: PathBuf,
    /// The daemon's state directory (sockets, namespaces, runc state).
    pub state: PathBuf,
    /// Its CRI socket, `NAME.sock`.
    pub socket: PathBuf,
    /// Its configuration file, `config.toml`.
    pub config: PathBuf,
    /// Its own log (stdout and stderr of every run), `NAME.log`.
    pub log: PathBuf,
    /// Where tests put pod log directories.
    pub pod_logs: PathBuf,
    /// The CNI configuration directory.
    pub cni_conf: PathBuf,
    /// The CNI configuration template, with [`DaemonOptions::network_template`].
    pub cni_template: PathBuf,
    /// host-local's address reservations.
    pub ipam: PathBuf,
    /// The registry mirrors (`certs.d/HOST/hosts.toml`).
    pub certs_d: PathBuf,
    /// runc `--root` directories live one level below (one per namespace or handler).
    pub runc_root: PathBuf,
    /// The daemon's `TMPDIR`.
    pub tmp: PathBuf,
}

impl Layout {
    /// The layout of daemon `name` in scratch directory `dir`.
    pub fn new(dir: &Path, name: &str) -> Layout {
        Layout {
            dir: dir.to_path_buf(),
            root: dir.join("root"),
            state: dir.join("state"),
            socket: dir.join(format!("{name}.sock")),
            config: dir.join("config.toml"),
            log: dir.join(format!("{name}.log")),
            pod_logs: dir.join("pod-logs"),
            cni_conf: dir.join("cni/net.d"),
            cni_template: dir.join("cni/template.json"),
            ipam: dir.join("cni/ipam"),
            certs_d: dir.join("certs.d"),
            runc_root: dir.join("state/runc"),
            tmp: dir.join("tmp"),
        }
    }
}

/// What a daemon's configuration refers to: its files, its options, and the host's CNI
/// plugins and runc.
#[derive(Debug, Clone)]
pub struct ConfigInputs<'a> {
    /// Where its files go.
    pub layout: &'a Layout,
    /// What the test asked for.
    pub options: &'a DaemonOptions,
    /// The directory of the CNI plugins ([`crate::cni_bin_dir`]).
    pub cni_bin_dir: PathBuf,
    /// The runc binary ([`crate::find_tool`]).
    pub runc: PathBuf,
}

/// What makes one daemon different from another: everything [`Daemon`] cannot know.
pub trait DaemonKind {
    /// Its name: in messages, in its scratch directory's name, its socket and its log.
    const NAME: &'static str;
    /// Whether it runs containerd shims, whose sockets in `/run/containerd/s` outlive them
    /// when they are killed (see [`host::remove_containerd_shim_sockets`]).
    const CONTAINERD_SHIMS: bool = false;

    /// The host tools it needs besides [`NETWORK_TOOLS`], checked with
    /// [`crate::require_tools`] before anything is set up.
    fn tools(&self) -> &[&str];

    /// The text of its configuration file ([`Layout::config`]); the CNI network and the
    /// registry mirrors it names are already written.
    fn config_file(&self, inputs: &ConfigInputs<'_>) -> String;

    /// The command that runs it on that configuration, made with
    /// [`process::daemon_command`]; stdio is the daemon's business.
    fn command(&self, layout: &Layout) -> Command;
}

/// A running CRI daemon of kind `K` in a scratch directory of its own. Dropping it stops
/// every pod, the daemon and everything it started, and removes its mounts, bridge,
/// iptables rules and files.
///
/// It holds a tokio runtime: tests (plain sync functions) run their async CRI calls with
/// [`Daemon::block_on`]. Do not drop it or call `block_on` from inside async code.
pub struct Daemon<K: DaemonKind> {
    kind: K,
    options: DaemonOptions,
    layout: Layout,
    child: Option<Child>,
    /// Environment variables set for the next starts (see [`Daemon::set_env`]).
    env: process::EnvOverrides,
    /// Offset of this run's output in the shared log file, for error messages.
    log_offset: u64,
    runtime: Option<tokio::runtime::Runtime>,
    channel: Option<Channel>,
    cleaned: bool,
    dir: ScratchDir,
    network_lock: Option<NamedLock>,
}

impl<K: DaemonKind> std::fmt::Debug for Daemon<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct(K::NAME)
            .field("socket", &self.layout.socket)
            .field("pid", &self.pid())
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl<K: DaemonKind> Daemon<K> {
    /// Sets up a scratch directory, the network and the mirrors onto `registry`, writes
    /// the configuration, starts the daemon and waits until it is ready.
    ///
    /// Fails with [`crate::Missing`] in the chain if a tool is absent or not root.
    pub(crate) fn launch(kind: K, registry: &Registry, options: DaemonOptions) -> anyhow::Result<Daemon<K>> {
        crate::require_root()?;
        let tools: Vec<&str> = NETWORK_TOOLS.iter().chain(kind.tools()).copied().collect();
        crate::require_tools(&tools)?;
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

        let dir = ScratchDir::create(K::NAME).with_context(|| format!("creating {}'s scratch directory", K::NAME))?;
        let layout = Layout::new(dir.path(), K::NAME);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(format!("harness-{}", K::NAME))
            .enable_all()
            .build()
            .context("building a tokio runtime")?;
        let channel = {
            let _guard = runtime.enter();
            cri::lazy_unix_channel(&layout.socket)
        };
        // From here on, a failure drops `daemon`, which cleans up.
        let mut daemon = Daemon {
            kind,
            options,
            layout,
            child: None,
            env: process::EnvOverrides::default(),
            log_offset: 0,
            runtime: Some(runtime),
            channel: Some(channel),
            cleaned: false,
            dir,
            network_lock: Some(network_lock),
        };
        daemon.write_files(registry)?;
        host::enable_ip_forward().context("setting net.ipv4.ip_forward=1")?;
        daemon.spawn()?;
        crate::note(format!(
            "{} ready in {:.2?} (pid {}, {}, bridge {} on {})",
            K::NAME,
            started.elapsed(),
            daemon.pid().unwrap_or_default(),
            daemon.endpoint(),
            daemon.options.bridge,
            daemon.options.subnet
        ));
        Ok(daemon)
    }

    fn write_files(&self, registry: &Registry) -> anyhow::Result<()> {
        let l = &self.layout;
        InstanceRecord {
            bridge: Some(self.options.bridge.clone()),
            network: Some(self.options.network_name.clone()),
            runc_roots: vec![l.runc_root.clone()],
            containerd: K::CONTAINERD_SHIMS.then(|| (l.socket.clone(), l.state.clone())),
        }
        .write(&l.dir)?;
        for dir in [&l.root, &l.state, &l.pod_logs, &l.tmp] {
            fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let mut network = BridgeNetwork::new(&self.options.network_name, &self.options.bridge, &self.options.subnet);
        network.ipam_data_dir = Some(l.ipam.clone());
        if self.options.network_template {
            fs::create_dir_all(&l.cni_conf).with_context(|| format!("creating {}", l.cni_conf.display()))?;
            fs::write(&l.cni_template, network.template()?)
                .with_context(|| format!("writing {}", l.cni_template.display()))?;
        } else {
            network.write(&l.cni_conf)?;
        }
        mirrors::write_test_mirrors(&l.certs_d, &registry.url())?;
        let config = self.kind.config_file(&ConfigInputs {
            layout: l,
            options: &self.options,
            cni_bin_dir: crate::cni_bin_dir().unwrap_or_else(|| "/usr/lib/cni".into()),
            runc: crate::find_tool("runc").unwrap_or_else(|| "runc".into()),
        });
        fs::write(&l.config, config).with_context(|| format!("writing {}", l.config.display()))
    }

    /// Starts the daemon on the existing config and state and waits until CRI answers
    /// and reports the runtime and the network ready.
    fn spawn(&mut self) -> anyhow::Result<()> {
        let log = OpenOptions::new().create(true).append(true).open(&self.layout.log)?;
        self.log_offset = log.metadata()?.len();
        let mut command = self.kind.command(&self.layout);
        self.env.apply(&mut command);
        command.stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
        self.child = Some(process::spawn_daemon(command).with_context(|| format!("starting {}", K::NAME))?);
        self.wait_ready()
            .with_context(|| format!("{}'s log ends with:\n{}", K::NAME, self.log_tail(30)))
    }

    fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + self.options.start_timeout;
        let mut last_error = anyhow::anyhow!("not started");
        loop {
            if let Some(status) = self.child.as_mut().map(Child::try_wait).transpose()?.flatten() {
                self.child = None;
                bail!("{} exited with {status} while starting", K::NAME);
            }
            if self.layout.socket.exists() {
                let network = !self.options.network_template;
                match self.block_on(ready(self.layout.socket.clone(), network)) {
                    Ok(()) => return Ok(()),
                    Err(err) => last_error = err,
                }
            }
            if Instant::now() >= deadline {
                return Err(last_error.context(format!(
                    "{} not ready within {:?}",
                    K::NAME,
                    self.options.start_timeout
                )));
            }
            std::thread::sleep(process::POLL_INTERVAL);
        }
    }

    /// `unix:///ABS/PATH/NAME.sock`: the CRI endpoint.
    pub fn endpoint(&self) -> String {
        format!("unix://{}", self.layout.socket.display())
    }

    /// The CRI socket.
    pub fn socket(&self) -> &Path {
        &self.layout.socket
    }

    /// The pod subnet.
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

    /// The options the daemon was started with.
    pub fn options(&self) -> &DaemonOptions {
        &self.options
    }

    /// A directory tests may use for pod log directories (`PodSandboxConfig.log_directory`
    /// = a subdirectory of it); removed with the environment.
    pub fn log_dir(&self) -> &Path {
        &self.layout.pod_logs
    }

    /// The scratch directory holding everything of this daemon.
    pub fn dir(&self) -> &Path {
        &self.layout.dir
    }

    /// The daemon's root directory (images, metadata, container bundles and rootfs).
    pub fn root_dir(&self) -> &Path {
        &self.layout.root
    }

    /// The daemon's state directory (sandboxes, network namespaces, runc state).
    pub fn state_dir(&self) -> &Path {
        &self.layout.state
    }

    /// Where host-local IPAM keeps the address reservations of the pod network (one file
    /// per reserved address, plus its own bookkeeping files).
    pub fn ipam_dir(&self) -> &Path {
        &self.layout.ipam
    }

    /// The directory whose subdirectories are runc `--root` directories (one per
    /// containerd namespace, or per runtime-core runtime handler).
    pub fn runc_root(&self) -> &Path {
        &self.layout.runc_root
    }

    /// The daemon's own log file (all runs of this environment, restarts included).
    pub fn log_file(&self) -> &Path {
        &self.layout.log
    }

    /// The last `lines` lines the current (or last) run of the daemon wrote to its log.
    pub fn log_tail(&self, lines: usize) -> String {
        tail_from(&self.layout.log, self.log_offset, lines)
    }

    /// The daemon's pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The tokio runtime this environment holds.
    ///
    /// # Panics
    ///
    /// After [`Daemon::cleanup`] (the runtime is kept until drop, so never in practice).
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

    /// Stops the daemon gracefully (SIGTERM, SIGKILL after a few seconds; what it started
    /// keeps running) and starts it again on the same config and state; returns once CRI
    /// answers again.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        let started = Instant::now();
        if let Some(mut child) = self.child.take() {
            process::stop_child(&mut child, STOP_GRACE).with_context(|| format!("stopping {}", K::NAME))?;
        }
        self.spawn()?;
        crate::note(format!("{} restarted in {:.2?}", K::NAME, started.elapsed()));
        Ok(())
    }

    /// Kills the daemon with SIGKILL, as a crash would, and reaps it; what it started
    /// (shims, monitors, containers) keeps running. Killing a daemon that is not running
    /// does nothing. [`Daemon::start_again`] brings it back.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            process::signal(child.id(), Signal::SIGKILL).with_context(|| format!("killing {}", K::NAME))?;
            child.wait().with_context(|| format!("reaping {}", K::NAME))?;
        }
        Ok(())
    }

    /// Starts the daemon after [`Daemon::kill`], on the same config and state; returns once
    /// CRI answers again. Fails if it is running.
    pub fn start_again(&mut self) -> anyhow::Result<()> {
        if let Some(pid) = self.pid() {
            bail!("{} is still running (pid {pid})", K::NAME);
        }
        let started = Instant::now();
        self.spawn()?;
        crate::note(format!("{} started again in {:.2?}", K::NAME, started.elapsed()));
        Ok(())
    }

    /// Sets (`Some`) or unsets (`None`) environment variable `key` for the daemon's next
    /// starts: arming a crash point, say.
    pub fn set_env(&mut self, key: &str, value: Option<&str>) {
        self.env.set(key, value);
    }

    /// Waits up to `timeout` for the daemon to end by itself (a crash point, say) and reaps
    /// it; its exit status, or `None` if it still runs (or was not running).
    pub fn wait_exit(&mut self, timeout: Duration) -> anyhow::Result<Option<std::process::ExitStatus>> {
        Ok(process::wait_exit(&mut self.child, timeout)?)
    }

    /// [`Daemon::kill`] then [`Daemon::start_again`]: the crash-and-recover case.
    pub fn kill_and_restart(&mut self) -> anyhow::Result<()> {
        self.kill()?;
        self.start_again()
    }

    /// Tears everything down: every pod through CRI (so the daemon runs CNI DEL and
    /// removes the network namespaces), the daemon, leftover processes of this instance
    /// (shims, monitors: any whose command line names a path in its directory), the
    /// containers runc still knows under its runc root, mounts under its directory, its
    /// bridge and iptables rules, its files.
    ///
    /// Idempotent: once it succeeded, calling it again does nothing; after a failure, a
    /// second call retries what is left. [`Drop`] calls it.
    pub fn cleanup(&mut self) -> anyhow::Result<()> {
        if self.cleaned {
            return Ok(());
        }
        let started = Instant::now();
        let mut teardown = Teardown::default();

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
            teardown.step("removing pods through CRI", result.map(drop));
        }
        let l = &self.layout;
        teardown.stop_processes(K::NAME, self.child.take(), &l.dir, STOP_GRACE);
        teardown.step("deleting runc containers", host::runc_delete_all(&l.runc_root));
        if K::CONTAINERD_SHIMS {
            host::remove_containerd_shim_sockets(&l.socket, &l.state);
        }
        teardown.step("unmounting", host::unmount_all_under(&l.dir).map(drop));
        teardown.step(
            "removing the pod network",
            host::teardown_network(&self.options.bridge, Some(&self.options.network_name)),
        );
        scratch::keep_log(&l.log, &l.dir);
        teardown.step("removing the scratch directory", self.dir.remove().map_err(Into::into));

        teardown.finish(K::NAME)?;
        self.network_lock = None;
        self.cleaned = true;
        crate::note(format!(
            "{} ({}) cleaned up in {:.2?}",
            K::NAME,
            self.options.bridge,
            started.elapsed()
        ));
        Ok(())
    }
}

impl<K: DaemonKind> Drop for Daemon<K> {
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

/// Ready means: Version answers (a CRI server may refuse calls until it has initialized)
/// and Status reports RuntimeReady and NetworkReady (a CNI config is loaded).
async fn ready(socket: PathBuf, network: bool) -> anyhow::Result<()> {
    let channel = cri::connect_unix(&socket).await?;
    cri::version(channel.clone(), Duration::from_secs(2)).await?;
    let mut client = RuntimeServiceClient::new(channel);
    let status = cri::within(
        Duration::from_secs(2),
        client.status(cri_api::v1::StatusRequest::default()),
    )
    .await?;
    let conditions = status.status.map(|s| s.conditions).unwrap_or_default();
    let wanted: &[&str] = if network {
        &["RuntimeReady", "NetworkReady"]
    } else {
        &["RuntimeReady"]
    };
    for &wanted in wanted {
        match conditions.iter().find(|c| c.r#type == wanted) {
            Some(condition) if condition.status => {}
            Some(condition) => bail!("{wanted} is false: {} {}", condition.reason, condition.message),
            None => bail!("Status reports no {wanted} condition"),
        }
    }
    Ok(())
}

/// `s` as a TOML basic string, quotes included (a JSON string is one, escapes and all).
pub(crate) fn toml_string(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_keep_everything_in_the_scratch_directory() {
        let layout = Layout::new(Path::new("/t/x-1"), "runtime-core");
        assert_eq!(layout.socket, Path::new("/t/x-1/runtime-core.sock"));
        assert_eq!(layout.log, Path::new("/t/x-1/runtime-core.log"));
        assert_eq!(layout.runc_root, Path::new("/t/x-1/state/runc"));
        assert_eq!(layout.ipam, Path::new("/t/x-1/cni/ipam"));
        for path in [
            &layout.root,
            &layout.state,
            &layout.pod_logs,
            &layout.cni_conf,
            &layout.certs_d,
            &layout.tmp,
        ] {
            assert!(path.starts_with("/t/x-1/"), "{}", path.display());
        }
    }

    #[test]
    fn options_default_to_the_containerd_network() {
        let options = DaemonOptions::default();
        assert_eq!(
            (options.bridge.as_str(), options.subnet.as_str()),
            ("kltctr0", "198.18.0.0/24")
        );
        assert_eq!(options.log_max_line, None);
        let other = DaemonOptions::with_network("kltrc3", "198.18.3.0/24");
        assert_eq!(
            (other.bridge.as_str(), other.network_name.as_str()),
            ("kltrc3", "kltrc3")
        );
        assert_eq!(other.start_timeout, options.start_timeout);
    }

    #[test]
    fn toml_strings_are_quoted_and_escaped() {
        assert_eq!(toml_string("/var/lib/x"), r#""/var/lib/x""#);
        assert_eq!(toml_string(r#"a"b\c"#), r#""a\"b\\c""#);
    }
}
