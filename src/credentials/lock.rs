//! The per-credential lock: single flight within this process (a `tokio` mutex per credential), then
//! across processes and instances ([`crate::db::Store::refresh_lock`]).
//!
//! Stores, deletes and refreshes of a credential take it, so they never overlap: a delete cannot fall
//! between a store's secret write and its reference, and a refresh never works on a credential being
//! replaced or deleted. It always exists, whatever the service is built with.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use super::{ConnectionKey, CredentialError, CredentialService};
use crate::db::Store;

/// The in-process mutexes, one per credential while someone holds or awaits it: the map keeps weak
/// references, so a credential nobody is working on costs no entry for long.
#[derive(Default)]
pub(super) struct CredentialLocks {
    local: Mutex<HashMap<ConnectionKey, Weak<tokio::sync::Mutex<()>>>>,
}

impl CredentialLocks {
    /// Holds one credential's lock until dropped: first in this process, then across processes.
    async fn lock(&self, store: &dyn Store, key: &ConnectionKey) -> Result<CredentialLock, CredentialError> {
        let local = self.local(key).lock_owned().await;
        let cross = store.refresh_lock(&key.lock_name()).await?;
        Ok(CredentialLock {
            _cross: cross,
            _local: local,
        })
    }

    fn local(&self, key: &ConnectionKey) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.local.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(l) = locks.get(key).and_then(Weak::upgrade) {
            return l;
        }
        locks.retain(|_, w| w.strong_count() > 0);
        let l = Arc::new(tokio::sync::Mutex::new(()));
        locks.insert(key.clone(), Arc::downgrade(&l));
        l
    }
}

/// A held credential lock; the cross-process part is released first.
pub(super) struct CredentialLock {
    _cross: crate::db::RefreshLock,
    _local: tokio::sync::OwnedMutexGuard<()>,
}

impl CredentialService {
    /// Holds one credential's lock until dropped (see the module documentation).
    pub(super) async fn lock(&self, key: &ConnectionKey) -> Result<CredentialLock, CredentialError> {
        self.locks.lock(self.store.as_ref(), key).await
    }
}
