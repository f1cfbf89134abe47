#!/usr/bin/env bash
# The main command: brings up a node and runs an example pod on it, offline, on Debian 12
# as root. For now the node is what exists: a local registry holding busybox images built
# on the spot, containerd as the CRI runtime (runtime-core serves images only so far), and
# the pod driven through cri-client as a kubelet would. Everything is removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cargo build --quiet -p test-harness --bin testenv
cargo build --quiet -p cri-client --example run_pod

exec target/debug/testenv sh -c 'target/debug/examples/run_pod "$CRI_ENDPOINT" "$TEST_IMAGE_BUSYBOX"'
