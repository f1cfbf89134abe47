//! streaming: the server that `kubectl exec`, `attach` and `port-forward` streams reach on
//! a node, speaking SPDY/3.1 and WebSocket like the kubelet's own.
//!
//! This crate is at its start; it will expose a small trait (exec, attach and
//! port-forward on an id) that a runtime implements, and will not depend on any runtime.
