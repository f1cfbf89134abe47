//! kubelet-lite: a small node agent that registers a Node with a kube-apiserver, runs the
//! pods scheduled to it through any CRI runtime (via `cri-client`) and serves the kubelet
//! API.
//!
//! Modules, in the order data flows (see `docs/ARCHITECTURE.md`):
//! - [`config`]: flags and the KubeletConfiguration subset, merged into [`config::Settings`];
//! - `runtime`: the embedded default runtime (runtime-core in-process, on its own socket),
//!   with the `embedded` feature (on by default); without it, kubelet-lite needs
//!   `--container-runtime-endpoint` and does not compile runtime-core;
//! - [`node`]: Node registration, status and Lease;
//! - [`pods`]: pod sources, one worker per pod, the status manager;
//! - [`spec`]: a PodSpec translated into CRI configs (env, volumes, resources, security);
//! - [`probe`]: liveness, readiness and startup probes (exec, httpGet over HTTP or HTTPS,
//!   tcpSocket, grpc);
//! - [`housekeeping`]: garbage collection of containers and images, log rotation;
//! - [`metrics`]: what the node records (pod starts, CRI calls, workers) and `/metrics`
//!   serves;
//! - [`retry`]: exponential back-off with jitter for loops that retry the apiserver or
//!   the runtime;
//! - [`server`]: the kubelet HTTPS API;
//! - [`agent`]: all of it put together, what the binary runs.
//!
//! # Example
//!
//! ```no_run
//! use clap::Parser;
//! use kubelet_lite::config::{Args, Settings};
//!
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! let args = Args::parse_from(["kubelet-lite", "--node-name", "edge-1", "--pod-manifest-path", "/etc/manifests"]);
//! let settings = Settings::load(args)?;
//! kubelet_lite::agent::run(settings, async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(()) }
//! ```

pub mod agent;
pub mod config;
pub mod housekeeping;
pub mod metrics;
pub mod node;
pub mod pods;
pub mod probe;
pub mod retry;
#[cfg(feature = "embedded")]
pub mod runtime;
pub mod server;
pub mod spec;
