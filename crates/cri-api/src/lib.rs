//! The Kubernetes Container Runtime Interface (CRI), `runtime.v1`, for Rust.
//!
//! This crate holds what the protocol says and nothing more:
//!
//! - [`v1`]: every message and enum of the CRI, generated at build time from this
//!   crate's `proto/api.proto` (wire-compatible with upstream `k8s.io/cri-api`);
//! - [`client`]: the tonic clients for `RuntimeService` and `ImageService`;
//! - [`server`]: the service traits a runtime implements and their tonic servers;
//! - [`unix`]: serving CRI on a unix socket so that *every* real CRI client can call it,
//!   including those that send the socket path as the HTTP/2 `:authority`
//!   (crictl 1.26, kubelets up to 1.25, grpc-java, Python grpcio);
//! - accessors for fields nested deep in optional messages, such as
//!   [`PodSandboxConfig::namespace_options`](v1::PodSandboxConfig::namespace_options).
//!
//! A higher-level client with typed errors, timeouts and reconnection lives in the
//! `cri-client` crate; start there unless you are writing a runtime.
//!
//! # Example
//!
//! Serving a runtime on a unix socket:
//!
//! ```no_run
//! use cri_api::server::{RuntimeService, RuntimeServiceServer};
//! # async fn run(runtime: impl RuntimeService) -> Result<(), Box<dyn std::error::Error>> {
//! let incoming = cri_api::unix::bind("/run/my-runtime.sock")?;
//! tonic::transport::Server::builder()
//!     .layer(cri_api::unix::V1Alpha2AliasLayer)
//!     .add_service(RuntimeServiceServer::new(runtime))
//!     .serve_with_incoming(incoming)
//!     .await?;
//! # Ok(()) }
//! ```

mod namespaces;
pub mod unix;

/// Generated CRI `runtime.v1` messages, enums, clients and servers.
///
/// The documentation of each item comes from the comments in `proto/api.proto`.
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub mod v1 {
    tonic::include_proto!("runtime.v1");
}

/// gRPC clients for the two CRI services.
pub mod client {
    pub use crate::v1::image_service_client::ImageServiceClient;
    pub use crate::v1::runtime_service_client::RuntimeServiceClient;
}

/// Service traits a CRI runtime implements, and the tonic servers that wrap them.
pub mod server {
    pub use crate::v1::image_service_server::{ImageService, ImageServiceServer};
    pub use crate::v1::runtime_service_server::{RuntimeService, RuntimeServiceServer};
}
