//! Sends the outbox's events to the receiver: one instance at a time (a lease row, renewed per batch),
//! batch after batch of at most `batch` events (the head of each connection's queue, sent concurrently:
//! they belong to different connections), each signed at its attempt. A 2xx answer deletes the event;
//! anything else postpones it with exponential backoff, and an event still failing a day after it was
//! written is buried (kept, marked dead) so that its connection's later events go on.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

use super::signing::WebhookSecret;
use crate::clock::{SharedClock, millis_i64};
use crate::db::{PendingEvent, SharedStore};
use crate::metrics::WebhookCounters;

/// Where and how events are delivered.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// `TOKENKEEPER_WEBHOOK_URL`.
    pub url: url::Url,
    /// `TOKENKEEPER_WEBHOOK_SECRET`.
    pub secret: WebhookSecret,
    /// Events sent at once, and so the most held in memory (`TOKENKEEPER_WEBHOOK_BATCH`, default 32).
    pub batch: usize,
    /// One attempt's time limit (the outbound timeout).
    pub timeout: Duration,
    /// Give up on an event this long after it was written (24 hours).
    pub give_up_after: Duration,
}

/// The wait after the `n`th failed attempt (n from 1): 5 s, doubling, at most an hour.
pub fn backoff(n: i32) -> Duration {
    let doublings = u32::try_from(n.saturating_sub(1)).unwrap_or(0).min(10);
    Duration::from_secs(5 << doublings).min(Duration::from_secs(3600))
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    /// False when another instance held the deliverer's lease: this one sent nothing.
    pub held_lease: bool,
    pub delivered: u64,
    pub failed: u64,
    pub dead: u64,
    /// Batches read; none held more than `batch` events.
    pub batches: u64,
    /// The largest batch read.
    pub largest_batch: usize,
}

enum Attempt {
    Delivered,
    Failed(String),
}

#[derive(Clone)]
pub struct Deliverer {
    store: SharedStore,
    clock: SharedClock,
    http: reqwest::Client,
    settings: std::sync::Arc<DeliverySettings>,
    counters: WebhookCounters,
    /// This instance's name on the lease.
    holder: String,
}

/// How long a lease lasts without renewal: longer than a batch can take (every attempt of a batch is
/// bounded by the timeout, and they run at once).
fn lease_length(timeout: Duration) -> Duration {
    timeout * 3 + Duration::from_secs(30)
}

/// The lease is compared by every instance, each with its own service clock (tests move theirs by
/// hours): it is dated with the wall clock, like SQLite's refresh-lock leases.
fn wall_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, millis_i64)
}

impl Deliverer {
    pub fn new(store: SharedStore, clock: SharedClock, settings: DeliverySettings, counters: WebhookCounters) -> Self {
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("the webhook HTTP client builds");
        Self {
            store,
            clock,
            http,
            settings: std::sync::Arc::new(settings),
            counters,
            holder: format!("deliverer-{}", uuid::Uuid::new_v4().simple()),
        }
    }

    async fn take_lease(&self) -> bool {
        let now = wall_ms();
        let until = now + millis_i64(lease_length(self.settings.timeout));
        match self.store.take_deliverer_lease(&self.holder, now, until).await {
            Ok(held) => held,
            Err(e) => {
                tracing::warn!(error = %e, "webhooks: could not take the deliverer lease");
                false
            }
        }
    }

    /// Gives the lease up (at shutdown), so that another instance delivers at once.
    pub async fn release(&self) {
        if let Err(e) = self.store.release_deliverer_lease(&self.holder).await {
            tracing::warn!(error = %e, "webhooks: could not release the deliverer lease");
        }
    }

    /// Delivers what is due, batch after batch, until nothing is (or `stop` turns true); nothing when
    /// another instance holds the lease.
    pub async fn run_pass(&self, stop: &watch::Receiver<bool>) -> DeliveryReport {
        let mut report = DeliveryReport::default();
        while !*stop.borrow() && self.take_lease().await {
            report.held_lease = true;
            let limit = i64::try_from(self.settings.batch).unwrap_or(i64::MAX);
            let due = match self.store.due_events(self.clock.now_ms(), limit).await {
                Ok(due) if due.is_empty() => break,
                Ok(due) => due,
                Err(e) => {
                    tracing::warn!(error = %e, "webhooks: could not read the outbox");
                    break;
                }
            };
            report.batches += 1;
            report.largest_batch = report.largest_batch.max(due.len());
            let attempts = futures::future::join_all(due.iter().map(|e| self.attempt(e))).await;
            for (event, attempt) in due.iter().zip(attempts) {
                if let Err(e) = self.record(event, attempt, &mut report).await {
                    tracing::warn!(error = %e, "webhooks: could not record a delivery; it will be sent again");
                    return report;
                }
            }
        }
        report
    }

    /// One POST of `event`, signed now.
    async fn attempt(&self, event: &PendingEvent) -> Attempt {
        let timestamp = wall_ms() / 1000;
        let signature = self
            .settings
            .secret
            .sign(&event.event_id, timestamp, event.body.as_bytes());
        let sent = self
            .http
            .post(self.settings.url.clone())
            .header("content-type", "application/json")
            .header("webhook-id", &event.event_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(event.body.clone())
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => Attempt::Delivered,
            Ok(r) => Attempt::Failed(format!("http_{}", r.status().as_u16())),
            Err(e) if e.is_timeout() => Attempt::Failed("timeout".into()),
            Err(_) => Attempt::Failed("unreachable".into()),
        }
    }

    async fn record(
        &self,
        event: &PendingEvent,
        attempt: Attempt,
        report: &mut DeliveryReport,
    ) -> Result<(), crate::db::DbError> {
        let now = self.clock.now_ms();
        match attempt {
            Attempt::Delivered => {
                self.store.event_delivered(event.id).await?;
                self.counters.delivered();
                report.delivered += 1;
            }
            Attempt::Failed(reason) => {
                self.counters.failed();
                report.failed += 1;
                let age = now.saturating_sub(event.created_at);
                if age >= millis_i64(self.settings.give_up_after) {
                    tracing::error!(
                        event = event.event_id,
                        reason,
                        "webhooks: gave up on an event after a day of failures"
                    );
                    self.store.event_dead(event.id, now, &reason).await?;
                    self.counters.dead();
                    report.dead += 1;
                } else {
                    let next = now + millis_i64(backoff(event.attempts.saturating_add(1)));
                    tracing::warn!(
                        event = event.event_id,
                        reason,
                        attempts = event.attempts + 1,
                        "webhooks: delivery failed"
                    );
                    self.store.event_failed(event.id, next, &reason).await?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_five_seconds_to_an_hour() {
        let secs: Vec<u64> = (1..=12).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(secs, [5, 10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600, 3600]);
        assert_eq!(backoff(0).as_secs(), 5);
        assert_eq!(backoff(i32::MAX).as_secs(), 3600);
    }
}
