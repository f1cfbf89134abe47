//! streaming: the server that `kubectl exec`, `attach` and `port-forward` streams reach on
//! a node, speaking SPDY/3.1 and WebSocket like the kubelet's own.
//!
//! A runtime implements [`Runtime`] (exec, attach and port-forward on an id); this crate
//! does not depend on any runtime.

pub mod runtime;

pub use runtime::{Connection, Input, Output, Runtime, RuntimeError, Streams, TerminalSize};
