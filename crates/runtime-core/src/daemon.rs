//! Opening the runtime's stores and serving CRI on its socket: what the `runtime-core`
//! binary runs, and what an embedding program (kubelet-lite) can run in-process.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use cri_api::server::{ImageServiceServer, RuntimeServiceServer};

use crate::config::Config;
use crate::image::hosts::{HostsError, RegistryHosts};
use crate::image::manager::{ImageError, ImageManager};
use crate::image::registry::RegistryClient;
use crate::service::image::ImageServiceImpl;
use crate::service::runtime::RuntimeServiceImpl;
use crate::store::{Store, StoreError};

/// Why the runtime could not start or stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The registry hosts configuration is invalid.
    #[error(transparent)]
    Hosts(#[from] HostsError),
    /// The metadata database could not be opened (another runtime-core may hold it).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The image store could not be opened.
    #[error(transparent)]
    Images(#[from] ImageError),
    /// The socket could not be bound.
    #[error("binding {path}: {source}")]
    Bind {
        /// The socket path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The gRPC server failed.
    #[error("serving CRI: {0}")]
    Serve(#[from] tonic::transport::Error),
}

/// The runtime's state, opened from a [`Config`].
#[derive(Debug)]
pub struct Runtime {
    config: Config,
    images: Arc<ImageManager>,
}

impl Runtime {
    /// Opens the metadata database and the image store the configuration names.
    pub fn open(config: Config) -> Result<Self, DaemonError> {
        let hosts = if config.registry_config_path.is_dir() {
            RegistryHosts::load(&config.registry_config_path)?
        } else {
            RegistryHosts::none()
        };
        let metadata = Arc::new(Store::open(&config.metadata_path())?);
        let images = ImageManager::open(&config.images_path(), RegistryClient::new(hosts), metadata)?;
        Ok(Self {
            config,
            images: Arc::new(images),
        })
    }

    /// The image manager.
    pub fn images(&self) -> &Arc<ImageManager> {
        &self.images
    }

    /// Serves CRI on the configured socket until `shutdown` completes.
    pub async fn serve(&self, shutdown: impl Future<Output = ()>) -> Result<(), DaemonError> {
        let socket = &self.config.socket;
        let incoming = cri_api::unix::bind(socket).map_err(|source| DaemonError::Bind {
            path: socket.clone(),
            source,
        })?;
        tracing::info!(socket = %socket.display(), "serving CRI");
        tonic::transport::Server::builder()
            .layer(cri_api::unix::V1Alpha2AliasLayer)
            .add_service(RuntimeServiceServer::new(RuntimeServiceImpl))
            .add_service(ImageServiceServer::new(ImageServiceImpl::new(self.images.clone())))
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await?;
        let _ = std::fs::remove_file(socket);
        Ok(())
    }
}
