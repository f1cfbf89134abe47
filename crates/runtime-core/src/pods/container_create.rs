//! CreateContainer: an OCI bundle (config.json and an overlay rootfs) in a sandbox.

use std::path::{Path, PathBuf};

use cri_api::v1::{ContainerEventType, CreateContainerRequest, CreateContainerResponse, NamespaceMode};

use super::sandbox_run::namespace_mode;
use super::{Pods, PodsError, now_nanos};
use crate::container::idmap::{self, BIND_MOUNTS_DIR};
use crate::container::rootfs::{IdmappedRoot, Rootfs};
use crate::container::spec::{self, NamespaceMode as Mode, Namespaces, SandboxFiles, SpecInputs};
use crate::sandbox::pid_holder;
use crate::sandbox::user_namespace::IdMappings;
use crate::state::container::{ContainerRecord, ContainerStatus};
use crate::state::ids::new_id;
use crate::state::sandbox::{SandboxRecord, SandboxState};

/// The cgroup parent of containers whose pod names none.
const DEFAULT_CGROUP_PARENT: &str = "/runtime-core";

/// The cgroup of container `id` of `sandbox` (cgroupfs driver): `<cgroup parent>/<id>`.
pub(super) fn cgroups_path(sandbox: &SandboxRecord, id: &str) -> String {
    let parent = if sandbox.cgroup_parent.is_empty() {
        DEFAULT_CGROUP_PARENT
    } else {
        &sandbox.cgroup_parent
    };
    format!("{}/{}", parent.trim_end_matches('/'), id)
}

impl Pods {
    /// CreateContainer: reserves the container's name, mounts its rootfs (the image's
    /// layers under a fresh upper directory) and writes its OCI spec. Nothing runs yet: the
    /// process starts with StartContainer, as with containerd. A failure undoes each step.
    #[tracing::instrument(skip_all, fields(sandbox = %request.pod_sandbox_id))]
    pub async fn create_container(
        &self,
        request: CreateContainerRequest,
    ) -> Result<CreateContainerResponse, PodsError> {
        let config = request.config.ok_or_else(|| PodsError::invalid("config must be set"))?;
        let name = config.metadata.as_ref().map(|m| m.name.clone()).unwrap_or_default();
        if name.is_empty() {
            return Err(PodsError::invalid("metadata.name must be set"));
        }
        let image_name = config.image.as_ref().map(|i| i.image.clone()).unwrap_or_default();
        if image_name.is_empty() {
            return Err(PodsError::invalid("image must be set"));
        }
        let sandbox = self.registry.sandbox(&request.pod_sandbox_id)?;
        if sandbox.status.state != SandboxState::Ready {
            return Err(PodsError::wrong_state(format!("sandbox {} is not ready", sandbox.id)));
        }
        // Until the container is recorded, its layers are only the image's: the lease keeps
        // an image removal from collecting them meanwhile.
        let lease = self.images.lease().await;
        let image = self
            .images
            .find(&image_name)
            .map_err(|e| PodsError::invalid(e.to_string()))?
            .ok_or_else(|| PodsError::missing(format!("image {image_name:?} is not present")))?;
        let image_config = self
            .images
            .config_of(&image.id)
            .await
            .map_err(|e| PodsError::failed("reading the image config", e))?;

        let id = new_id().map_err(|e| PodsError::failed("making an id", e))?;
        let log_path = match (sandbox.config.log_directory.as_str(), config.log_path.as_str()) {
            ("", _) | (_, "") => None,
            (dir, file) => Some(Path::new(dir).join(file)),
        };
        let record = ContainerRecord {
            id: id.clone(),
            name: ContainerRecord::name_of(&config, &sandbox.name),
            sandbox_id: sandbox.id.clone(),
            runtime_handler: sandbox.runtime_handler.clone(),
            image_id: image.id.to_string(),
            image_name,
            created_at: now_nanos(),
            log_path,
            bundle: self.dirs.containers.join(&id),
            monitor_dir: self.dirs.monitors.join(&id),
            layers: image.layers.iter().map(|l| l.diff_id.clone()).collect(),
            stop_signal: spec::stop_signal(&image_config),
            config,
            status: ContainerStatus::created(),
        };
        let _busy = self.busy.lock(id.clone()).await;
        self.registry.add_container(record.clone())?;
        drop(lease);
        crash_point::hit("container_create.after_record");
        let layers: Vec<PathBuf> = record.layers.iter().map(|d| self.images.layer_dir(d)).collect();
        let prepared = self.prepare_bundle(&record, &sandbox, &image_config, &layers);
        if let Err(status) = prepared {
            if let Err(error) = self.rootfs.remove(&record.bundle) {
                tracing::warn!(container = %id, %error, "cannot clean up the bundle of a failed creation");
            }
            let _ = self.registry.remove_container(&id);
            return Err(status);
        }
        crash_point::hit("container_create.after_config");
        self.announce(ContainerEventType::ContainerCreatedEvent, &record);
        Ok(CreateContainerResponse { container_id: id })
    }

    /// Mounts the rootfs and writes config.json into the container's bundle; in a pod with
    /// its own user namespace, the layers and bind mounts are id-mapped through it.
    fn prepare_bundle(
        &self,
        record: &ContainerRecord,
        sandbox: &SandboxRecord,
        image: &crate::image::oci::ImageConfig,
        layers: &[PathBuf],
    ) -> Result<(), PodsError> {
        let rootfs = Rootfs::in_bundle(&record.bundle);
        self.rootfs
            .mount(&rootfs, layers, idmapped_root(sandbox).as_ref())
            .map_err(|e| PodsError::failed("mounting the rootfs", e))?;
        crash_point::hit("container_create.after_rootfs");
        let cgroups_path = cgroups_path(sandbox, &record.id);
        let target_pid = |target_id: &str| {
            let target = self
                .registry
                .container(target_id)
                .ok()
                .filter(|target| target.sandbox_id == sandbox.id)
                .ok_or_else(|| {
                    PodsError::missing(format!(
                        "target container {target_id:?} of the PID namespace is not in sandbox {}",
                        sandbox.id
                    ))
                })?;
            match target.status.pid {
                0 => Err(PodsError::wrong_state(format!(
                    "target container {target_id:?} of the PID namespace is not running"
                ))),
                pid => Ok(pid),
            }
        };
        let namespaces = container_namespaces(sandbox, &record.config, target_pid)?;
        let sandbox_files = SandboxFiles {
            resolv_conf: Some(sandbox.dir.join("resolv.conf")),
            hostname: Some(sandbox.dir.join("hostname")),
            hosts: Some(sandbox.dir.join("hosts")),
        };
        let inputs = SpecInputs {
            container_id: &record.id,
            sandbox_id: &sandbox.id,
            config: &record.config,
            sandbox: &sandbox.config,
            image,
            rootfs: &rootfs.target,
            namespaces: &namespaces,
            sandbox_files: &sandbox_files,
            cgroups_path: &cgroups_path,
            hostname: &sandbox.config.hostname,
        };
        let mut spec = spec::build_spec(&inputs).map_err(|e| {
            if e.is_invalid_argument() {
                PodsError::invalid(e.to_string())
            } else if e.is_not_found() {
                PodsError::missing(e.to_string())
            } else {
                PodsError::failed("building the OCI spec", e)
            }
        })?;
        if let Some(user_ns) = &sandbox.user_ns {
            idmap::map_bind_mounts(&mut spec.mounts, user_ns, &record.bundle.join(BIND_MOUNTS_DIR))
                .map_err(|e| PodsError::wrong_state(format!("id-mapping the container's mounts: {e}")))?;
        }
        let json = serde_json::to_vec_pretty(&spec).map_err(|e| PodsError::failed("encoding the OCI spec", e))?;
        // Synced and renamed into place: reconcile takes a bundle with a config.json as
        // fully created.
        crate::atomic_file::write_atomically(&record.bundle.join("config.json"), &json, 0o644)
            .map_err(|e| PodsError::failed("writing config.json", e))
    }
}

/// The namespaces a container of `sandbox` joins: the pod's pinned network, IPC and UTS
/// namespaces unless the pod uses the host's; the pod's shared PID namespace when both the
/// pod and the container ask for POD (the kubelet's `shareProcessNamespace`), the host's
/// when either asks for NODE, the running container `target_id` names for TARGET (its pid
/// from `target_pid`), and a PID namespace of its own otherwise.
fn container_namespaces(
    sandbox: &SandboxRecord,
    config: &cri_api::v1::ContainerConfig,
    target_pid: impl Fn(&str) -> Result<u32, PodsError>,
) -> Result<Namespaces, PodsError> {
    let join = |path: &Option<PathBuf>| path.clone().map_or(Mode::New, Mode::Join);
    let pod = &sandbox.config;
    let network = match &sandbox.netns {
        Some(netns) => Mode::Join(netns.clone()),
        None => Mode::Host,
    };
    let ipc = if namespace_mode(pod, |o| o.ipc) == NamespaceMode::Node {
        Mode::Host
    } else {
        join(&sandbox.ipc_ns)
    };
    let uts = if sandbox.netns.is_none() {
        Mode::Host
    } else {
        join(&sandbox.uts_ns)
    };
    let options = config.namespace_options();
    let container_pid = options.and_then(|o| NamespaceMode::try_from(o.pid).ok());
    let pod_pid = namespace_mode(pod, |o| o.pid);
    let pid = match container_pid.unwrap_or(NamespaceMode::Pod) {
        NamespaceMode::Node => Mode::Host,
        NamespaceMode::Target => {
            let target_id = options.map(|o| o.target_id.as_str()).unwrap_or_default();
            if target_id.is_empty() {
                return Err(PodsError::invalid("PID namespace mode TARGET needs a target_id"));
            }
            Mode::Join(PathBuf::from(format!("/proc/{}/ns/pid", target_pid(target_id)?)))
        }
        _ if pod_pid == NamespaceMode::Node => Mode::Host,
        NamespaceMode::Pod if pod_pid == NamespaceMode::Pod => sandbox
            .pid_holder
            .map_or(Mode::New, |holder| Mode::Join(pid_holder::namespace_path(holder))),
        _ => Mode::New,
    };
    let user = sandbox.user_ns.clone().map_or(Mode::Host, Mode::Join);
    Ok(Namespaces {
        network,
        ipc,
        uts,
        pid,
        user,
    })
}

/// How the rootfs of a container of `sandbox` is id-mapped, if the pod has a user
/// namespace of its own.
pub(super) fn idmapped_root(sandbox: &SandboxRecord) -> Option<IdmappedRoot> {
    let user_ns = sandbox.user_ns.clone()?;
    let mappings = IdMappings::of_pod(&sandbox.config).ok().flatten()?;
    let (host_uid, host_gid) = mappings.host_root();
    Some(IdmappedRoot {
        user_ns,
        host_uid,
        host_gid,
    })
}
