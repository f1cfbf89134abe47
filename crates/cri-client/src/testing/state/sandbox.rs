//! Pod sandboxes: RunPodSandbox, StopPodSandbox, RemovePodSandbox, PodSandboxStatus,
//! ListPodSandbox and PortForward.
//!
//! A sandbox is `SANDBOX_READY` from RunPodSandbox until StopPodSandbox, then
//! `SANDBOX_NOTREADY` until RemovePodSandbox; it never becomes ready again.

use crate::v1::{
    ContainerEventType, LinuxPodSandboxStatus, PodSandbox, PodSandboxConfig, PodSandboxFilter, PodSandboxMetadata,
    PodSandboxNetworkStatus, PodSandboxState, PodSandboxStatus, PodSandboxStatusResponse,
};

use super::{FakeError, State, id_matches, labels_match, now};
use crate::testing::STREAMING_URL;
use crate::testing::error::Kind;

/// One sandbox: what RunPodSandbox fixed, and its state.
#[derive(Debug)]
pub(super) struct Sandbox {
    pub(super) id: String,
    pub(super) config: PodSandboxConfig,
    runtime_handler: String,
    created_at: i64,
    ip: String,
    /// The only thing that changes: READY, then NOTREADY.
    pub(super) state: PodSandboxState,
}

impl Sandbox {
    fn metadata(&self) -> Option<PodSandboxMetadata> {
        self.config.metadata.clone()
    }

    /// As ListPodSandbox reports it.
    fn summary(&self) -> PodSandbox {
        PodSandbox {
            id: self.id.clone(),
            metadata: self.metadata(),
            state: self.state.into(),
            created_at: self.created_at,
            labels: self.config.labels.clone(),
            annotations: self.config.annotations.clone(),
            runtime_handler: self.runtime_handler.clone(),
        }
    }

    /// As PodSandboxStatus reports it.
    pub(super) fn status(&self) -> PodSandboxStatus {
        let namespace_options = self
            .config
            .linux
            .as_ref()
            .and_then(|linux| linux.security_context.as_ref())
            .and_then(|security| security.namespace_options.clone());
        PodSandboxStatus {
            id: self.id.clone(),
            metadata: self.metadata(),
            state: self.state.into(),
            created_at: self.created_at,
            network: Some(PodSandboxNetworkStatus {
                ip: self.ip.clone(),
                additional_ips: Vec::new(),
            }),
            linux: Some(LinuxPodSandboxStatus {
                namespaces: Some(crate::v1::Namespace {
                    options: Some(namespace_options.unwrap_or_default()),
                }),
            }),
            labels: self.config.labels.clone(),
            annotations: self.config.annotations.clone(),
            runtime_handler: self.runtime_handler.clone(),
        }
    }

    /// The name a sandbox reserves, as containerd makes it: two sandboxes with the same
    /// metadata cannot exist at once.
    fn name(metadata: &PodSandboxMetadata) -> String {
        let PodSandboxMetadata {
            name,
            uid,
            namespace,
            attempt,
        } = metadata;
        format!("{namespace}/{name}/{uid}/{attempt}")
    }

    fn state_name(&self) -> &'static str {
        self.state.as_str_name()
    }
    /// The labels the sandbox was run with.
    pub(super) fn labels(&self) -> &std::collections::HashMap<String, String> {
        &self.config.labels
    }

    /// The attributes stats report.
    pub(super) fn attributes(&self) -> crate::v1::PodSandboxAttributes {
        crate::v1::PodSandboxAttributes {
            id: self.id.clone(),
            metadata: self.metadata(),
            labels: self.config.labels.clone(),
            annotations: self.config.annotations.clone(),
        }
    }
}

impl State {
    /// RunPodSandbox: a ready sandbox with a pod IP of its own.
    pub(in crate::testing) fn run_pod_sandbox(
        &mut self,
        config: Option<PodSandboxConfig>,
        runtime_handler: &str,
    ) -> Result<String, FakeError> {
        let config = config.ok_or_else(|| FakeError::InvalidArgument("sandbox config is required".to_owned()))?;
        let metadata = config
            .metadata
            .as_ref()
            .filter(|metadata| !metadata.name.is_empty())
            .ok_or_else(|| FakeError::InvalidArgument("sandbox config must have metadata with a name".to_owned()))?;
        let name = Sandbox::name(metadata);
        if let Some(existing) = self
            .sandboxes
            .values()
            .find(|sandbox| sandbox.config.metadata.as_ref().map(Sandbox::name).as_ref() == Some(&name))
        {
            return Err(FakeError::AlreadyExists {
                kind: Kind::Sandbox,
                name,
                id: existing.id.clone(),
            });
        }
        let ip = pod_ip(self.next_id);
        let id = self.new_id();
        let sandbox = Sandbox {
            id: id.clone(),
            config,
            runtime_handler: runtime_handler.to_owned(),
            created_at: now(),
            ip,
            state: PodSandboxState::SandboxReady,
        };
        self.sandboxes.insert(id.clone(), sandbox);
        self.emit(&id, ContainerEventType::ContainerCreatedEvent, &id);
        self.emit(&id, ContainerEventType::ContainerStartedEvent, &id);
        Ok(id)
    }

    /// StopPodSandbox: kills the sandbox's running containers and makes it not ready.
    pub(in crate::testing) fn stop_pod_sandbox(&mut self, id: &str) -> Result<(), FakeError> {
        // api.proto, StopPodSandbox: "Must be idempotent: return success when there is
        // nothing left to stop or release", and so for an unknown id, as containerd does.
        let Some(sandbox) = self.sandboxes.get(id) else {
            return Ok(());
        };
        let sandbox_id = sandbox.id.clone();
        let running: Vec<String> = self
            .containers_of(&sandbox_id)
            .filter(|container| container.is_running())
            .map(|container| container.id.clone())
            .collect();
        for container_id in running {
            self.kill_container(&container_id);
        }
        if let Some(sandbox) = self.sandboxes.get_mut(id)
            && sandbox.state == PodSandboxState::SandboxReady
        {
            sandbox.state = PodSandboxState::SandboxNotready;
            self.emit(id, ContainerEventType::ContainerStoppedEvent, id);
        }
        Ok(())
    }

    /// RemovePodSandbox: stops the sandbox if need be, then removes its containers and it.
    pub(in crate::testing) fn remove_pod_sandbox(&mut self, id: &str) -> Result<(), FakeError> {
        // api.proto, RemovePodSandbox: "Must be idempotent: return success if the sandbox
        // is already gone."
        if !self.sandboxes.contains_key(id) {
            return Ok(());
        }
        self.stop_pod_sandbox(id)?;
        let containers: Vec<String> = self.containers_of(id).map(|container| container.id.clone()).collect();
        for container_id in containers {
            self.remove_container(&container_id)?;
        }
        self.emit(id, ContainerEventType::ContainerDeletedEvent, id);
        self.sandboxes.remove(id);
        Ok(())
    }

    /// PodSandboxStatus: the sandbox and the statuses of its containers.
    pub(in crate::testing) fn pod_sandbox_status(&self, id: &str) -> Result<PodSandboxStatusResponse, FakeError> {
        let sandbox = self.sandbox(id)?;
        Ok(PodSandboxStatusResponse {
            status: Some(sandbox.status()),
            info: Default::default(),
            containers_statuses: self.containers_of(id).map(|c| c.status()).collect(),
            timestamp: now(),
        })
    }

    /// ListPodSandbox: the sandboxes matching `filter`'s id, state and labels.
    pub(in crate::testing) fn list_pod_sandbox(&self, filter: Option<PodSandboxFilter>) -> Vec<PodSandbox> {
        let filter = filter.unwrap_or_default();
        self.sandboxes
            .values()
            .filter(|sandbox| id_matches(&filter.id, &sandbox.id))
            .filter(|sandbox| filter.state.is_none_or(|want| want.state == i32::from(sandbox.state)))
            .filter(|sandbox| labels_match(&sandbox.config.labels, &filter.label_selector))
            .map(Sandbox::summary)
            .collect()
    }

    /// Every sandbox's status, in creation order.
    pub(in crate::testing) fn sandbox_statuses(&self) -> Vec<PodSandboxStatus> {
        self.sandboxes.values().map(Sandbox::status).collect()
    }

    /// PortForward: a URL for a ready sandbox.
    pub(in crate::testing) fn port_forward(&self, id: &str) -> Result<String, FakeError> {
        let sandbox = self.ready_sandbox(id, "port-forward")?;
        Ok(format!("{STREAMING_URL}/portforward/{}", sandbox.id))
    }

    /// The sandbox `id`.
    pub(super) fn sandbox(&self, id: &str) -> Result<&Sandbox, FakeError> {
        self.sandboxes
            .get(id)
            .ok_or_else(|| FakeError::not_found(Kind::Sandbox, id))
    }

    /// The sandbox `id`, which must be ready to `action`.
    pub(super) fn ready_sandbox(&self, id: &str, action: &'static str) -> Result<&Sandbox, FakeError> {
        let sandbox = self.sandbox(id)?;
        if sandbox.state != PodSandboxState::SandboxReady {
            return Err(FakeError::FailedPrecondition {
                kind: Kind::Sandbox,
                id: id.to_owned(),
                state: sandbox.state_name(),
                action,
            });
        }
        Ok(sandbox)
    }

    /// Every sandbox, for stats.
    pub(super) fn sandboxes(&self) -> impl Iterator<Item = &Sandbox> {
        self.sandboxes.values()
    }
}

/// The pod IP that goes with id number `n`, in the 10.88.0.0/16 of the CNI bridge
/// examples.
fn pod_ip(n: u64) -> String {
    let host = n + 1;
    format!("10.88.{}.{}", (host >> 8) & 0xff, host & 0xff)
}
