//! A small map whose entries expire: the answers of TokenReview and SubjectAccessReview,
//! kept briefly so a burst of requests costs one review. Its size is bounded: when it is
//! full, expired entries go, then the one closest to expiry, so a flood of new keys
//! cannot grow it (nor empty it of everything else at once).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Entries that expire after the time given when they were inserted.
#[derive(Debug)]
pub(crate) struct TtlCache<K, V> {
    capacity: usize,
    entries: Mutex<HashMap<K, (Instant, V)>>,
}

impl<K: Hash + Eq + Clone, V: Clone> TtlCache<K, V> {
    /// An empty cache of at most `capacity` entries (at least one).
    pub(crate) fn new(capacity: usize) -> TtlCache<K, V> {
        TtlCache {
            capacity: capacity.max(1),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The value of `key` if it has not expired.
    pub(crate) fn get(&self, key: &K) -> Option<V> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries
            .get(key)
            .filter(|(expires, _)| *expires > Instant::now())
            .map(|(_, value)| value.clone())
    }

    /// Keeps `value` for `key` for `ttl` (a zero `ttl` keeps nothing).
    pub(crate) fn insert(&self, key: K, value: V, ttl: Duration) {
        if ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            entries.retain(|_, (expires, _)| *expires > now);
            if entries.len() >= self.capacity {
                let soonest = entries
                    .iter()
                    .min_by_key(|(_, (expires, _))| *expires)
                    .map(|(key, _)| key.clone());
                if let Some(soonest) = soonest {
                    entries.remove(&soonest);
                }
            }
        }
        entries.insert(key, (now + ttl, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire() {
        let cache = TtlCache::new(8);
        cache.insert("a", 1, Duration::from_millis(30));
        cache.insert("b", 2, Duration::ZERO);
        assert_eq!(cache.get(&"a"), Some(1));
        assert_eq!(cache.get(&"b"), None);
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(cache.get(&"a"), None);
    }

    #[test]
    fn a_full_cache_drops_the_entry_closest_to_expiry() {
        let cache = TtlCache::new(2);
        cache.insert("long", 1, Duration::from_secs(60));
        cache.insert("short", 2, Duration::from_secs(5));
        cache.insert("new", 3, Duration::from_secs(30));
        assert_eq!(
            (cache.get(&"long"), cache.get(&"short"), cache.get(&"new")),
            (Some(1), None, Some(3))
        );
    }
}
