//! kubelet-lite built without default features (no `embedded`, hence no runtime-core in
//! it) on containerd 1.6, as a node of a real Kubernetes 1.20 control plane: the node
//! suite of `node_suite/`, the one `tests/kubelet_lite.rs` runs on the embedded runtime.
//!
//! The binary is built into its own target directory
//! (`e2e::workspace_binary_without_default_features`). containerd is the machine's, started
//! by the harness with pods on bridge `kltkc0` (`198.18.70.0/24`), pulls mirrored onto the
//! local registry; node `klt-lite-ctr-e2e` at `198.18.71.1` (bridge `kltkcnode0`) reaches
//! it through `--container-runtime-endpoint`. The user namespace test is not run here:
//! containerd 1.6 has no user namespaces for pods (see `node_suite::excluded`).

mod node_suite;

use std::process::ExitCode;

fn main() -> ExitCode {
    node_suite::main(node_suite::Runtime::Containerd)
}
