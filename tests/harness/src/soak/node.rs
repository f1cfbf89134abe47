//! The node a soak churns: kubelet-lite standalone with its embedded runtime-core, pods
//! from static manifests, on a network of its own; what it does to it (waves of pods,
//! kill -9 of the agent or of a container's monitor) and how it samples it.

use std::collections::BTreeSet;
use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use cri_api::v1;
use nix::sys::signal::Signal;
use tonic::transport::Channel;

use super::probe::{self, Memory};
use super::sample::{Counts, Kind, Sample};
use crate::kubelet_lite::{MONITOR_BINARY, POD_LOG_ROOT};
use crate::scratch::ScratchDir;
use crate::{KubeletLite, KubeletLiteOptions, Registry, cri, process};

/// The Node's name; the static pods are named `soak-wWAVE-N-klt-soak`.
pub const NODE_NAME: &str = "klt-soak";
/// The node's address, on [`NODE_BRIDGE`].
pub const NODE_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 121, 1);
/// The port-less bridge holding the node's address.
pub const NODE_BRIDGE: &str = "kltsoaknode0";
/// The pods' bridge.
pub const POD_BRIDGE: &str = "kltsoak0";
/// The pods' subnet: used by nothing else in the workspace.
pub const POD_SUBNET: &str = "198.18.120.0/24";

/// The prefix of the static pods' manifest files and names.
const POD_PREFIX: &str = "soak-w";

/// How long one CRI call of a sample may take.
const CRI_TIMEOUT: Duration = Duration::from_secs(10);

/// kubelet-lite's default `--max-pods`, raised when a wave holds more.
const DEFAULT_MAX_PODS: usize = 110;

/// The soaking node, the registry its images come from, and a CRI channel to its runtime.
/// Dropping it tears everything down (the node first).
#[derive(Debug)]
pub struct SoakNode {
    node: KubeletLite,
    _registry: Registry,
    image: String,
    monitor_binary: PathBuf,
    runtime: tokio::runtime::Runtime,
    channel: Channel,
    /// Every container id the runtime listed or kept a directory for: the cgroups that
    /// may be this node's (others under runtime-core's parent belong to other runtimes).
    seen_containers: BTreeSet<String>,
    _binaries: ScratchDir,
}

impl SoakNode {
    /// Copies `kubelet_lite` and its monitor to a directory of their own (a rebuild during
    /// a day-long run must not change what a restart starts), starts a registry with the
    /// test images and the node, standalone, and waits until it runs.
    pub fn start(kubelet_lite: &Path, pods: usize) -> anyhow::Result<SoakNode> {
        let binaries = ScratchDir::create("soak-bin").context("creating a directory for the binaries")?;
        let monitor = kubelet_lite.with_file_name(MONITOR_BINARY);
        for source in [kubelet_lite, &monitor] {
            let name = source.file_name().context("a binary path without a file name")?;
            fs::copy(source, binaries.path().join(name)).with_context(|| format!("copying {}", source.display()))?;
        }
        let binary = binaries.path().join(kubelet_lite.file_name().unwrap_or_default());
        let registry = Registry::start()?;
        let image = crate::push_test_images(&registry)?.busybox;
        let mut options = KubeletLiteOptions {
            node_name: NODE_NAME.into(),
            node_ip: NODE_IP,
            node_bridge: NODE_BRIDGE.into(),
            pod_bridge: POD_BRIDGE.into(),
            pod_subnet: POD_SUBNET.into(),
            log_filter: "info".into(),
            ..KubeletLiteOptions::default()
        };
        if pods > DEFAULT_MAX_PODS {
            options.extra_args = vec!["--max-pods".into(), pods.to_string()];
        }
        let node = KubeletLite::start_standalone(&binary, &registry, options)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting a tokio runtime")?;
        let socket = cri::socket_path(&node.runtime_endpoint())
            .context("the embedded runtime has no unix socket")?
            .to_path_buf();
        let channel = {
            let _entered = runtime.enter();
            cri::lazy_unix_channel(socket)
        };
        Ok(SoakNode {
            node,
            _registry: registry,
            image,
            monitor_binary: binaries.path().join(MONITOR_BINARY),
            runtime,
            channel,
            seen_containers: BTreeSet::new(),
            _binaries: binaries,
        })
    }

    /// The node's scratch directory: its root directory, manifests, the runtime's files.
    pub fn dir(&self) -> &Path {
        self.node.root_dir().parent().unwrap_or(self.node.root_dir())
    }

    /// The embedded runtime's directory in the harness's layout: `root/` (the redb store,
    /// container bundles), `state/` (sandboxes, monitors), `ipam/` (host-local).
    fn runtime_dir(&self) -> PathBuf {
        self.dir().join("runtime")
    }

    /// kubelet-lite's log.
    pub fn log_file(&self) -> &Path {
        self.node.log_file()
    }

    /// Writes the manifests of wave `wave`: `pods` busybox pods that sleep until told to
    /// stop (each written under another name, then renamed, so no half file is read).
    pub fn create_pods(&self, wave: u32, pods: usize) -> anyhow::Result<()> {
        for index in 0..pods {
            let name = format!("{POD_PREFIX}{wave}-{index}");
            let path = self.node.manifests_dir().join(format!("{name}.yaml"));
            let partial = path.with_extension("yaml.partial");
            fs::write(&partial, pod_manifest(&name, &self.image))
                .with_context(|| format!("writing {}", partial.display()))?;
            fs::rename(&partial, &path).with_context(|| format!("renaming {}", partial.display()))?;
        }
        Ok(())
    }

    /// Removes every soak manifest: kubelet-lite deletes their pods.
    pub fn delete_pods(&self) -> anyhow::Result<()> {
        let dir = self.node.manifests_dir();
        for name in probe::entry_names(dir) {
            if name.starts_with(POD_PREFIX) {
                let path = dir.join(&name);
                fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
            }
        }
        Ok(())
    }

    /// kubelet-lite's pid, while it runs.
    pub fn agent_pid(&self) -> Option<u32> {
        self.node.pid()
    }

    /// kill -9 of kubelet-lite (and so of its embedded runtime), then starts it again with
    /// the same arguments; returns how long it took to be running again.
    pub fn kill_agent(&mut self) -> anyhow::Result<Duration> {
        self.node.kill()?;
        let started = Instant::now();
        self.node
            .start_again()
            .context("starting kubelet-lite again after kill -9")?;
        Ok(started.elapsed())
    }

    /// kill -9 of a container's monitor picked at random; returns the container's id, or
    /// `None` when no monitor runs.
    pub fn kill_monitor(&self) -> anyhow::Result<Option<String>> {
        let monitors = self.monitors();
        if monitors.is_empty() {
            return Ok(None);
        }
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        let (pid, id) = &monitors[nanos.subsec_nanos() as usize % monitors.len()];
        process::signal(*pid, Signal::SIGKILL).with_context(|| format!("killing monitor {pid}"))?;
        Ok(Some(id.clone()))
    }

    /// The pids of this node's monitors, with the id of the container each watches.
    fn monitors(&self) -> Vec<(u32, String)> {
        let program = self.monitor_binary.to_string_lossy();
        process::pids_with_cmdline_containing(&format!("{}/", self.dir().display()))
            .into_iter()
            .filter_map(|pid| {
                let cmdline = process::cmdline(pid);
                let mut words = cmdline.split(' ');
                if words.next() != Some(&program) {
                    return None;
                }
                let id = words.skip_while(|word| *word != "--id").nth(1).unwrap_or_default();
                Some((pid, id.to_string()))
            })
            .collect()
    }

    /// What the runtime lists: (running containers, containers, sandboxes). Remembers the
    /// containers' ids.
    pub fn runtime_counts(&mut self) -> anyhow::Result<(u64, u64, u64)> {
        let mut client = cri::runtime_client(self.channel.clone());
        let (containers, sandboxes) = self.runtime.block_on(async {
            let containers = cri::within(
                CRI_TIMEOUT,
                client.list_containers(v1::ListContainersRequest::default()),
            )
            .await
            .context("ListContainers")?
            .containers;
            let sandboxes = cri::within(
                CRI_TIMEOUT,
                client.list_pod_sandbox(v1::ListPodSandboxRequest::default()),
            )
            .await
            .context("ListPodSandbox")?
            .items;
            anyhow::Ok((containers, sandboxes))
        })?;
        let running = containers
            .iter()
            .filter(|container| container.state == v1::ContainerState::ContainerRunning as i32)
            .count();
        self.seen_containers
            .extend(containers.iter().map(|container| container.id.clone()));
        Ok((running as u64, containers.len() as u64, sandboxes.len() as u64))
    }

    /// Remembers the ids of the containers the runtime keeps directories for, so that
    /// containers gone between two CRI lists still have their cgroups counted.
    pub fn note_container_dirs(&mut self) {
        let runtime = self.runtime_dir();
        for dir in [runtime.join("root/containers"), runtime.join("state/monitors")] {
            self.seen_containers.extend(probe::entry_names(&dir));
        }
    }

    /// Takes a sample (`events`: what happened since the last one).
    pub fn sample(&mut self, at: Duration, kind: Kind, wave: u32, events: String) -> anyhow::Result<Sample> {
        let (running_containers, containers, sandboxes) = self.runtime_counts()?;
        self.note_container_dirs();
        let monitors = self.monitors();
        let agent_pid = self.agent_pid().unwrap_or(0);
        let runtime = self.runtime_dir();
        let mounts = probe::mounts_under(self.dir());
        let state = runtime.join("state");
        let runtime_dirs = [
            runtime.join("root/containers"),
            state.join("sandboxes"),
            state.join("monitors"),
        ]
        .iter()
        .map(|dir| probe::entry_count(dir))
        .sum();
        let pod_log_dirs = probe::entry_names(Path::new(POD_LOG_ROOT))
            .iter()
            .filter(|name| {
                name.starts_with(&format!("default_{POD_PREFIX}")) && name.contains(&format!("-{NODE_NAME}_"))
            })
            .count() as u64;
        Ok(Sample {
            at,
            kind,
            wave,
            agent_pid,
            agent: probe::memory(agent_pid),
            agent_fds: probe::open_fds(agent_pid),
            monitors: monitors
                .iter()
                .map(|(pid, _)| probe::memory(*pid))
                .fold(Memory::default(), |sum, memory| sum + memory),
            store_bytes: probe::file_size(&runtime.join("root/metadata.redb")),
            counts: Counts {
                running_containers,
                containers,
                sandboxes,
                monitors: monitors.len() as u64,
                mounts: mounts.all,
                net_namespaces: mounts.net_namespaces,
                veths: probe::bridge_ports(POD_BRIDGE),
                ip_reservations: probe::ip_reservations(&runtime.join("ipam")),
                cgroups: probe::cgroups_of(&self.seen_containers).len() as u64,
                pod_dirs: probe::entry_count(&self.node.root_dir().join("pods")),
                pod_log_dirs,
                runtime_dirs,
                monitor_fds: monitors.iter().map(|(pid, _)| probe::open_fds(*pid)).sum(),
                agent_children: probe::children_of(agent_pid),
            },
            events,
        })
    }

    /// Fails unless the agent still runs (it may have crashed on its own).
    pub fn check_agent_alive(&self) -> anyhow::Result<()> {
        match self.agent_pid() {
            Some(pid) if process::is_alive(pid) => Ok(()),
            _ => bail!(
                "kubelet-lite is not running; its log ends with:\n{}",
                self.node.log_tail(30)
            ),
        }
    }
}

/// A static pod that logs a line and sleeps until SIGTERM, with an emptyDir volume.
fn pod_manifest(name: &str, image: &str) -> String {
    format!(
        "apiVersion: v1\n\
         kind: Pod\n\
         metadata:\n  name: {name}\n  labels:\n    app: soak\n\
         spec:\n  terminationGracePeriodSeconds: 5\n  \
         volumes:\n  - name: scratch\n    emptyDir: {{}}\n  \
         containers:\n  - name: sleeper\n    image: {image}\n    \
         command: [\"sh\", \"-c\", \"echo soak pod up; trap 'exit 0' TERM; sleep 1000000 & wait\"]\n    \
         volumeMounts:\n    - name: scratch\n      mountPath: /scratch\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_network_is_one_nobody_else_uses() {
        assert!(NODE_BRIDGE.len() < 16 && POD_BRIDGE.len() < 16);
        assert!(crate::cni::in_cidr("198.18.120.7", POD_SUBNET).unwrap());
        assert!(!crate::cni::in_cidr(&NODE_IP.to_string(), POD_SUBNET).unwrap());
    }

    #[test]
    fn manifests_name_the_pod_and_its_image() {
        let manifest = pod_manifest("soak-w3-7", "docker.io/library/busybox:1.36");
        assert!(manifest.contains("  name: soak-w3-7\n"), "{manifest}");
        assert!(
            manifest.contains("image: docker.io/library/busybox:1.36\n"),
            "{manifest}"
        );
        assert!(manifest.contains("emptyDir: {}"), "{manifest}");
    }
}
