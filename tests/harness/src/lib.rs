//! The test harness of kubelet-lite: real peers for integration tests.
//!
//! Every integration test of the workspace that needs more than in-process fakes starts
//! its environment through this crate:
//!
//! - [`Registry`]: Debian's `docker-registry` on 127.0.0.1, plain HTTP, throw-away storage,
//!   anonymous or with Basic authentication ([`RegistryOptions`]);
//! - [`push_test_images`]: busybox, a pause-style sandbox image and a non-root busybox,
//!   built in Rust from the host's static `/bin/busybox` (see [`image_builder`] to build
//!   more) and pushed to that registry;
//! - [`push_multi_platform_image`]: an OCI image index whose entry for this machine is
//!   busybox, behind decoys for other platforms ([`multi_platform`]);
//! - [`push_large_image`]: a 64 MiB image in 5 gzip layers for pull benchmarks, built
//!   once per machine and cached ([`large_image`]);
//! - [`Containerd`]: containerd 1.6 with its CRI plugin on a private socket, root, state,
//!   bridge and subnet, pulling `docker.io` and `registry.k8s.io` from the local registry
//!   through `hosts.toml` mirrors, and cleaned up completely on drop;
//! - [`RuntimeCore`]: the workspace's own CRI runtime, the same way (its own socket, root,
//!   state, bridge, subnet and mirrors), crashed and restarted on demand
//!   ([`daemon::Daemon::kill`], [`daemon::Daemon::start_again`]); both daemons share one
//!   lifecycle, [`daemon::Daemon`];
//! - [`ControlPlane`]: a real Kubernetes 1.20 control plane (etcd, kube-apiserver,
//!   kube-controller-manager, kube-scheduler) on 127.0.0.1 with a throw-away CA ([`pki`]),
//!   driven with `kubectl` ([`ControlPlane::kubectl`]);
//! - [`Kubelet`]: the real kubelet 1.20 as a node of that control plane, driving any CRI
//!   runtime over its socket;
//! - [`KubeletLite`]: the workspace's node agent as a node of that control plane (or
//!   standalone), with its embedded runtime-core by default;
//! - [`conformance`]: the upstream `[NodeConformance]` e2e specs of Kubernetes 1.20 run
//!   with `ginkgo` against one node, with their images built offline
//!   ([`conformance_images`]); the `conformance` binary and `scripts/conformance.sh`;
//! - [`suite::run`]: runs a test binary's tests (`harness = false`) against one shared
//!   environment with libtest's command line, and turns missing prerequisites into ignored
//!   tests outside CI and failures in CI.
//!
//! Where to start: copy the example below into `tests/<name>.rs`, declare it in the crate's
//! `Cargo.toml` as `[[test]] name = "<name>" harness = false`, and write tests as plain
//! functions taking the environment.
//!
//! # Example
//!
//! ```no_run
//! use std::process::ExitCode;
//! use test_harness::suite::{self, Test};
//! use test_harness::{Containerd, Registry, TestImages};
//!
//! struct Env {
//!     containerd: Containerd,
//!     images: TestImages,
//!     _registry: Registry, // dropped last: containerd may still pull while it stops
//! }
//!
//! fn setup() -> anyhow::Result<Env> {
//!     let registry = Registry::start()?;
//!     let images = test_harness::push_test_images(&registry)?;
//!     let containerd = Containerd::start(&registry, &images)?;
//!     Ok(Env { containerd, images, _registry: registry })
//! }
//!
//! fn version_answers(env: &Env) -> anyhow::Result<()> {
//!     let mut client = env.containerd.runtime_client();
//!     let version = env
//!         .containerd
//!         .block_on(client.version(cri_api::v1::VersionRequest::default()))?;
//!     anyhow::ensure!(version.get_ref().runtime_name == "containerd");
//!     Ok(())
//! }
//!
//! fn main() -> ExitCode {
//!     suite::run(setup, vec![Test { name: "version_answers", run: version_answers }])
//! }
//! ```
//!
//! # Where things live on the host
//!
//! Scratch directories go under `/var/lib/kubelet-lite-test` (overridable with
//! `KUBELET_LITE_TEST_DIR`; it must be a real disk filesystem, since overlayfs cannot put
//! an upper directory on overlayfs). Each one is guarded by a lock held while its owner
//! lives; a later run reaps the directories of runs that died without cleaning up
//! (mounts, daemons, shims, bridges, iptables rules). See [`scratch`] and [`host`].
//!
//! Daemon logs live in the scratch directories and go with them; set
//! `KUBELET_LITE_TEST_KEEP_LOGS=1` to keep copies in `BASE/logs/`.
//!
//! Daemons are started through `setpriv --pdeathsig KILL` from a dedicated thread, so
//! they die with the test process even if it is killed (see [`process`]).

pub mod cli;
pub mod cni;
pub mod conformance;
pub mod conformance_images;
pub mod containerd;
pub mod control_plane;
pub mod cri;
pub mod daemon;
pub mod distribution;
pub mod host;
pub mod htpasswd;
pub mod image_builder;
pub mod image_index;
pub mod kubelet;
pub mod kubelet_lite;
pub mod large_image;
pub mod mirrors;
pub mod multi_platform;
pub mod oci_layout;
mod output;
pub mod pki;
pub mod pods;
mod prereq;
pub mod process;
pub mod registry;
pub mod runtime_core;
pub mod scratch;
pub mod soak;
pub mod suite;
mod teardown;
pub mod test_images;

pub use containerd::{Containerd, ContainerdOptions};
pub use control_plane::{ControlPlane, ControlPlaneOptions};
pub use daemon::DaemonOptions;
pub use kubelet::{Kubelet, KubeletOptions};
pub use kubelet_lite::{KubeletLite, KubeletLiteOptions};
pub use large_image::{LargeImage, LargeImageSpec, push_large_image};
pub use multi_platform::{MultiPlatformImage, push_multi_platform_image};
pub use output::{note, tail_from};
pub use prereq::{
    CNI_PLUGIN_DIRS, CNI_PLUGINS, Missing, cni_bin_dir, debian_package, find_tool, in_ci, require_root, require_tools,
};
pub use registry::{Registry, RegistryOptions};
pub use runtime_core::{RuntimeCore, RuntimeCoreOptions};
pub use test_images::{TestImages, direct_references, push_test_images};
