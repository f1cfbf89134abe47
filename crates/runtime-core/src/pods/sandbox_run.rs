//! RunPodSandbox: pinned namespaces, a shared PID namespace's init, the pod's network and
//! its /etc files.

use std::net::IpAddr;
use std::path::Path;

use cri_api::v1::{NamespaceMode, PodSandboxConfig, RunPodSandboxRequest, RunPodSandboxResponse};

use super::{Pods, PodsError, now_nanos};
use crate::sandbox::cni::{Attachment, PortMapping};
use crate::sandbox::namespaces::PinRequest;
use crate::sandbox::user_namespace::IdMappings;
use crate::sandbox::{files, namespaces, pid_holder};
use crate::state::ids::new_id;
use crate::state::sandbox::{SandboxRecord, SandboxState};

/// The interface CNI creates in the pod's network namespace.
pub(super) const POD_INTERFACE: &str = "eth0";

impl Pods {
    /// RunPodSandbox: reserves the pod's name, pins its network, IPC and UTS namespaces
    /// (bind-mounted namespace files), starts the init of its PID namespace if the pod
    /// shares one (the only process of a pod's own), attaches the CNI network unless
    /// the pod uses the host's, and writes resolv.conf, hostname and hosts. A failure undoes
    /// every step already done, and the name is free again.
    #[tracing::instrument(skip_all, fields(pod = %SandboxRecord::name_of(request.config.as_ref().unwrap_or(&Default::default()))))]
    pub async fn run_pod_sandbox(&self, request: RunPodSandboxRequest) -> Result<RunPodSandboxResponse, PodsError> {
        let config = request.config.ok_or_else(|| PodsError::invalid("config must be set"))?;
        validate(&config)?;
        self.runtime(&request.runtime_handler)?;
        let id = new_id().map_err(|e| PodsError::failed("making an id", e))?;
        let _busy = self.busy.lock(id.clone()).await;
        let dir = self.dirs.sandboxes.join(&id);
        let record = SandboxRecord::new(id.clone(), config, request.runtime_handler, dir.clone(), now_nanos());
        // The record goes first: it reserves the name, and a crash from here on leaves
        // something reconcile can find and clean up.
        self.registry.add_sandbox(record.clone())?;
        crash_point::hit("sandbox_run.after_record");
        match self.set_up_sandbox(&record, &dir).await {
            Ok(()) => Ok(RunPodSandboxResponse { pod_sandbox_id: id }),
            Err(status) => {
                self.tear_down_sandbox(&id).await;
                let _ = std::fs::remove_dir_all(&dir);
                let _ = self.registry.remove_sandbox(&id);
                Err(status)
            }
        }
    }

    /// The steps of RunPodSandbox after the name is reserved.
    async fn set_up_sandbox(&self, record: &SandboxRecord, dir: &Path) -> Result<(), PodsError> {
        let config = &record.config;
        std::fs::create_dir_all(dir).map_err(|e| PodsError::failed("creating the sandbox directory", e))?;
        let linux = config.linux.as_ref();
        let options = config.namespace_options();
        let sysctls = linux.map(|l| l.sysctls.clone()).unwrap_or_default();
        let user = user_namespace(config)?;
        let request = PinRequest::from_cri(&config.hostname, options, sysctls, user);
        let pinned = self.namespaces.pin(dir, &request).await.map_err(|e| match e {
            // The request itself is at fault: the kubelet must not retry it as it is.
            namespaces::NamespaceError::InvalidHostname { .. }
            | namespaces::NamespaceError::Sysctl { .. }
            | namespaces::NamespaceError::UserWithHostNamespaces => PodsError::invalid(e.to_string()),
            e => PodsError::failed("pinning the pod's namespaces", e),
        })?;
        crash_point::hit("sandbox_run.after_pin");
        self.registry.update_sandbox(&record.id, |r| {
            r.netns = pinned.network.clone();
            r.ipc_ns = Some(pinned.ipc.clone());
            r.uts_ns = Some(pinned.uts.clone());
            r.user_ns = pinned.user.clone();
        })?;
        if namespace_mode(config, |o| o.pid) == NamespaceMode::Pod {
            let holder = pid_holder::start(&self.monitor_binary, dir, pinned.user.as_deref())
                .await
                .map_err(|e| PodsError::failed("starting the pod's PID namespace", e))?;
            crash_point::hit("sandbox_run.after_pid_holder");
            self.registry
                .update_sandbox(&record.id, |r| r.pid_holder = Some(holder))?;
        }

        files::write_resolv_conf(&dir.join("resolv.conf"), config.dns_config.as_ref())
            .map_err(|e| PodsError::failed("writing resolv.conf", e))?;
        files::write_hostname(&dir.join("hostname"), &config.hostname)
            .map_err(|e| PodsError::failed("writing hostname", e))?;

        let mut ips: Vec<IpAddr> = Vec::new();
        if let Some(netns) = &pinned.network {
            let attachment = attachment(&record.id, netns, config);
            let network = self
                .network
                .setup(&attachment)
                .await
                .map_err(|e| PodsError::failed("attaching the pod network", e))?;
            crash_point::hit("sandbox_run.after_network");
            self.registry
                .update_sandbox(&record.id, |r| r.status.network_attached = true)?;
            ips = network.ips;
        }
        files::write_hosts(&dir.join("hosts"), &config.hostname, ips.first().copied())
            .map_err(|e| PodsError::failed("writing hosts", e))?;
        crash_point::hit("sandbox_run.before_ready");
        self.registry.update_sandbox(&record.id, |r| {
            r.status.state = SandboxState::Ready;
            r.status.ip = ips.first().map(ToString::to_string);
            r.status.additional_ips = ips.iter().skip(1).map(ToString::to_string).collect();
        })?;
        Ok(())
    }
}

/// The CNI attachment of a sandbox: its id, network namespace, pod identity and host ports.
pub(super) fn attachment(id: &str, netns: &Path, config: &PodSandboxConfig) -> Attachment {
    let metadata = config.metadata.clone().unwrap_or_default();
    let port_mappings = config.port_mappings.iter().filter_map(PortMapping::from_cri).collect();
    Attachment {
        container_id: id.to_string(),
        netns: netns.to_path_buf(),
        ifname: POD_INTERFACE.to_string(),
        pod_namespace: metadata.namespace,
        pod_name: metadata.name,
        pod_uid: metadata.uid,
        port_mappings,
    }
}

/// The pod's mode for one namespace (POD when unset).
pub(super) fn namespace_mode(
    config: &PodSandboxConfig,
    which: impl Fn(&cri_api::v1::NamespaceOption) -> i32,
) -> NamespaceMode {
    config
        .namespace_options()
        .and_then(|o| NamespaceMode::try_from(which(o)).ok())
        .unwrap_or(NamespaceMode::Pod)
}

/// The ranges of the pod's own user namespace, if it asks for one (InvalidArgument for a
/// request this runtime cannot honour).
fn user_namespace(config: &PodSandboxConfig) -> Result<Option<IdMappings>, PodsError> {
    IdMappings::of_pod(config).map_err(|reason| PodsError::invalid(format!("user namespace: {reason}")))
}

/// A sandbox config must name the pod (name, namespace and uid); a pod with its own user
/// namespace cannot share the host's network, IPC or PID namespace (as Kubernetes
/// validates `hostUsers: false`).
fn validate(config: &PodSandboxConfig) -> Result<(), PodsError> {
    if user_namespace(config)?.is_some() {
        let shared: Vec<&str> = [
            ("network", namespace_mode(config, |o| o.network)),
            ("IPC", namespace_mode(config, |o| o.ipc)),
            ("PID", namespace_mode(config, |o| o.pid)),
        ]
        .into_iter()
        .filter(|(_, mode)| *mode == NamespaceMode::Node)
        .map(|(name, _)| name)
        .collect();
        if !shared.is_empty() {
            return Err(PodsError::invalid(format!(
                "user namespace: a pod with its own user namespace cannot use the host's {} namespace",
                shared.join(" and ")
            )));
        }
    }
    let metadata = config
        .metadata
        .as_ref()
        .ok_or_else(|| PodsError::invalid("metadata must be set"))?;
    for (field, value) in [
        ("name", &metadata.name),
        ("namespace", &metadata.namespace),
        ("uid", &metadata.uid),
    ] {
        if value.is_empty() {
            return Err(PodsError::invalid(format!("metadata.{field} must be set")));
        }
    }
    Ok(())
}
