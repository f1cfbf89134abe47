//! A CNI client: attaches pods to the node's network by running the plugin binaries the
//! network configuration names (CNI spec 0.3.x, 0.4.0 and 1.0.0).
//!
//! - [`config`] finds the network configuration in the configuration directory;
//! - [`invoke`] builds each plugin's stdin and environment and runs it;
//! - [`result`] reads plugin results and errors;
//! - [`cache`] keeps each successful ADD's configuration and result, for DEL and CHECK.
//!
//! [`Cni::add`] runs the plugins in order, each given the previous one's result as
//! `prevResult`; if one fails, the ones that ran are undone with DEL. [`Cni::del`] runs
//! them in reverse order with the configuration and result ADD cached, so it works after a
//! restart and after the configuration changed, and it succeeds when there is nothing left
//! to delete (the CRI requires StopPodSandbox to be idempotent).
//!
//! ```no_run
//! # async fn example() -> Result<(), runtime_core::sandbox::cni::CniError> {
//! use runtime_core::sandbox::cni::{Attachment, Cni, CniConfig};
//!
//! let cni = Cni::load(CniConfig::default())?;
//! if let Err(reason) = cni.network_ready() {
//!     println!("NetworkReady=false: {reason}");
//! }
//! let attachment = Attachment {
//!     container_id: "0123abcd".into(),
//!     netns: "/run/runtime-core/sandboxes/0123abcd/ns/net".into(),
//!     ifname: "eth0".into(),
//!     pod_namespace: "default".into(),
//!     pod_name: "web-0".into(),
//!     pod_uid: "6a1c8d52".into(),
//!     port_mappings: Vec::new(),
//! };
//! let status = cni.add(&attachment).await?;
//! println!("pod IP {:?}", status.primary_ip());
//! cni.del(&attachment).await?;
//! # Ok(())
//! # }
//! ```

pub mod cache;
pub mod config;
pub mod invoke;
pub mod result;
pub mod template;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use serde_json::{Map, Value};
use tracing::{debug, info, warn};

use self::cache::{CACHE_KIND, CacheEntry};
use self::config::{NetworkConfigList, supports_check};
use self::invoke::{Invocation, Operation, find_plugin, plugin_stdin};
use super::namespaces::is_pinned;

/// How long one plugin may run unless [`Cni::with_plugin_timeout`] says otherwise.
pub const DEFAULT_PLUGIN_TIMEOUT: Duration = Duration::from_secs(60);

/// The longest interface name the kernel takes (`IFNAMSIZ` - 1).
const MAX_IFNAME_LEN: usize = 15;

/// Where the CNI client finds networks and plugins, and keeps its cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniConfig {
    /// The network configuration directory (`/etc/cni/net.d`).
    pub conf_dir: PathBuf,
    /// The plugin directories, searched in order (`/opt/cni/bin`, and `/usr/lib/cni` where
    /// Debian installs the plugins).
    pub bin_dirs: Vec<PathBuf>,
    /// The results cache ([`cache`]); it must survive restarts of the runtime.
    pub cache_dir: PathBuf,
    /// A network configuration template ([`template`], containerd's `conf_template`) that
    /// [`Cni::set_pod_cidrs`] renders into the configuration directory while it holds no
    /// network.
    pub template: Option<PathBuf>,
}

impl Default for CniConfig {
    fn default() -> Self {
        CniConfig {
            conf_dir: PathBuf::from("/etc/cni/net.d"),
            bin_dirs: vec![PathBuf::from("/opt/cni/bin"), PathBuf::from("/usr/lib/cni")],
            cache_dir: PathBuf::from("/var/lib/runtime-core/cni"),
            template: None,
        }
    }
}

/// A host port of the pod (the `portMappings` capability).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PortMapping {
    /// The port on the host.
    pub host_port: u16,
    /// The port in the pod.
    pub container_port: u16,
    /// `tcp`, `udp` or `sctp`.
    pub protocol: String,
    /// The host address to bind; empty for all.
    pub host_ip: String,
}

impl PortMapping {
    /// The mapping a CRI `PortMapping` asks for; `None` if it has no host port (or a port
    /// out of range), which is not a mapping (containerd skips those too).
    pub fn from_cri(mapping: &cri_api::v1::PortMapping) -> Option<PortMapping> {
        let host_port = u16::try_from(mapping.host_port).ok().filter(|p| *p != 0)?;
        let container_port = u16::try_from(mapping.container_port).ok().filter(|p| *p != 0)?;
        let protocol = match cri_api::v1::Protocol::try_from(mapping.protocol) {
            Ok(cri_api::v1::Protocol::Udp) => "udp",
            Ok(cri_api::v1::Protocol::Sctp) => "sctp",
            _ => "tcp",
        };
        Some(PortMapping {
            host_port,
            container_port,
            protocol: protocol.to_string(),
            host_ip: mapping.host_ip.clone(),
        })
    }
}

/// One pod's attachment to the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// `CNI_CONTAINERID`: the sandbox id.
    pub container_id: String,
    /// The pod's network namespace file.
    pub netns: PathBuf,
    /// The interface to create in it (`eth0`).
    pub ifname: String,
    /// The pod's namespace (`K8S_POD_NAMESPACE`).
    pub pod_namespace: String,
    /// The pod's name (`K8S_POD_NAME`).
    pub pod_name: String,
    /// The pod's UID (`K8S_POD_UID`).
    pub pod_uid: String,
    /// Host ports (for plugins declaring the `portMappings` capability).
    pub port_mappings: Vec<PortMapping>,
}

/// What ADD gave the pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkStatus {
    /// The pod's addresses on [`NetworkStatus::interface`]; the first is the primary
    /// (IPv4 first on a dual-stack network).
    pub ips: Vec<IpAddr>,
    /// The interface inside the pod.
    pub interface: String,
}

impl NetworkStatus {
    /// The pod IP the CRI reports first.
    pub fn primary_ip(&self) -> Option<IpAddr> {
        self.ips.first().copied()
    }
}

/// The file [`Cni::set_pod_cidrs`] renders the template into (containerd's is
/// `10-containerd-net.conflist`).
pub const RENDERED_CONFIG: &str = "10-runtime-core-net.conflist";

/// What [`Cni::set_pod_cidrs`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodCidrOutcome {
    /// Nothing: no template is configured (another component writes the network).
    NoTemplate,
    /// Nothing: the network of this file is configured already.
    AlreadyConfigured(PathBuf),
    /// The template was rendered into this file, now the network.
    Rendered(PathBuf),
}

/// What went wrong attaching or detaching a pod, or configuring the network.
#[derive(Debug, thiserror::Error)]
pub enum CniError {
    /// No usable network configuration (NetworkReady=false).
    #[error("cni network not ready: {0}")]
    NotReady(String),
    /// The configuration template could not be read or rendered, or what it rendered
    /// could not be written or is no usable network.
    #[error("cni config template {path}: {message}")]
    Template {
        /// The template.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The attachment's fields cannot be used.
    #[error("invalid cni attachment: {0}")]
    InvalidAttachment(String),
    /// A plugin binary is in none of the plugin directories.
    #[error("cni plugin {plugin} not found in {}", display_dirs(dirs))]
    PluginNotFound {
        /// The plugin type.
        plugin: String,
        /// The directories searched.
        dirs: Vec<PathBuf>,
    },
    /// A plugin could not be run.
    #[error("running cni plugin {plugin}: {source}")]
    Exec {
        /// The plugin type.
        plugin: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A plugin did not finish in time (it was killed).
    #[error("cni plugin {plugin} {operation} did not finish within {timeout:?}")]
    Timeout {
        /// The plugin type.
        plugin: String,
        /// ADD, DEL or CHECK.
        operation: &'static str,
        /// The limit.
        timeout: Duration,
    },
    /// A plugin failed; the message is the one it printed.
    #[error("cni plugin {plugin} {operation} failed{}: {message}", code.map(|c| format!(" (code {c})")).unwrap_or_default())]
    Plugin {
        /// The plugin type.
        plugin: String,
        /// ADD, DEL or CHECK.
        operation: &'static str,
        /// The spec's error code, if the plugin printed one.
        code: Option<u64>,
        /// Its message (and details).
        message: String,
    },
    /// A plugin printed something that is not a result.
    #[error("cni plugin {plugin} gave an unusable result: {reason}")]
    Result {
        /// The plugin type.
        plugin: String,
        /// What is wrong with it.
        reason: String,
    },
    /// ADD succeeded but gave the pod no address on its interface.
    #[error("cni network {network} gave no ip address for {ifname}")]
    NoAddress {
        /// The network.
        network: String,
        /// The interface.
        ifname: String,
    },
    /// CHECK on an attachment without a cached ADD.
    #[error("no cached cni result for container {container_id} interface {ifname}")]
    NotAttached {
        /// The container id.
        container_id: String,
        /// The interface.
        ifname: String,
    },
    /// CHECK on a network whose spec version predates it.
    #[error("cni version {version} does not support CHECK")]
    CheckUnsupported {
        /// The network's `cniVersion`.
        version: String,
    },
    /// The results cache could not be read or written.
    #[error("cni cache {}: {source}", path.display())]
    Cache {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

fn display_dirs(dirs: &[PathBuf]) -> String {
    if dirs.is_empty() {
        return "no plugin directory (none configured)".into();
    }
    dirs.iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The CNI client: the network configuration (re-read when the directory changes) and
/// the plugin runs.
#[derive(Debug)]
pub struct Cni {
    config: CniConfig,
    plugin_timeout: Duration,
    state: RwLock<Arc<Loaded>>,
    /// Held while the template is rendered and written, so two UpdateRuntimeConfig calls
    /// never write the file at once.
    rendering: std::sync::Mutex<()>,
}

/// The configuration directory as last read.
#[derive(Debug)]
struct Loaded {
    fingerprint: Fingerprint,
    /// The network, or why there is none.
    network: Result<Arc<Network>, String>,
}

/// A network and the file it came from.
#[derive(Debug)]
struct Network {
    source: PathBuf,
    list: NetworkConfigList,
}

/// What must change for the configuration directory to need reading again: the
/// directory's modification time (files added, removed, renamed) and each candidate
/// file's modification time and size (files rewritten in place).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Fingerprint {
    dir: Option<SystemTime>,
    files: Vec<(PathBuf, Option<SystemTime>, u64)>,
}

impl Fingerprint {
    fn of(dir: &Path) -> Fingerprint {
        let files = config::candidate_files(dir).unwrap_or_default();
        Fingerprint {
            dir: std::fs::metadata(dir).and_then(|m| m.modified()).ok(),
            files: files
                .into_iter()
                .map(|path| {
                    let meta = std::fs::metadata(&path).ok();
                    let modified = meta.as_ref().and_then(|m| m.modified().ok());
                    let len = meta.map_or(0, |m| m.len());
                    (path, modified, len)
                })
                .collect(),
        }
    }
}

impl Cni {
    /// A client over `config`. Succeeds without a usable network (then
    /// [`Cni::network_ready`] says why, and the configuration is read again when the
    /// directory changes).
    pub fn load(config: CniConfig) -> Result<Cni, CniError> {
        let cni = Cni {
            config,
            plugin_timeout: DEFAULT_PLUGIN_TIMEOUT,
            state: RwLock::new(Arc::new(Loaded {
                fingerprint: Fingerprint::default(),
                network: Err("not loaded".into()),
            })),
            rendering: std::sync::Mutex::new(()),
        };
        if let Err(err) = cni.reload() {
            info!(error = %err, "starting without a cni network");
        }
        Ok(cni)
    }

    /// The same client with another limit on each plugin run.
    pub fn with_plugin_timeout(mut self, timeout: Duration) -> Cni {
        self.plugin_timeout = timeout;
        self
    }

    /// Where it finds networks and plugins.
    pub fn config(&self) -> &CniConfig {
        &self.config
    }

    /// Reads the configuration directory again; `Err` says why no network is usable.
    pub fn reload(&self) -> Result<(), CniError> {
        let loaded = self.load_with(Fingerprint::of(&self.config.conf_dir));
        match &loaded.network {
            Ok(_) => Ok(()),
            Err(reason) => Err(CniError::NotReady(reason.clone())),
        }
    }

    /// `Ok` if a network is configured and its plugins are installed; otherwise the
    /// reason, for the runtime condition `NetworkReady=false`. Re-reads the configuration
    /// directory if it changed.
    pub fn network_ready(&self) -> Result<(), String> {
        let loaded = self.current();
        let network = loaded.network.as_ref().map_err(Clone::clone)?;
        let missing = self.missing_plugins(&network.list);
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "cni plugin(s) {} of network {} ({}) not found in {}",
                missing.join(", "),
                network.list.name,
                network.source.display(),
                display_dirs(&self.config.bin_dirs)
            ))
        }
    }

    /// Takes the node's pod CIDRs (UpdateRuntimeConfig), as containerd does: without a
    /// template, or while a network is configured, nothing changes; otherwise the template
    /// rendered with them is written to [`RENDERED_CONFIG`] in the configuration directory
    /// and loaded.
    pub fn set_pod_cidrs(&self, data: &template::PodCidrData) -> Result<PodCidrOutcome, CniError> {
        let Some(path) = &self.config.template else {
            return Ok(PodCidrOutcome::NoTemplate);
        };
        let _rendering = self.rendering.lock().unwrap_or_else(PoisonError::into_inner);
        if let Ok(network) = &self.current().network {
            return Ok(PodCidrOutcome::AlreadyConfigured(network.source.clone()));
        }
        let failed = |message: String| CniError::Template {
            path: path.clone(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|err| failed(format!("reading: {err}")))?;
        let rendered = template::render(&text, data).map_err(|err| failed(err.to_string()))?;
        let target = self.config.conf_dir.join(RENDERED_CONFIG);
        std::fs::create_dir_all(&self.config.conf_dir)
            .and_then(|()| crate::atomic_file::write_atomically(&target, rendered.as_bytes(), 0o644))
            .map_err(|err| failed(format!("writing {}: {err}", target.display())))?;
        if let Err(err) = self.reload() {
            return Err(failed(format!("rendered into {}: {err}", target.display())));
        }
        info!(pod_cidrs = ?data.pod_cidr_ranges, config = %target.display(), "cni network rendered from the template");
        Ok(PodCidrOutcome::Rendered(target))
    }

    /// The name of the configured network, if any.
    pub fn network_name(&self) -> Option<String> {
        self.current().network.as_ref().ok().map(|n| n.list.name.clone())
    }

    /// Attaches the pod: runs ADD through the plugin chain and caches the result. On
    /// failure the plugins that ran are undone (DEL) before the error returns.
    pub async fn add(&self, attachment: &Attachment) -> Result<NetworkStatus, CniError> {
        validate(attachment)?;
        if !is_pinned(&attachment.netns) {
            return Err(CniError::InvalidAttachment(format!(
                "{} is not a network namespace",
                attachment.netns.display()
            )));
        }
        let loaded = self.current();
        let network = loaded
            .network
            .as_ref()
            .map_err(|reason| CniError::NotReady(reason.clone()))?;
        let list = &network.list;
        let args = invoke::cni_args(attachment);
        let capability_args = invoke::capability_args(attachment);
        let invocation = self.invocation(Operation::Add, attachment, &attachment.netns, &args);

        let mut result: Option<Value> = None;
        let outcome = async {
            for plugin in &list.plugins {
                let stdin = plugin_stdin(list, plugin, result.as_ref(), &capability_args);
                match invocation.run(&plugin.plugin_type, &stdin).await? {
                    Some(output) => result = Some(output),
                    None => warn!(plugin = %plugin.plugin_type, "cni plugin printed no result on ADD; passing the previous one on"),
                }
            }
            let no_address = || CniError::NoAddress {
                network: list.name.clone(),
                ifname: attachment.ifname.clone(),
            };
            let last = result.as_ref().ok_or_else(no_address)?;
            let status = result::network_status(last, &attachment.ifname).map_err(|reason| CniError::Result {
                plugin: list.plugins.last().map(|p| p.plugin_type.clone()).unwrap_or_default(),
                reason,
            })?;
            if status.ips.is_empty() {
                return Err(no_address());
            }
            let entry = CacheEntry {
                kind: CACHE_KIND.into(),
                network_name: list.name.clone(),
                container_id: attachment.container_id.clone(),
                if_name: attachment.ifname.clone(),
                netns: attachment.netns.clone(),
                cni_args: args.clone(),
                capability_args: capability_args.clone(),
                config: list.raw.clone(),
                result: last.clone(),
            };
            let path = cache::entry_path(
                &self.config.cache_dir,
                &list.name,
                &attachment.container_id,
                &attachment.ifname,
            );
            cache::write(&path, &entry).map_err(|source| CniError::Cache { path, source })?;
            Ok(status)
        }
        .await;

        match outcome {
            Ok(status) => {
                info!(
                    container_id = %attachment.container_id,
                    network = %list.name,
                    ips = ?status.ips,
                    "pod attached to the cni network"
                );
                Ok(status)
            }
            Err(err) => {
                warn!(container_id = %attachment.container_id, network = %list.name, error = %err, "cni ADD failed; undoing it");
                let del = self.invocation(Operation::Del, attachment, &attachment.netns, &args);
                if let Err(undo) = run_del(list, &del, &capability_args, result.as_ref()).await {
                    warn!(container_id = %attachment.container_id, error = %undo, "cannot undo a failed cni ADD");
                }
                Err(err)
            }
        }
    }

    /// Detaches the pod: runs DEL through the plugin chain in reverse order, with the
    /// configuration and result its ADD cached (or, without a cache entry, the current
    /// configuration), then forgets the entry.
    ///
    /// Idempotent: succeeds when the pod was never attached or already detached, and when
    /// its network namespace is gone (the plugins then get an empty `CNI_NETNS` and only
    /// release what lives outside it: addresses, iptables rules).
    pub async fn del(&self, attachment: &Attachment) -> Result<(), CniError> {
        validate(attachment)?;
        let loaded = self.current();
        let current = loaded.network.as_ref().ok();
        let found = cache::find(
            &self.config.cache_dir,
            current.map(|n| n.list.name.as_str()),
            &attachment.container_id,
            &attachment.ifname,
        )
        .map_err(|source| CniError::Cache {
            path: self.config.cache_dir.clone(),
            source,
        })?;
        let netns = if is_pinned(&attachment.netns) {
            attachment.netns.clone()
        } else {
            PathBuf::new()
        };
        let cached = found.and_then(|(path, entry)| match config::list_from_value(entry.config.clone()) {
            Ok(list) => Some((path, entry, list)),
            Err(reason) => {
                warn!(path = %path.display(), %reason, "ignoring a cni cache entry with an unusable config");
                None
            }
        });
        match cached {
            Some((path, entry, list)) => {
                let del = self.invocation(Operation::Del, attachment, &netns, &entry.cni_args);
                run_del(&list, &del, &entry.capability_args, Some(&entry.result)).await?;
                cache::remove(&path).map_err(|source| CniError::Cache { path, source })?;
            }
            None => {
                let Some(network) = current else {
                    debug!(container_id = %attachment.container_id, "no cni network and no cached ADD: nothing to delete");
                    return Ok(());
                };
                let args = invoke::cni_args(attachment);
                let del = self.invocation(Operation::Del, attachment, &netns, &args);
                run_del(&network.list, &del, &invoke::capability_args(attachment), None).await?;
            }
        }
        debug!(container_id = %attachment.container_id, "pod detached from the cni network");
        Ok(())
    }

    /// Asks the plugins whether the pod's attachment is still as ADD made it (CHECK, with
    /// the cached configuration and result). A network with `disableCheck` passes.
    pub async fn check(&self, attachment: &Attachment) -> Result<(), CniError> {
        validate(attachment)?;
        let loaded = self.current();
        let current = loaded.network.as_ref().ok().map(|n| n.list.name.as_str());
        let (_, entry) = cache::find(
            &self.config.cache_dir,
            current,
            &attachment.container_id,
            &attachment.ifname,
        )
        .map_err(|source| CniError::Cache {
            path: self.config.cache_dir.clone(),
            source,
        })?
        .ok_or_else(|| CniError::NotAttached {
            container_id: attachment.container_id.clone(),
            ifname: attachment.ifname.clone(),
        })?;
        let list = config::list_from_value(entry.config.clone()).map_err(CniError::NotReady)?;
        if list.disable_check {
            return Ok(());
        }
        if !supports_check(&list.cni_version) {
            return Err(CniError::CheckUnsupported {
                version: list.cni_version.clone(),
            });
        }
        let check = self.invocation(Operation::Check, attachment, &attachment.netns, &entry.cni_args);
        for plugin in &list.plugins {
            let stdin = plugin_stdin(&list, plugin, Some(&entry.result), &entry.capability_args);
            check.run(&plugin.plugin_type, &stdin).await?;
        }
        Ok(())
    }

    fn invocation<'a>(
        &'a self,
        operation: Operation,
        attachment: &'a Attachment,
        netns: &'a Path,
        args: &'a str,
    ) -> Invocation<'a> {
        Invocation {
            operation,
            container_id: &attachment.container_id,
            netns,
            ifname: &attachment.ifname,
            args,
            bin_dirs: &self.config.bin_dirs,
            timeout: self.plugin_timeout,
        }
    }

    /// The configuration, read again if the directory changed since it was last read.
    fn current(&self) -> Arc<Loaded> {
        let fingerprint = Fingerprint::of(&self.config.conf_dir);
        {
            let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
            if state.fingerprint == fingerprint {
                return Arc::clone(&state);
            }
        }
        self.load_with(fingerprint)
    }

    /// Reads the configuration directory; `fingerprint` was taken before, so a change
    /// made while reading is seen by the next [`Cni::current`].
    fn load_with(&self, fingerprint: Fingerprint) -> Arc<Loaded> {
        let network = config::load_dir(&self.config.conf_dir).map(|(source, list)| Arc::new(Network { source, list }));
        match &network {
            Ok(network) => info!(
                network = %network.list.name,
                source = %network.source.display(),
                cni_version = %network.list.cni_version,
                "cni network configuration loaded"
            ),
            Err(reason) => warn!(%reason, "no usable cni network configuration"),
        }
        let loaded = Arc::new(Loaded { fingerprint, network });
        *self.state.write().unwrap_or_else(PoisonError::into_inner) = Arc::clone(&loaded);
        loaded
    }

    /// The plugin binaries (chained plugins and their IPAM plugins) of `list` that no
    /// plugin directory holds.
    fn missing_plugins(&self, list: &NetworkConfigList) -> Vec<String> {
        let mut missing: Vec<String> = Vec::new();
        for plugin in &list.plugins {
            let ipam = plugin
                .conf
                .get("ipam")
                .and_then(|ipam| ipam.get("type"))
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty() && !t.contains('/'));
            for name in std::iter::once(plugin.plugin_type.as_str()).chain(ipam) {
                if find_plugin(name, &self.config.bin_dirs).is_none() && !missing.iter().any(|m| m == name) {
                    missing.push(name.to_string());
                }
            }
        }
        missing
    }
}

/// DEL through `list` in reverse order; `prev_result` is passed on to each plugin when the
/// version knows it. Stops at the first failure (as libcni does), so a retry repeats it.
async fn run_del(
    list: &NetworkConfigList,
    invocation: &Invocation<'_>,
    capability_args: &Map<String, Value>,
    prev_result: Option<&Value>,
) -> Result<(), CniError> {
    let prev_result = prev_result.filter(|_| supports_check(&list.cni_version));
    for plugin in list.plugins.iter().rev() {
        let stdin = plugin_stdin(list, plugin, prev_result, capability_args);
        invocation.run(&plugin.plugin_type, &stdin).await?;
    }
    Ok(())
}

/// Refuses attachments whose fields would break the plugins' protocol or the cache's file
/// names (libcni's rules for container ids and interface names).
fn validate(attachment: &Attachment) -> Result<(), CniError> {
    let invalid = |reason: String| Err(CniError::InvalidAttachment(reason));
    let id = &attachment.container_id;
    let id_ok = id.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !id_ok {
        return invalid(format!("container id {id:?} must match [a-zA-Z0-9][a-zA-Z0-9_.-]*"));
    }
    let ifname = &attachment.ifname;
    let ifname_ok = !ifname.is_empty()
        && ifname.len() <= MAX_IFNAME_LEN
        && ifname != "."
        && ifname != ".."
        && !ifname
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control());
    if !ifname_ok {
        return invalid(format!("interface name {ifname:?} is not a valid interface name"));
    }
    for (what, value) in [
        ("pod namespace", &attachment.pod_namespace),
        ("pod name", &attachment.pod_name),
        ("pod uid", &attachment.pod_uid),
    ] {
        if value.contains(';') {
            return invalid(format!("{what} {value:?} contains ';'"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
