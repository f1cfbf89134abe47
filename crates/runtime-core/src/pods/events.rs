//! GetContainerEvents: every change of a container's state as the kubelet's evented PLEG
//! reads it, CONTAINER_CREATED, _STARTED, _STOPPED and _DELETED, each with the status of
//! the container's sandbox and of every container of that sandbox at that moment.
//!
//! The verbs announce what they did (CreateContainer, StartContainer, RemoveContainer and
//! the removal of a sandbox's containers). An exit is announced where it is recorded,
//! whoever found it: StopContainer, any call that refreshed the container, or the exit
//! watcher (`exit_watch.rs`) while no call is in flight. Announcing never waits: each
//! subscriber has a buffer of its own, and one that falls a whole buffer behind loses
//! its subscription (it relists, as after any break of the stream) rather than slow the
//! verbs. Subscriptions end when the daemon stops serving.

use cri_api::v1::{ContainerEventResponse, ContainerEventType};
use tokio::sync::{broadcast, watch};

use super::{Pods, container_status, now_nanos, sandbox_status};
use crate::state::container::ContainerRecord;

/// The events buffered for each subscriber unless the configuration says otherwise.
pub const DEFAULT_EVENTS_BUFFER: usize = 1024;

/// Where events go to their subscribers.
#[derive(Debug)]
pub(super) struct ContainerEvents {
    sender: broadcast::Sender<ContainerEventResponse>,
    closed: watch::Sender<bool>,
}

impl ContainerEvents {
    /// No subscriber yet; each will have `buffer` events of room (at least 1).
    pub(super) fn new(buffer: usize) -> ContainerEvents {
        ContainerEvents {
            sender: broadcast::channel(buffer.max(1)).0,
            closed: watch::channel(false).0,
        }
    }
}

/// One subscriber's events, from when it subscribed.
#[derive(Debug)]
pub struct ContainerEventSubscription {
    events: broadcast::Receiver<ContainerEventResponse>,
    closed: watch::Receiver<bool>,
}

/// Why a subscription ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SubscriptionEnded {
    /// The subscriber fell this many events behind; what it knows is stale.
    #[error("the subscriber fell {0} events behind and was dropped; relist and subscribe again")]
    FellBehind(u64),
    /// The runtime stopped serving.
    #[error("the runtime is shutting down")]
    Closed,
}

impl ContainerEventSubscription {
    /// The next event; once it returns an error, the subscription is over.
    pub async fn next(&mut self) -> Result<ContainerEventResponse, SubscriptionEnded> {
        tokio::select! {
            event = self.events.recv() => match event {
                Ok(event) => Ok(event),
                Err(broadcast::error::RecvError::Lagged(missed)) => Err(SubscriptionEnded::FellBehind(missed)),
                Err(broadcast::error::RecvError::Closed) => Err(SubscriptionEnded::Closed),
            },
            _ = self.closed.wait_for(|closed| *closed) => Err(SubscriptionEnded::Closed),
        }
    }
}

impl Pods {
    /// GetContainerEvents: the events of every container from now on.
    pub fn subscribe_container_events(&self) -> ContainerEventSubscription {
        ContainerEventSubscription {
            events: self.events.sender.subscribe(),
            closed: self.events.closed.subscribe(),
        }
    }

    /// Ends every subscription, now and to come (the daemon stops serving).
    pub fn close_container_events(&self) {
        self.events.closed.send_replace(true);
    }

    /// Tells the subscribers that `container` went through `event`, with its sandbox's
    /// status and its containers' statuses as the records hold them now.
    pub(super) fn announce(&self, event: ContainerEventType, container: &ContainerRecord) {
        if self.events.sender.receiver_count() == 0 {
            return;
        }
        let sandbox = self.registry.sandbox(&container.sandbox_id).ok();
        let response = ContainerEventResponse {
            container_id: container.id.clone(),
            container_event_type: event as i32,
            created_at: now_nanos(),
            pod_sandbox_status: sandbox.as_ref().map(sandbox_status::to_cri),
            containers_statuses: (self.registry.containers_of(&container.sandbox_id).iter())
                .map(container_status::to_cri)
                .collect(),
        };
        // An error means every subscriber left since the count above.
        let _ = self.events.sender.send(response);
    }
}
