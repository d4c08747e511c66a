//! The per-credential lock: single flight within this process (a `tokio` mutex per credential), then
//! across processes and instances ([`crate::db::Store::refresh_lock`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use crate::credentials::CredentialError;
use crate::db::Store;

/// The in-process mutexes, one per credential while someone holds or awaits it: the map keeps weak
/// references, so a credential nobody is working on costs no entry for long.
#[derive(Default)]
pub(super) struct CredentialLocks {
    local: Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>,
}

impl CredentialLocks {
    /// Holds one credential's lock until dropped: first in this process, then across processes.
    pub(super) async fn lock(
        &self,
        store: &dyn Store,
        user_id: &str,
        provider: &str,
    ) -> Result<CredentialLock, CredentialError> {
        let key = format!("{user_id}\u{0}{provider}");
        let local = self.local(&key).lock_owned().await;
        let cross = store.refresh_lock(&key).await?;
        Ok(CredentialLock {
            _cross: cross,
            _local: local,
        })
    }

    fn local(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.local.lock().expect("lock map poisoned");
        if let Some(l) = locks.get(key).and_then(Weak::upgrade) {
            return l;
        }
        locks.retain(|_, w| w.strong_count() > 0);
        let l = Arc::new(tokio::sync::Mutex::new(()));
        locks.insert(key.to_string(), Arc::downgrade(&l));
        l
    }
}

/// A held credential lock ([`CredentialLocks::lock`]); the cross-process part is released first.
pub(crate) struct CredentialLock {
    _cross: crate::db::RefreshLock,
    _local: tokio::sync::OwnedMutexGuard<()>,
}
