#!/usr/bin/env bash
# Runs the upstream Kubernetes 1.20.2 node conformance specs (`[NodeConformance]` of the
# e2e suite, without [Serial], [Disruptive], [Flaky], [Feature:...] and Windows specs)
# against one node, on Debian 12, as root:
#
#   scripts/conformance.sh                                  # kubelet-lite, embedded runtime
#   scripts/conformance.sh --node kubelet-lite-containerd   # kubelet-lite on containerd
#   scripts/conformance.sh --node kubelet                   # the real kubelet 1.20 on containerd
#   scripts/conformance.sh --release --skip-slow --nodes 6
#
# Builds what it needs first, once per machine (each step does nothing when its result is
# there): the test packages (install-deps.sh), the e2e suite with the Kubernetes binaries
# (build-kubernetes.sh --conformance, about 10 minutes the first time), the Debian
# programs the suite's images carry (nginx, nginx-common, netcat-openbsd: downloaded and
# unpacked, not installed, into /var/cache/kubelet-lite/debian-packages), then kubelet-lite
# and the harness's `conformance` binary with cargo (`--release`: kubelet-lite optimized).
#
# Every other argument goes to the `conformance` binary (tests/harness/src/bin/conformance.rs):
# --node, --nodes N (parallel ginkgo nodes, default 4), --skip-slow, --focus REGEX,
# --timeout MINUTES, --output DIR (default /tmp: conformance-NODE.txt holds the summary,
# conformance-NODE.log ginkgo's output, conformance-NODE-junit/ the JUnit reports).
# The daemons' logs are kept in /var/lib/kubelet-lite-test/logs. Exits 0 when every
# selected spec passed. The whole suite takes about 27 minutes on 6 ginkgo nodes; with
# --skip-slow --skip-machine-limits (what scripts/test.sh runs) about 6.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=dev
node=kubelet-lite
args=()
while (($#)); do
    case $1 in
        --release) profile=release ;;
        --node) node=${2:?--node needs a value}; args+=("$1" "$2"); shift ;;
        --node=*) node=${1#--node=}; args+=("$1") ;;
        *) args+=("$1") ;;
    esac
    shift
done

scripts/install-deps.sh
scripts/build-kubernetes.sh --conformance

# --- Debian programs for the images ------------------------------------------------------
DEBIAN_DIR=${KUBELET_LITE_DEBIAN_PACKAGES:-/var/cache/kubelet-lite/debian-packages}
for package in nginx nginx-common netcat-openbsd; do
    [[ -f $DEBIAN_DIR/$package/.kubelet-lite-unpacked ]] && continue
    echo "unpacking: $package into $DEBIAN_DIR/$package"
    download=$(mktemp -d)
    chmod 755 "$download" # apt-get download fetches as user _apt
    (cd "$download" && apt-get download -q "$package") || {
        apt-get update -q
        (cd "$download" && apt-get download -q "$package")
    }
    rm -rf "$DEBIAN_DIR/$package"
    mkdir -p "$DEBIAN_DIR/$package"
    dpkg-deb -x "$download"/"$package"_*.deb "$DEBIAN_DIR/$package"
    touch "$DEBIAN_DIR/$package/.kubelet-lite-unpacked"
    rm -rf "$download"
done
# curl comes from the host into the agnhost image, with its libraries.
if ! command -v curl >/dev/null; then
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends curl
fi

# --- the node and the harness -------------------------------------------------------------
target_dir=$(cargo metadata --format-version 1 --no-deps | jq -r .target_directory)
cargo build --locked -p test-harness --bin conformance
harness=$target_dir/debug/conformance
if [[ $node == kubelet ]]; then
    exec env KUBELET_LITE_TEST_KEEP_LOGS=${KUBELET_LITE_TEST_KEEP_LOGS:-1} "$harness" "${args[@]}"
fi
cargo build --locked --profile "$profile" -p kubelet-lite -p runtime-core --bins
binary_dir=$target_dir/$([[ $profile == dev ]] && echo debug || echo "$profile")
exec env KUBELET_LITE_TEST_KEEP_LOGS=${KUBELET_LITE_TEST_KEEP_LOGS:-1} \
    "$harness" --kubelet-lite "$binary_dir/kubelet-lite" "${args[@]}"
