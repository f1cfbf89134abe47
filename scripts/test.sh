#!/usr/bin/env bash
# The test command: on a fresh Debian 12 machine, as root, installs every package the
# tests need and runs all of them (lints, docs, unit and integration tests against a real
# registry, runc, containerd and a control plane; the crash-recovery tests; the fuzz
# targets briefly; node conformance without its [Slow] specs). With CI=true a missing
# prerequisite fails a test instead of skipping it.
set -euo pipefail
cd "$(dirname "$0")/.."

# Each step says when it starts, how long it took and the disk space left after it, so a
# slow run or a full disk shows where.
step() {
    local started=$SECONDS
    echo "==> [test.sh +${SECONDS}s] $*"
    "$@"
    echo "<== [test.sh +${SECONDS}s] $((SECONDS - started))s, $(df -h --output=avail . | tail -1 | tr -d ' ') free: $*"
}

# A CI run builds each crate once from a fresh clone: incremental compilation data (a
# third of a debug target directory) would only take disk space.
if [[ ${CI:-} == true ]]; then
    export CARGO_INCREMENTAL=0
fi

step scripts/install-deps.sh

step cargo clippy --workspace --all-targets --locked -- -D warnings
# The crash-point builds as well: their tests only compile with the feature.
step cargo clippy -p runtime-core -p kubelet-lite --all-targets --locked \
    --features runtime-core/crash-points,kubelet-lite/crash-points -- -D warnings
RUSTDOCFLAGS="-D warnings" step cargo doc --workspace --no-deps --locked
step cargo test --workspace --locked --no-fail-fast

# Crash recovery: the runtime and the agent built with their crash points, killed at each
# (each prints its matrix, point x outcome).
step cargo test -p runtime-core --locked --features crash-points --test crash_points
step cargo test -p kubelet-lite --locked --features crash-points --test crash_points

# Every fuzz target, briefly, built without optimizations (longer, optimized:
# scripts/fuzz.sh --seconds 600 TARGET).
step scripts/fuzz.sh --dev --seconds 10
# The sanitizer builds of the fuzz targets are a target directory of their own, of no use
# to the steps below: a CI run gives their space back.
if [[ ${CI:-} == true ]]; then
    rm -rf fuzz/target
fi

# The upstream [NodeConformance] specs against kubelet-lite on its embedded runtime,
# without the [Slow] ones and the two no node passes on this kind of machine (the whole
# suite: scripts/conformance.sh, see the README).
step scripts/conformance.sh --skip-slow --skip-machine-limits --nodes 6 --output /tmp/conformance-ci
