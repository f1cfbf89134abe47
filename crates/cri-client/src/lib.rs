//! An async client for any CRI runtime: containerd, CRI-O, or this project's runtime-core.
//!
//! It is what the kubelet's `remote_runtime.go` and `remote_image.go` are to Go: one
//! [`Client`] for the `RuntimeService` and `ImageService` of CRI `runtime.v1`, with
//!
//! - every endpoint form the kubelet and crictl accept ([`Endpoint`]): `unix:///path`,
//!   `unix:relative`, a bare absolute socket path, `tcp://host:port`;
//! - `:authority: localhost` over unix sockets, as kubelet 1.26+ sends;
//! - a deadline on every call, sent to the runtime as `grpc-timeout` ([`Options`]): a
//!   default for most calls, longer ones for ExecSync and StopContainer, none for image
//!   pulls and the event stream;
//! - typed errors that keep the runtime's message ([`Error`]): `NotFound` is not
//!   `Unavailable` is not `DeadlineExceeded`;
//! - reconnection: after the runtime restarts, the next call succeeds;
//! - messages up to 16 MiB each way, as the kubelet allows ([`MAX_MESSAGE_SIZE`]).
//!
//! Calls whose request is small take plain arguments and return the interesting part of
//! the response (`stop_container(id, grace)`, `run_pod_sandbox(config, handler) -> id`);
//! calls with many options take the generated request type. The generated messages are
//! re-exported as [`v1`].
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//!
//! # async fn run() -> cri_client::Result<()> {
//! let client = cri_client::Client::connect("unix:///run/containerd/containerd.sock").await?;
//! let version = client.version().await?;
//! println!("{} {}", version.runtime_name, version.runtime_version);
//!
//! for pod in client.list_pod_sandbox(None).await? {
//!     println!("{} {:?}", pod.id, pod.metadata.map(|m| m.name));
//! }
//!
//! match client.container_status("no-such-container", false).await {
//!     Err(cri_client::Error::NotFound(message)) => println!("gone: {message}"),
//!     other => println!("{other:?}"),
//! }
//! let out = client.exec_sync("my-container", ["echo", "hi"], Duration::from_secs(5)).await?;
//! assert_eq!(out.exit_code, 0);
//! # Ok(()) }
//! ```
//!
//! `examples/info.rs` prints a runtime's version, status, images and pods.
//!
//! # Testing code that uses the client
//!
//! With the `testing` feature, `testing::FakeRuntime` is an in-memory CRI runtime served
//! on a unix socket: it keeps the CRI's rules, records the calls and lets a test inject
//! errors and delays.

mod client;
mod connect;
mod container;
mod endpoint;
mod error;
mod events;
mod exec;
mod image;
mod options;
mod runtime;
mod sandbox;
mod stats;
#[cfg(feature = "testing")]
pub mod testing;

pub use client::{Client, MAX_MESSAGE_SIZE, Result};
pub use endpoint::{Endpoint, EndpointError};
pub use error::Error;
pub use events::ContainerEvents;
pub use image::IntoImageSpec;
pub use options::{DEFAULT_CALL_TIMEOUT, DEFAULT_CONNECT_TIMEOUT, Options};
pub use runtime::CRI_API_VERSION;

/// The CRI `runtime.v1` messages, re-exported from `cri-api`.
pub use cri_api::v1;

/// The gRPC status code, as [`Error::code`] returns it.
pub use tonic::Code;
