//! The pods the pod manager knows, for housekeeping to tell what is gone: the UIDs it has
//! a worker for, and whether every pod source has listed its pods once (before that, any
//! pod may still come, so every pod counts as existing).

use std::collections::HashSet;
use std::sync::{Arc, PoisonError, RwLock};

/// The UIDs of the pods the pod manager has a worker for. Clones share them.
#[derive(Debug, Clone, Default)]
pub struct KnownPods(Arc<RwLock<Known>>);

#[derive(Debug, Default)]
struct Known {
    /// Every source listed its pods once.
    complete: bool,
    uids: HashSet<String>,
}

impl KnownPods {
    /// The pod `uid` has a worker (called before the worker starts).
    pub fn insert(&self, uid: &str) {
        self.0
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .uids
            .insert(uid.to_owned());
    }

    /// Keeps only the pods for which `keep` holds (the others' workers are done).
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        (self.0.write().unwrap_or_else(PoisonError::into_inner).uids).retain(|uid| keep(uid));
    }

    /// Every pod source has listed its pods: a pod without a worker now is gone.
    pub fn mark_complete(&self) {
        self.0.write().unwrap_or_else(PoisonError::into_inner).complete = true;
    }

    /// Whether the pod `uid` may exist: it has a worker, or the sources have not all
    /// listed their pods yet.
    pub fn may_exist(&self, uid: &str) -> bool {
        let known = self.0.read().unwrap_or_else(PoisonError::into_inner);
        !known.complete || known.uids.contains(uid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pod_may_exist_until_the_sources_listed_theirs_then_only_known_ones() {
        let known = KnownPods::default();
        known.insert("a");
        known.insert("b");
        assert!(known.may_exist("a") && known.may_exist("gone"));
        known.mark_complete();
        assert!(known.may_exist("a") && known.may_exist("b"));
        assert!(!known.may_exist("gone"));
        known.retain(|uid| uid != "b");
        assert!(known.may_exist("a") && !known.may_exist("b"));
    }
}
