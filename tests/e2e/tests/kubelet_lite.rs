//! kubelet-lite as built by default, with its embedded runtime-core, as a node of a real
//! Kubernetes 1.20 control plane: the node suite of `node_suite/` (registration, a
//! Deployment with env, config maps and secrets, back-offs, probes, graceful deletion,
//! preStop hooks, static pods, a user namespace, adoption after a restart).
//!
//! Node `klt-lite-e2e` at `198.18.51.1` (bridge `kltklnode0`), pods on bridge `kltkl0`
//! (`198.18.50.0/24`). `tests/kubelet_lite_containerd.rs` runs the same suite on
//! containerd.

mod node_suite;

use std::process::ExitCode;

fn main() -> ExitCode {
    node_suite::main(node_suite::Runtime::Embedded)
}
