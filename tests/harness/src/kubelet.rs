//! The real kubelet 1.20 as a node of a test [`ControlPlane`], driving any CRI runtime
//! (runtime-core, containerd) over its socket.
//!
//! The kubelet is the one `scripts/build-kubernetes.sh` builds with the control plane
//! (see [`crate::control_plane`]). Each [`Kubelet`] gets:
//!
//! - a node address on a bridge of its own with no ports ([`KubeletOptions::node_bridge`],
//!   [`KubeletOptions::node_ip`], `/32`): the kubelet refuses a loopback node IP, and this
//!   machine has no dummy interfaces; the apiserver reaches the kubelet there;
//! - node credentials from the control plane (`system:node:NAME`), a serving certificate
//!   for its node address, x509 client authentication against the test CA (anonymous
//!   off) and webhook authorization through the apiserver;
//! - a scratch directory holding its root directory (`--root-dir`, made rshared by the
//!   kubelet itself), certificates, configuration, an empty static pod directory and its
//!   log.
//!
//! The configuration keeps the kubelet off the host's resources as far as 1.20 allows:
//! cgroupfs driver without QoS cgroups or node allocatable enforcement, no eviction
//! thresholds, no swap check, no iptables chains, no image garbage collection, free
//! ports for its API and healthz, nothing read-only.
//!
//! What it still does to the host, undone on drop (which assumes no other kubelet runs on
//! the machine at the same time):
//!
//! - it sets six kernel tunables (`vm.overcommit_memory`, `vm.panic_on_oom`,
//!   `kernel.panic`, `kernel.panic_on_oops`, `kernel.keys.root_maxkeys`,
//!   `kernel.keys.root_maxbytes`): their values from before are kept in
//!   `BASE/kubelet-kernel-tunables` ([`TUNABLES_FILE`]) until cleanup restores them, so that
//!   the next kubelet restores them after a run that died;
//! - it keeps pod logs in the hard-wired [`POD_LOG_ROOT`] (with links in
//!   [`CONTAINER_LOG_LINKS`]) and removes a deleted pod's only in its garbage collection,
//!   once a minute: cleanup removes the new ones of the pods it ran;
//! - it serves device plugins from the hard-wired [`DEVICE_PLUGIN_DIR`], emptying it first:
//!   cleanup removes it, and the directories above, if they did not exist before.
//!
//! A test process killed before its cleanup leaves those pod logs and directories behind
//! (the reaper of [`crate::scratch`] takes care of the kubelet's process, mounts, files and
//! bridge only); the next kubelet restores the kernel tunables.
//!
//! Its AWS credential provider would ask the EC2 metadata address for credentials at
//! start-up: `AWS_EC2_METADATA_DISABLED=true` keeps it from sending anything.
//!
//! ```no_run
//! use test_harness::{ControlPlane, Kubelet, KubeletOptions};
//!
//! # fn f(runtime_endpoint: &str) -> anyhow::Result<()> {
//! let control_plane = ControlPlane::start()?;
//! let kubelet = Kubelet::start(&control_plane, runtime_endpoint, KubeletOptions::default())?;
//! control_plane.kubectl(["get", "node", kubelet.node_name()])?; // Ready
//! # Ok(()) }
//! ```

use std::fs::{self, OpenOptions};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::control_plane::{self, ControlPlane, kubernetes_binaries};
use crate::host::{self, InstanceRecord};
use crate::output::tail_from;
use crate::pki::CertificateSpec;
use crate::scratch::{self, NamedLock, ScratchDir};
use crate::teardown::Teardown;
use crate::{Missing, process};

/// The host tools a kubelet needs besides its binary: `setpriv` to start it, `ip` for the
/// node address, `mount`/`umount` (it mounts secret volumes with them), `kubectl` to see
/// its Node become Ready.
pub const KUBELET_TOOLS: &[&str] = &["setpriv", "ip", "mount", "umount", "kubectl"];

/// Where the kubelet 1.20 keeps container logs, whatever its root directory (a constant
/// in its source).
pub const POD_LOG_ROOT: &str = "/var/log/pods";

/// Where the kubelet links container logs by name (for log collectors).
pub const CONTAINER_LOG_LINKS: &str = "/var/log/containers";

/// The kernel tunables the kubelet 1.20 sets at start-up (`setupKernelTunables`), as
/// paths under `/proc/sys`.
pub const KERNEL_TUNABLES: &[&str] = &[
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
];

/// How long SIGTERM has to stop the kubelet before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// How often readiness checks poll.
const POLL: Duration = Duration::from_millis(250);

/// What may differ between two kubelets (on one machine, each needs its own node name,
/// address and bridge).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeletOptions {
    /// The node's name (`--hostname-override`, and `system:node:NAME` in its certificate).
    /// Default `klt-node-0`.
    pub node_name: String,
    /// The node's address (`--node-ip`, `InternalIP`). Default `198.18.255.1`.
    pub node_ip: Ipv4Addr,
    /// The bridge (without ports) that holds the node address. Default `kltnode0`.
    pub node_bridge: String,
    /// How long the Node may take to become Ready. Default 90 s.
    pub ready_timeout: Duration,
    /// The kubelet's `--v` log level. Default 2 (one line per pod and container event).
    pub verbosity: u8,
    /// How long to wait for another test process using the same bridge to finish.
    /// Default 10 minutes.
    pub network_lock_timeout: Duration,
}

impl Default for KubeletOptions {
    fn default() -> KubeletOptions {
        KubeletOptions {
            node_name: "klt-node-0".into(),
            node_ip: Ipv4Addr::new(198, 18, 255, 1),
            node_bridge: "kltnode0".into(),
            ready_timeout: Duration::from_secs(90),
            verbosity: 2,
            network_lock_timeout: Duration::from_secs(600),
        }
    }
}

/// A running kubelet 1.20 registered as a Ready node. Dropping it stops the kubelet,
/// unmounts everything under its root directory, removes its node address and bridge,
/// restores the kernel tunables it changed, and removes its files and what it left on the
/// host (see the module documentation). The pods' containers are the runtime's to remove.
#[derive(Debug)]
pub struct Kubelet {
    options: KubeletOptions,
    child: Option<Child>,
    log: PathBuf,
    root_dir: PathBuf,
    port: u16,
    host_before: HostPaths,
    cleaned: bool,
    dir: ScratchDir,
    network_lock: Option<NamedLock>,
}

impl Kubelet {
    /// Starts a kubelet registering with `control_plane` and running pods through the
    /// CRI runtime at `runtime_endpoint` (`unix:///...`), and waits until its Node is
    /// Ready.
    ///
    /// Fails with [`crate::Missing`] in the chain if the kubelet binary or a tool is
    /// absent or not root.
    pub fn start(
        control_plane: &ControlPlane,
        runtime_endpoint: &str,
        options: KubeletOptions,
    ) -> anyhow::Result<Kubelet> {
        crate::require_root()?;
        let binary = match (crate::require_tools(KUBELET_TOOLS), kubernetes_binaries(&["kubelet"])) {
            (Ok(()), Ok(mut binaries)) => binaries.remove(0),
            (tools, binaries) => {
                let items = (tools.err().into_iter().chain(binaries.err()))
                    .flat_map(|missing| missing.items().to_vec())
                    .collect::<Vec<_>>();
                return Err(Missing::new(items).into());
            }
        };
        let started = Instant::now();
        scratch::reap_stale();
        let network_lock = NamedLock::acquire(
            &host::network_lock_name(&options.node_bridge),
            options.network_lock_timeout,
        )?;
        host::teardown_network(&options.node_bridge, None)?;
        let dir = ScratchDir::create("kubelet").context("creating the kubelet's scratch directory")?;
        let mut kubelet = Kubelet {
            log: dir.path().join("kubelet.log"),
            root_dir: dir.path().join("root"),
            port: 0,
            host_before: HostPaths::now(),
            child: None,
            cleaned: false,
            options,
            dir,
            network_lock: Some(network_lock),
        };
        // From here on, a failure drops `kubelet`, which cleans up.
        InstanceRecord {
            bridge: Some(kubelet.options.node_bridge.clone()),
            ..InstanceRecord::default()
        }
        .write(kubelet.dir.path())?;
        host::add_node_address(&kubelet.options.node_bridge, kubelet.options.node_ip)?;
        let mut command = kubelet.prepare(control_plane, &binary, runtime_endpoint)?;
        save_tunables()?;
        let file = OpenOptions::new().create(true).append(true).open(&kubelet.log)?;
        command.stdin(Stdio::null()).stdout(file.try_clone()?).stderr(file);
        kubelet.child = Some(process::spawn_daemon(command).context("starting the kubelet")?);
        kubelet
            .wait_until_ready(control_plane)
            .with_context(|| format!("the kubelet's log ends with:\n{}", kubelet.log_tail(40)))?;
        crate::note(format!(
            "kubelet {} ready in {:.2?} (node {} at {}, pid {}, runtime {runtime_endpoint})",
            control_plane::KUBERNETES_VERSION,
            started.elapsed(),
            kubelet.options.node_name,
            kubelet.options.node_ip,
            kubelet.pid().unwrap_or_default(),
        ));
        Ok(kubelet)
    }

    /// Writes credentials and configuration; returns the kubelet's command.
    fn prepare(
        &mut self,
        control_plane: &ControlPlane,
        binary: &Path,
        runtime_endpoint: &str,
    ) -> anyhow::Result<Command> {
        let name = self.options.node_name.clone();
        let kubeconfig = control_plane.node_kubeconfig(&name)?;
        let serving = control_plane.pki().issue(
            &format!("kubelet-{name}"),
            &CertificateSpec::server(&format!("system:node:{name}"))
                .with_ips([IpAddr::V4(self.options.node_ip)])
                .with_dns_names([name.clone()]),
        )?;
        let static_pods = self.dir.path().join("manifests");
        let volume_plugins = self.dir.path().join("volume-plugins");
        for dir in [&self.root_dir, &static_pods, &volume_plugins] {
            fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        self.port = control_plane::free_port()?;
        let config = self.dir.path().join("config.yaml");
        let text = kubelet_config(&KubeletConfigInputs {
            address: self.options.node_ip,
            port: self.port,
            healthz_port: control_plane::free_port()?,
            tls_cert: &serving.cert,
            tls_key: &serving.key,
            client_ca: control_plane.ca_cert(),
            static_pods: &static_pods,
            volume_plugins: &volume_plugins,
        });
        fs::write(&config, text).with_context(|| format!("writing {}", config.display()))?;

        let mut command = process::daemon_command(binary);
        command
            .arg("--config")
            .arg(&config)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .arg("--root-dir")
            .arg(&self.root_dir)
            .arg("--cert-dir")
            .arg(self.dir.path().join("pki"))
            .args([
                "--container-runtime",
                "remote",
                "--container-runtime-endpoint",
                runtime_endpoint,
            ])
            .args(["--image-service-endpoint", runtime_endpoint])
            .arg("--node-ip")
            .arg(self.options.node_ip.to_string())
            .args(["--hostname-override", &name])
            // Unused with a remote runtime; named so that nothing defaults to a public registry.
            .args(["--pod-infra-container-image", "registry.k8s.io/pause:3.9"])
            .arg(format!("--v={}", self.options.verbosity))
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .current_dir(self.dir.path());
        Ok(command)
    }

    fn wait_until_ready(&mut self, control_plane: &ControlPlane) -> anyhow::Result<()> {
        let deadline = Instant::now() + self.options.ready_timeout;
        let ready = "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}";
        let mut last = String::from("the Node is not registered");
        loop {
            if let Some(status) = self.child.as_mut().map(Child::try_wait).transpose()?.flatten() {
                self.child = None;
                bail!("the kubelet exited with {status} while starting");
            }
            match control_plane.kubectl([
                "get",
                "node",
                &self.options.node_name,
                "--ignore-not-found",
                "-o",
                ready,
            ]) {
                Ok(status) if status.trim() == "True" => return Ok(()),
                Ok(status) if status.trim().is_empty() => {}
                Ok(status) => {
                    last = format!(
                        "Ready is {status}: {}",
                        control_plane
                            .kubectl([
                                "get",
                                "node",
                                &self.options.node_name,
                                "-o",
                                "jsonpath={.status.conditions[?(@.type==\"Ready\")].message}",
                            ])
                            .unwrap_or_default()
                    );
                }
                Err(err) => last = format!("{err:#}"),
            }
            if Instant::now() >= deadline {
                bail!(
                    "node {} not Ready within {:?}: {last}",
                    self.options.node_name,
                    self.options.ready_timeout
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// The node's name.
    pub fn node_name(&self) -> &str {
        &self.options.node_name
    }

    /// The node's address.
    pub fn node_ip(&self) -> Ipv4Addr {
        self.options.node_ip
    }

    /// The port of the kubelet's API on the node address.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The kubelet's root directory (`--root-dir`).
    pub fn root_dir(&self) -> &Path {
        &self.root_dir
    }

    /// The kubelet's log file.
    pub fn log_file(&self) -> &Path {
        &self.log
    }

    /// The last `lines` lines of the kubelet's log.
    pub fn log_tail(&self, lines: usize) -> String {
        tail_from(&self.log, 0, lines)
    }

    /// The kubelet's pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The options it was started with.
    pub fn options(&self) -> &KubeletOptions {
        &self.options
    }

    /// Whether this kubelet ran pod `uid`: it still has a directory for it, or its log
    /// names it (every pod it is given, at `--v=2` and above).
    fn ran_pod(&self, uid: &str, log: &str) -> bool {
        self.root_dir.join("pods").join(uid).exists() || log.contains(uid)
    }

    /// Stops the kubelet (SIGTERM, SIGKILL after a few seconds), unmounts everything under
    /// its directory, removes its node address and bridge, restores the kernel tunables,
    /// removes the logs of the pods it knew and its files. Idempotent; [`Drop`] calls it.
    pub fn cleanup(&mut self) -> anyhow::Result<()> {
        if self.cleaned {
            return Ok(());
        }
        let started = Instant::now();
        let mut teardown = Teardown::default();
        teardown.stop_processes("the kubelet", self.child.take(), self.dir.path(), STOP_GRACE);
        teardown.step("unmounting", host::unmount_all_under(self.dir.path()).map(drop));
        teardown.step(
            "removing the node address",
            host::teardown_network(&self.options.node_bridge, None),
        );
        teardown.step("restoring kernel tunables", restore_tunables());
        let log = fs::read_to_string(&self.log).unwrap_or_default();
        teardown.step(
            "removing what the kubelet left on the host",
            self.host_before.remove_new(|uid| self.ran_pod(uid, &log)),
        );
        scratch::keep_log(&self.log, self.dir.path());
        teardown.step("removing the scratch directory", self.dir.remove().map_err(Into::into));
        teardown.finish("kubelet")?;
        self.network_lock = None;
        self.cleaned = true;
        crate::note(format!("kubelet cleaned up in {:.2?}", started.elapsed()));
        Ok(())
    }
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        if let Err(err) = self.cleanup() {
            crate::note(format!("{err:#}"));
        }
    }
}

/// What the kubelet's configuration file names.
struct KubeletConfigInputs<'a> {
    address: Ipv4Addr,
    port: u16,
    healthz_port: u16,
    tls_cert: &'a Path,
    tls_key: &'a Path,
    client_ca: &'a Path,
    static_pods: &'a Path,
    volume_plugins: &'a Path,
}

/// The KubeletConfiguration (v1beta1) of a test node; see the module documentation.
fn kubelet_config(inputs: &KubeletConfigInputs<'_>) -> String {
    let path = |path: &Path| serde_json::Value::from(path.to_string_lossy()).to_string();
    format!(
        "# Written by kubelet-lite's test harness.\n\
         apiVersion: kubelet.config.k8s.io/v1beta1\n\
         kind: KubeletConfiguration\n\
         address: {address}\n\
         port: {port}\n\
         readOnlyPort: 0\n\
         healthzBindAddress: 127.0.0.1\n\
         healthzPort: {healthz_port}\n\
         tlsCertFile: {tls_cert}\n\
         tlsPrivateKeyFile: {tls_key}\n\
         authentication:\n  \
           anonymous:\n    \
             enabled: false\n  \
           webhook:\n    \
             enabled: false\n  \
           x509:\n    \
             clientCAFile: {client_ca}\n\
         authorization:\n  \
           mode: Webhook\n\
         cgroupDriver: cgroupfs\n\
         cgroupsPerQOS: false\n\
         enforceNodeAllocatable: []\n\
         failSwapOn: false\n\
         evictionHard: {{}}\n\
         imageGCHighThresholdPercent: 100\n\
         imageGCLowThresholdPercent: 99\n\
         makeIPTablesUtilChains: false\n\
         staticPodPath: {static_pods}\n\
         volumePluginDir: {volume_plugins}\n\
         serializeImagePulls: true\n\
         nodeStatusUpdateFrequency: 2s\n",
        address = inputs.address,
        port = inputs.port,
        healthz_port = inputs.healthz_port,
        tls_cert = path(inputs.tls_cert),
        tls_key = path(inputs.tls_key),
        client_ca = path(inputs.client_ca),
        static_pods = path(inputs.static_pods),
        volume_plugins = path(inputs.volume_plugins),
    )
}

/// The file, in the scratch base directory, that holds the values of [`KERNEL_TUNABLES`]
/// from before a kubelet changed them, one `NAME=VALUE` a line.
pub const TUNABLES_FILE: &str = "kubelet-kernel-tunables";

fn tunables_file() -> anyhow::Result<PathBuf> {
    Ok(scratch::base_dir()?.join(TUNABLES_FILE))
}

/// Records the current values of [`KERNEL_TUNABLES`] in [`TUNABLES_FILE`], unless it
/// exists: then a kubelet that died before its cleanup changed them, and the file holds
/// the values from before that one.
fn save_tunables() -> anyhow::Result<()> {
    let path = tunables_file()?;
    if path.exists() {
        return Ok(());
    }
    let text: String = (KERNEL_TUNABLES.iter())
        .filter_map(|name| {
            let value = fs::read_to_string(Path::new("/proc/sys").join(name)).ok()?;
            Some(format!("{name}={}\n", value.trim()))
        })
        .collect();
    let temporary = path.with_extension("new");
    fs::write(&temporary, text).with_context(|| format!("writing {}", temporary.display()))?;
    fs::rename(&temporary, &path).with_context(|| format!("writing {}", path.display()))
}

/// Writes back the values [`save_tunables`] recorded and removes the record.
fn restore_tunables() -> anyhow::Result<()> {
    let path = tunables_file()?;
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(err).with_context(|| format!("reading {}", path.display())),
    };
    for (name, value) in parse_tunables(&text) {
        let target = Path::new("/proc/sys").join(name);
        let current = fs::read_to_string(&target).unwrap_or_default();
        if current.trim() != value {
            fs::write(&target, format!("{value}\n"))
                .with_context(|| format!("writing {value} to {}", target.display()))?;
        }
    }
    fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))
}

/// The `NAME=VALUE` lines of a [`TUNABLES_FILE`] that name one of [`KERNEL_TUNABLES`].
fn parse_tunables(text: &str) -> Vec<(&'static str, &str)> {
    text.lines()
        .filter_map(|line| {
            let (name, value) = line.split_once('=')?;
            let name = KERNEL_TUNABLES.iter().find(|known| **known == name)?;
            Some((*name, value.trim()))
        })
        .collect()
}

/// Where the kubelet 1.20 keeps its device plugin socket, whatever its root directory (a
/// constant in its source). At start-up it deletes everything else in that directory.
pub const DEVICE_PLUGIN_DIR: &str = "/var/lib/kubelet/device-plugins";

/// The host paths outside its root directory that the kubelet 1.20 writes, as they were
/// before it started.
#[derive(Debug, Clone, Default)]
struct HostPaths {
    /// Which of [`HostPaths::DIRECTORIES`] existed.
    existed: Vec<bool>,
    /// The entries of [`POD_LOG_ROOT`].
    pod_logs: Vec<String>,
}

impl HostPaths {
    /// Parents after children: removed in this order when the kubelet created them.
    const DIRECTORIES: [&str; 4] = [DEVICE_PLUGIN_DIR, "/var/lib/kubelet", POD_LOG_ROOT, CONTAINER_LOG_LINKS];

    fn now() -> HostPaths {
        HostPaths {
            existed: HostPaths::DIRECTORIES
                .iter()
                .map(|dir| Path::new(dir).exists())
                .collect(),
            pod_logs: entry_names(Path::new(POD_LOG_ROOT)),
        }
    }

    /// Removes what appeared since [`HostPaths::now`] and belongs to this kubelet: the log
    /// directories `/var/log/pods/NAMESPACE_NAME_UID` of the pods it ran (`ran_pod(UID)`),
    /// links in `/var/log/containers` left pointing nowhere, the contents of the device
    /// plugin directory, and the directories it created, if empty.
    fn remove_new(&self, ran_pod: impl Fn(&str) -> bool) -> anyhow::Result<()> {
        let current = entry_names(Path::new(POD_LOG_ROOT));
        for name in new_pod_log_dirs(&self.pod_logs, &current, ran_pod) {
            let path = Path::new(POD_LOG_ROOT).join(name);
            host::remove_dir_safely(&path).with_context(|| format!("removing {}", path.display()))?;
        }
        for entry in fs::read_dir(CONTAINER_LOG_LINKS).into_iter().flatten().flatten() {
            let Ok(target) = fs::read_link(entry.path()) else {
                continue;
            };
            if target.starts_with(POD_LOG_ROOT) && !target.exists() {
                let _ = fs::remove_file(entry.path());
            }
        }
        for (dir, existed) in HostPaths::DIRECTORIES.iter().zip(&self.existed) {
            if *existed {
                continue;
            }
            if *dir == DEVICE_PLUGIN_DIR {
                host::remove_dir_safely(Path::new(dir)).with_context(|| format!("removing {dir}"))?;
            } else {
                // Only if empty: another kubelet may have written there meanwhile.
                let _ = fs::remove_dir(dir);
            }
        }
        Ok(())
    }
}

/// The names of the entries of `dir` (none if it does not exist).
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

/// The pod log directories (`NAMESPACE_NAME_UID`) in `current` but not in `before`
/// whose UID `ran_pod` claims.
fn new_pod_log_dirs<'a>(before: &[String], current: &'a [String], ran_pod: impl Fn(&str) -> bool) -> Vec<&'a str> {
    current
        .iter()
        .filter(|name| !before.contains(name))
        .filter_map(|name| {
            let uid = name
                .rsplit('_')
                .next()
                .filter(|uid| !uid.is_empty() && *uid != name.as_str())?;
            ran_pod(uid).then_some(name.as_str())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_keeps_the_kubelet_off_the_host() {
        let text = kubelet_config(&KubeletConfigInputs {
            address: Ipv4Addr::new(198, 18, 255, 1),
            port: 40000,
            healthz_port: 40001,
            tls_cert: Path::new("/k/kubelet.crt"),
            tls_key: Path::new("/k/kubelet.key"),
            client_ca: Path::new("/k/ca.crt"),
            static_pods: Path::new("/k/manifests"),
            volume_plugins: Path::new("/k/volume-plugins"),
        });
        for expected in [
            "address: 198.18.255.1\n",
            "port: 40000\n",
            "readOnlyPort: 0\n",
            "healthzPort: 40001\n",
            "    enabled: false\n",
            "    clientCAFile: \"/k/ca.crt\"\n",
            "  mode: Webhook\n",
            "cgroupDriver: cgroupfs\n",
            "cgroupsPerQOS: false\n",
            "enforceNodeAllocatable: []\n",
            "failSwapOn: false\n",
            "evictionHard: {}\n",
            "makeIPTablesUtilChains: false\n",
            "staticPodPath: \"/k/manifests\"\n",
        ] {
            assert!(text.contains(expected), "{expected:?} not in\n{text}");
        }
    }

    #[test]
    fn only_new_log_directories_of_pods_it_ran_are_removed() {
        let before = vec!["default_old_u1".to_string()];
        let current = vec![
            "default_old_u1".to_string(),
            "default_hello_u2".to_string(),
            "other_pod_u3".to_string(),
            "no-uid".to_string(),
        ];
        let ours = |uid: &str| uid == "u1" || uid == "u2";
        assert_eq!(new_pod_log_dirs(&before, &current, ours), ["default_hello_u2"]);
    }

    #[test]
    fn recorded_tunables_name_only_what_the_kubelet_changes() {
        let text = "kernel/panic=1\nvm/overcommit_memory=0\n../../etc/passwd=x\ngarbage\n";
        assert_eq!(
            parse_tunables(text),
            [("kernel/panic", "1"), ("vm/overcommit_memory", "0")]
        );
    }

    #[test]
    fn default_options_put_the_node_in_the_test_range() {
        let options = KubeletOptions::default();
        assert_eq!(options.node_ip.octets()[..2], [198, 18]);
        assert!(options.node_bridge.len() < 16);
    }
}
