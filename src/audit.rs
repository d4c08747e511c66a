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

/// Records events through a background writer that inserts them in batches (one transaction per
/// batch), so a busy read path does not wait for a commit per request. The queue is bounded: when it is
/// full, callers wait (back-pressure), nothing is dropped. [`Auditor::flush`] waits until everything
/// queued so far is in the database.
#[derive(Clone)]
pub struct Auditor {
    store: SharedStore,
    clock: SharedClock,
    failures: Arc<AtomicU64>,
    queue: tokio::sync::mpsc::Sender<Queued>,
}

enum Queued {
    Event(AuditRecord),
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// Events written per transaction at most.
const BATCH: usize = 1024;
/// Batches being written at once on PostgreSQL (it commits them together). SQLite has one writer at a
/// time: more would only hold pooled connections while they wait for its lock.
const PG_WRITERS: usize = 4;
/// How long a busy writer waits to fill a batch.
const GATHER: std::time::Duration = std::time::Duration::from_millis(5);

impl Auditor {
    /// Starts the writer task (on the current Tokio runtime).
    pub fn new(store: SharedStore, clock: SharedClock) -> Self {
        let (queue, rx) = tokio::sync::mpsc::channel(8192);
        let failures = Arc::new(AtomicU64::new(0));
        let writers = match store.backend() {
            crate::db::Backend::Postgres => PG_WRITERS,
            crate::db::Backend::Sqlite => 1,
        };
        tokio::spawn(write_batches(store.clone(), failures.clone(), rx, writers));
        Self {
            store,
            clock,
            failures,
            queue,
        }
    }

    /// Queues the event. It never fails the caller: a failed write is logged and counted by the writer.
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
        if let Err(lost) = self.queue.send(Queued::Event(rec)).await {
            // Only when the writer is gone (runtime shutting down): write it here rather than lose it.
            if let Queued::Event(rec) = lost.0 {
                self.write_one(&rec).await;
            }
        }
        Ok(())
    }

    /// Waits until every event queued before this call is written (or has failed and been logged).
    pub async fn flush(&self) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.queue.send(Queued::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    async fn write_one(&self, rec: &AuditRecord) {
        if let Err(err) = self.store.insert_audit(rec).await {
            self.failures.fetch_add(1, Ordering::Relaxed);
            tracing::error!(kind = rec.kind, outcome = rec.outcome, error = %err, "audit write failed");
        }
    }

    /// Audit writes that failed since start (exported as a metric).
    pub fn failed_writes(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }
}

async fn write_batches(
    store: SharedStore,
    failures: Arc<AtomicU64>,
    mut rx: tokio::sync::mpsc::Receiver<Queued>,
    writers: usize,
) {
    // Several batches in flight: the database commits them together instead of one after another.
    let mut in_flight = tokio::task::JoinSet::new();
    while let Some(first) = rx.recv().await {
        // Finished writes leave the set here, so that "nothing in flight" (no pause to gather) holds
        // whenever the database is idle.
        while let Some(done) = in_flight.try_join_next() {
            log_join(done);
        }
        let mut batch = Vec::with_capacity(BATCH);
        let mut waiters = Vec::new();
        let mut next = Some(first);
        let mut gathered = false;
        loop {
            while let Some(item) = next.take() {
                match item {
                    Queued::Event(rec) => batch.push(rec),
                    Queued::Flush(done) => waiters.push(done),
                }
                if batch.len() < BATCH {
                    next = rx.try_recv().ok();
                }
            }
            // Under load, a short pause gathers many events into one statement and one commit (each
            // commit costs the database far more than a row); a flush is answered without waiting.
            if gathered || batch.len() >= BATCH || !waiters.is_empty() || in_flight.is_empty() {
                break;
            }
            gathered = true;
            tokio::time::sleep(GATHER).await;
            next = rx.try_recv().ok();
        }
        while in_flight.len() >= writers {
            if let Some(done) = in_flight.join_next().await {
                log_join(done);
            }
        }
        if !batch.is_empty() {
            let store = store.clone();
            let mut pending = Pending::new(batch, failures.clone());
            in_flight.spawn(async move {
                match store.insert_audit_batch(&pending.records).await {
                    Ok(()) => pending.written(),
                    Err(err) => pending.failed(&err),
                }
            });
        }
        if !waiters.is_empty() {
            // A flush answers once everything queued before it is written.
            while let Some(done) = in_flight.join_next().await {
                log_join(done);
            }
            for done in waiters {
                let _ = done.send(());
            }
        }
    }
    while let Some(done) = in_flight.join_next().await {
        log_join(done);
    }
}

/// A batch writer that panicked: its events were counted and logged by its [`Pending`]; this logs why.
fn log_join(done: Result<(), tokio::task::JoinError>) {
    if let Err(e) = done {
        tracing::error!(error = %e, "audit batch writer failed; its events were not written");
    }
}

/// A batch on its way to the database. Unless it is marked written, dropping it counts every event as a
/// failed write and logs it: after a database error, and also when the writer task panicked (or was
/// cancelled) mid-write, whose events would otherwise be lost uncounted.
struct Pending {
    records: Vec<AuditRecord>,
    failures: Arc<AtomicU64>,
    /// Why the batch was not written (replaced by the database's error when there is one).
    error: String,
}

impl Pending {
    fn new(records: Vec<AuditRecord>, failures: Arc<AtomicU64>) -> Self {
        Self {
            records,
            failures,
            error: "the audit writer panicked or was cancelled".into(),
        }
    }

    fn written(&mut self) {
        self.records.clear();
    }

    fn failed(&mut self, err: &DbError) {
        self.error = err.to_string();
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if self.records.is_empty() {
            return;
        }
        self.failures.fetch_add(self.records.len() as u64, Ordering::Relaxed);
        for rec in &self.records {
            tracing::error!(kind = rec.kind, outcome = rec.outcome, user = ?rec.user_id, error = %self.error, "audit write failed");
        }
    }
}

impl Auditor {
    /// A user's own events, newest first; `before`: an event id from the previous page.
    pub async fn list(&self, user_id: &str, before: Option<i64>, limit: i64) -> Result<Vec<AuditRecord>, DbError> {
        // The caller's own recent events are in the batch writer's queue until flushed.
        self.flush().await;
        self.store.list_audit(user_id, before, limit.clamp(1, 200)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(n: usize) -> Vec<AuditRecord> {
        let rec = AuditRecord {
            id: 0,
            user_id: Some("u".into()),
            kind: EventKind::CredentialRead.as_str().into(),
            provider: None,
            outcome: Outcome::Ok.as_str().into(),
            client_addr: None,
            detail: None,
            at: 1,
        };
        vec![rec; n]
    }

    #[tokio::test]
    async fn a_batch_lost_to_a_panicking_writer_is_counted_as_failed() {
        let failures = Arc::new(AtomicU64::new(0));
        let mut set = tokio::task::JoinSet::new();
        let pending = Pending::new(records(3), failures.clone());
        set.spawn(async move {
            let pending = pending;
            tokio::task::yield_now().await;
            if !pending.records.is_empty() {
                panic!("injected writer panic");
            }
        });
        let done = set.join_next().await.unwrap();
        assert!(done.as_ref().is_err_and(|e| e.is_panic()));
        log_join(done);
        assert_eq!(failures.load(Ordering::Relaxed), 3);

        // Written: nothing counted.
        let mut pending = Pending::new(records(2), failures.clone());
        pending.written();
        drop(pending);
        assert_eq!(failures.load(Ordering::Relaxed), 3);
    }
}
