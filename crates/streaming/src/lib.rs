//! streaming: the server that `kubectl exec`, `attach` and `port-forward` streams reach on
//! a node, speaking SPDY/3.1 and WebSocket like the kubelet's own
//! (`k8s.io/kubelet/pkg/cri/streaming`).
//!
//! A runtime implements [`Runtime`] (exec, attach and port-forward on an id) and owns a
//! [`Server`]. Its CRI `Exec`, `Attach` and `PortForward` calls ask the server for a URL
//! ([`Server::get_exec`] ...); the kubelet proxies the client's upgrade request to that URL,
//! once, within a minute. The server then speaks the Kubernetes stream protocols
//! (remote command v1 to v5, port-forward over SPDY or WebSocket) and calls the runtime
//! with plain byte streams. This crate does not depend on any runtime.
//!
//! ```no_run
//! use streaming::{Config, ExecRequest, Runtime, RuntimeError, Server, Streams, Connection};
//! use tokio::io::AsyncWriteExt;
//!
//! struct Echo;
//!
//! impl Runtime for Echo {
//!     async fn exec(&self, _container_id: &str, cmd: Vec<String>, mut streams: Streams) -> Result<i32, RuntimeError> {
//!         if let Some(stdout) = streams.stdout.as_mut() {
//!             stdout.write_all(cmd.join(" ").as_bytes()).await?;
//!         }
//!         Ok(0)
//!     }
//!     async fn attach(&self, _container_id: &str, _streams: Streams) -> Result<(), RuntimeError> {
//!         Err("attach is not supported".into())
//!     }
//!     async fn port_forward(&self, _pod_sandbox_id: &str, port: u16) -> Result<Box<dyn Connection>, RuntimeError> {
//!         Ok(Box::new(tokio::net::TcpStream::connect(("127.0.0.1", port)).await?))
//!     }
//! }
//!
//! # async fn run() -> std::io::Result<()> {
//! let server = Server::start(Config::default(), std::sync::Arc::new(Echo)).await?;
//! let url = server
//!     .get_exec(ExecRequest { container_id: "c1".into(), cmd: vec!["hello".into()], stdout: true, ..Default::default() })
//!     .expect("a valid request");
//! println!("kubectl's upgrade request goes to {url}");
//! # Ok(())
//! # }
//! ```
//!
//! [`client`] speaks the same protocols from the other end, as kubectl does.
//!
//! Where to start reading: [`server`] for the HTTP side and the URLs, [`remotecommand`]
//! and [`portforward`] for the sessions, [`spdy`] and `wsstream` for the two transports.

pub mod client;
mod idle;
mod pipe;
pub mod portforward;
pub mod remotecommand;
mod request;
mod request_cache;
pub mod runtime;
pub mod server;
mod sessions;
pub mod spdy;
mod status;
mod wsstream;

pub use request::{AttachRequest, ExecRequest, PortForwardRequest, RequestError};
pub use runtime::{Connection, Input, Output, Runtime, RuntimeError, Streams, TerminalSize};
pub use server::{Body, Config, Server};
pub use wsstream::{
    BASE64_CHANNEL_PROTOCOL, CHANNEL_PROTOCOL, V4_BASE64_CHANNEL_PROTOCOL, V4_CHANNEL_PROTOCOL, V5_CHANNEL_PROTOCOL,
};
