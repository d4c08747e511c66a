//! One kind of entry of the identity cache: a bounded map whose entries serve for [`MAX_AGE`] at most.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::RwLock;
use std::time::Instant;

use super::{MAX_AGE, MAX_ENTRIES};

pub(super) struct Table<K, V> {
    entries: RwLock<HashMap<K, (Instant, V)>>,
}

impl<K: Hash + Eq, V: Clone> Table<K, V> {
    pub(super) fn new() -> Self {
        Self {
            entries: RwLock::new(HashMap::new()),
        }
    }

    // A panic while the lock is held cannot leave the map half-changed (each change is one map call), so a
    // poisoned lock is used as it is.
    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<K, (Instant, V)>> {
        self.entries.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(super) fn get<Q: Hash + Eq + ?Sized>(&self, key: &Q) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
    {
        let entries = self.entries.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (at, v) = entries.get(key)?;
        (at.elapsed() < MAX_AGE).then(|| v.clone())
    }

    /// Inserts under the write lock if `current()` (asked under it) still holds.
    pub(super) fn put(&self, key: K, value: V, current: impl FnOnce() -> bool) {
        let mut entries = self.write();
        if !current() {
            return;
        }
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(key, (Instant::now(), value));
    }

    pub(super) fn retain(&self, keep: impl Fn(&K, &V) -> bool) {
        self.write().retain(|k, (_, v)| keep(k, v));
    }

    pub(super) fn clear(&self) {
        self.write().clear();
    }

    pub(super) fn len(&self) -> usize {
        self.entries
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }
}
