//! Containers: CreateContainer, StartContainer, StopContainer, RemoveContainer,
//! ListContainers, ContainerStatus, UpdateContainerResources, ReopenContainerLog,
//! CheckpointContainer, and what ExecSync, Exec and Attach ask of a container.
//!
//! A container's states and transitions, all made by [`Life`]'s methods:
//!
//! ```text
//!   CreateContainer           StartContainer             StopContainer, StopPodSandbox,
//!   ---------------> CREATED ----------------> RUNNING ----------------------------> EXITED
//!                                                        or its process ends
//!                                                        (FakeRuntime::exit_container)
//!
//!   RemoveContainer removes a container in any state, killing it first if it runs.
//!   StopContainer leaves a CREATED or EXITED container as it is.
//! ```

use std::path::Path;

use crate::testing::STOPPED_EXIT_CODE;
use crate::testing::error::Kind;
use crate::v1::{
    ContainerAttributes, ContainerConfig, ContainerEventType, ContainerFilter, ContainerMetadata, ContainerResources,
    ContainerState, ContainerStatus, ContainerStatusResponse, ImageSpec,
};

use super::{FakeError, State, id_matches, labels_match, now};

/// The part of a container that changes: its state and what its process did.
#[derive(Debug, Clone)]
struct Life {
    state: ContainerState,
    started_at: i64,
    finished_at: i64,
    exit_code: i32,
    reason: String,
}

impl Life {
    /// A container just created.
    fn created() -> Life {
        Life {
            state: ContainerState::ContainerCreated,
            started_at: 0,
            finished_at: 0,
            exit_code: 0,
            reason: String::new(),
        }
    }

    /// CREATED -> RUNNING. On refusal, the state it is in.
    fn start(&mut self) -> Result<(), ContainerState> {
        if self.state != ContainerState::ContainerCreated {
            return Err(self.state);
        }
        self.state = ContainerState::ContainerRunning;
        self.started_at = now();
        Ok(())
    }

    /// RUNNING -> EXITED, with the exit code and reason the status will show. On refusal,
    /// the state it is in.
    fn exit(&mut self, exit_code: i32, reason: &str) -> Result<(), ContainerState> {
        if self.state != ContainerState::ContainerRunning {
            return Err(self.state);
        }
        self.state = ContainerState::ContainerExited;
        self.finished_at = now();
        self.exit_code = exit_code;
        reason.clone_into(&mut self.reason);
        Ok(())
    }
}

/// One container: what CreateContainer fixed, and its [`Life`].
#[derive(Debug)]
pub(super) struct Container {
    pub(super) id: String,
    pub(super) sandbox_id: String,
    config: ContainerConfig,
    image: ImageSpec,
    /// The id of the image it was created from.
    image_id: String,
    created_at: i64,
    log_path: String,
    resources: Option<ContainerResources>,
    life: Life,
}

impl Container {
    fn metadata(&self) -> Option<ContainerMetadata> {
        self.config.metadata.clone()
    }

    /// Whether its process runs.
    pub(super) fn is_running(&self) -> bool {
        self.life.state == ContainerState::ContainerRunning
    }

    /// The labels it was created with.
    pub(super) fn labels(&self) -> &std::collections::HashMap<String, String> {
        &self.config.labels
    }

    /// As ListContainers reports it.
    fn summary(&self) -> crate::v1::Container {
        crate::v1::Container {
            id: self.id.clone(),
            pod_sandbox_id: self.sandbox_id.clone(),
            metadata: self.metadata(),
            image: Some(self.image.clone()),
            image_ref: self.image_id.clone(),
            state: self.life.state.into(),
            created_at: self.created_at,
            labels: self.config.labels.clone(),
            annotations: self.config.annotations.clone(),
            image_id: self.image_id.clone(),
        }
    }

    /// As ContainerStatus reports it.
    pub(super) fn status(&self) -> ContainerStatus {
        ContainerStatus {
            id: self.id.clone(),
            metadata: self.metadata(),
            state: self.life.state.into(),
            created_at: self.created_at,
            started_at: self.life.started_at,
            finished_at: self.life.finished_at,
            exit_code: self.life.exit_code,
            image: Some(self.image.clone()),
            image_ref: self.image_id.clone(),
            reason: self.life.reason.clone(),
            message: String::new(),
            labels: self.config.labels.clone(),
            annotations: self.config.annotations.clone(),
            mounts: self.config.mounts.clone(),
            log_path: self.log_path.clone(),
            resources: self.resources.clone(),
            image_id: self.image_id.clone(),
            user: None,
        }
    }

    /// The attributes stats report.
    pub(super) fn attributes(&self) -> ContainerAttributes {
        ContainerAttributes {
            id: self.id.clone(),
            metadata: self.metadata(),
            labels: self.config.labels.clone(),
            annotations: self.config.annotations.clone(),
        }
    }

    /// The name a container reserves in its sandbox, as containerd makes it.
    fn name(metadata: Option<&ContainerMetadata>) -> String {
        metadata.map_or_else(String::new, |m| format!("{}/{}", m.name, m.attempt))
    }

    /// The error for refusing to `action` it in `state`.
    fn refuse(&self, state: ContainerState, action: &'static str) -> FakeError {
        FakeError::FailedPrecondition {
            kind: Kind::Container,
            id: self.id.clone(),
            state: state.as_str_name(),
            action,
        }
    }
}

impl State {
    /// CreateContainer: a CREATED container in a ready sandbox, from an image the runtime
    /// holds.
    pub(in crate::testing) fn create_container(
        &mut self,
        sandbox_id: &str,
        config: Option<ContainerConfig>,
    ) -> Result<String, FakeError> {
        let sandbox = self.ready_sandbox(sandbox_id, "create containers in")?;
        let log_directory = sandbox.config.log_directory.clone();
        let config = config.ok_or_else(|| FakeError::InvalidArgument("container config is required".to_owned()))?;
        if config.metadata.as_ref().is_none_or(|metadata| metadata.name.is_empty()) {
            return Err(FakeError::InvalidArgument(
                "container config must have metadata with a name".to_owned(),
            ));
        }
        let image = config
            .image
            .clone()
            .filter(|image| !image.image.is_empty())
            .ok_or_else(|| FakeError::InvalidArgument("container config must name an image".to_owned()))?;
        let image_id = self.image(&image.image)?.id.clone();
        let name = Container::name(config.metadata.as_ref());
        if let Some(existing) = self
            .containers_of(sandbox_id)
            .find(|container| Container::name(container.config.metadata.as_ref()) == name)
        {
            return Err(FakeError::AlreadyExists {
                kind: Kind::Container,
                name,
                id: existing.id.clone(),
            });
        }
        let log_path = if log_directory.is_empty() || config.log_path.is_empty() {
            String::new()
        } else {
            Path::new(&log_directory).join(&config.log_path).display().to_string()
        };
        let id = self.new_id();
        let container = Container {
            id: id.clone(),
            sandbox_id: sandbox_id.to_owned(),
            resources: config
                .linux
                .as_ref()
                .and_then(|linux| linux.resources.clone())
                .map(|linux| ContainerResources {
                    linux: Some(linux),
                    windows: None,
                }),
            config,
            image,
            image_id,
            created_at: now(),
            log_path,
            life: Life::created(),
        };
        self.containers.insert(id.clone(), container);
        self.emit(&id, ContainerEventType::ContainerCreatedEvent, sandbox_id);
        Ok(id)
    }

    /// StartContainer: CREATED -> RUNNING, in a ready sandbox.
    pub(in crate::testing) fn start_container(&mut self, id: &str) -> Result<(), FakeError> {
        let sandbox_id = self.container(id)?.sandbox_id.clone();
        self.ready_sandbox(&sandbox_id, "start containers in")?;
        let container = self.container_mut(id)?;
        container
            .life
            .start()
            .map_err(|state| container.refuse(state, "start"))?;
        self.emit(id, ContainerEventType::ContainerStartedEvent, &sandbox_id);
        Ok(())
    }

    /// StopContainer: a running container is killed; any other is left as it is.
    pub(in crate::testing) fn stop_container(&mut self, id: &str) -> Result<(), FakeError> {
        // api.proto, StopContainer: "Must be idempotent: return success if the container
        // is already stopped", and so for an unknown id, as containerd does.
        if self.containers.get(id).is_some_and(Container::is_running) {
            self.kill_container(id);
        }
        Ok(())
    }

    /// Kills a running container: RUNNING -> EXITED with [`STOPPED_EXIT_CODE`].
    pub(super) fn kill_container(&mut self, id: &str) {
        // A failed transition means it was not running: nothing to kill.
        let _ = self.exit_container(id, STOPPED_EXIT_CODE, "Error");
    }

    /// The container's process ends by itself: RUNNING -> EXITED.
    pub(in crate::testing) fn exit_container(
        &mut self,
        id: &str,
        exit_code: i32,
        reason: &str,
    ) -> Result<(), FakeError> {
        let container = self.container_mut(id)?;
        container
            .life
            .exit(exit_code, reason)
            .map_err(|state| container.refuse(state, "exit"))?;
        let sandbox_id = container.sandbox_id.clone();
        self.emit(id, ContainerEventType::ContainerStoppedEvent, &sandbox_id);
        Ok(())
    }

    /// RemoveContainer: removes the container, killing it first if it runs.
    pub(in crate::testing) fn remove_container(&mut self, id: &str) -> Result<(), FakeError> {
        // api.proto, RemoveContainer: "Must be idempotent: return success if the container
        // is already gone."
        let Some(container) = self.containers.get(id) else {
            return Ok(());
        };
        let sandbox_id = container.sandbox_id.clone();
        self.kill_container(id);
        self.containers.remove(id);
        self.emit(id, ContainerEventType::ContainerDeletedEvent, &sandbox_id);
        Ok(())
    }

    /// ContainerStatus.
    pub(in crate::testing) fn container_status(&self, id: &str) -> Result<ContainerStatusResponse, FakeError> {
        Ok(ContainerStatusResponse {
            status: Some(self.container(id)?.status()),
            info: Default::default(),
        })
    }

    /// ListContainers: the containers matching `filter`'s id, state, sandbox and labels.
    pub(in crate::testing) fn list_containers(&self, filter: Option<ContainerFilter>) -> Vec<crate::v1::Container> {
        let filter = filter.unwrap_or_default();
        self.containers
            .values()
            .filter(|container| id_matches(&filter.id, &container.id))
            .filter(|container| id_matches(&filter.pod_sandbox_id, &container.sandbox_id))
            .filter(|container| {
                filter
                    .state
                    .is_none_or(|want| want.state == i32::from(container.life.state))
            })
            .filter(|container| labels_match(&container.config.labels, &filter.label_selector))
            .map(Container::summary)
            .collect()
    }

    /// Every container's status, in creation order.
    pub(in crate::testing) fn container_statuses(&self) -> Vec<ContainerStatus> {
        self.containers.values().map(Container::status).collect()
    }

    /// UpdateContainerResources: for a container that has not exited.
    pub(in crate::testing) fn update_container_resources(
        &mut self,
        id: &str,
        resources: ContainerResources,
    ) -> Result<(), FakeError> {
        let container = self.container_mut(id)?;
        if container.life.state == ContainerState::ContainerExited {
            return Err(container.refuse(container.life.state, "update the resources of"));
        }
        container.resources = Some(resources);
        Ok(())
    }

    /// CheckpointContainer: nothing to write, but the container must exist.
    pub(in crate::testing) fn checkpoint_container(&self, id: &str) -> Result<(), FakeError> {
        self.container(id).map(drop)
    }

    /// Refuses to `action` a container that is not running (ExecSync, Exec, Attach,
    /// ReopenContainerLog).
    pub(in crate::testing) fn ensure_running(&self, id: &str, action: &'static str) -> Result<(), FakeError> {
        let container = self.container(id)?;
        if !container.is_running() {
            return Err(container.refuse(container.life.state, action));
        }
        Ok(())
    }

    /// The container `id`.
    pub(super) fn container(&self, id: &str) -> Result<&Container, FakeError> {
        self.containers
            .get(id)
            .ok_or_else(|| FakeError::not_found(Kind::Container, id))
    }

    fn container_mut(&mut self, id: &str) -> Result<&mut Container, FakeError> {
        self.containers
            .get_mut(id)
            .ok_or_else(|| FakeError::not_found(Kind::Container, id))
    }

    /// Every container, for stats.
    pub(super) fn containers(&self) -> impl Iterator<Item = &Container> {
        self.containers.values()
    }
}
