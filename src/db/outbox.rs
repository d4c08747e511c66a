//! The change-event outbox in SQL: the [`OutboxStore`] part of every store, one text for both backends
//! (stamped into each by [`impl_outbox_store`]). Events are inserted by the connection writes of
//! `common.rs`, in the transaction of the change ([`insert_events`]); the deliverer reads the head of each
//! connection's queue, and deletes, postpones or buries what it tried.

use async_trait::async_trait;

use super::DbError;

/// An event to write beside a connection change. Its body is final: it is signed and sent as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// `msg_...`: the `webhook-id` every attempt carries (receivers deduplicate on it).
    pub event_id: String,
    /// The connection it is about: events of one stream are delivered in order.
    pub stream: String,
    pub kind: &'static str,
    pub body: String,
    /// Milliseconds since the epoch.
    pub created_at: i64,
}

/// An event waiting for delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingEvent {
    pub id: i64,
    pub event_id: String,
    pub stream: String,
    pub body: String,
    /// Failed attempts so far.
    pub attempts: i32,
    pub created_at: i64,
}

#[async_trait]
pub trait OutboxStore {
    /// Up to `limit` events due at `now` (ms), each the oldest undelivered event of its connection (so at
    /// most one per connection: the next one waits until this one is delivered or dead), oldest first.
    async fn due_events(&self, now: i64, limit: i64) -> Result<Vec<PendingEvent>, DbError>;
    /// Delivered: the row goes.
    async fn event_delivered(&self, id: i64) -> Result<(), DbError>;
    /// An attempt failed: counted, tried again at `next_attempt_at` (ms).
    async fn event_failed(&self, id: i64, next_attempt_at: i64, error: &str) -> Result<(), DbError>;
    /// Given up on (it kept failing too long): kept for inspection, no longer blocking its connection.
    async fn event_dead(&self, id: i64, at: i64, error: &str) -> Result<(), DbError>;
    /// `(waiting, dead)` events, for metrics.
    async fn outbox_counts(&self) -> Result<(i64, i64), DbError>;
    /// Takes (or renews) the deliverer's lease for `holder` until `until` (wall-clock ms), unless another
    /// holder's lease runs past `now`. True when `holder` holds it.
    async fn take_deliverer_lease(&self, holder: &str, now: i64, until: i64) -> Result<bool, DbError>;
    /// Gives the lease up (at shutdown), so that another instance takes over at once.
    async fn release_deliverer_lease(&self, holder: &str) -> Result<(), DbError>;
}

/// Inserts `events` in the transaction `tx` (a connection write's).
macro_rules! insert_events {
    ($tx:expr, $events:expr) => {
        for e in $events {
            sqlx::query(
                "INSERT INTO event_outbox (event_id, stream, kind, body, created_at, next_attempt_at) \
                 VALUES ($1, $2, $3, $4, $5, $5)",
            )
            .bind(&e.event_id)
            .bind(&e.stream)
            .bind(e.kind)
            .bind(&e.body)
            .bind(e.created_at)
            .execute(&mut *$tx)
            .await?;
        }
    };
}

macro_rules! impl_outbox_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::db::outbox::OutboxStore for $store {
            async fn due_events(&self, now: i64, limit: i64) -> Result<Vec<$crate::db::outbox::PendingEvent>, DbError> {
                let rows: Vec<(i64, String, String, String, i32, i64)> = sqlx::query_as(
                    "SELECT o.id, o.event_id, o.stream, o.body, o.attempts, o.created_at FROM event_outbox o \
                     WHERE o.dead_at IS NULL AND o.next_attempt_at <= $1 AND NOT EXISTS ( \
                       SELECT 1 FROM event_outbox p WHERE p.stream = o.stream AND p.dead_at IS NULL AND p.id < o.id) \
                     ORDER BY o.id LIMIT $2",
                )
                .bind(now)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|(id, event_id, stream, body, attempts, created_at)| $crate::db::outbox::PendingEvent {
                        id,
                        event_id,
                        stream,
                        body,
                        attempts,
                        created_at,
                    })
                    .collect())
            }

            async fn event_delivered(&self, id: i64) -> Result<(), DbError> {
                sqlx::query("DELETE FROM event_outbox WHERE id = $1").bind(id).execute(&self.pool).await?;
                Ok(())
            }

            async fn event_failed(&self, id: i64, next_attempt_at: i64, error: &str) -> Result<(), DbError> {
                sqlx::query(
                    "UPDATE event_outbox SET attempts = attempts + 1, next_attempt_at = $2, last_error = $3 WHERE id = $1",
                )
                .bind(id)
                .bind(next_attempt_at)
                .bind(error)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn event_dead(&self, id: i64, at: i64, error: &str) -> Result<(), DbError> {
                sqlx::query("UPDATE event_outbox SET attempts = attempts + 1, dead_at = $2, last_error = $3 WHERE id = $1")
                    .bind(id)
                    .bind(at)
                    .bind(error)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn outbox_counts(&self) -> Result<(i64, i64), DbError> {
                let (waiting, dead): (i64, i64) = sqlx::query_as(
                    "SELECT COUNT(*) - COUNT(dead_at), COUNT(dead_at) FROM event_outbox",
                )
                .fetch_one(&self.pool)
                .await?;
                Ok((waiting, dead))
            }

            async fn take_deliverer_lease(&self, holder: &str, now: i64, until: i64) -> Result<bool, DbError> {
                let r = sqlx::query(
                    "UPDATE event_deliverer SET holder = $1, lease_until = $3 \
                     WHERE id = 1 AND (holder = $1 OR holder IS NULL OR lease_until < $2)",
                )
                .bind(holder)
                .bind(now)
                .bind(until)
                .execute(&self.pool)
                .await?;
                Ok(r.rows_affected() == 1)
            }

            async fn release_deliverer_lease(&self, holder: &str) -> Result<(), DbError> {
                sqlx::query("UPDATE event_deliverer SET holder = NULL, lease_until = 0 WHERE id = 1 AND holder = $1")
                    .bind(holder)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }
        }
    };
}

pub(crate) use {impl_outbox_store, insert_events};
