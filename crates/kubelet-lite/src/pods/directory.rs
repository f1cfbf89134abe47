//! The pods this node runs, as the pod workers last reported them: a shared snapshot
//! the kubelet API lists on `/pods` (the server implements its `PodDirectory` on it).

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};

use k8s_openapi::api::core::v1::{Pod, PodStatus};

/// The pods of the node by UID, each with the status its worker computed last. Clones
/// share the snapshot.
#[derive(Debug, Clone, Default)]
pub struct PodSnapshot(Arc<RwLock<BTreeMap<String, Pod>>>);

impl PodSnapshot {
    /// Records `pod` (UID `uid`) with `status`.
    pub fn set(&self, uid: &str, pod: &Pod, status: PodStatus) {
        let mut pod = pod.clone();
        pod.status = Some(status);
        self.0
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(uid.to_owned(), pod);
    }

    /// Forgets the pod `uid` (it was terminated).
    pub fn remove(&self, uid: &str) {
        self.0.write().unwrap_or_else(PoisonError::into_inner).remove(uid);
    }

    /// How many pods are in phase Running.
    pub fn running(&self) -> usize {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .filter(|pod| pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            .count()
    }

    /// The pods, each with its latest status, by UID.
    pub fn pods(&self) -> Vec<Pod> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str) -> Pod {
        let mut pod = Pod::default();
        pod.metadata.name = Some(name.into());
        pod
    }

    #[test]
    fn the_snapshot_lists_what_workers_reported_until_removed() {
        let snapshot = PodSnapshot::default();
        let running = PodStatus {
            phase: Some("Running".into()),
            ..PodStatus::default()
        };
        snapshot.set("u1", &pod("a"), running);
        snapshot.set("u2", &pod("b"), PodStatus::default());
        assert_eq!(snapshot.pods().len(), 2);
        assert_eq!(snapshot.running(), 1);
        snapshot.remove("u1");
        let names: Vec<_> = snapshot.pods().into_iter().filter_map(|p| p.metadata.name).collect();
        assert_eq!(names, ["b"]);
        assert_eq!(snapshot.running(), 0);
    }
}
