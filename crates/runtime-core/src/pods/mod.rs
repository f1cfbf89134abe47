//! The pods: sandboxes and containers over pinned namespaces, CNI, runc and one monitor
//! process per container, apart from gRPC.
//!
//! [`Pods`] holds what the verbs work with; each CRI verb is one file named as containerd
//! names its RPC (`sandbox_run.rs`, `container_create.rs`, `container_execsync.rs`, ...),
//! opening with the method it implements. The verbs take and return the CRI messages and
//! fail with a [`PodsError`]; `crate::service` turns those into gRPC status codes in one
//! function. What several verbs share (a container's record brought up to date, the
//! targets of streaming sessions) is in `containers.rs` and `stream_targets.rs`.
//!
//! The host enters through the seams [`PodsParts`] injects: the OCI runtime of each
//! runtime handler ([`crate::oci::OciRuntime`]), the pod network
//! ([`crate::sandbox::PodNetwork`]), namespace pinning
//! ([`crate::sandbox::NamespacePinner`]) and rootfs mounts
//! ([`crate::container::rootfs::RootfsMounter`]). The unit tests (`tests.rs`) put a double
//! behind all four that fails at a chosen step, and check that RunPodSandbox,
//! CreateContainer and StartContainer undo what they did, in reverse.

mod container_checkpoint;
mod container_create;
mod container_execsync;
mod container_list;
mod container_log_reopen;
mod container_remove;
mod container_start;
mod container_stats;
mod container_status;
mod container_stop;
mod container_update_resources;
mod containers;
mod error;
mod events;
mod exit_watch;
mod metrics;
mod reconcile;
mod runtime_config;
mod sandbox_list;
mod sandbox_remove;
mod sandbox_run;
mod sandbox_stats;
mod sandbox_status;
mod sandbox_stop;
mod stream_targets;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::container::rootfs::RootfsMounter;
use crate::image::digest::Digest;
use crate::image::manager::ImageManager;
use crate::keyed_lock::KeyedLocks;
use crate::oci::OciRuntime;
use crate::sandbox::namespaces::NamespacePinner;
use crate::sandbox::network::PodNetwork;
use crate::state::Registry;

pub use error::PodsError;
pub use events::{ContainerEventSubscription, DEFAULT_EVENTS_BUFFER, SubscriptionEnded};
pub use exit_watch::ExitWatching;
pub use stream_targets::AttachTarget;

/// Where the runtime keeps sandbox and container files.
#[derive(Debug, Clone)]
pub struct Dirs {
    /// One directory per sandbox: pinned namespace files, resolv.conf, hostname, hosts.
    pub sandboxes: PathBuf,
    /// One OCI bundle per container: config.json, the rootfs mount point, its upper layer.
    pub containers: PathBuf,
    /// One directory per container for its monitor: pid, exit record, control channel.
    pub monitors: PathBuf,
}

/// Everything the pod verbs work with.
#[derive(Debug)]
pub struct Pods {
    registry: Registry,
    images: Arc<ImageManager>,
    namespaces: Arc<dyn NamespacePinner>,
    network: Arc<dyn PodNetwork>,
    rootfs: Arc<dyn RootfsMounter>,
    runtimes: HashMap<String, Arc<dyn OciRuntime>>,
    default_runtime: String,
    monitor_binary: PathBuf,
    dirs: Dirs,
    log_max_line: usize,
    /// Serializes the operations on one sandbox or container id.
    busy: KeyedLocks<String>,
    /// What stats calls keep between calls.
    usage: container_stats::UsageSources,
    /// The subscribers of container events.
    events: events::ContainerEvents,
    /// The inotify watches on running containers' exits; `None` without inotify.
    exits: Option<exit_watch::ExitWatcher>,
}

impl Pods {
    /// Assembles the pod machinery; call [`Pods::reconcile`] before serving.
    pub fn new(parts: PodsParts) -> Self {
        Self {
            registry: parts.registry,
            images: parts.images,
            namespaces: parts.namespaces,
            network: parts.network,
            rootfs: parts.rootfs,
            runtimes: parts.runtimes,
            default_runtime: parts.default_runtime,
            monitor_binary: parts.monitor_binary,
            dirs: parts.dirs,
            log_max_line: parts.log_max_line,
            busy: KeyedLocks::default(),
            usage: container_stats::UsageSources::default(),
            events: events::ContainerEvents::new(parts.events_buffer),
            exits: exit_watch::ExitWatcher::new()
                .inspect_err(|error| tracing::warn!(%error, "no inotify: container exits are found by calls only"))
                .ok(),
        }
    }

    /// The OCI runtime of a runtime handler (the default one for an empty name).
    fn runtime(&self, handler: &str) -> Result<&Arc<dyn OciRuntime>, PodsError> {
        let name = if handler.is_empty() {
            &self.default_runtime
        } else {
            handler
        };
        self.runtimes
            .get(name)
            .ok_or_else(|| PodsError::invalid(format!("no runtime handler named {name:?} is configured")))
    }

    /// The OCI runtime a container runs under.
    fn runtime_of(&self, container: &crate::state::ContainerRecord) -> Result<&Arc<dyn OciRuntime>, PodsError> {
        self.runtime(&container.runtime_handler)
    }

    /// The diff ids of the image layers that containers use, which image removal must keep.
    pub fn layers_in_use(&self) -> HashSet<Digest> {
        self.registry.containers().into_iter().flat_map(|c| c.layers).collect()
    }

    /// Whether the pod network is ready: a CNI network is configured and its plugins are
    /// present; otherwise why not.
    pub fn network_ready(&self) -> Result<(), String> {
        self.network.status()
    }
}

/// What [`Pods::new`] assembles.
#[derive(Debug)]
pub struct PodsParts {
    /// The sandbox and container records.
    pub registry: Registry,
    /// The images containers are made from.
    pub images: Arc<ImageManager>,
    /// What pins and releases the pods' namespaces.
    pub namespaces: Arc<dyn NamespacePinner>,
    /// The pod network.
    pub network: Arc<dyn PodNetwork>,
    /// What mounts containers' root filesystems and takes their bundles down.
    pub rootfs: Arc<dyn RootfsMounter>,
    /// The OCI runtime of each runtime handler.
    pub runtimes: HashMap<String, Arc<dyn OciRuntime>>,
    /// The handler for sandboxes that name none.
    pub default_runtime: String,
    /// The `runtime-core-monitor` binary.
    pub monitor_binary: PathBuf,
    /// Where sandbox and container files go.
    pub dirs: Dirs,
    /// The longest line of a log record.
    pub log_max_line: usize,
    /// How many container events each subscriber may fall behind before it is dropped.
    pub events_buffer: usize,
}

/// Now, in nanoseconds since the epoch (the CRI's timestamps).
fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// Whether every label of `selector` is on `labels` with the same value.
fn labels_match(selector: &HashMap<String, String>, labels: &HashMap<String, String>) -> bool {
    selector.iter().all(|(key, value)| labels.get(key) == Some(value))
}

#[cfg(test)]
mod tests;
