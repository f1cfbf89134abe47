#!/usr/bin/env bash
# The main command: brings up a node and runs an example pod on it, offline, on Debian 12
# as root. For now the node is what exists: a local registry holding busybox images built
# on the spot, runtime-core as the CRI runtime (pods over pinned namespaces, CNI and runc),
# and the pod driven through cri-client as a kubelet would (kubelet-lite is next). Pass
# `--containerd` to run the same pod on containerd. Everything is removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cargo build --quiet -p test-harness --bin testenv
cargo build --quiet -p cri-client --example run_pod
cargo build --quiet -p runtime-core --bins

runtime=(--runtime-core target/debug/runtime-core)
if [[ "${1:-}" == "--containerd" ]]; then
    runtime=()
fi
exec target/debug/testenv "${runtime[@]}" -- sh -c 'target/debug/examples/run_pod "$CRI_ENDPOINT" "$TEST_IMAGE_BUSYBOX"'
