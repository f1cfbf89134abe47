//! End-to-end tests of kubelet-lite: the workspace's programs driven by real Kubernetes
//! components, as a cluster would run them.
//!
//! The tests live in `tests/` (each a `harness = false` binary run by
//! `test_harness::suite`); this library holds what they share: finding the workspace's
//! own binaries, built by the same cargo and profile as the test.
//!
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
    // The test runs as TARGET/PROFILE/deps/NAME-HASH.
    let exe = std::env::current_exe().context("finding the test executable")?;
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .context("the test executable is not in a cargo target directory")?;
    let target_dir = profile_dir
        .parent()
        .context("the test executable is not in a cargo target directory")?;
    let profile = match profile_dir.file_name().and_then(|name| name.to_str()) {
        Some("debug") => "dev",
        Some(name) => name,
        None => bail!("cannot tell the cargo profile of {}", exe.display()),
    };
    let output = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "--package", package, "--bins", "--profile", profile])
        .arg("--target-dir")
        .arg(target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .output()
        .context("running cargo build")?;
    if !output.status.success() {
        bail!(
            "cargo build --package {package} --bins failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let path = profile_dir.join(bin);
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
