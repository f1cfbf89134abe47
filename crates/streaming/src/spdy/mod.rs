//! SPDY/3.1 as Kubernetes speaks it: the framing ([`frame`]) and a session of streams
//! over one upgraded connection ([`Connection`]).
//!
//! `kubectl exec` and `port-forward` (and the apiserver proxying them) upgrade an HTTP/1.1
//! request with `Upgrade: SPDY/3.1`, then open one SPDY stream per channel (`streamType`
//! `error`, `stdin`, `stdout`, `stderr`, `resize`; or a `data` and `error` pair per
//! forwarded connection). No maintained Rust crate speaks SPDY, so it is written here,
//! following the draft the Go implementation (spdystream) follows.
//!
//! The same [`Connection`] serves as the client end, which is how this crate's tests
//! drive the server.

mod connection;
mod dictionary;
pub mod frame;

pub use connection::{Connection, IncomingStream, OpenError, Role, Stream};
pub use frame::{Headers, Limits};

/// The `Upgrade` token of a SPDY connection.
pub const UPGRADE: &str = "SPDY/3.1";
