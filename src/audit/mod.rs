//! The audit trail: who did what, when, from where, with what outcome. Never a secret value.
//!
//! A failed audit write is logged and counted, never silently dropped, and never fails a read.
//! Credential reads are aggregated per connection, caller and minute by default ([`reads`]); events
//! older than the retention are pruned in bounded batches ([`Auditor::prune`]).

mod reads;
mod sink;
mod writer;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::clock::SharedClock;
use crate::config::{AuditSettings, ReadAudit};
use crate::db::{AuditOwner, AuditRecord, DbError, PruneReport, SharedStore};
use reads::ReadCounts;
pub use sink::AuditError;
use sink::{Line, Sink};
use writer::Queued;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Register,
    Login,
    ChangePassword,
    CredentialStore,
    CredentialRead,
    CredentialRefresh,
    CredentialCheck,
    CredentialDelete,
    /// A credential obtained by a connect flow (stored like `credential_store`).
    CredentialConnect,
    /// An AWS onboarding: the external id of a connection's role issued (or given again).
    CredentialOnboard,
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
            Self::CredentialCheck => "credential_check",
            Self::CredentialDelete => "credential_delete",
            Self::CredentialConnect => "credential_connect",
            Self::CredentialOnboard => "credential_onboard",
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
    /// The org the event acted in; `None` outside any org (registration, login, passwords).
    pub org_id: Option<&'a str>,
    pub kind: EventKind,
    pub provider: Option<&'a str>,
    /// The name of the connection acted on (`default` unless named); `None` for events about none.
    pub connection: Option<&'a str>,
    pub outcome: Outcome,
    pub client_addr: Option<&'a str>,
    pub detail: Option<&'a str>,
}

/// Records events through a background writer that inserts them in batches (one transaction per
/// batch), so a busy read path does not wait for a commit per request. The queue is bounded: when it is
/// full, callers wait (back-pressure), nothing is dropped. [`Auditor::flush`] waits until everything
/// recorded so far is in the database. Credential reads are counted per group and minute
/// ([`reads`]) unless every read is to be kept.
#[derive(Clone)]
pub struct Auditor {
    store: SharedStore,
    clock: SharedClock,
    failures: Arc<AtomicU64>,
    queue: tokio::sync::mpsc::Sender<Queued>,
    /// `Some` when reads are aggregated.
    reads: Option<Arc<ReadCounts>>,
    /// `Some` with `TOKENKEEPER_AUDIT_LOG`.
    sink: Option<Arc<Sink>>,
    retention_days: u32,
    prune_batch: u32,
}

/// Batches being written at once on PostgreSQL (it commits them together). SQLite has one writer at a
/// time: more would only hold pooled connections while they wait for its lock.
const PG_WRITERS: usize = 4;
/// How often aggregated read counts are queued for writing (besides flushes and shutdown).
const FLUSH_READS_EVERY: std::time::Duration = std::time::Duration::from_secs(5);
const DAY_MS: i64 = 24 * 3600 * 1000;

impl Auditor {
    /// Opens the sink if there is one, starts the writer task, and with aggregated reads the task that
    /// queues their counts every few seconds (on the current Tokio runtime). Fails when the sink's file
    /// cannot be opened and the sink fails closed.
    pub fn new(store: SharedStore, clock: SharedClock, settings: &AuditSettings) -> std::io::Result<Self> {
        let sink = match &settings.log {
            Some(target) => Some(Arc::new(Sink::open(target.clone(), settings.fail_open)?)),
            None => None,
        };
        let (queue, rx) = tokio::sync::mpsc::channel(8192);
        let failures = Arc::new(AtomicU64::new(0));
        let writers = match store.backend() {
            crate::db::Backend::Postgres => PG_WRITERS,
            crate::db::Backend::Sqlite => 1,
        };
        tokio::spawn(writer::write_batches(store.clone(), failures.clone(), rx, writers));
        let reads = (settings.reads == ReadAudit::Aggregate).then(|| Arc::new(ReadCounts::default()));
        if let Some(reads) = &reads {
            tokio::spawn(flush_reads_every(reads.clone(), clock.clone(), queue.downgrade()));
        }
        Ok(Self {
            store,
            clock,
            failures,
            queue,
            reads,
            sink,
            retention_days: settings.retention_days,
            prune_batch: settings.prune_batch,
        })
    }

    /// The sink's file is opened again at the next event (SIGHUP, after the file was rotated).
    pub fn reopen_log(&self) {
        if let Some(sink) = &self.sink {
            sink.reopen();
        }
    }

    /// The sink's target, if there is one (so that the binary prints nothing else to stdout).
    pub fn logs_to_stdout(&self) -> bool {
        self.sink.as_ref().is_some_and(|s| s.is_stdout())
    }

    /// Writes the event to the sink, if there is one, and queues it for the database (a credential read,
    /// when reads are aggregated, is counted in its group). A failed database write never fails the
    /// caller (the writer logs and counts it); a sink that cannot be written and fails closed does, with
    /// [`AuditError::Unavailable`], after the event was queued for the database all the same.
    #[tracing::instrument(level = "debug", skip_all, fields(kind = e.kind.as_str(), outcome = e.outcome.as_str(), user = e.user_id))]
    pub async fn record(&self, e: Event<'_>) -> Result<(), AuditError> {
        let at = self.clock.now_ms();
        let logged = match &self.sink {
            Some(sink) => sink.write(
                &Line {
                    time: crate::clock::rfc3339(at),
                    event: e.kind.as_str(),
                    outcome: e.outcome.as_str(),
                    user: e.user_id,
                    provider: e.provider,
                    connection: e.connection,
                    address: e.client_addr,
                    detail: e.detail,
                },
                at,
            ),
            None => Ok(()),
        };
        let rec = AuditRecord {
            id: 0,
            user_id: e.user_id.map(str::to_string),
            org_id: e.org_id.map(str::to_string),
            kind: e.kind.as_str().to_string(),
            provider: e.provider.map(str::to_string),
            connection: e.connection.map(str::to_string),
            outcome: e.outcome.as_str().to_string(),
            client_addr: e.client_addr.map(str::to_string),
            detail: e.detail.map(str::to_string),
            at,
            count: 1,
            read_key: None,
        };
        let rec = match (&self.reads, e.kind) {
            (Some(reads), EventKind::CredentialRead) => reads.count(rec),
            _ => Some(rec),
        };
        if let Some(rec) = rec {
            self.queue_record(rec).await;
        }
        logged
    }

    async fn queue_record(&self, rec: AuditRecord) {
        if let Err(lost) = self.queue.send(Queued::Event(rec)).await {
            // Only when the writer is gone (runtime shutting down): write it here rather than lose it.
            if let Queued::Event(rec) = lost.0 {
                self.write_one(&rec).await;
            }
        }
    }

    /// Waits until every event recorded before this call is written (or has failed and been logged),
    /// aggregated read counts included.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn flush(&self) {
        if let Some(reads) = &self.reads {
            for rec in reads.drain(self.clock.now_ms()) {
                self.queue_record(rec).await;
            }
        }
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

    /// Deletes the events older than the retention (by the clock), in bounded batches; `None` when
    /// another instance is pruning.
    pub async fn prune(&self) -> Result<Option<PruneReport>, DbError> {
        let before = self.clock.now_ms() - i64::from(self.retention_days) * DAY_MS;
        self.store.prune_audit(before, i64::from(self.prune_batch)).await
    }
}

/// Queues the aggregated read counts every [`FLUSH_READS_EVERY`] until the auditor is gone.
async fn flush_reads_every(reads: Arc<ReadCounts>, clock: SharedClock, queue: tokio::sync::mpsc::WeakSender<Queued>) {
    let mut tick = tokio::time::interval(FLUSH_READS_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(queue) = queue.upgrade() else { return };
        for rec in reads.drain(clock.now_ms()) {
            if queue.send(Queued::Event(rec)).await.is_err() {
                return;
            }
        }
    }
}

impl Auditor {
    /// A user's own events, or an org's, newest first; `before`: an event id from the previous page.
    #[tracing::instrument(level = "debug", skip_all, fields(owner = ?owner))]
    pub async fn list(
        &self,
        owner: AuditOwner<'_>,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<AuditRecord>, DbError> {
        // The caller's own recent events are in the batch writer's queue until flushed.
        self.flush().await;
        self.store.list_audit(owner, before, limit.clamp(1, 200)).await
    }
}
