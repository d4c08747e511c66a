//! The batching writer behind [`super::Auditor`]: one statement and transaction per batch of queued
//! events, several batches in flight on PostgreSQL; failed writes logged and counted.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::db::{AuditRecord, DbError, SharedStore};

// Nearly every message is an event: boxing it would cost an allocation per event to save bytes on the
// rare flush.
#[allow(clippy::large_enum_variant)]
pub(super) enum Queued {
    Event(AuditRecord),
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// Events written per transaction at most.
const BATCH: usize = 1024;
/// How long a busy writer waits to fill a batch.
const GATHER: std::time::Duration = std::time::Duration::from_millis(5);

pub(super) async fn write_batches(
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
            let mut pending = Pending::new(merge_read_groups(batch), failures.clone());
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

/// A batch's aggregated reads (rows with a `read_key`) merged per key, counts added: one statement may
/// not upsert a row twice (PostgreSQL). The groups take the places of their first rows in key order, so
/// that batches in flight together lock shared group rows in one order (no deadlock between them) while
/// every event keeps its place among the others.
fn merge_read_groups(batch: Vec<AuditRecord>) -> Vec<AuditRecord> {
    if batch.iter().all(|r| r.read_key.is_none()) {
        return batch;
    }
    let mut out: Vec<Option<AuditRecord>> = Vec::with_capacity(batch.len());
    let mut slots = Vec::new();
    let mut groups: HashMap<String, AuditRecord> = HashMap::new();
    for rec in batch {
        let Some(key) = &rec.read_key else {
            out.push(Some(rec));
            continue;
        };
        match groups.get_mut(key) {
            Some(seen) => {
                seen.count += rec.count;
                seen.at = seen.at.min(rec.at);
            }
            None => {
                slots.push(out.len());
                out.push(None);
                groups.insert(key.clone(), rec);
            }
        }
    }
    let mut grouped: Vec<AuditRecord> = groups.into_values().collect();
    grouped.sort_by(|a, b| a.read_key.cmp(&b.read_key));
    for (slot, rec) in slots.into_iter().zip(grouped) {
        out[slot] = Some(rec);
    }
    out.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{EventKind, Outcome};

    fn records(n: usize) -> Vec<AuditRecord> {
        let rec = AuditRecord {
            id: 0,
            user_id: Some("u".into()),
            org_id: None,
            kind: EventKind::CredentialRead.as_str().into(),
            provider: None,
            connection: None,
            outcome: Outcome::Ok.as_str().into(),
            client_addr: None,
            detail: None,
            at: 1,
            count: 1,
            read_key: None,
        };
        vec![rec; n]
    }

    #[test]
    fn read_groups_are_merged_in_key_order_in_their_places() {
        let keyed = |key: &str, count: i64, at: i64| AuditRecord {
            read_key: Some(key.into()),
            count,
            at,
            ..records(1).remove(0)
        };
        let mut login = records(1).remove(0);
        login.kind = EventKind::Login.as_str().into();
        login.outcome = Outcome::Failed.as_str().into();
        let batch = vec![keyed("b", 1, 5), login, keyed("a", 1, 7), keyed("b", 4, 3)];
        let merged = merge_read_groups(batch);
        let got: Vec<(Option<&str>, i64, i64)> =
            merged.iter().map(|r| (r.read_key.as_deref(), r.count, r.at)).collect();
        assert_eq!(got, vec![(Some("a"), 1, 7), (None, 1, 1), (Some("b"), 5, 3)]);
        assert_eq!(merged[1].kind, "login");
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
