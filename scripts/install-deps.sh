#!/usr/bin/env bash
# Installs what kubelet-lite's tests and demo need on Debian 12, as root:
# runc, containerd (the peer runtime), Debian's OCI registry, a static busybox for test
# images, the CNI plugins, iptables, Python's grpcio for the CRI serving test, and the
# Kubernetes 1.20 control plane and kubelet of the end-to-end tests (etcd from Debian, the
# rest built from Debian's source package by build-kubernetes.sh).
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

# kubectl: the machine image has 1.32; Debian's kubernetes-client (1.20) also talks to the
# test control plane.
if ! command -v kubectl >/dev/null; then
    echo "installing: kubernetes-client (kubectl)"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends kubernetes-client
fi

# kube-apiserver, kube-controller-manager, kube-scheduler and kubelet 1.20.2: built once per
# machine (several minutes), cached in /var/cache/kubelet-lite afterwards.
"$(dirname "$0")/build-kubernetes.sh"
