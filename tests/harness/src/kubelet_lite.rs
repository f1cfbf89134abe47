//! kubelet-lite, the workspace's node agent, as a node of a test [`ControlPlane`] (or
//! standalone from its static pod directory), with its embedded runtime-core by default.
//!
//! Each [`KubeletLite`] gets, like [`crate::Kubelet`]:
//!
//! - a node address on a bridge of its own with no ports ([`KubeletLiteOptions::node_bridge`],
//!   [`KubeletLiteOptions::node_ip`], `/32`);
//! - node credentials from the control plane (`system:node:NAME`), a serving certificate
//!   for its name and address issued by the control plane's CA (which the apiserver
//!   verifies it with), and that CA as the client CA of its kubelet API;
//! - a scratch directory holding its root directory, the embedded runtime's files (root,
//!   state, socket, a CNI bridge network on [`KubeletLiteOptions::pod_subnet`], registry
//!   mirrors onto the local [`Registry`]; none of this with
//!   [`KubeletLiteOptions::runtime_endpoint`]), an empty static pod directory
//!   ([`KubeletLite::manifests_dir`]) and its log.
//!
//! Cleanup (on drop) stops it and everything it started (runtime-core monitors and
//! containers run under command lines naming the scratch directory), deletes runc
//! containers, unmounts, removes both bridges, iptables rules, CNI caches, the pod log
//! directories of the pods it ran in `/var/log/pods`, and its files.
//!
//! ```no_run
//! use test_harness::{ControlPlane, KubeletLite, KubeletLiteOptions, Registry};
//!
//! # fn f(binary: &std::path::Path) -> anyhow::Result<()> {
//! let registry = Registry::start()?;
//! test_harness::push_test_images(&registry)?;
//! let control_plane = ControlPlane::start()?;
//! // `runtime-core-monitor` must be beside the binary (build package runtime-core too).
//! let mut node = KubeletLite::start(binary, &control_plane, &registry, KubeletLiteOptions::default())?;
//! node.restart()?; // pods keep running and are adopted
//! # Ok(()) }
//! ```
//!
//! On containerd instead, with a kubelet-lite built without its embedded runtime:
//!
//! ```no_run
//! use test_harness::{Containerd, ContainerdOptions, ControlPlane};
//! use test_harness::{KubeletLite, KubeletLiteOptions, Registry};
//!
//! # fn f(binary: &std::path::Path) -> anyhow::Result<()> {
//! let registry = Registry::start()?;
//! let images = test_harness::push_test_images(&registry)?;
//! let network = ContainerdOptions::with_network("kltdoc0", "198.18.99.0/24");
//! let containerd = Containerd::start_with(&registry, &images, network)?;
//! let control_plane = ControlPlane::start()?;
//! let options = KubeletLiteOptions {
//!     runtime_endpoint: Some(containerd.endpoint()),
//!     ..KubeletLiteOptions::default()
//! };
//! let node = KubeletLite::start(binary, &control_plane, &registry, options)?;
//! drop(node); // before containerd, which stops the pods the node left
//! # Ok(()) }
//! ```

use std::fs::{self, OpenOptions};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use nix::sys::signal::Signal;

use crate::cni::BridgeNetwork;
use crate::control_plane::{self, ControlPlane};
use crate::daemon::toml_string;
use crate::host::{self, InstanceRecord};
use crate::output::tail_from;
use crate::pki::CertificateSpec;
use crate::scratch::{self, NamedLock, ScratchDir};
use crate::teardown::Teardown;
use crate::{Registry, mirrors, process};

/// The host tools kubelet-lite and its embedded runtime need.
pub const KUBELET_LITE_TOOLS: &[&str] = &["setpriv", "ip", "iptables", "runc", "unshare", "mount", "umount"];

/// The monitor binary the embedded runtime looks for beside the kubelet-lite binary.
pub const MONITOR_BINARY: &str = "runtime-core-monitor";

/// Where the pods' container logs go (`/var/log/pods/NAMESPACE_NAME_UID`).
pub const POD_LOG_ROOT: &str = "/var/log/pods";

/// How long SIGTERM has to stop kubelet-lite before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// How often readiness checks poll.
const POLL: Duration = Duration::from_millis(200);

/// What may differ between two kubelet-lite nodes on one machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeletLiteOptions {
    /// The Node's name. Default `klt-lite-0`.
    pub node_name: String,
    /// The node's address. Default `198.18.51.1`.
    pub node_ip: Ipv4Addr,
    /// The port-less bridge holding the node address. Default `kltklnode0`.
    pub node_bridge: String,
    /// The embedded runtime's pod bridge (unused with a `runtime_endpoint`). Default `kltkl0`.
    pub pod_bridge: String,
    /// The embedded runtime's pod subnet. Default `198.18.50.0/24`.
    pub pod_subnet: String,
    /// The runtime: `None`, the embedded runtime-core (the binary must be built with the
    /// `embedded` feature, and `runtime-core-monitor` beside it); or a CRI endpoint
    /// (`unix:///...`), passed as `--container-runtime-endpoint`, typically the
    /// [`endpoint`](crate::daemon::Daemon::endpoint) of a [`crate::Containerd`] the test
    /// started, which has its own mirrors onto the registry and its own pod network. Then
    /// any build of kubelet-lite will do, one without default features included, and the
    /// pod bridge and subnet here are not used.
    pub runtime_endpoint: Option<String>,
    /// More flags for kubelet-lite.
    pub extra_args: Vec<String>,
    /// `RUST_LOG` unless the environment sets it. Default `info,kubelet_lite=debug`.
    pub log_filter: String,
    /// How long the Node may take to become Ready. Default 60 s.
    pub ready_timeout: Duration,
    /// How long to wait for another test process using the same bridges. Default 10 min.
    pub network_lock_timeout: Duration,
}

impl Default for KubeletLiteOptions {
    fn default() -> KubeletLiteOptions {
        KubeletLiteOptions {
            node_name: "klt-lite-0".into(),
            node_ip: Ipv4Addr::new(198, 18, 51, 1),
            node_bridge: "kltklnode0".into(),
            pod_bridge: "kltkl0".into(),
            pod_subnet: "198.18.50.0/24".into(),
            runtime_endpoint: None,
            extra_args: Vec::new(),
            log_filter: "info,kubelet_lite=debug".into(),
            ready_timeout: Duration::from_secs(60),
            network_lock_timeout: Duration::from_secs(600),
        }
    }
}

/// A running kubelet-lite. Dropping it tears everything down (see the module docs).
#[derive(Debug)]
pub struct KubeletLite {
    options: KubeletLiteOptions,
    command: Vec<String>,
    binary: PathBuf,
    child: Option<Child>,
    /// Environment variables set for the next starts (see [`KubeletLite::set_env`]).
    env: process::EnvOverrides,
    log: PathBuf,
    log_offset: u64,
    root_dir: PathBuf,
    manifests: PathBuf,
    runtime_socket: PathBuf,
    port: u16,
    admin_kubeconfig: Option<PathBuf>,
    kubectl: Option<Command>,
    pod_logs_before: Vec<String>,
    cleaned: bool,
    dir: ScratchDir,
    locks: Vec<NamedLock>,
}

impl KubeletLite {
    /// Starts kubelet-lite `binary` as a node of `control_plane`, its embedded runtime
    /// pulling through mirrors onto `registry`, and waits until its Node is Ready.
    ///
    /// Fails with [`crate::Missing`] in the chain if a tool is absent or not root.
    pub fn start(
        binary: &Path,
        control_plane: &ControlPlane,
        registry: &Registry,
        options: KubeletLiteOptions,
    ) -> anyhow::Result<KubeletLite> {
        KubeletLite::launch(binary, Some(control_plane), registry, options)
    }

    /// Starts kubelet-lite standalone (no apiserver: only its static pods) and waits until
    /// its runtime answers.
    pub fn start_standalone(
        binary: &Path,
        registry: &Registry,
        options: KubeletLiteOptions,
    ) -> anyhow::Result<KubeletLite> {
        KubeletLite::launch(binary, None, registry, options)
    }

    fn launch(
        binary: &Path,
        control_plane: Option<&ControlPlane>,
        registry: &Registry,
        options: KubeletLiteOptions,
    ) -> anyhow::Result<KubeletLite> {
        crate::require_root()?;
        crate::require_tools(KUBELET_LITE_TOOLS)?;
        if !binary.is_file() {
            bail!("the kubelet-lite binary {} does not exist", binary.display());
        }
        if options.runtime_endpoint.is_none() && !binary.with_file_name(MONITOR_BINARY).is_file() {
            bail!(
                "{MONITOR_BINARY} is not beside {} (build package runtime-core's binaries too)",
                binary.display()
            );
        }
        let started = Instant::now();
        scratch::reap_stale();
        let embedded = options.runtime_endpoint.is_none();
        let mut bridges = vec![&options.node_bridge];
        if embedded {
            bridges.push(&options.pod_bridge);
        }
        let mut locks = Vec::new();
        for bridge in bridges {
            locks.push(NamedLock::acquire(
                &host::network_lock_name(bridge),
                options.network_lock_timeout,
            )?);
        }
        let network_name = network_name(&options.pod_bridge);
        host::teardown_network(&options.node_bridge, None)?;
        if embedded {
            host::teardown_network(&options.pod_bridge, Some(&network_name))?;
        }
        let dir = ScratchDir::create("kubelet-lite").context("creating kubelet-lite's scratch directory")?;
        let mut node = KubeletLite {
            log: dir.path().join("kubelet-lite.log"),
            log_offset: 0,
            root_dir: dir.path().join("root"),
            manifests: dir.path().join("manifests"),
            runtime_socket: dir.path().join("rt.sock"),
            port: 0,
            admin_kubeconfig: control_plane.map(|cp| cp.admin_kubeconfig().to_path_buf()),
            kubectl: control_plane.map(ControlPlane::kubectl_command),
            pod_logs_before: entry_names(Path::new(POD_LOG_ROOT)),
            command: Vec::new(),
            binary: binary.to_path_buf(),
            child: None,
            env: process::EnvOverrides::default(),
            cleaned: false,
            options,
            dir,
            locks,
        };
        // From here on, a failure drops `node`, which cleans up.
        InstanceRecord {
            bridge: embedded.then(|| node.options.pod_bridge.clone()),
            network: embedded.then_some(network_name),
            runc_roots: vec![node.runtime_dir().join("state/runc")],
            containerd: None,
        }
        .write(node.dir.path())?;
        host::add_node_address(&node.options.node_bridge, node.options.node_ip)?;
        node.prepare(control_plane, registry)?;
        host::enable_ip_forward().context("setting net.ipv4.ip_forward=1")?;
        node.spawn()?;
        let pods = match &node.options.runtime_endpoint {
            Some(endpoint) => format!("runtime {endpoint}"),
            None => format!("pods on {} {}", node.options.pod_bridge, node.options.pod_subnet),
        };
        crate::note(format!(
            "kubelet-lite ready in {:.2?} (node {} at {}, pid {}, {pods})",
            started.elapsed(),
            node.options.node_name,
            node.options.node_ip,
            node.pid().unwrap_or_default(),
        ));
        Ok(node)
    }

    /// The embedded runtime's directory: its `root`, its `state` (a tmpfs in real life,
    /// emptied by a reboot), its configuration and CNI files.
    pub fn runtime_dir(&self) -> PathBuf {
        self.dir.path().join("runtime")
    }

    /// Writes credentials, the runtime's configuration, network and mirrors; records the
    /// command line.
    fn prepare(&mut self, control_plane: Option<&ControlPlane>, registry: &Registry) -> anyhow::Result<()> {
        let runtime = self.runtime_dir();
        for dir in [&self.root_dir, &self.manifests, &runtime] {
            fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        self.port = control_plane::free_port()?;
        let mut args: Vec<String> = vec![
            "--node-name".into(),
            self.options.node_name.clone(),
            "--node-ip".into(),
            self.options.node_ip.to_string(),
            "--root-dir".into(),
            display(&self.root_dir),
            "--pod-manifest-path".into(),
            display(&self.manifests),
            "--port".into(),
            self.port.to_string(),
            // As the kubelet's tests run: the host's disk usage decides nothing here.
            "--image-gc-high-threshold".into(),
            "100".into(),
            "--image-gc-low-threshold".into(),
            "99".into(),
        ];
        if let Some(control_plane) = control_plane {
            let name = &self.options.node_name;
            let kubeconfig = control_plane.node_kubeconfig(name)?;
            let serving = control_plane.pki().issue(
                &format!("kubelet-lite-{name}"),
                &CertificateSpec::server(&format!("system:node:{name}"))
                    .with_ips([IpAddr::V4(self.options.node_ip)])
                    .with_dns_names([name.clone()]),
            )?;
            args.extend([
                "--kubeconfig".into(),
                display(&kubeconfig),
                "--tls-cert-file".into(),
                display(&serving.cert),
                "--tls-private-key-file".into(),
                display(&serving.key),
                "--client-ca-file".into(),
                display(control_plane.ca_cert()),
            ]);
        }
        match &self.options.runtime_endpoint {
            Some(endpoint) => args.extend(["--container-runtime-endpoint".into(), endpoint.clone()]),
            None => {
                let mut network = BridgeNetwork::new(
                    network_name(&self.options.pod_bridge),
                    &self.options.pod_bridge,
                    &self.options.pod_subnet,
                );
                network.ipam_data_dir = Some(runtime.join("ipam"));
                network.write(&runtime.join("net.d"))?;
                mirrors::write_test_mirrors(&runtime.join("certs.d"), &registry.url())?;
                let config = runtime.join("runtime-core.toml");
                fs::write(&config, self.runtime_config()).with_context(|| format!("writing {}", config.display()))?;
                args.extend(["--runtime-config".into(), display(&config)]);
            }
        }
        args.extend(self.options.extra_args.iter().cloned());
        self.command = args;
        Ok(())
    }

    /// The embedded runtime-core's configuration: private paths, mirrors, the CNI network,
    /// runc.
    fn runtime_config(&self) -> String {
        let runtime = self.runtime_dir();
        let path = |path: &Path| toml_string(&path.to_string_lossy());
        let cni_bin = crate::cni_bin_dir().unwrap_or_else(|| "/usr/lib/cni".into());
        let runc = crate::find_tool("runc").unwrap_or_else(|| "runc".into());
        format!(
            "# Written by kubelet-lite's test harness.\n\
             root = {root}\n\
             state = {state}\n\
             socket = {socket}\n\
             registry_config_path = {certs_d}\n\
             cni_conf_dir = {cni_conf}\n\
             cni_bin_dirs = [{cni_bin}]\n\
             default_runtime = \"runc\"\n\
             \n\
             [runtimes.runc]\n\
             binary = {runc}\n",
            root = path(&runtime.join("root")),
            state = path(&runtime.join("state")),
            socket = path(&self.runtime_socket),
            certs_d = path(&runtime.join("certs.d")),
            cni_conf = path(&runtime.join("net.d")),
            cni_bin = path(&cni_bin),
            runc = path(&runc),
        )
    }

    /// Starts the process on the prepared configuration and waits until it is ready.
    fn spawn(&mut self) -> anyhow::Result<()> {
        let file = OpenOptions::new().create(true).append(true).open(&self.log)?;
        self.log_offset = file.metadata()?.len();
        let mut command = process::daemon_command(&self.binary);
        command
            .args(&self.command)
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .env("TMPDIR", self.dir.path())
            .current_dir(self.dir.path());
        if std::env::var_os("RUST_LOG").is_none() {
            command.env("RUST_LOG", &self.options.log_filter);
        }
        self.env.apply(&mut command);
        self.child = Some(process::spawn_daemon(command).context("starting kubelet-lite")?);
        self.wait_until_ready()
            .with_context(|| format!("kubelet-lite's log ends with:\n{}", self.log_tail(40)))
    }

    fn wait_until_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + self.options.ready_timeout;
        let mut last = String::from("not started");
        loop {
            if let Some(status) = self.child.as_mut().map(Child::try_wait).transpose()?.flatten() {
                self.child = None;
                bail!("kubelet-lite exited with {status} while starting");
            }
            match self.ready_status() {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(err) => last = format!("{err:#}"),
            }
            if Instant::now() >= deadline {
                bail!(
                    "kubelet-lite node {} not ready within {:?}: {last}",
                    self.options.node_name,
                    self.options.ready_timeout
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// With a control plane: its Node is Ready. Standalone: its runtime socket exists (or
    /// the remote runtime is in use) and the log says it runs.
    fn ready_status(&mut self) -> anyhow::Result<bool> {
        let Some(kubectl) = self.kubectl.as_mut() else {
            let log = tail_from(&self.log, self.log_offset, 200);
            return Ok(log.contains("kubelet-lite running"));
        };
        let output = Command::new(kubectl.get_program())
            .args(kubectl.get_args())
            .args([
                "get",
                "node",
                &self.options.node_name,
                "--ignore-not-found",
                "-o",
                "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
            ])
            .stdin(Stdio::null())
            .output()?;
        if !output.status.success() {
            bail!("kubectl: {}", String::from_utf8_lossy(&output.stderr).trim());
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim() == "True")
    }

    /// The node's name.
    pub fn node_name(&self) -> &str {
        &self.options.node_name
    }

    /// The node's address.
    pub fn node_ip(&self) -> Ipv4Addr {
        self.options.node_ip
    }

    /// The pod subnet of the embedded runtime.
    pub fn pod_subnet(&self) -> &str {
        &self.options.pod_subnet
    }

    /// The kubelet API port it advertises.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its root directory (`--root-dir`).
    pub fn root_dir(&self) -> &Path {
        &self.root_dir
    }

    /// Its static pod directory (`--pod-manifest-path`): write manifests here.
    pub fn manifests_dir(&self) -> &Path {
        &self.manifests
    }

    /// The embedded runtime's CRI endpoint (`unix:///...`), or the remote one it uses.
    pub fn runtime_endpoint(&self) -> String {
        match &self.options.runtime_endpoint {
            Some(endpoint) => endpoint.clone(),
            None => format!("unix://{}", self.runtime_socket.display()),
        }
    }

    /// Its log file.
    pub fn log_file(&self) -> &Path {
        &self.log
    }

    /// The last `lines` lines of its log (all runs).
    pub fn log_tail(&self, lines: usize) -> String {
        tail_from(&self.log, 0, lines)
    }

    /// Its pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The options it was started with.
    pub fn options(&self) -> &KubeletLiteOptions {
        &self.options
    }

    /// Stops it with SIGTERM (SIGKILL after a grace period); its pods keep running.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            process::stop_child(&mut child, STOP_GRACE).context("stopping kubelet-lite")?;
        }
        Ok(())
    }

    /// Kills it with SIGKILL, as a crash would; its pods keep running.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            process::signal(child.id(), Signal::SIGKILL).context("killing kubelet-lite")?;
            child.wait().context("reaping kubelet-lite")?;
        }
        Ok(())
    }

    /// Starts it again after [`KubeletLite::stop`] or [`KubeletLite::kill`], on the same
    /// files; returns once it is ready.
    pub fn start_again(&mut self) -> anyhow::Result<()> {
        if let Some(pid) = self.pid() {
            bail!("kubelet-lite is still running (pid {pid})");
        }
        let started = Instant::now();
        self.spawn()?;
        crate::note(format!("kubelet-lite started again in {:.2?}", started.elapsed()));
        Ok(())
    }

    /// Sets (`Some`) or unsets (`None`) environment variable `key` for its next starts:
    /// arming a crash point, say.
    pub fn set_env(&mut self, key: &str, value: Option<&str>) {
        self.env.set(key, value);
    }

    /// Waits up to `timeout` for it to end by itself (a crash point, say) and reaps it;
    /// its exit status, or `None` if it still runs (or was not running).
    pub fn wait_exit(&mut self, timeout: Duration) -> anyhow::Result<Option<std::process::ExitStatus>> {
        Ok(process::wait_exit(&mut self.child, timeout)?)
    }

    /// [`KubeletLite::stop`], then [`KubeletLite::start_again`].
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop()?;
        self.start_again()
    }

    /// Tears everything down; idempotent; [`Drop`] calls it.
    pub fn cleanup(&mut self) -> anyhow::Result<()> {
        if self.cleaned {
            return Ok(());
        }
        let started = Instant::now();
        let mut teardown = Teardown::default();
        teardown.stop_processes("kubelet-lite", self.child.take(), self.dir.path(), STOP_GRACE);
        teardown.step(
            "deleting runc containers",
            host::runc_delete_all(&self.runtime_dir().join("state/runc")),
        );
        teardown.step("unmounting", host::unmount_all_under(self.dir.path()).map(drop));
        if self.options.runtime_endpoint.is_none() {
            teardown.step(
                "removing the pod network",
                host::teardown_network(&self.options.pod_bridge, Some(&network_name(&self.options.pod_bridge))),
            );
        }
        teardown.step(
            "removing the node address",
            host::teardown_network(&self.options.node_bridge, None),
        );
        teardown.step("removing pod logs", self.remove_pod_logs());
        scratch::keep_log(&self.log, self.dir.path());
        teardown.step("removing the scratch directory", self.dir.remove().map_err(Into::into));
        teardown.finish("kubelet-lite")?;
        self.locks.clear();
        self.cleaned = true;
        crate::note(format!("kubelet-lite cleaned up in {:.2?}", started.elapsed()));
        Ok(())
    }

    /// Removes the `/var/log/pods` directories that appeared since it started and belong
    /// to pods it ran (their UID is in its log or its pods directory).
    fn remove_pod_logs(&self) -> anyhow::Result<()> {
        let log = fs::read_to_string(&self.log).unwrap_or_default();
        for name in entry_names(Path::new(POD_LOG_ROOT)) {
            if self.pod_logs_before.contains(&name) {
                continue;
            }
            let Some(uid) = name.rsplit('_').next().filter(|uid| !uid.is_empty()) else {
                continue;
            };
            if log.contains(uid) || self.root_dir.join("pods").join(uid).exists() {
                let path = Path::new(POD_LOG_ROOT).join(&name);
                host::remove_dir_safely(&path).with_context(|| format!("removing {}", path.display()))?;
            }
        }
        Ok(())
    }

    /// The admin kubeconfig of the control plane it joined, if any.
    pub fn admin_kubeconfig(&self) -> Option<&Path> {
        self.admin_kubeconfig.as_deref()
    }
}

impl Drop for KubeletLite {
    fn drop(&mut self) {
        if let Err(err) = self.cleanup() {
            crate::note(format!("{err:#}"));
        }
    }
}

/// The CNI network name of a pod bridge.
fn network_name(bridge: &str) -> String {
    format!("kubelet-lite-{bridge}")
}

fn display(path: &Path) -> String {
    path.display().to_string()
}

fn entry_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_use_this_helpers_addresses() {
        let options = KubeletLiteOptions::default();
        assert_eq!(options.node_ip, Ipv4Addr::new(198, 18, 51, 1));
        assert_eq!(options.pod_subnet, "198.18.50.0/24");
        assert!(options.node_bridge.len() < 16 && options.pod_bridge.len() < 16);
        assert!(network_name(&options.pod_bridge).starts_with("kubelet-lite-"));
    }
}
