//! Housekeeping: what keeps a node's disk from filling up while its pods come and go, as
//! the kubelet's garbage collectors and container log manager do.
//!
//! - [`container_gc`]: dead containers beyond a count per (pod, container name), older
//!   than a minimum age, and the containers and sandboxes of pods that no longer exist
//!   (the kubelet's `MinAge`, `MaxPerPodContainer` and `MaxContainers`);
//! - [`image_gc`]: when the image filesystem is fuller than `imageGCHighThresholdPercent`,
//!   unused images, least recently used first, until it is below
//!   `imageGCLowThresholdPercent`; never an image a container (running or not) uses;
//! - [`log_rotation`]: a running container's log over `containerLogMaxSize` is renamed to
//!   `<path>.<timestamp>` and the runtime reopens it (ReopenContainerLog); older rotated
//!   files are gzipped and those beyond `containerLogMaxFiles` deleted;
//! - [`pod_dirs`]: the directories and logs of pods that no longer exist and that the
//!   runtime holds nothing of, their mounts unmounted first (the kubelet's
//!   `cleanupOrphanedPodDirs`).
//!
//! Each part has pure policy functions (tested below each module) and one async pass over
//! a CRI runtime; [`spawn`] runs the passes periodically, as the kubelet does: garbage
//! collection and the sweep of pod directories every minute, log rotation every 10
//! seconds.
//!
//! ```no_run
//! use std::sync::Arc;
//! use kubelet_lite::housekeeping::{self, HousekeepingSettings};
//!
//! # async fn run() -> cri_client::Result<()> {
//! let runtime = cri_client::Client::connect("unix:///run/runtime-core/runtime-core.sock").await?;
//! let settings = HousekeepingSettings {
//!     // Pods the node still runs: their dead containers are kept up to the count.
//!     pod_exists: Some(Arc::new(|uid: &str| uid == "the-only-pod")),
//!     ..HousekeepingSettings::default()
//! };
//! let task = housekeeping::spawn(runtime, settings);
//! task.abort(); // when the node stops
//! # Ok(()) }
//! ```

pub mod container_gc;
pub mod image_gc;
pub mod log_rotation;
pub mod pod_dirs;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

pub use container_gc::ContainerGcPolicy;
pub use image_gc::{ImageGc, ImageGcPolicy};
pub use log_rotation::LogRotationPolicy;
pub use pod_dirs::PodDirs;

/// How often garbage collection runs (the kubelet's `ContainerGCPeriod`).
pub const DEFAULT_GC_PERIOD: Duration = Duration::from_secs(60);

/// How often container logs are checked for rotation (the kubelet's
/// `logMonitorPeriod`).
pub const DEFAULT_LOG_ROTATION_PERIOD: Duration = Duration::from_secs(10);

/// Whether the pod with a UID still exists for the node: its sources (apiserver, static
/// manifests) still name it. Containers and sandboxes of pods it denies are all removed.
pub type PodExists = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// What a housekeeping pass failed at.
#[derive(Debug, thiserror::Error)]
pub enum HousekeepingError {
    /// A CRI call failed.
    #[error("{call}: {source}")]
    Cri {
        /// The CRI call, e.g. `ListContainers`.
        call: &'static str,
        /// The client's error.
        #[source]
        source: cri_client::Error,
    },
    /// A file operation on a log or on the image filesystem failed.
    #[error("{what} {}: {source}", .path.display())]
    Io {
        /// What was being done, e.g. `renaming`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The runtime's ImageFsInfo names no image filesystem.
    #[error("the runtime reports no image filesystem")]
    NoImageFilesystem,
    /// Something is still mounted in the directory of a pod that is gone.
    #[error("{} is still mounted", .path.display())]
    StillMounted {
        /// The mount point.
        path: PathBuf,
    },
}

impl HousekeepingError {
    /// A [`HousekeepingError::Cri`] for `call`.
    pub(crate) fn cri(call: &'static str) -> impl FnOnce(cri_client::Error) -> HousekeepingError {
        move |source| HousekeepingError::Cri { call, source }
    }

    /// A [`HousekeepingError::Io`] doing `what` to `path`.
    pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> HousekeepingError {
        let path = path.into();
        move |source| HousekeepingError::Io { what, path, source }
    }
}

/// The knobs of housekeeping, with the kubelet's defaults.
#[derive(Clone)]
pub struct HousekeepingSettings {
    /// Which dead containers go.
    pub container_gc: ContainerGcPolicy,
    /// When images go, and which.
    pub image_gc: ImageGcPolicy,
    /// When container logs rotate, and how many files stay.
    pub log_rotation: LogRotationPolicy,
    /// How often container and image garbage collection run. Default 1 minute.
    pub gc_period: Duration,
    /// How often container logs are checked. Default 10 seconds.
    pub log_rotation_period: Duration,
    /// Which pods still exist. `None` (the default) until the node's pod sources are ready:
    /// every pod counts as existing, so only containers beyond the counts are removed.
    pub pod_exists: Option<PodExists>,
    /// Where the directories of pods that no longer exist are swept from; `None` (the
    /// default): none are.
    pub pod_dirs: Option<PodDirs>,
}

impl Default for HousekeepingSettings {
    fn default() -> HousekeepingSettings {
        HousekeepingSettings {
            container_gc: ContainerGcPolicy::default(),
            image_gc: ImageGcPolicy::default(),
            log_rotation: LogRotationPolicy::default(),
            gc_period: DEFAULT_GC_PERIOD,
            log_rotation_period: DEFAULT_LOG_ROTATION_PERIOD,
            pod_exists: None,
            pod_dirs: None,
        }
    }
}

impl fmt::Debug for HousekeepingSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HousekeepingSettings")
            .field("container_gc", &self.container_gc)
            .field("image_gc", &self.image_gc)
            .field("log_rotation", &self.log_rotation)
            .field("gc_period", &self.gc_period)
            .field("log_rotation_period", &self.log_rotation_period)
            .field("pod_exists", &self.pod_exists.as_ref().map(|_| "fn(uid) -> bool"))
            .field("pod_dirs", &self.pod_dirs)
            .finish()
    }
}

impl HousekeepingSettings {
    /// Whether pod `uid` exists, per [`HousekeepingSettings::pod_exists`].
    fn pod_exists(&self, uid: &str) -> bool {
        self.pod_exists.as_ref().is_none_or(|exists| exists(uid))
    }
}

/// Runs housekeeping on `runtime` until the task is aborted: container then image garbage
/// collection and the sweep of pod directories every [`HousekeepingSettings::gc_period`],
/// log rotation every
/// [`HousekeepingSettings::log_rotation_period`], both first at once. A failed pass is
/// logged and tried again at the next period.
pub fn spawn(runtime: cri_client::Client, settings: HousekeepingSettings) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut gc_timer = tokio::time::interval(settings.gc_period);
        gc_timer.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut log_timer = tokio::time::interval(settings.log_rotation_period);
        log_timer.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut images = ImageGc::new(settings.image_gc.clone());
        loop {
            tokio::select! {
                _ = gc_timer.tick() => {
                    let pod_exists = |uid: &str| settings.pod_exists(uid);
                    match container_gc::collect(&runtime, &settings.container_gc, &pod_exists).await {
                        Ok(removed) if !removed.is_empty() => tracing::info!(?removed, "container garbage collection"),
                        Ok(_) => {}
                        Err(err) => tracing::warn!(error = %err, "container garbage collection failed"),
                    }
                    match images.collect(&runtime).await {
                        Ok(removed) if !removed.is_empty() => tracing::info!(?removed, "image garbage collection"),
                        Ok(_) => {}
                        Err(err) => tracing::warn!(error = %err, "image garbage collection failed"),
                    }
                    if let Some(dirs) = &settings.pod_dirs
                        && let Err(err) = pod_dirs::sweep(&runtime, dirs, &pod_exists).await
                    {
                        tracing::warn!(error = %err, "sweeping the directories of pods that are gone failed");
                    }
                }
                _ = log_timer.tick() => {
                    if let Err(err) = log_rotation::rotate(&runtime, &settings.log_rotation).await {
                        tracing::warn!(error = %err, "container log rotation failed");
                    }
                }
            }
        }
    })
}
