#!/usr/bin/env bash
# Builds the Kubernetes 1.20.2 server binaries the end-to-end tests run (kube-apiserver,
# kube-controller-manager, kube-scheduler and the real kubelet) from Debian's `kubernetes`
# source package with Debian's Go, on Debian 12, as root: Debian 12 has no Kubernetes
# binary package, and nothing else is reachable offline. Also installs etcd (etcd-server).
#
# With --conformance it also builds, from the same tree, the upstream e2e suite the node
# conformance run uses (scripts/conformance.sh): `e2e.test` and `ginkgo`, and the test
# binaries its images carry: `agnhost` (test/images/agnhost) and `nnp`
# (test/images/nonewprivs), with agnhost's porter certificate and key. They are cached in
# $KUBELET_LITE_CACHE/kubernetes-1.20.2/conformance (about 5 more minutes of build).
#
# The binaries are cached per machine in $KUBELET_LITE_CACHE/kubernetes-1.20.2/bin
# (default /var/cache/kubelet-lite/..., where the test harness looks for them; elsewhere,
# point KUBELET_LITE_KUBERNETES_BIN at that directory); when all four are there, this does
# nothing. Otherwise it installs the build's apt packages, adds a deb-src entry for the
# Debian archive already configured (when missing), downloads and unpacks the source
# (~ 35 MB with vendor/) under /var/cache/kubelet-lite/src, builds (5 to 9 minutes on 2
# cores) and removes the unpacked tree. Safe to run again; a failed build leaves no
# partial bin directory.
set -euo pipefail

KUBE_VERSION=1.20.2
CACHE_ROOT=${KUBELET_LITE_CACHE:-/var/cache/kubelet-lite}
KUBE_CACHE=$CACHE_ROOT/kubernetes-$KUBE_VERSION
BIN_DIR=$KUBE_CACHE/bin
SRC_ROOT=$CACHE_ROOT/src
COMMANDS=(kube-apiserver kube-controller-manager kube-scheduler kubelet)
SUITE_DIR=$KUBE_CACHE/conformance
SUITE_FILES=(e2e.test ginkgo agnhost nnp porter/localhost.crt porter/localhost.key)

WITH_SUITE=false
case ${1:-} in
    "") ;;
    --conformance) WITH_SUITE=true ;;
    *) echo "usage: $0 [--conformance]" >&2; exit 2 ;;
esac

all_built() {
    local command
    for command in "${COMMANDS[@]}"; do
        [[ -x $BIN_DIR/$command ]] || return 1
    done
}

suite_built() {
    local file
    for file in "${SUITE_FILES[@]}"; do
        [[ -s $SUITE_DIR/$file ]] || return 1
    done
}

if all_built && { ! $WITH_SUITE || suite_built; }; then
    echo "kubernetes $KUBE_VERSION binaries cached in $BIN_DIR"
    $WITH_SUITE && echo "kubernetes $KUBE_VERSION e2e suite cached in $SUITE_DIR"
    exit 0
fi

# --- apt packages the build and the tests need ---------------------------------------------
APT_PACKAGES=(golang-go rsync jq etcd-server dpkg-dev openssl make)
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

# --- a deb-src entry for the Debian archive --------------------------------------------------
# Only Debian's own archives are mirrored as sources (third-party repositories may have no
# Sources index, which would break `apt-get update`). deb822 `.sources` stanzas are copied
# with `Types: deb-src`; one-line `deb` entries become `deb-src` lines.
SRC_LIST_DEB822=/etc/apt/sources.list.d/kubelet-lite-deb-src.sources
SRC_LIST_ONELINE=/etc/apt/sources.list.d/kubelet-lite-deb-src.list

has_deb_src() {
    local file
    for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [[ -f $file ]] || continue
        grep -Eq '^[[:space:]]*deb-src[[:space:]]' "$file" && return 0
        grep -Eiq '^[[:space:]]*Types:.*deb-src' "$file" && return 0
    done
    return 1
}

# Prints the deb822 stanzas of the given files that carry Debian archive URIs, as deb-src.
deb822_as_src() {
    awk '
        function flush() {
            if (stanza != "" && is_deb && is_debian) printf "%s\n", stanza
            stanza = ""; is_deb = 0; is_debian = 0
        }
        /^[[:space:]]*$/ { flush(); next }
        /^[[:space:]]*#/ { next }
        /^Types:/ { if ($0 ~ /(^|[[:space:]])deb([[:space:]]|$)/) is_deb = 1; stanza = stanza "Types: deb-src\n"; next }
        /^URIs:/ { if ($0 ~ /debian/) is_debian = 1 }
        /^Enabled:[[:space:]]*no/ { is_deb = 0 }
        { stanza = stanza $0 "\n" }
        END { flush() }
    ' "$@"
}

if ! has_deb_src; then
    shopt -s nullglob
    sources_files=(/etc/apt/sources.list.d/*.sources)
    shopt -u nullglob
    if ((${#sources_files[@]})) && [[ -n $(deb822_as_src "${sources_files[@]}") ]]; then
        echo "adding $SRC_LIST_DEB822"
        deb822_as_src "${sources_files[@]}" >"$SRC_LIST_DEB822"
    else
        echo "adding $SRC_LIST_ONELINE"
        cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
            | sed -nE 's/^[[:space:]]*deb[[:space:]]+(.*debian.*)$/deb-src \1/p' >"$SRC_LIST_ONELINE"
    fi
    [[ -s ${SRC_LIST_DEB822} || -s ${SRC_LIST_ONELINE} ]] \
        || { echo "no Debian archive found in the apt sources to add deb-src for" >&2; exit 1; }
    apt-get update -q
fi

# --- the source tree ----------------------------------------------------------------------------
mkdir -p "$SRC_ROOT"
TREE=$SRC_ROOT/kubernetes-$KUBE_VERSION
if [[ ! -f $TREE/.kubelet-lite-unpacked ]]; then
    rm -rf "$TREE"
    (
        cd "$SRC_ROOT"
        # Debian 12 ships it as 1.20.5+really1.20.2-...: the source of 1.20.2.
        apt-get source --download-only kubernetes  # skips files already downloaded and verified
        dsc=$(ls -1 kubernetes_*.dsc | head -n 1)
        [[ $dsc == *"$KUBE_VERSION"* ]] || { echo "$dsc is not kubernetes $KUBE_VERSION" >&2; exit 1; }
        # Unpacks the orig tarballs (the tree and its vendor/) and applies Debian's patches.
        dpkg-source --no-check -x "$dsc" "$TREE"
    )
    touch "$TREE/.kubelet-lite-unpacked"
fi

# --- the build --------------------------------------------------------------------------------------
# The build wants the tree at $GOPATH/src/k8s.io/kubernetes: a symlink inside the tree.
cd "$TREE"
mkdir -p .go/src/k8s.io
[[ -e .go/src/k8s.io/kubernetes ]] || ln -s ../../.. .go/src/k8s.io/kubernetes
export GOPATH=$PWD/.go CGO_ENABLED=0 KUBE_GIT_VERSION="v$KUBE_VERSION" KUBE_GIT_TREE_STATE=clean
started=$SECONDS

# Copies the newest executable named $1 under _output to $2.
install_built() {
    local built
    built=$(find _output -type f -name "$1" -perm -u+x -printf '%T@ %p\n' | sort -rn | head -n 1 | cut -d' ' -f2-)
    [[ -n $built ]] || { echo "the build produced no $1" >&2; exit 1; }
    install -m 0755 "$built" "$2"
}

if ! all_built; then
    echo "building kubernetes $KUBE_VERSION (${COMMANDS[*]}) in $TREE; this takes several minutes"
    what=""
    for command in "${COMMANDS[@]}"; do what+="cmd/$command "; done
    make WHAT="${what% }"
    staging=$KUBE_CACHE/bin.new
    rm -rf "$staging"
    mkdir -p "$staging"
    for command in "${COMMANDS[@]}"; do
        install_built "$command" "$staging/$command"
    done
    rm -rf "$BIN_DIR"
    mv "$staging" "$BIN_DIR"
fi

if $WITH_SUITE && ! suite_built; then
    echo "building the kubernetes $KUBE_VERSION e2e suite (e2e.test, ginkgo, agnhost, nnp) in $TREE"
    make WHAT="test/e2e/e2e.test vendor/github.com/onsi/ginkgo/ginkgo"
    staging=$SUITE_DIR.new
    rm -rf "$staging"
    mkdir -p "$staging/porter"
    install_built e2e.test "$staging/e2e.test"
    install_built ginkgo "$staging/ginkgo"
    # The test images' programs are not in the Makefile's targets, and a module build fails
    # on the tree's go.mod: GOPATH mode, through the symlink, with the tree's vendor/.
    (
        cd .go/src/k8s.io/kubernetes/test/images
        GO111MODULE=off go build -o "$staging/agnhost" ./agnhost
        GO111MODULE=off go build -o "$staging/nnp" ./nonewprivs
        install -m 0644 agnhost/porter/localhost.crt agnhost/porter/localhost.key "$staging/porter/"
    )
    rm -rf "$SUITE_DIR"
    mv "$staging" "$SUITE_DIR"
fi

# The tree and its build cache take about 2.7 GB; the downloaded sources stay for a rebuild.
cd "$SRC_ROOT"
rm -rf "$TREE"
echo "kubernetes $KUBE_VERSION built in $((SECONDS - started)) s, cached in $KUBE_CACHE"
