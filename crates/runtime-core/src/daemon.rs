//! Opening the runtime's stores and serving CRI on its socket: what the `runtime-core`
//! binary runs, and what an embedding program (kubelet-lite) can run in-process.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use cri_api::server::{ImageServiceServer, RuntimeServiceServer};

use crate::config::Config;
use crate::container::rootfs::Overlay;
use crate::image::hosts::{HostsError, RegistryHosts};
use crate::image::manager::{ImageError, ImageManager};
use crate::image::registry::RegistryClient;
use crate::monitor::MonitoredRunc;
use crate::oci::OciRuntime;
use crate::oci::runc::Runc;
use crate::pods::{Dirs, Pods, PodsParts};
use crate::sandbox::cni::{Cni, CniConfig, CniError};
use crate::sandbox::namespaces::UnsharePinner;
use crate::service::image::ImageServiceImpl;
use crate::service::runtime::RuntimeServiceImpl;
use crate::state::{Registry, StateError};
use crate::store::{Store, StoreError};
use crate::stream::orphan::become_subreaper;
use crate::stream::{StreamRuntime, StreamingServer};

/// The monitor binary's name; it is looked for next to the running executable.
const MONITOR_BINARY: &str = "runtime-core-monitor";

/// Why the runtime could not start or stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The registry hosts configuration is invalid.
    #[error(transparent)]
    Hosts(#[from] HostsError),
    /// The metadata database could not be opened (another runtime-core may hold it).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The sandbox and container records could not be loaded.
    #[error(transparent)]
    State(#[from] StateError),
    /// The image store could not be opened.
    #[error(transparent)]
    Images(#[from] ImageError),
    /// The CNI configuration could not be read.
    #[error(transparent)]
    Cni(#[from] CniError),
    /// The configuration names no runtime for the default handler.
    #[error("the default runtime handler {0:?} is not among the configured runtimes")]
    NoDefaultRuntime(String),
    /// A directory could not be created or the monitor binary found.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The streaming server could not listen on its address.
    #[error("starting the streaming server on {address}: {source}")]
    Streaming {
        /// The configured address.
        address: std::net::SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The thread that records container exits as they happen could not start.
    #[error("starting the exit watcher: {0}")]
    ExitWatcher(std::io::Error),
    /// The gRPC server failed.
    #[error("serving CRI: {0}")]
    Serve(#[from] tonic::transport::Error),
}

/// The runtime's state, opened from a [`Config`].
#[derive(Debug)]
pub struct Runtime {
    config: Config,
    images: Arc<ImageManager>,
    pods: Arc<Pods>,
}

impl Runtime {
    /// Opens the metadata database, the image store, the pod records and the CNI
    /// configuration the configuration names.
    pub fn open(config: Config) -> Result<Self, DaemonError> {
        let hosts = if config.registry_config_path.is_dir() {
            RegistryHosts::load(&config.registry_config_path)?
        } else {
            RegistryHosts::none()
        };
        let metadata = Arc::new(Store::open(&config.metadata_path())?);
        let images = Arc::new(ImageManager::open(
            &config.images_path(),
            RegistryClient::new(hosts),
            metadata.clone(),
        )?);
        let dirs = Dirs {
            sandboxes: config.sandboxes_path(),
            containers: config.containers_path(),
            monitors: config.monitors_path(),
        };
        for dir in [&dirs.sandboxes, &dirs.containers, &dirs.monitors] {
            std::fs::create_dir_all(dir).map_err(|source| DaemonError::Io {
                path: dir.clone(),
                source,
            })?;
        }
        if !config.runtimes.contains_key(&config.default_runtime) {
            return Err(DaemonError::NoDefaultRuntime(config.default_runtime.clone()));
        }
        let monitor_binary = monitor_binary()?;
        let runtimes: HashMap<String, Arc<dyn OciRuntime>> = config
            .runtimes
            .iter()
            .map(|(name, handler)| {
                let runc = Runc::new(handler.binary.clone(), config.runc_root(name));
                let runtime: Arc<dyn OciRuntime> = Arc::new(MonitoredRunc::new(runc, monitor_binary.clone()));
                (name.clone(), runtime)
            })
            .collect();
        let cni = Cni::load(CniConfig {
            conf_dir: config.cni_conf_dir.clone(),
            bin_dirs: config.cni_bin_dirs.clone(),
            cache_dir: config.cni_cache_path(),
            template: config.cni_conf_template.clone(),
        })?;
        let pods = Pods::new(PodsParts {
            registry: Registry::load(metadata)?,
            images: images.clone(),
            namespaces: Arc::new(UnsharePinner),
            network: Arc::new(cni),
            rootfs: Arc::new(Overlay),
            runtimes,
            default_runtime: config.default_runtime.clone(),
            monitor_binary,
            dirs,
            log_max_line: config.log_max_line,
            events_buffer: config.container_events_buffer,
        });
        Ok(Self {
            config,
            images,
            pods: Arc::new(pods),
        })
    }

    /// The image manager.
    pub fn images(&self) -> &Arc<ImageManager> {
        &self.images
    }

    /// Reconciles the records with the system, starts the streaming server, then serves
    /// CRI on the configured socket until `shutdown` completes. Containers keep running
    /// when it returns; streaming sessions end.
    ///
    /// The process becomes a child subreaper: the process of a `runc exec` with a
    /// terminal is handed over to it when runc detaches (see [`crate::stream`]).
    pub async fn serve(&self, shutdown: impl Future<Output = ()>) -> Result<(), DaemonError> {
        self.pods.reconcile().await;
        // Blobs and layers of a pull or an image removal that a crash cut short.
        let pods = self.pods.clone();
        if let Err(error) = self.images.collect_garbage(&move || pods.layers_in_use()).await {
            tracing::warn!(%error, "collecting unused image content failed");
        }
        // Exits recorded as they happen, not only when a call looks.
        let watching_exits = self.pods.clone().watch_exits().map_err(DaemonError::ExitWatcher)?;
        if let Err(err) = become_subreaper() {
            tracing::warn!(%err, "cannot become a child subreaper: exec with a terminal will fail");
        }
        let streaming = self.start_streaming().await?;
        let socket = &self.config.socket;
        let incoming = cri_api::unix::bind(socket).map_err(|source| DaemonError::Io {
            path: socket.clone(),
            source,
        })?;
        tracing::info!(socket = %socket.display(), "serving CRI");
        let pods = self.pods.clone();
        let images =
            ImageServiceImpl::new(self.images.clone()).with_layers_in_use(Arc::new(move || pods.layers_in_use()));
        let served = tonic::transport::Server::builder()
            .layer(cri_api::unix::V1Alpha2AliasLayer)
            .add_service(RuntimeServiceServer::new(
                RuntimeServiceImpl::new(self.pods.clone()).with_streaming(streaming.clone()),
            ))
            .add_service(ImageServiceServer::new(images))
            .serve_with_incoming_shutdown(incoming, async {
                shutdown.await;
                // Event streams never end by themselves; the server waits for its streams.
                self.pods.close_container_events();
            })
            .await;
        drop(watching_exits);
        streaming.shutdown();
        served?;
        let _ = std::fs::remove_file(socket);
        Ok(())
    }

    /// Starts the streaming server of the `[streaming]` configuration.
    async fn start_streaming(&self) -> Result<StreamingServer, DaemonError> {
        let settings = &self.config.streaming;
        let config = streaming::Config {
            addr: settings.address,
            stream_idle_timeout: settings.idle_timeout(),
            ..streaming::Config::default()
        };
        let runtime = Arc::new(StreamRuntime::new(self.pods.clone()));
        let server = StreamingServer::start(config, runtime)
            .await
            .map_err(|source| DaemonError::Streaming {
                address: settings.address,
                source,
            })?;
        tracing::info!(address = %server.local_addr(), "serving exec, attach and port-forward");
        Ok(server)
    }
}

/// The monitor binary: beside the running executable (where cargo and packages put it).
fn monitor_binary() -> Result<PathBuf, DaemonError> {
    let exe = std::env::current_exe().map_err(|source| DaemonError::Io {
        path: PathBuf::from("/proc/self/exe"),
        source,
    })?;
    let dir = exe.parent().map(PathBuf::from).unwrap_or_default();
    // Test and example binaries live one level down, in target/<profile>/deps or examples.
    let candidates = [
        dir.join(MONITOR_BINARY),
        dir.parent().map(|p| p.join(MONITOR_BINARY)).unwrap_or_default(),
    ];
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| DaemonError::Io {
            path: candidates[0].clone(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "the runtime-core-monitor binary is missing",
            ),
        })
}
