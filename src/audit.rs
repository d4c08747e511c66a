//! The audit trail: who did what, when, from where, with what outcome. Never a secret value.
//!
//! A failed audit write is logged and counted, never silently dropped, and never fails a read.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::clock::SharedClock;
use crate::db::{AuditRecord, DbError, SharedStore};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Register,
    Login,
    ChangePassword,
    CredentialStore,
    CredentialRead,
    CredentialRefresh,
    CredentialDelete,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Register => "register",
            Self::Login => "login",
            Self::ChangePassword => "change_password",
            Self::CredentialStore => "credential_store",
            Self::CredentialRead => "credential_read",
            Self::CredentialRefresh => "credential_refresh",
            Self::CredentialDelete => "credential_delete",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Failed => "failed",
        }
    }
}

/// One event to record. `detail` is a short non-secret reason (e.g. "wrong password", "needs_reauth").
#[derive(Debug, Clone)]
pub struct Event<'a> {
    pub user_id: Option<&'a str>,
    pub kind: EventKind,
    pub provider: Option<&'a str>,
    pub outcome: Outcome,
    pub client_addr: Option<&'a str>,
    pub detail: Option<&'a str>,
}

#[derive(Clone)]
pub struct Auditor {
    store: SharedStore,
    clock: SharedClock,
    failures: Arc<AtomicU64>,
}

impl Auditor {
    pub fn new(store: SharedStore, clock: SharedClock) -> Self {
        Self {
            store,
            clock,
            failures: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Records the event; a failure is logged and counted and returned for callers that must not go on
    /// without a trail (writes), while reads ignore it.
    pub async fn record(&self, e: Event<'_>) -> Result<(), DbError> {
        let rec = AuditRecord {
            id: 0,
            user_id: e.user_id.map(str::to_string),
            kind: e.kind.as_str().to_string(),
            provider: e.provider.map(str::to_string),
            outcome: e.outcome.as_str().to_string(),
            client_addr: e.client_addr.map(str::to_string),
            detail: e.detail.map(str::to_string),
            at: self.clock.now_ms(),
        };
        let res = self.store.insert_audit(&rec).await;
        if let Err(err) = &res {
            self.failures.fetch_add(1, Ordering::Relaxed);
            tracing::error!(kind = rec.kind, outcome = rec.outcome, error = %err, "audit write failed");
        }
        res
    }

    /// Audit writes that failed since start (exported as a metric).
    pub fn failed_writes(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }
}

impl Auditor {
    /// A user's own events, newest first; `before`: an event id from the previous page.
    pub async fn list(&self, user_id: &str, before: Option<i64>, limit: i64) -> Result<Vec<AuditRecord>, DbError> {
        self.store.list_audit(user_id, before, limit.clamp(1, 200)).await
    }
}
