//! What the CRI runtime has for one pod: its sandboxes and container instances, read with
//! ListPodSandbox/ListContainers (by the pod-UID label) and ContainerStatus. A container
//! that exited carries its termination message ([`super::termination`]).

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use cri_api::v1::{ContainerFilter, ContainerState as CriState, PodSandboxFilter, PodSandboxState};
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::termination;
use crate::spec::labels;

/// One container instance of the pod, as the runtime reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    /// The runtime's id.
    pub id: String,
    /// The container's name in the pod spec.
    pub name: String,
    /// The sandbox it runs in.
    pub sandbox_id: String,
    /// Created, running, exited or unknown.
    pub state: CriState,
    /// Creation time, ns since the epoch.
    pub created_at: i64,
    /// Start time, ns since the epoch (0 if never started).
    pub started_at: i64,
    /// End time, ns since the epoch (0 if not finished).
    pub finished_at: i64,
    /// The exit code, once exited.
    pub exit_code: i32,
    /// Why it exited (`Completed`, `Error`, `OOMKilled`).
    pub reason: String,
    /// The runtime's message, then the container's termination message once it exited.
    pub message: String,
    /// The image reference the runtime resolved.
    pub image_ref: String,
    /// The restart count recorded on it.
    pub restart_count: i32,
    /// The spec hash recorded on it.
    pub hash: String,
}

impl Instance {
    /// Whether it is running.
    pub fn running(&self) -> bool {
        self.state == CriState::ContainerRunning
    }

    /// Whether it exited (or is in an unknown state, which counts as exited).
    pub fn exited(&self) -> bool {
        matches!(self.state, CriState::ContainerExited | CriState::ContainerUnknown)
    }

    /// When it started.
    pub fn started(&self) -> SystemTime {
        nanos_to_system_time(self.started_at)
    }

    /// When it finished.
    pub fn finished(&self) -> SystemTime {
        nanos_to_system_time(self.finished_at)
    }

    /// The Kubernetes state of this instance.
    pub fn k8s_state(&self, runtime_name: &str) -> ContainerState {
        match self.state {
            CriState::ContainerRunning => ContainerState {
                running: Some(ContainerStateRunning {
                    started_at: time(self.started_at),
                }),
                ..ContainerState::default()
            },
            CriState::ContainerCreated => ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some("ContainerCreating".into()),
                    message: None,
                }),
                ..ContainerState::default()
            },
            CriState::ContainerExited | CriState::ContainerUnknown => ContainerState {
                terminated: Some(ContainerStateTerminated {
                    container_id: Some(format!("{runtime_name}://{}", self.id)),
                    exit_code: self.exit_code,
                    finished_at: time(self.finished_at),
                    started_at: time(self.started_at),
                    reason: Some(if self.reason.is_empty() {
                        if self.exit_code == 0 { "Completed" } else { "Error" }.to_owned()
                    } else {
                        self.reason.clone()
                    }),
                    message: (!self.message.is_empty()).then(|| self.message.clone()),
                    signal: None,
                }),
                ..ContainerState::default()
            },
        }
    }
}

/// A sandbox of the pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sandbox {
    /// The runtime's id.
    pub id: String,
    /// Whether it is ready.
    pub ready: bool,
    /// Its attempt number.
    pub attempt: u32,
    /// Creation time, ns.
    pub created_at: i64,
}

/// The pod's sandboxes, newest first.
pub async fn sandboxes(runtime: &cri_client::Client, uid: &str) -> cri_client::Result<Vec<Sandbox>> {
    let filter = PodSandboxFilter {
        label_selector: HashMap::from([(labels::POD_UID.to_owned(), uid.to_owned())]),
        ..PodSandboxFilter::default()
    };
    let mut all: Vec<Sandbox> = runtime
        .list_pod_sandbox(Some(filter))
        .await?
        .into_iter()
        .map(|s| Sandbox {
            ready: s.state == PodSandboxState::SandboxReady as i32,
            attempt: s.metadata.map(|m| m.attempt).unwrap_or_default(),
            created_at: s.created_at,
            id: s.id,
        })
        .collect();
    all.sort_by_key(|s| std::cmp::Reverse(s.created_at));
    Ok(all)
}

/// The pod's container instances (of every sandbox), newest first.
pub async fn instances(runtime: &cri_client::Client, uid: &str) -> cri_client::Result<Vec<Instance>> {
    let filter = ContainerFilter {
        label_selector: HashMap::from([(labels::POD_UID.to_owned(), uid.to_owned())]),
        ..ContainerFilter::default()
    };
    let listed = runtime.list_containers(Some(filter)).await?;
    let mut all = Vec::with_capacity(listed.len());
    for container in listed {
        let status = match runtime.container_status(&container.id, false).await {
            Ok(response) => response.status.unwrap_or_default(),
            Err(err) if err.is_not_found() => continue,
            Err(err) => return Err(err),
        };
        let annotation = |key: &str| container.annotations.get(key).cloned().unwrap_or_default();
        let state = CriState::try_from(status.state).unwrap_or(CriState::ContainerUnknown);
        let message = if state == CriState::ContainerExited {
            termination::message(&termination::Sources {
                message_path: &annotation(labels::CONTAINER_TERMINATION_MESSAGE_PATH),
                policy: &annotation(labels::CONTAINER_TERMINATION_MESSAGE_POLICY),
                mounts: &status.mounts,
                log_path: &status.log_path,
                exit_code: status.exit_code,
                reason: &status.reason,
                runtime_message: &status.message,
            })
        } else {
            status.message
        };
        all.push(Instance {
            name: container
                .labels
                .get(labels::CONTAINER_NAME)
                .cloned()
                .unwrap_or_default(),
            sandbox_id: container.pod_sandbox_id.clone(),
            state,
            created_at: status.created_at,
            started_at: status.started_at,
            finished_at: status.finished_at,
            exit_code: status.exit_code,
            reason: status.reason,
            message,
            image_ref: status.image_ref,
            restart_count: annotation(labels::CONTAINER_RESTART_COUNT).parse().unwrap_or(0),
            hash: annotation(labels::CONTAINER_HASH),
            id: container.id,
        });
    }
    all.sort_by_key(|i| std::cmp::Reverse(i.created_at));
    Ok(all)
}

/// A CRI timestamp (ns since the epoch) as a Kubernetes time; `None` for 0.
pub fn time(nanos: i64) -> Option<Time> {
    if nanos <= 0 {
        return None;
    }
    k8s_openapi::jiff::Timestamp::from_nanosecond(i128::from(nanos))
        .ok()
        .map(Time)
}

/// A CRI timestamp as a `SystemTime`.
pub fn nanos_to_system_time(nanos: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_nanos(u64::try_from(nanos).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(state: CriState, exit_code: i32) -> Instance {
        Instance {
            id: "abc".into(),
            name: "c".into(),
            sandbox_id: "s".into(),
            state,
            created_at: 1,
            started_at: 1_700_000_000_000_000_000,
            finished_at: 1_700_000_001_000_000_000,
            exit_code,
            reason: String::new(),
            message: String::new(),
            image_ref: "sha256:x".into(),
            restart_count: 0,
            hash: String::new(),
        }
    }

    #[test]
    fn exited_instances_become_terminated_states() {
        let state = instance(CriState::ContainerExited, 3).k8s_state("runtime-core");
        let terminated = state.terminated.unwrap();
        assert_eq!(terminated.exit_code, 3);
        assert_eq!(terminated.reason.as_deref(), Some("Error"));
        assert_eq!(terminated.container_id.as_deref(), Some("runtime-core://abc"));
        assert!(terminated.started_at.is_some() && terminated.finished_at.is_some());
        let ok = instance(CriState::ContainerExited, 0)
            .k8s_state("x")
            .terminated
            .unwrap();
        assert_eq!(ok.reason.as_deref(), Some("Completed"));
        assert!(instance(CriState::ContainerRunning, 0).k8s_state("x").running.is_some());
    }
}
