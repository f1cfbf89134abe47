//! End-to-end tests of kubelet-lite: the workspace's programs driven by real Kubernetes
//! components, as a cluster would run them.
//!
//! The tests live in `tests/` (each a `harness = false` binary run by
//! `test_harness::suite`); this library holds what they share: finding the workspace's
//! own binaries, built by the same cargo and profile as the test.
//!
//! - `tests/kubelet_lite.rs` and `tests/kubelet_lite_containerd.rs`: one node suite
//!   (`tests/node_suite/`: registration, Deployments, back-offs, probes, graceful deletion,
//!   static pods, adoption after a restart) against kubelet-lite with its embedded
//!   runtime-core, and against kubelet-lite built without default features
//!   ([`workspace_binary_without_default_features`]) driving containerd 1.6.
//! - `tests/kubelet_lite_api.rs`: `kubectl exec`, `attach`, `logs` and `port-forward`
//!   (kubectl 1.32 and 1.20) through the apiserver to kubelet-lite nodes running
//!   runtime-core and containerd.
//! - `tests/kubelet_runtime_core.rs`: the real kubelet 1.20, registered with a real control
//!   plane, runs a pod created with `kubectl` through runtime-core over CRI v1alpha2.
//!
//! They need root, the Kubernetes 1.20 binaries (`scripts/build-kubernetes.sh`), etcd,
//! runc, the CNI plugins, docker-registry and busybox-static; without them they are
//! skipped, and with `CI=true` they fail.
//!
//! ```no_run
//! # fn f() -> anyhow::Result<()> {
//! let runtime_core = e2e::workspace_binary("runtime-core", "runtime-core")?;
//! assert!(runtime_core.with_file_name("runtime-core-monitor").exists());
//! # Ok(()) }
//! ```

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// Builds the binaries of workspace package `package` with the cargo, profile and target
/// directory that built the running test (a no-op when they are up to date), and returns
/// the path of binary `bin`.
///
/// A test of another package cannot use `env!("CARGO_BIN_EXE_...")`, and
/// `cargo test -p e2e` alone would not build them.
pub fn workspace_binary(package: &str, bin: &str) -> anyhow::Result<PathBuf> {
    build_binary(package, bin, Features::Default)
}

/// [`workspace_binary`] built without the package's default features (kubelet-lite
/// without its embedded runtime), with the same cargo and profile, in a target directory
/// of its own: [`NO_DEFAULT_FEATURES_DIR`] inside the test's. The binary never replaces
/// the default build's (`TARGET/PROFILE/BIN`), which other tests may be running; the
/// first build compiles the package's dependencies once more, into that directory.
///
/// ```no_run
/// # fn f() -> anyhow::Result<()> {
/// let kubelet_lite = e2e::workspace_binary_without_default_features("kubelet-lite", "kubelet-lite")?;
/// assert!(kubelet_lite.to_string_lossy().contains("/no-default-features/"));
/// # Ok(()) }
/// ```
pub fn workspace_binary_without_default_features(package: &str, bin: &str) -> anyhow::Result<PathBuf> {
    build_binary(package, bin, Features::NoDefault)
}

/// The target directory, inside the test's, of the builds without default features.
pub const NO_DEFAULT_FEATURES_DIR: &str = "no-default-features";

/// Which features a build of a workspace binary has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Features {
    Default,
    NoDefault,
}

fn build_binary(package: &str, bin: &str, features: Features) -> anyhow::Result<PathBuf> {
    // The test runs as TARGET/PROFILE/deps/NAME-HASH.
    let exe = std::env::current_exe().context("finding the test executable")?;
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .context("the test executable is not in a cargo target directory")?;
    let target_dir = profile_dir
        .parent()
        .context("the test executable is not in a cargo target directory")?;
    let profile_name = profile_dir
        .file_name()
        .and_then(|name| name.to_str())
        .with_context(|| format!("cannot tell the cargo profile of {}", exe.display()))?;
    let profile = match profile_name {
        "debug" => "dev",
        name => name,
    };
    let (target_dir, flags) = match features {
        Features::Default => (target_dir.to_path_buf(), &[][..]),
        Features::NoDefault => (target_dir.join(NO_DEFAULT_FEATURES_DIR), &["--no-default-features"][..]),
    };
    let output = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "--package", package, "--bins", "--profile", profile])
        .args(flags)
        .arg("--target-dir")
        .arg(&target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .output()
        .context("running cargo build")?;
    if !output.status.success() {
        bail!(
            "cargo build --package {package} --bins {}failed ({}):\n{}",
            flags.iter().map(|flag| format!("{flag} ")).collect::<String>(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let path = target_dir.join(profile_name).join(bin);
    if !path.is_file() {
        bail!("cargo built package {package}, but {} does not exist", path.display());
    }
    Ok(path)
}

/// Polls `check` every 250 ms until it returns `Some`, or fails after `timeout` with the
/// last error `check` gave.
pub fn eventually<T>(timeout: Duration, mut check: impl FnMut() -> anyhow::Result<Option<T>>) -> anyhow::Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match check() {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => None,
            Err(err) => Some(err),
        };
        if Instant::now() >= deadline {
            return Err(last.unwrap_or_else(|| anyhow::anyhow!("still not so")))
                .with_context(|| format!("not so within {timeout:?}"));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}
