//! The cap on concurrent exec and attach sessions per container: the server sees every
//! session by container id, so one container cannot be made to run an unbounded number of
//! processes and streams at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Exec and attach sessions one container may have at once by default: more than the
/// terminals and scripted execs a container sees at once, far fewer than a loop starting
/// `kubectl exec` in the background can open.
pub(crate) const MAX_SESSIONS_PER_CONTAINER: usize = 64;

/// A session refused because its container already has the most it may have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("too many exec and attach sessions in container {container_id} (at most {max} at once)")]
pub(crate) struct TooManySessions {
    container_id: String,
    max: usize,
}

type Counts = Arc<Mutex<HashMap<String, usize>>>;

/// Open sessions per container id.
#[derive(Debug)]
pub(crate) struct SessionLimit {
    max: usize,
    open: Counts,
}

impl SessionLimit {
    /// At most `max` sessions per container.
    pub(crate) fn new(max: usize) -> Self {
        Self {
            max,
            open: Counts::default(),
        }
    }

    /// A slot for one more session in `container_id`, held until dropped.
    pub(crate) fn open(&self, container_id: &str) -> Result<SessionSlot, TooManySessions> {
        let mut open = lock(&self.open);
        let count = open.get(container_id).copied().unwrap_or_default();
        if count >= self.max {
            return Err(TooManySessions {
                container_id: container_id.to_owned(),
                max: self.max,
            });
        }
        open.insert(container_id.to_owned(), count + 1);
        Ok(SessionSlot {
            container_id: container_id.to_owned(),
            open: self.open.clone(),
        })
    }
}

fn lock(counts: &Counts) -> MutexGuard<'_, HashMap<String, usize>> {
    counts.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One open session; dropping it frees its slot.
#[derive(Debug)]
pub(crate) struct SessionSlot {
    container_id: String,
    open: Counts,
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        let mut open = lock(&self.open);
        if let Some(count) = open.get_mut(&self.container_id) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.container_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_container_has_its_own_slots_and_a_dropped_slot_frees_one() {
        let limit = SessionLimit::new(2);
        let first = limit.open("a").unwrap();
        let _second = limit.open("a").unwrap();
        assert_eq!(
            limit.open("a").unwrap_err().to_string(),
            "too many exec and attach sessions in container a (at most 2 at once)"
        );
        let _other = limit.open("b").expect("another container is counted apart");
        drop(first);
        let _third = limit.open("a").expect("a dropped slot is free again");
    }

    #[test]
    fn a_container_without_sessions_is_forgotten() {
        let limit = SessionLimit::new(1);
        drop(limit.open("a").unwrap());
        assert!(lock(&limit.open).is_empty());
    }

    #[test]
    fn a_refused_session_leaves_no_entry_behind() {
        let limit = SessionLimit::new(0);
        assert!(limit.open("a").is_err());
        assert!(lock(&limit.open).is_empty());
    }
}
