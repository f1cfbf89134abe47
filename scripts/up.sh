#!/usr/bin/env bash
# The main command: brings up a kubelet-lite node running an example pod, offline, on
# Debian 12 as root.
#
#   scripts/up.sh                          standalone: the node runs its static pods
#   scripts/up.sh --kubeconfig FILE        the same node joins the cluster FILE names
#   KUBECONFIG=FILE scripts/up.sh          (the same)
#   scripts/up.sh --check                  fetch the page once, then stop and clean up
#
# What it does: installs what is missing (scripts/install-deps.sh), builds kubelet-lite,
# runtime-core and the web-image tool; writes a small web server image (busybox httpd
# serving a page on port 8080, built from the host's busybox-static) as an OCI layout and
# imports it into the node's runtime (`runtime-core import`); then runs kubelet-lite with
# its embedded runtime-core, a CNI bridge `kltup0` on 198.18.57.0/24, and the static pod
# examples/static-pods/web.yaml. It prints the pod's address and the page fetched from
# it. Ctrl-C stops the pod and the node and removes the bridge. Nothing comes from the
# internet: no registry is involved at all.
set -euo pipefail
cd "$(dirname "$0")/.."

BRIDGE=kltup0
SUBNET=198.18.57.0/24
NETWORK=kubelet-lite-up
PORT=8080
IMAGE=localhost/kubelet-lite/web:1
DIR=${KUBELET_LITE_UP_DIR:-/var/lib/kubelet-lite-up}

kubeconfig=${KUBECONFIG:-}
check=false
while (($#)); do
    case "$1" in
        --kubeconfig) kubeconfig=${2:?--kubeconfig needs a file}; shift 2 ;;
        --kubeconfig=*) kubeconfig=${1#*=}; shift ;;
        --check) check=true; shift ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) echo "up.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
if [[ -n "$kubeconfig" && ! -r "$kubeconfig" ]]; then
    echo "up.sh: cannot read the kubeconfig $kubeconfig" >&2
    exit 2
fi

if [[ $EUID -ne 0 ]]; then
    echo "up.sh: run me as root (the node creates namespaces, mounts and a bridge)" >&2
    exit 1
fi

scripts/install-deps.sh
echo "building kubelet-lite, runtime-core and web-image"
cargo build --quiet --release -p kubelet-lite --bins
cargo build --quiet --release -p runtime-core --bins
cargo build --quiet --release -p test-harness --bin web-image
BIN=$PWD/target/release

# A previous run that did not clean up: stop its node first.
if [[ -f "$DIR/kubelet-lite.pid" ]]; then
    old=$(cat "$DIR/kubelet-lite.pid")
    if kill -0 "$old" 2>/dev/null && grep -q kubelet-lite "/proc/$old/cmdline" 2>/dev/null; then
        echo "stopping the node left by a previous run (pid $old)"
        kill "$old"
        while kill -0 "$old" 2>/dev/null; do sleep 0.2; done
    fi
fi

mkdir -p "$DIR"/{root,manifests,runtime/net.d,runtime/ipam,runtime/certs.d}
runtime_config=$DIR/runtime/runtime-core.toml
cat >"$runtime_config" <<EOF
# Written by scripts/up.sh: the embedded runtime-core of the example node.
root = "$DIR/runtime/root"
state = "$DIR/runtime/state"
socket = "$DIR/runtime/runtime-core.sock"
registry_config_path = "$DIR/runtime/certs.d"
cni_conf_dir = "$DIR/runtime/net.d"
cni_bin_dirs = ["/usr/lib/cni", "/opt/cni/bin"]
default_runtime = "runc"

[runtimes.runc]
binary = "$(command -v runc)"
EOF
cat >"$DIR/runtime/net.d/10-$NETWORK.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "$NETWORK",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$DIR/runtime/ipam",
        "ranges": [[{"subnet": "$SUBNET"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF

echo "writing $IMAGE as an OCI layout and importing it into the node's runtime"
"$BIN/web-image" "$DIR/web-layout" "$IMAGE"
RUST_LOG=warn "$BIN/runtime-core" --config "$runtime_config" import "$DIR/web-layout"

cp examples/static-pods/web.yaml "$DIR/manifests/web.yaml"
args=(
    --root-dir "$DIR/root"
    --pod-manifest-path "$DIR/manifests"
    --runtime-config "$runtime_config"
)
if [[ -n "$kubeconfig" ]]; then
    args+=(--kubeconfig "$kubeconfig")
    echo "joining the cluster of $kubeconfig"
fi
log=$DIR/kubelet-lite.log
echo "starting kubelet-lite (log: $log)"
# Its own session: Ctrl-C reaches this script, which stops the pod before the node.
NO_COLOR=1 RUST_LOG=${RUST_LOG:-info} setsid "$BIN/kubelet-lite" "${args[@]}" >"$log" 2>&1 &
node=$!
echo "$node" >"$DIR/kubelet-lite.pid"

# Stops the pod (its manifest removed, the node stops it), then the node, then removes
# the bridge. Images and the runtime's records stay for the next run.
cleanup() {
    trap - EXIT INT TERM
    echo
    echo "stopping the example pod and the node"
    rm -f "$DIR/manifests/web.yaml"
    if kill -0 "$node" 2>/dev/null; then
        for _ in $(seq 1 100); do
            [[ -z "$(pod_ip)" ]] && break
            sleep 0.2
        done
        kill "$node" 2>/dev/null || true
        wait "$node" 2>/dev/null || true
    fi
    ip link delete "$BRIDGE" 2>/dev/null || true
    rm -f "$DIR/kubelet-lite.pid"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The pod's address: host-local keeps one file per address it gave out, named after it.
pod_ip() {
    find "$DIR/runtime/ipam/$NETWORK" -maxdepth 1 -name '198.18.57.*' -printf '%f\n' 2>/dev/null | head -n1 || true
}

echo "waiting for the web pod"
page=""
for _ in $(seq 1 300); do
    if ! kill -0 "$node" 2>/dev/null; then
        echo "kubelet-lite exited; its log ends with:" >&2
        tail -n 30 "$log" >&2
        exit 1
    fi
    ip=$(pod_ip)
    if [[ -n "$ip" ]] && page=$(curl --silent --fail --max-time 2 "http://$ip:$PORT/"); then
        break
    fi
    sleep 0.2
done
if [[ -z "$page" ]]; then
    echo "the web pod did not answer within 60 s; kubelet-lite's log ends with:" >&2
    tail -n 30 "$log" >&2
    exit 1
fi

cat <<EOF

The node runs the static pod web (examples/static-pods/web.yaml).
Reach it at http://$ip:$PORT/ from this machine, e.g. curl http://$ip:$PORT/
It answered:

$page
EOF
if [[ -n "$kubeconfig" ]]; then
    echo "Its mirror pod: kubectl --kubeconfig $kubeconfig get pods -A -o wide"
fi
if $check; then
    exit 0
fi
echo "Press Ctrl-C to stop the node (kubelet-lite's log: $log)."
wait "$node"
