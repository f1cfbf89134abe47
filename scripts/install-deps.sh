#!/usr/bin/env bash
# Installs what kubelet-lite's tests and demo need on Debian 12, as root:
# runc, containerd (the peer runtime), CRIU (CheckpointContainer), Debian's OCI registry,
# a static busybox for test images, the CNI plugins, iptables, Python's grpcio for the
# CRI serving test, and the Kubernetes 1.20 control plane and kubelet of the end-to-end
# tests (etcd from Debian, the rest built from Debian's source package by
# build-kubernetes.sh).
# Safe to run again: it only installs what is missing.
set -euo pipefail

APT_PACKAGES=(
    runc
    containerd
    docker-registry
    busybox-static
    containernetworking-plugins
    iptables
    iproute2
    util-linux
    etcd-server
    openssl
    criu
)

missing=()
for package in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$package")
done
if ((${#missing[@]})); then
    echo "installing: ${missing[*]}"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if ! python3 -c 'import grpc' 2>/dev/null; then
    echo "installing: grpcio (PyPI)"
    python3 -m pip install --quiet --root-user-action=ignore grpcio
fi

# The soak's plot (tests/harness/src/soak/plot.rs) draws its labels with DejaVu Sans, read
# from this package's font file by pure-Rust code (no font library).
if ! dpkg-query -W -f='${Status}' fonts-dejavu-core 2>/dev/null | grep -q "install ok installed"; then
    echo "installing: fonts-dejavu-core (the soak's plot)"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends fonts-dejavu-core
fi

# kubectl: the machine image has 1.32; Debian's kubernetes-client (1.20) also talks to the
# test control plane.
if ! command -v kubectl >/dev/null; then
    echo "installing: kubernetes-client (kubectl)"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends kubernetes-client
fi

# kubectl 1.20 beside it, not instead of it (installing the package would shadow 1.32): the
# kubelet-lite API tests run both. Unpacked once into /var/cache/kubelet-lite/kubectl-1.20.
KUBECTL_120_DIR=/var/cache/kubelet-lite/kubectl-1.20
if [ ! -x "$KUBECTL_120_DIR/usr/bin/kubectl" ]; then
    echo "unpacking: kubernetes-client (kubectl 1.20) into $KUBECTL_120_DIR"
    download=$(mktemp -d)
    chmod 755 "$download" # apt-get download fetches as user _apt
    (cd "$download" && apt-get download -q kubernetes-client) || {
        apt-get update -q
        (cd "$download" && apt-get download -q kubernetes-client)
    }
    mkdir -p "$KUBECTL_120_DIR"
    dpkg-deb -x "$download"/kubernetes-client_*.deb "$KUBECTL_120_DIR"
    rm -rf "$download"
fi

# kube-apiserver, kube-controller-manager, kube-scheduler and kubelet 1.20.2: built once per
# machine (several minutes), cached in /var/cache/kubelet-lite afterwards.
"$(dirname "$0")/build-kubernetes.sh"
