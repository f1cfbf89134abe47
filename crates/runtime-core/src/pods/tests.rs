//! The rollback of RunPodSandbox, CreateContainer and StartContainer, without root: a
//! double stands behind every seam (namespaces, pod network, rootfs, OCI runtime), records what it is asked to do and
//! fails at the step a test names; the test checks that what was done is undone, in
//! reverse, and what the records then say.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use cri_api::v1::{
    ContainerConfig, ContainerMetadata, CreateContainerRequest, ImageSpec, LinuxPodSandboxConfig,
    LinuxSandboxSecurityContext, NamespaceMode, NamespaceOption, PodSandboxConfig, PodSandboxMetadata,
    RunPodSandboxRequest, StartContainerRequest,
};
use futures_util::future::BoxFuture;

use super::{Dirs, Pods, PodsError, PodsParts};
use crate::container::rootfs::{IdmappedRoot, Rootfs, RootfsError, RootfsMounter};
use crate::image::digest::Digest;
use crate::image::hosts::RegistryHosts;
use crate::image::manager::ImageManager;
use crate::image::records::ImageRecord;
use crate::image::registry::RegistryClient;
use crate::oci::runc::{ExecOutput, Runc, RuncError};
use crate::oci::{Call, Creation, OciError, OciRuntime};
use crate::sandbox::cni::template::PodCidrData;
use crate::sandbox::cni::{Attachment, CniError, NetworkStatus, PodCidrOutcome};
use crate::sandbox::namespaces::{NamespaceError, NamespacePinner, PinRequest, PinnedNamespaces};
use crate::sandbox::network::{NetworkCall, PodNetwork};
use crate::state::container::{ContainerRecord, ContainerState, ContainerStatus};
use crate::state::sandbox::{SandboxRecord, SandboxState};
use crate::state::{Registry, StateError};
use crate::store::{self, Store};

/// The runtime handler the doubles serve.
const HANDLER: &str = "double";
/// The pid the double's containers get.
const PID: u32 = 4242;
/// The image the containers are made from.
const IMAGE: &str = "docker.io/library/app:latest";

/// A step a double takes, in the order RunPodSandbox, CreateContainer and StartContainer
/// take them; the undoing steps come last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Pin,
    Setup,
    Mount,
    Create,
    Start,
    Teardown,
    Unpin,
    Remove,
    Delete,
    /// Kill, Exec and Update are no steps of the verbs tested: a call is recorded (so
    /// the test's list of calls shows it) and refused.
    Kill,
    Exec,
    Update,
}

/// The namespaces, network and OCI runtime of a test: each call is recorded, and the call
/// of step `fail_at` fails.
#[derive(Debug)]
struct Host {
    fail_at: Option<Step>,
    calls: Mutex<Vec<Step>>,
    /// The pod CIDRs the network was given.
    pod_cidrs: Mutex<Vec<Vec<String>>>,
}

impl Host {
    fn failing_at(fail_at: Option<Step>) -> Arc<Host> {
        Arc::new(Host {
            fail_at,
            calls: Mutex::new(Vec::new()),
            pod_cidrs: Mutex::new(Vec::new()),
        })
    }

    fn calls(&self) -> Vec<Step> {
        self.calls.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Records `step`; whether it is the one to fail.
    fn take(&self, step: Step) -> bool {
        self.calls.lock().unwrap_or_else(PoisonError::into_inner).push(step);
        self.fail_at == Some(step)
    }

    /// Records a call the verbs under test must not make, and refuses it.
    fn unexpected(&self, step: Step, id: &str) -> OciError {
        self.take(step);
        self.runc_error(step, id)
    }

    fn runc_error(&self, step: Step, id: &str) -> OciError {
        OciError::Runc(RuncError::Failed {
            command: "double",
            id: id.into(),
            message: format!("{step:?} fails"),
        })
    }
}

impl NamespacePinner for Host {
    fn pin<'a>(&'a self, dir: &'a Path, _: &'a PinRequest) -> BoxFuture<'a, Result<PinnedNamespaces, NamespaceError>> {
        Box::pin(async move {
            if self.take(Step::Pin) {
                return Err(NamespaceError::Pin {
                    dir: dir.into(),
                    message: "Pin fails".into(),
                });
            }
            Ok(PinnedNamespaces {
                user: None,
                ..PinnedNamespaces::all_in(dir)
            })
        })
    }

    fn unpin<'a>(&'a self, _: &'a PinnedNamespaces) -> BoxFuture<'a, Result<(), NamespaceError>> {
        Box::pin(async move {
            self.take(Step::Unpin);
            Ok(())
        })
    }
}

impl PodNetwork for Host {
    fn setup<'a>(&'a self, _: &'a Attachment) -> NetworkCall<'a, NetworkStatus> {
        Box::pin(async move {
            if self.take(Step::Setup) {
                return Err(CniError::NotReady("Setup fails".into()));
            }
            Ok(NetworkStatus {
                ips: vec!["10.88.0.7".parse().expect("an address")],
                interface: "eth0".into(),
            })
        })
    }

    fn teardown<'a>(&'a self, _: &'a Attachment) -> NetworkCall<'a, ()> {
        Box::pin(async move {
            self.take(Step::Teardown);
            Ok(())
        })
    }

    fn status(&self) -> Result<(), String> {
        Ok(())
    }

    fn set_pod_cidrs(&self, data: &PodCidrData) -> Result<PodCidrOutcome, CniError> {
        let mut given = self.pod_cidrs.lock().unwrap_or_else(PoisonError::into_inner);
        given.push(data.pod_cidr_ranges.clone());
        Ok(PodCidrOutcome::NoTemplate)
    }
}

impl RootfsMounter for Host {
    fn mount(&self, rootfs: &Rootfs, _: &[PathBuf], _: Option<&IdmappedRoot>) -> Result<(), RootfsError> {
        let io = |source| RootfsError::Io {
            path: rootfs.target.clone(),
            source,
        };
        if self.take(Step::Mount) {
            return Err(io(std::io::Error::other("Mount fails")));
        }
        std::fs::create_dir_all(&rootfs.target).map_err(io)
    }

    fn remove(&self, dir: &Path) -> std::io::Result<()> {
        self.take(Step::Remove);
        match std::fs::remove_dir_all(dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

impl OciRuntime for Host {
    fn create<'a>(&'a self, container: &'a Creation) -> Call<'a, u32> {
        Box::pin(async move {
            match self.take(Step::Create) {
                true => Err(self.runc_error(Step::Create, &container.id)),
                false => Ok(PID),
            }
        })
    }

    fn start<'a>(&'a self, id: &'a str) -> Call<'a, ()> {
        Box::pin(async move {
            match self.take(Step::Start) {
                true => Err(self.runc_error(Step::Start, id)),
                false => Ok(()),
            }
        })
    }

    fn knows(&self, _: &str) -> bool {
        false
    }

    fn state<'a>(&'a self, _: &'a str) -> Call<'a, Option<crate::oci::runc::ContainerState>> {
        Box::pin(async move { Ok(None) })
    }

    fn kill<'a>(&'a self, id: &'a str, _: i32, _: bool) -> Call<'a, ()> {
        Box::pin(async move { Err(self.unexpected(Step::Kill, id)) })
    }

    fn delete<'a>(&'a self, _: &'a str, _: bool) -> Call<'a, ()> {
        Box::pin(async move {
            self.take(Step::Delete);
            Ok(())
        })
    }

    fn exec<'a>(&'a self, id: &'a str, _: &'a [String], _: Option<Duration>) -> Call<'a, ExecOutput> {
        Box::pin(async move { Err(self.unexpected(Step::Exec, id)) })
    }

    fn update<'a>(&'a self, id: &'a str, _: &'a [u8]) -> Call<'a, ()> {
        Box::pin(async move { Err(self.unexpected(Step::Update, id)) })
    }

    fn interactive(&self) -> Option<&Runc> {
        None
    }

    fn checkpoint<'a>(&'a self, _: &'a str, _: &'a Path, _: &'a Path) -> Call<'a, ()> {
        Box::pin(async { Ok(()) })
    }
}

/// Pods over `host`, with their files and records in a temporary directory, and an image
/// without layers named [`IMAGE`].
fn pods(dir: &Path, host: &Arc<Host>) -> Pods {
    let store = Arc::new(Store::open(&dir.join("metadata.db")).expect("store"));
    let images = ImageManager::open(
        &dir.join("images"),
        RegistryClient::new(RegistryHosts::none()),
        store.clone(),
    )
    .expect("images");
    let config = br#"{"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":[]}}"#;
    let id = Digest::of(config);
    let blob = images.content_store().path(&id);
    std::fs::create_dir_all(blob.parent().expect("blobs")).expect("blobs");
    std::fs::write(&blob, config).expect("config blob");
    let image = ImageRecord {
        id: id.clone(),
        repo_tags: vec![IMAGE.into()],
        repo_digests: Vec::new(),
        manifest: id.clone(),
        index: None,
        layers: Vec::new(),
        size: config.len() as u64,
        user: String::new(),
        pinned: false,
    };
    store.put(store::IMAGES, id.as_str(), &image).expect("image record");
    let dirs = Dirs {
        sandboxes: dir.join("sandboxes"),
        containers: dir.join("containers"),
        monitors: dir.join("monitors"),
    };
    let runtime: Arc<dyn OciRuntime> = host.clone();
    Pods::new(PodsParts {
        registry: Registry::load(store).expect("registry"),
        images: Arc::new(images),
        namespaces: host.clone(),
        network: host.clone(),
        rootfs: host.clone(),
        runtimes: HashMap::from([(HANDLER.to_string(), runtime)]),
        default_runtime: HANDLER.into(),
        monitor_binary: PathBuf::from("/nonexistent/runtime-core-monitor"),
        dirs,
        log_max_line: 0,
        events_buffer: 16,
    })
}

/// A pod with its own network, IPC and UTS namespaces and no shared PID namespace.
fn pod_config() -> PodSandboxConfig {
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: "web".into(),
            namespace: "default".into(),
            uid: "uid-1".into(),
            attempt: 0,
        }),
        hostname: "web".into(),
        linux: Some(LinuxPodSandboxConfig {
            security_context: Some(LinuxSandboxSecurityContext {
                namespace_options: Some(NamespaceOption {
                    pid: NamespaceMode::Container as i32,
                    ..NamespaceOption::default()
                }),
                ..LinuxSandboxSecurityContext::default()
            }),
            ..LinuxPodSandboxConfig::default()
        }),
        ..PodSandboxConfig::default()
    }
}

async fn run_pod_sandbox(pods: &Pods) -> Result<String, PodsError> {
    let request = RunPodSandboxRequest {
        config: Some(pod_config()),
        runtime_handler: String::new(),
    };
    Ok(pods.run_pod_sandbox(request).await?.pod_sandbox_id)
}

#[tokio::test]
async fn run_pod_sandbox_undoes_each_step_done_before_the_one_that_fails() {
    use Step::*;
    let cases = [
        (
            "pinning fails: the files pin may have made are released",
            Pin,
            vec![Pin, Unpin],
        ),
        (
            "the network fails: it is torn down, then the namespaces released",
            Setup,
            vec![Pin, Setup, Teardown, Unpin],
        ),
    ];
    for (desc, step, expected) in cases {
        let dir = tempfile::tempdir().expect("tempdir");
        let host = Host::failing_at(Some(step));
        let pods = pods(dir.path(), &host);
        let error = run_pod_sandbox(&pods).await.expect_err(desc);
        assert!(matches!(error, PodsError::Failed { .. }), "{desc}: {error}");
        assert!(
            error.to_string().contains(&format!("{step:?} fails")),
            "{desc}: {error}"
        );
        assert_eq!(host.calls(), expected, "{desc}");
        assert!(pods.registry.sandboxes().is_empty(), "{desc}: the record is gone");
        let left: Vec<_> = std::fs::read_dir(&pods.dirs.sandboxes).expect("sandboxes").collect();
        assert!(left.is_empty(), "{desc}: the sandbox directory is gone");
        run_pod_sandbox(&pods)
            .await
            .expect_err("the double fails again, but the name is free: no AlreadyExists");
        assert!(pods.registry.sandboxes().is_empty(), "{desc}");
    }
}

#[tokio::test]
async fn run_pod_sandbox_without_a_failure_leaves_a_ready_sandbox_with_its_ip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = Host::failing_at(None);
    let pods = pods(dir.path(), &host);
    let id = run_pod_sandbox(&pods).await.expect("sandbox");
    assert_eq!(host.calls(), vec![Step::Pin, Step::Setup]);
    let sandbox = pods.registry.sandbox(&id).expect("record");
    assert_eq!(sandbox.status.state, SandboxState::Ready);
    assert_eq!(sandbox.status.ip.as_deref(), Some("10.88.0.7"));
    assert!(sandbox.status.network_attached);
    let error = run_pod_sandbox(&pods).await.expect_err("same name");
    assert!(
        matches!(error, PodsError::State(StateError::NameReserved { .. })),
        "{error}"
    );
}

/// A ready sandbox and a created container in it, recorded as CreateContainer leaves them.
fn created_container(pods: &Pods) -> String {
    let mut sandbox = SandboxRecord::new(
        "sandbox-1".into(),
        pod_config(),
        String::new(),
        pods.dirs.sandboxes.join("sandbox-1"),
        1,
    );
    sandbox.status.state = SandboxState::Ready;
    pods.registry.add_sandbox(sandbox).expect("sandbox record");
    let container = ContainerRecord {
        id: "container-1".into(),
        name: "app_web_default_uid-1_0".into(),
        sandbox_id: "sandbox-1".into(),
        runtime_handler: String::new(),
        config: Default::default(),
        image_id: "sha256:00".into(),
        image_name: "app".into(),
        created_at: 1,
        log_path: None,
        bundle: pods.dirs.containers.join("container-1"),
        monitor_dir: pods.dirs.monitors.join("container-1"),
        layers: Vec::new(),
        stop_signal: 15,
        status: ContainerStatus::created(),
    };
    pods.registry.add_container(container).expect("container record");
    "container-1".into()
}

#[tokio::test]
async fn start_container_deletes_what_it_created_and_records_a_start_error() {
    use Step::*;
    let cases = [
        (
            "creating fails: what runc may have left is deleted",
            Create,
            vec![Create, Delete],
        ),
        (
            "starting fails: the created container is deleted",
            Start,
            vec![Create, Start, Delete],
        ),
    ];
    for (desc, step, expected) in cases {
        let dir = tempfile::tempdir().expect("tempdir");
        let host = Host::failing_at(Some(step));
        let pods = pods(dir.path(), &host);
        let id = created_container(&pods);
        let error = pods
            .start_container(StartContainerRequest {
                container_id: id.clone(),
            })
            .await
            .expect_err(desc);
        assert!(matches!(error, PodsError::Failed { .. }), "{desc}: {error}");
        assert_eq!(host.calls(), expected, "{desc}");
        // As containerd records it, so the kubelet sees why and may remove the container.
        let status = pods.registry.container(&id).expect("record").status;
        assert_eq!(status.state, ContainerState::Exited, "{desc}");
        assert_eq!(
            (status.exit_code, status.reason.as_str()),
            (128, "StartError"),
            "{desc}"
        );
        assert!(
            status.message.contains(&format!("{step:?} fails")),
            "{desc}: {}",
            status.message
        );
        assert_ne!(status.finished_at, 0, "{desc}");
        let again = pods
            .start_container(StartContainerRequest { container_id: id })
            .await
            .expect_err("an exited container does not start");
        assert!(matches!(again, PodsError::WrongState(_)), "{desc}: {again}");
    }
}

#[tokio::test]
async fn start_container_without_a_failure_records_it_running_with_its_pid() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = Host::failing_at(None);
    let pods = pods(dir.path(), &host);
    let id = created_container(&pods);
    pods.start_container(StartContainerRequest {
        container_id: id.clone(),
    })
    .await
    .expect("started");
    assert_eq!(host.calls(), vec![Step::Create, Step::Start]);
    let status = pods.registry.container(&id).expect("record").status;
    assert_eq!((status.state, status.pid), (ContainerState::Running, PID));
    assert_ne!(status.started_at, 0);
}

/// CreateContainer of a container named `app` in sandbox `sandbox_id`, with `mounts`.
async fn create_container(pods: &Pods, sandbox_id: &str, mounts: Vec<cri_api::v1::Mount>) -> Result<String, PodsError> {
    let config = ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: "app".into(),
            attempt: 0,
        }),
        image: Some(ImageSpec {
            image: IMAGE.into(),
            ..ImageSpec::default()
        }),
        command: vec!["/app".into()],
        mounts,
        ..ContainerConfig::default()
    };
    let request = CreateContainerRequest {
        pod_sandbox_id: sandbox_id.into(),
        config: Some(config),
        sandbox_config: Some(pod_config()),
    };
    Ok(pods.create_container(request).await?.container_id)
}

#[tokio::test]
async fn create_container_takes_its_bundle_down_and_frees_its_name_when_a_step_fails() {
    use Step::*;
    let missing_host_path = || cri_api::v1::Mount {
        container_path: "/data".into(),
        host_path: "/nonexistent/runtime-core-test".into(),
        ..cri_api::v1::Mount::default()
    };
    let cases = [
        (
            "mounting the rootfs fails",
            Some(Mount),
            vec![],
            vec![Pin, Setup, Mount, Remove],
        ),
        (
            "the spec cannot be built, after the rootfs is mounted",
            None,
            vec![missing_host_path()],
            vec![Pin, Setup, Mount, Remove],
        ),
    ];
    for (desc, step, mounts, expected) in cases {
        let dir = tempfile::tempdir().expect("tempdir");
        let host = Host::failing_at(step);
        let pods = pods(dir.path(), &host);
        let sandbox_id = run_pod_sandbox(&pods).await.expect("sandbox");
        let error = create_container(&pods, &sandbox_id, mounts).await.expect_err(desc);
        assert_eq!(host.calls(), expected, "{desc}");
        assert!(pods.registry.containers().is_empty(), "{desc}: the record is gone");
        let bundles: Vec<_> = std::fs::read_dir(&pods.dirs.containers)
            .map(|entries| entries.collect())
            .unwrap_or_default();
        assert!(bundles.is_empty(), "{desc}: the bundle is gone");
        match step {
            Some(_) => assert!(matches!(error, PodsError::Failed { .. }), "{desc}: {error}"),
            None => assert!(matches!(error, PodsError::Missing(_)), "{desc}: {error}"),
        }
    }
}

#[tokio::test]
async fn create_container_without_a_failure_leaves_a_created_container_with_its_spec() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = Host::failing_at(None);
    let pods = pods(dir.path(), &host);
    let sandbox_id = run_pod_sandbox(&pods).await.expect("sandbox");
    let id = create_container(&pods, &sandbox_id, Vec::new())
        .await
        .expect("container");
    assert_eq!(host.calls(), vec![Step::Pin, Step::Setup, Step::Mount]);
    let container = pods.registry.container(&id).expect("record");
    assert!(container.status.can_start());
    assert!(container.bundle.join("config.json").is_file());
    let error = create_container(&pods, &sandbox_id, Vec::new())
        .await
        .expect_err("same name");
    assert!(
        matches!(error, PodsError::State(StateError::NameReserved { .. })),
        "{error}"
    );
}

/// config.json is written whole (synced, then renamed), but a bundle whose config.json a
/// power cut tore on an older write must not pass for created: reconcile removes it.
#[tokio::test]
async fn reconcile_removes_a_container_whose_config_json_is_torn() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = Host::failing_at(None);
    let pods = pods(dir.path(), &host);
    let sandbox_id = run_pod_sandbox(&pods).await.expect("sandbox");
    let id = create_container(&pods, &sandbox_id, Vec::new())
        .await
        .expect("container");
    pods.reconcile().await;
    let container = pods.registry.container(&id).expect("a whole container stays");
    let config = container.bundle.join("config.json");
    let whole = std::fs::read(&config).expect("config.json");
    std::fs::write(&config, &whole[..whole.len() / 2]).expect("tear config.json");
    pods.reconcile().await;
    assert!(
        pods.registry.container(&id).is_err(),
        "the torn container's record is gone"
    );
    assert!(!container.bundle.exists(), "its bundle is gone");
}

#[test]
fn update_runtime_config_gives_the_network_checked_pod_cidrs() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::failing_at(None);
    let pods = pods(dir.path(), &host);
    let request = |pod_cidr: &str| cri_api::v1::UpdateRuntimeConfigRequest {
        runtime_config: Some(cri_api::v1::RuntimeConfig {
            network_config: Some(cri_api::v1::NetworkConfig {
                pod_cidr: pod_cidr.into(),
            }),
        }),
    };
    pods.update_runtime_config(request(" 10.244.1.0/24, fd00:1::/64"))
        .unwrap();
    pods.update_runtime_config(request("")).unwrap();
    pods.update_runtime_config(cri_api::v1::UpdateRuntimeConfigRequest::default())
        .unwrap();
    let err = pods
        .update_runtime_config(request("10.244.1.0/24,10.244.2.0"))
        .unwrap_err();
    assert!(
        matches!(&err, PodsError::Invalid(m) if m.contains("\"10.244.2.0\"")),
        "{err}"
    );
    let given = host.pod_cidrs.lock().unwrap().clone();
    assert_eq!(given, vec![vec!["10.244.1.0/24".to_owned(), "fd00:1::/64".to_owned()]]);
}
