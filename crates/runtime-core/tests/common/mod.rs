//! What the RuntimeService tests share: an environment (the local registry with the test
//! images, a runtime-core daemon on its own bridge and subnet, a `cri-client` connected to
//! it, busybox pulled) and the few steps every test takes with pods and containers.
//!
//! Pod and container configs, polling and the CRI log reader come from
//! [`test_harness::pods`].

// Each test binary that includes this module uses a part of it.
#![allow(dead_code)]

use std::future::Future;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use cri_client::Client;
use cri_client::v1::{
    ContainerConfig, ContainerState, ContainerStatus, LinuxContainerConfig, LinuxContainerSecurityContext,
    LinuxPodSandboxConfig, LinuxSandboxSecurityContext, PodSandboxConfig,
};
use test_harness::pods::{self, eventually};
use test_harness::{Registry, RuntimeCore, RuntimeCoreOptions, TestImages, host, process};

/// The Kubernetes namespace of every test pod.
pub(crate) const NAMESPACE: &str = "runtime-core-test";

/// The longest log record text the runtime writes (small, so tests see partial lines).
pub(crate) const LOG_MAX_LINE: usize = 64;

/// How long a container may take to exit after its script ends.
pub(crate) const EXIT_TIMEOUT: Duration = Duration::from_secs(20);

/// The shared environment. Fields drop in order: the client and its tokio runtime first,
/// then runtime-core (its cleanup removes every pod), the registry last.
pub(crate) struct Env {
    pub(crate) client: Client,
    pub(crate) rt: tokio::runtime::Runtime,
    /// Read-locked by tests that only use it; write-locked by a test that kills or
    /// restarts it, so no other test talks to it meanwhile.
    runtime: RwLock<RuntimeCore>,
    pub(crate) images: TestImages,
    /// What PullImage returned for busybox: the image id ContainerStatus must report.
    pub(crate) busybox_id: String,
    /// The daemon's directory for pod logs (kept here: a test holding the daemon's write
    /// lock still makes pods).
    log_dir: PathBuf,
    _registry: Registry,
}

impl Env {
    /// Starts the registry, pushes the test images, starts runtime-core on `bridge` and
    /// `subnet` with [`LOG_MAX_LINE`], connects and pulls busybox.
    pub(crate) fn setup(bridge: &str, subnet: &str) -> anyhow::Result<Env> {
        Env::setup_with(RuntimeCoreOptions {
            log_max_line: Some(LOG_MAX_LINE),
            ..RuntimeCoreOptions::with_network(bridge, subnet)
        })
    }

    /// [`Env::setup`] with the daemon's options given whole.
    pub(crate) fn setup_with(options: RuntimeCoreOptions) -> anyhow::Result<Env> {
        test_harness::require_tools(&["docker-registry", "busybox"])?;
        let registry = Registry::start()?;
        let images = test_harness::push_test_images(&registry)?;
        let runtime = RuntimeCore::start(env!("CARGO_BIN_EXE_runtime-core").as_ref(), &registry, options)?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("building a tokio runtime")?;
        let (client, busybox_id) = rt.block_on(async {
            let client = Client::connect(&runtime.endpoint()).await?;
            let id = client.pull_image(images.busybox.as_str(), None, None).await?;
            anyhow::Ok((client, id))
        })?;
        Ok(Env {
            client,
            rt,
            log_dir: runtime.log_dir().to_path_buf(),
            runtime: RwLock::new(runtime),
            images,
            busybox_id,
            _registry: registry,
        })
    }

    /// The daemon, shared with the other tests.
    pub(crate) fn runtime(&self) -> RwLockReadGuard<'_, RuntimeCore> {
        self.runtime.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The daemon, for this test alone (to kill or restart it).
    pub(crate) fn runtime_mut(&self) -> RwLockWriteGuard<'_, RuntimeCore> {
        self.runtime.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// A pod config of its own for `test` (see [`pods::pod_config`]).
    pub(crate) fn pod_config(&self, test: &str) -> anyhow::Result<PodSandboxConfig> {
        pods::pod_config(&self.log_dir, NAMESPACE, test)
    }

    /// A pod config of its own for `test` whose sandbox security context is `sc`, with
    /// `sysctls`.
    pub(crate) fn secured_pod_config(
        &self,
        test: &str,
        sc: LinuxSandboxSecurityContext,
        sysctls: &[(&str, &str)],
    ) -> anyhow::Result<PodSandboxConfig> {
        let mut config = self.pod_config(test)?;
        config.linux = Some(LinuxPodSandboxConfig {
            security_context: Some(sc),
            sysctls: sysctls.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            ..LinuxPodSandboxConfig::default()
        });
        Ok(config)
    }

    /// A busybox container `name` of `pod` running `sh -c script`.
    pub(crate) fn container_config(&self, pod: &Pod, name: &str, script: &str) -> anyhow::Result<ContainerConfig> {
        pods::busybox_container(&self.images.busybox, name, script, &pod.config)
    }

    /// A busybox container `name` of `pod` running `sh -c script` with the security
    /// context `sc`.
    pub(crate) fn secured_container_config(
        &self,
        pod: &Pod,
        name: &str,
        script: &str,
        sc: LinuxContainerSecurityContext,
    ) -> anyhow::Result<ContainerConfig> {
        let mut config = self.container_config(pod, name, script)?;
        config.linux = Some(LinuxContainerConfig {
            security_context: Some(sc),
            ..LinuxContainerConfig::default()
        });
        Ok(config)
    }

    /// RunPodSandbox for `test`.
    pub(crate) async fn run_pod(&self, test: &str) -> anyhow::Result<Pod> {
        self.run_pod_with(self.pod_config(test)?).await
    }

    /// RunPodSandbox with `config`.
    pub(crate) async fn run_pod_with(&self, config: PodSandboxConfig) -> anyhow::Result<Pod> {
        let id = self
            .client
            .run_pod_sandbox(config.clone(), "")
            .await
            .context("RunPodSandbox")?;
        Ok(Pod { id, config })
    }

    /// CreateContainer of `config` in `pod`, then StartContainer; returns its id.
    pub(crate) async fn start(&self, pod: &Pod, config: ContainerConfig) -> anyhow::Result<String> {
        let id = self
            .client
            .create_container(&pod.id, config, pod.config.clone())
            .await
            .context("CreateContainer")?;
        self.client.start_container(&id).await.context("StartContainer")?;
        Ok(id)
    }

    /// A busybox container `name` running `sh -c script` in `pod`, created and started.
    pub(crate) async fn start_script(&self, pod: &Pod, name: &str, script: &str) -> anyhow::Result<String> {
        self.start(pod, self.container_config(pod, name, script)?).await
    }

    /// ContainerStatus of `id`.
    pub(crate) async fn status(&self, id: &str) -> anyhow::Result<ContainerStatus> {
        self.client
            .container_status(id, false)
            .await
            .context("ContainerStatus")?
            .status
            .context("ContainerStatus has no status")
    }

    /// Polls ContainerStatus until the container has exited; returns that status.
    pub(crate) async fn exited(&self, id: &str) -> anyhow::Result<ContainerStatus> {
        eventually("the container to exit", EXIT_TIMEOUT, || async {
            let status = self.status(id).await?;
            Ok((status.state == ContainerState::ContainerExited as i32).then_some(status))
        })
        .await
    }

    /// ExecSync of `sh -c script` in container `id` (10 s); returns the exit code and stdout.
    pub(crate) async fn exec(&self, id: &str, script: &str) -> anyhow::Result<(i32, String)> {
        let response = self
            .client
            .exec_sync(id, ["sh", "-c", script], Duration::from_secs(10))
            .await
            .with_context(|| format!("ExecSync {script:?}"))?;
        Ok((
            response.exit_code,
            String::from_utf8_lossy(&response.stdout).into_owned(),
        ))
    }

    /// The output of `sh -c script` in container `id`, which must exit 0, trimmed.
    pub(crate) async fn output(&self, id: &str, script: &str) -> anyhow::Result<String> {
        let (code, out) = self.exec(id, script).await?;
        ensure!(code == 0, "{script:?} exited {code} with {out:?}");
        Ok(out.trim().to_string())
    }

    /// StopPodSandbox and RemovePodSandbox (which removes its containers).
    pub(crate) async fn remove(&self, pod: &Pod) -> anyhow::Result<()> {
        self.client.stop_pod_sandbox(&pod.id).await.context("StopPodSandbox")?;
        self.client
            .remove_pod_sandbox(&pod.id)
            .await
            .context("RemovePodSandbox")?;
        Ok(())
    }

    /// Runs a test body on the client's runtime; a failure gets the daemon's log tail
    /// attached. (Pods a failed test leaves behind go with the environment.)
    pub(crate) fn block_on<T>(&self, body: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
        let result = self.rt.block_on(body);
        if result.is_err()
            && let Ok(runtime) = self.runtime.try_read()
        {
            return with_daemon_log(&runtime, result);
        }
        result
    }
}

/// A pod sandbox a test runs: its id and the config it was run with.
#[derive(Debug, Clone)]
pub(crate) struct Pod {
    pub(crate) id: String,
    pub(crate) config: PodSandboxConfig,
}

/// `result`, with the end of the daemon's log attached to an error.
pub(crate) fn with_daemon_log<T>(runtime: &RuntimeCore, result: anyhow::Result<T>) -> anyhow::Result<T> {
    result.map_err(|err| err.context(format!("runtime-core's log ends with:\n{}", runtime.log_tail(40))))
}

/// Checks that a call failed with gRPC status `code`.
pub(crate) fn expect_code<T: std::fmt::Debug>(
    result: cri_client::Result<T>,
    code: cri_client::Code,
    call: &str,
) -> anyhow::Result<()> {
    match result {
        Err(err) if err.code() == Some(code) => Ok(()),
        Err(err) => anyhow::bail!("{call}: want {code:?}, got {err}"),
        Ok(value) => anyhow::bail!("{call}: want {code:?}, got success: {value:?}"),
    }
}

/// Where containers of pods without a cgroup parent get their cgroups.
const DEFAULT_CGROUP_PARENT: &str = "runtime-core";

/// Checks that the runtime holds nothing any more: no mounts under its root and state,
/// no sandbox directories, no IP reservations, no monitor or container processes (nor
/// any process whose command line has one of `scripts`), no containers in runc, and no
/// cgroup of `containers` in any hierarchy.
pub(crate) fn nothing_is_left(runtime: &RuntimeCore, containers: &[&str], scripts: &[&str]) -> anyhow::Result<()> {
    let hierarchies: Vec<_> = std::fs::read_dir("/sys/fs/cgroup")?
        .flatten()
        .map(|e| e.path())
        .collect();
    let cgroups: Vec<_> = containers
        .iter()
        .flat_map(|id| hierarchies.iter().map(move |h| h.join(DEFAULT_CGROUP_PARENT).join(id)))
        .filter(|path| path.exists())
        .collect();
    ensure!(cgroups.is_empty(), "cgroups left: {cgroups:?}");
    for dir in [runtime.root_dir(), runtime.state_dir()] {
        let mounts = host::mounts_under(dir)?;
        ensure!(mounts.is_empty(), "mounts left under {}: {mounts:?}", dir.display());
    }
    let sandboxes = runtime.state_dir().join("sandboxes");
    let entries: Vec<_> = match std::fs::read_dir(&sandboxes) {
        Ok(entries) => entries.flatten().map(|e| e.file_name()).collect(),
        Err(_) => Vec::new(),
    };
    ensure!(entries.is_empty(), "left in {}: {entries:?}", sandboxes.display());
    let reservations = ip_reservations(runtime.ipam_dir());
    ensure!(reservations.is_empty(), "IP reservations left: {reservations:?}");

    let needle = format!("{}/", runtime.dir().display());
    let daemon = runtime.pid();
    let processes: Vec<String> = process::pids_with_cmdline_containing(&needle)
        .into_iter()
        .chain(
            scripts
                .iter()
                .flat_map(|script| process::pids_with_cmdline_containing(script)),
        )
        .filter(|&pid| Some(pid) != daemon)
        .map(|pid| format!("{pid}: {}", process::cmdline(pid)))
        .collect();
    ensure!(processes.is_empty(), "processes left: {processes:?}");

    let root = runtime.runc_handler_root();
    let runc = Command::new("runc")
        .arg("--root")
        .arg(&root)
        .args(["list", "--quiet"])
        .output()
        .context("running runc list")?;
    if !runc.status.success() {
        bail!(
            "runc --root {} list: {}",
            root.display(),
            String::from_utf8_lossy(&runc.stderr)
        );
    }
    let ids = String::from_utf8_lossy(&runc.stdout);
    ensure!(ids.trim().is_empty(), "runc still knows containers: {ids}");
    Ok(())
}

/// The files host-local keeps per reserved address (named after the address), anywhere
/// under its data directory.
pub(crate) fn ip_reservations(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(ip_reservations(&path));
        } else if entry.file_name().to_string_lossy().parse::<IpAddr>().is_ok() {
            found.push(path.display().to_string());
        }
    }
    found
}
