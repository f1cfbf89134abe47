//! The pod lifecycle event generator: the one place that watches the runtime for changes
//! of containers and wakes the worker of the pod a change is about, so that workers do
//! no polling of their own (as the kubelet's PLEG feeds its pod workers).
//!
//! With a runtime that streams container events (CRI `GetContainerEvents`: runtime-core),
//! each event wakes its pod's worker at once, and the runtime's containers are listed in
//! full only every [`EVENTED_RELIST_PERIOD`] and after each (re)subscription, to catch
//! what a broken stream lost, as the kubelet's evented PLEG relists. With a runtime
//! without events (containerd 1.6 answers Unimplemented), the containers of every pod
//! are listed once per [`RELIST_PERIOD`], as the kubelet's generic PLEG does, and the
//! workers of pods whose containers appeared, changed state or went are woken.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use cri_client::v1::ContainerEventResponse;
use tokio::sync::Notify;

use crate::retry::{RetryBackoff, RetryPolicy};
use crate::spec::labels::POD_UID;

/// How often the containers are listed against a runtime without events (the kubelet's
/// generic `relistPeriod`).
pub const RELIST_PERIOD: Duration = Duration::from_secs(1);
/// How often the containers are listed in full while events arrive (the kubelet's evented
/// PLEG relists every 300 s).
pub const EVENTED_RELIST_PERIOD: Duration = Duration::from_secs(300);

/// The workers to wake, by pod UID, and what the last listing saw.
#[derive(Debug, Default)]
pub struct Pleg {
    workers: Mutex<HashMap<String, Arc<Notify>>>,
}

/// What a listing saw of one container: its pod and its state.
type Seen = HashMap<String, (String, i32)>;

impl Pleg {
    /// Wakes `notify` whenever a container of pod `uid` changes, until [`Pleg::forget`].
    pub fn register(&self, uid: &str, notify: Arc<Notify>) {
        self.lock().insert(uid.to_owned(), notify);
    }

    /// Stops waking the worker of pod `uid`.
    pub fn forget(&self, uid: &str) {
        self.lock().remove(uid);
    }

    /// Wakes the worker of pod `uid`, if it has one.
    pub fn wake(&self, uid: &str) {
        if let Some(notify) = self.lock().get(uid) {
            notify.notify_one();
        }
    }

    /// Wakes every worker.
    pub fn wake_all(&self) {
        for notify in self.lock().values() {
            notify.notify_one();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Notify>>> {
        self.workers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Watches `runtime` for ever: events while it streams them, a relist per
    /// [`RELIST_PERIOD`] if it has none.
    pub async fn run(self: Arc<Self>, runtime: cri_client::Client) {
        let mut seen = Seen::new();
        let mut backoff = RetryBackoff::new(RetryPolicy::WATCH);
        loop {
            match runtime.get_container_events().await {
                Ok(mut events) => {
                    tracing::info!("following the runtime's container events");
                    backoff.reset();
                    self.relist(&runtime, &mut seen).await;
                    let mut relist = tokio::time::interval(EVENTED_RELIST_PERIOD);
                    relist.tick().await;
                    let ended = loop {
                        tokio::select! {
                            event = events.message() => match event {
                                Ok(Some(event)) => {
                                    if let Some(uid) = pod_of_event(&event) {
                                        self.wake(&uid);
                                    }
                                }
                                Ok(None) => break "the runtime ended the stream".to_owned(),
                                Err(error) => break error.to_string(),
                            },
                            _ = relist.tick() => self.relist(&runtime, &mut seen).await,
                        }
                    };
                    tracing::warn!(why = %ended, "container events stopped; subscribing again");
                }
                Err(cri_client::Error::Unimplemented(_)) => {
                    tracing::info!(period = ?RELIST_PERIOD, "the runtime has no container events: relisting");
                    loop {
                        self.relist(&runtime, &mut seen).await;
                        tokio::time::sleep(RELIST_PERIOD).await;
                    }
                }
                Err(error) => {
                    tracing::debug!(%error, "cannot subscribe to container events yet");
                    // Meanwhile, changes are still found.
                    self.relist(&runtime, &mut seen).await;
                }
            }
            tokio::time::sleep(backoff.next_delay()).await;
        }
    }

    /// Lists the runtime's containers and wakes the workers of the pods whose containers
    /// appeared, changed state or went since the last listing.
    async fn relist(&self, runtime: &cri_client::Client, seen: &mut Seen) {
        match runtime.list_containers(None).await {
            Ok(containers) => {
                let now = seen_in(&containers);
                for uid in changed_pods(seen, &now) {
                    self.wake(&uid);
                }
                *seen = now;
            }
            Err(error) => tracing::debug!(%error, "relisting the runtime's containers"),
        }
    }
}

/// The pod UID of the container an event is about: from its own status's labels, else
/// from its sandbox's metadata.
fn pod_of_event(event: &ContainerEventResponse) -> Option<String> {
    let own = (event.containers_statuses.iter())
        .find(|status| status.id == event.container_id)
        .and_then(|status| status.labels.get(POD_UID).cloned());
    let sandbox = (event.pod_sandbox_status.as_ref())
        .and_then(|sandbox| sandbox.metadata.as_ref())
        .map(|metadata| metadata.uid.clone());
    own.or(sandbox).filter(|uid| !uid.is_empty())
}

/// Each listed container's pod and state (containers without a pod UID are not ours).
fn seen_in(containers: &[cri_client::v1::Container]) -> Seen {
    (containers.iter())
        .filter_map(|c| Some((c.id.clone(), (c.labels.get(POD_UID)?.clone(), c.state))))
        .collect()
}

/// The pods with a container in one listing and not the other, or in another state.
fn changed_pods(before: &Seen, now: &Seen) -> Vec<String> {
    let mut pods: Vec<String> = (now.iter())
        .filter(|(id, seen)| before.get(*id) != Some(*seen))
        .chain(before.iter().filter(|(id, _)| !now.contains_key(*id)))
        .map(|(_, (uid, _))| uid.clone())
        .collect();
    pods.sort();
    pods.dedup();
    pods
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use cri_client::v1::{Container, ContainerState, ContainerStatus, PodSandboxMetadata, PodSandboxStatus};

    use super::*;

    fn container(id: &str, uid: &str, state: ContainerState) -> Container {
        Container {
            id: id.into(),
            state: state as i32,
            labels: HashMap::from([(POD_UID.to_owned(), uid.to_owned())]),
            ..Container::default()
        }
    }

    #[test]
    fn a_relist_names_the_pods_whose_containers_came_changed_or_went() {
        let before = seen_in(&[
            container("a", "pod-1", ContainerState::ContainerRunning),
            container("b", "pod-2", ContainerState::ContainerRunning),
            container("c", "pod-3", ContainerState::ContainerRunning),
            container("d", "pod-4", ContainerState::ContainerRunning),
        ]);
        let now = seen_in(&[
            container("a", "pod-1", ContainerState::ContainerRunning),
            container("b", "pod-2", ContainerState::ContainerExited),
            container("e", "pod-5", ContainerState::ContainerCreated),
            Container {
                id: "not-ours".into(),
                ..Container::default()
            },
        ]);
        assert_eq!(changed_pods(&before, &now), ["pod-2", "pod-3", "pod-4", "pod-5"]);
        assert!(changed_pods(&now, &now).is_empty());
    }

    #[test]
    fn an_event_is_for_the_pod_of_its_container_or_of_its_sandbox() {
        let status = ContainerStatus {
            id: "c1".into(),
            labels: HashMap::from([(POD_UID.to_owned(), "from-labels".to_owned())]),
            ..ContainerStatus::default()
        };
        let sandbox = PodSandboxStatus {
            metadata: Some(PodSandboxMetadata {
                uid: "from-sandbox".into(),
                ..PodSandboxMetadata::default()
            }),
            ..PodSandboxStatus::default()
        };
        let event = ContainerEventResponse {
            container_id: "c1".into(),
            containers_statuses: vec![status],
            pod_sandbox_status: Some(sandbox.clone()),
            ..ContainerEventResponse::default()
        };
        assert_eq!(pod_of_event(&event).as_deref(), Some("from-labels"));
        let deleted = ContainerEventResponse {
            container_id: "gone".into(),
            pod_sandbox_status: Some(sandbox),
            ..event
        };
        assert_eq!(pod_of_event(&deleted).as_deref(), Some("from-sandbox"));
        assert_eq!(pod_of_event(&ContainerEventResponse::default()), None);
    }
}
