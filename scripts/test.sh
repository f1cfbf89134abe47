#!/usr/bin/env bash
# The test command: on a fresh Debian 12 machine, as root, installs every package the
# tests need and runs all of them (lints, docs, unit and integration tests against a real
# registry, runc and containerd). With CI=true a missing prerequisite fails a test
# instead of skipping it.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh

cargo clippy --workspace --all-targets --locked -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked
cargo test --workspace --locked --no-fail-fast
