//! The fake runtime's memory: sandboxes, containers and images, and the CRI's rules for
//! changing them. Nothing here knows gRPC; refusals are [`FakeError`]s.
//!
//! The RPCs live in files named for what they act on: `sandbox.rs`, `container.rs`,
//! `image.rs` and `stats.rs`. Container states and their transitions are drawn in
//! `container.rs`.

mod container;
mod image;
mod sandbox;
mod stats;

use std::collections::{BTreeMap, HashMap};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;

use crate::v1::{ContainerEventResponse, ContainerEventType, Image, RuntimeCondition};

use container::Container;
use sandbox::Sandbox;

use super::error::FakeError;

/// What the runtime reports in Status until a test says otherwise: ready, network ready.
fn ready_conditions() -> Vec<RuntimeCondition> {
    ["RuntimeReady", "NetworkReady"]
        .into_iter()
        .map(|condition| RuntimeCondition {
            r#type: condition.to_owned(),
            status: true,
            reason: String::new(),
            message: String::new(),
        })
        .collect()
}

/// Everything the fake runtime holds.
#[derive(Debug)]
pub(super) struct State {
    /// The number in the next sandbox, container or image id.
    next_id: u64,
    sandboxes: BTreeMap<String, Sandbox>,
    containers: BTreeMap<String, Container>,
    /// In the order they were added.
    images: Vec<Image>,
    /// What Status reports.
    pub(super) conditions: Vec<RuntimeCondition>,
    /// The streams of GetContainerEvents still open.
    subscribers: Vec<mpsc::UnboundedSender<ContainerEventResponse>>,
}

impl Default for State {
    fn default() -> Self {
        State {
            next_id: 1,
            sandboxes: BTreeMap::new(),
            containers: BTreeMap::new(),
            images: Vec::new(),
            conditions: ready_conditions(),
            subscribers: Vec::new(),
        }
    }
}

impl State {
    /// A fresh id, 64 hex digits like a real runtime's; ids sort in creation order.
    fn new_id(&mut self) -> String {
        let id = format!("{:064x}", self.next_id);
        self.next_id += 1;
        id
    }

    /// Opens a stream of the container events from now on.
    pub(super) fn subscribe(&mut self) -> mpsc::UnboundedReceiver<ContainerEventResponse> {
        let (sender, receiver) = mpsc::unbounded_channel();
        self.subscribers.push(sender);
        receiver
    }

    /// Tells every subscriber that `id` (a container, or a sandbox as containerd reports
    /// them) went through `event`, with the status of its sandbox and of the sandbox's
    /// containers as they are now.
    fn emit(&mut self, id: &str, event: ContainerEventType, sandbox_id: &str) {
        if self.subscribers.is_empty() {
            return;
        }
        let response = ContainerEventResponse {
            container_id: id.to_owned(),
            container_event_type: event.into(),
            created_at: now(),
            pod_sandbox_status: self.sandboxes.get(sandbox_id).map(Sandbox::status),
            containers_statuses: self.containers_of(sandbox_id).map(Container::status).collect(),
        };
        self.subscribers
            .retain(|subscriber| subscriber.send(response.clone()).is_ok());
    }

    /// The containers of sandbox `sandbox_id`, in creation order.
    fn containers_of<'a>(&'a self, sandbox_id: &'a str) -> impl Iterator<Item = &'a Container> + 'a {
        self.containers
            .values()
            .filter(move |container| container.sandbox_id == sandbox_id)
    }
}

/// Now, in nanoseconds since the Unix epoch, as CRI timestamps are.
fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| i64::try_from(elapsed.as_nanos()).unwrap_or(i64::MAX))
}

/// Whether `labels` has every key and value of `selector` (a CRI filter's
/// `label_selector`; an empty selector matches everything).
fn labels_match(labels: &HashMap<String, String>, selector: &HashMap<String, String>) -> bool {
    selector.iter().all(|(key, value)| labels.get(key) == Some(value))
}

/// Whether a filter's `id` (empty for any) matches `id`.
fn id_matches(filter: &str, id: &str) -> bool {
    filter.is_empty() || filter == id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_label_selector_matches_labels_having_all_of_its_pairs() {
        let labels: HashMap<String, String> = [("app", "web"), ("tier", "front")]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .into();
        let selector = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
        };
        let cases = [
            ("an empty selector", selector(&[]), true),
            ("one pair", selector(&[("app", "web")]), true),
            ("all pairs", selector(&[("app", "web"), ("tier", "front")]), true),
            ("another value", selector(&[("app", "db")]), false),
            ("a missing key", selector(&[("app", "web"), ("zone", "a")]), false),
        ];
        for (desc, selector, want) in cases {
            assert_eq!(labels_match(&labels, &selector), want, "{desc}");
        }
    }

    #[test]
    fn ids_are_unique_and_sort_in_creation_order() {
        let mut state = State::default();
        let (first, second) = (state.new_id(), state.new_id());
        assert_eq!(first.len(), 64);
        assert!(first < second);
    }
}
