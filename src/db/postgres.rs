//! PostgreSQL: the production backend, shared by several instances.

use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};

use super::common::{
    audit_columns, audit_from_row, connection_columns, connection_from_row, impl_store, user_columns, user_from_row,
    written_with_events,
};
use super::connect::impl_connect_store;
use super::import::impl_import_store;
use super::orgs::impl_org_store;
use super::{AuditRecord, Backend, Connection, DbError, NewSession, User};

/// The `LISTEN/NOTIFY` channel on which changed credentials are announced (by a trigger on `connections`).
const CHANNEL: &str = "tokenkeeper_cache";
/// The channel on which changed sessions, users and memberships are announced (by triggers on them).
const IDENTITY_CHANNEL: &str = "tokenkeeper_identity";

pub struct PgStore {
    pool: PgPool,
    /// Connections that only hold the advisory half of refresh locks. A lock is held for a whole
    /// refresh while the work under it uses `pool`; sharing one pool would let lock holders starve their
    /// own work (deadlock once every connection holds a lock and waits for a second one).
    lock_pool: PgPool,
    /// Signalled after this store releases a refresh lock, so that its own waiters retry at once
    /// instead of at their next poll.
    released: std::sync::Arc<tokio::sync::Notify>,
    /// Held while reserving rate-limit attempts; see `reserve_attempts`.
    reserving: tokio::sync::Mutex<()>,
    url: String,
}

impl PgStore {
    pub async fn connect(url: &str) -> Result<Self, DbError> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(5))
            .connect(url)
            .await?;
        let lock_pool = PgPoolOptions::new()
            .max_connections(32)
            .acquire_timeout(Duration::from_secs(60))
            .connect_lazy(url)?;
        Ok(Self {
            pool,
            lock_pool,
            released: std::sync::Arc::new(tokio::sync::Notify::new()),
            reserving: tokio::sync::Mutex::new(()),
            url: url.to_string(),
        })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The audit prune's lock, held by the session of `conn` (so a crashed holder's lock goes with its
    /// connection); false when another instance holds it.
    async fn try_prune_lock(&self, conn: &mut sqlx::pool::PoolConnection<sqlx::Postgres>) -> Result<bool, DbError> {
        Ok(sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(super::lock_key(super::AUDIT_PRUNE_LOCK))
            .fetch_one(&mut **conn)
            .await?)
    }

    async fn prune_unlock(&self, conn: &mut sqlx::pool::PoolConnection<sqlx::Postgres>) {
        let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(super::lock_key(super::AUDIT_PRUNE_LOCK))
            .execute(&mut **conn)
            .await;
        if let Err(e) = unlocked {
            // The connection must not go back to the pool holding the lock: closing it releases it.
            tracing::warn!(error = %e, "could not release the audit prune lock; closing its connection");
            conn.close_on_drop();
        }
    }

    /// The transaction in which rate-limit attempts are reserved (`Store::reserve_attempts`), and what
    /// must be held until it ends. Ids come from a sequence when a row is inserted, not when it commits:
    /// advisory locks on every key, taken in one (sorted) order and held to commit, make id order the
    /// commit order on each key and one order across keys. One reservation at a time per instance:
    /// waiting for a lock holds a pool connection, and a burst of logins from one address must not take
    /// every connection from the requests that need them (across instances, each holds at most one).
    async fn begin_reservation(
        &self,
        keys: &[String],
    ) -> Result<
        (
            tokio::sync::MutexGuard<'_, ()>,
            sqlx::Transaction<'static, sqlx::Postgres>,
        ),
        DbError,
    > {
        let one_at_a_time = self.reserving.lock().await;
        let mut tx = self.pool.begin().await?;
        let mut sorted: Vec<&String> = keys.iter().collect();
        sorted.sort();
        sorted.dedup();
        for key in sorted {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(super::lock_key(&format!("rate-limit:{key}")))
                .execute(&mut *tx)
                .await?;
        }
        Ok((one_at_a_time, tx))
    }
}

/// The payloads announced on `channel`, through a connection of its own (outside the pools: it is held for
/// as long as the process runs); [`super::CHANGED_ALL`] whenever some may have been missed.
async fn listen(url: &str, channel: &'static str) -> Result<super::ChangeFeed, DbError> {
    let mut listener = sqlx::postgres::PgListener::connect(url).await?;
    listener.listen(channel).await?;
    let (tx, rx) = tokio::sync::mpsc::channel(1024);
    tokio::spawn(async move {
        loop {
            // `try_recv` yields `None` after a lost connection, once it has connected and listened
            // again: notifications may have been missed meanwhile, so everything counts as changed.
            let key = match listener.try_recv().await {
                Ok(Some(n)) => n.payload().to_string(),
                Ok(None) => super::CHANGED_ALL.to_string(),
                Err(e) => {
                    // Reconnecting failed: listen again before dropping everything, so that no
                    // change falls between the drop and the moment notifications arrive again.
                    tracing::warn!(error = %e, channel, "invalidation listener failed; retrying");
                    loop {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        match listener.listen(channel).await {
                            Ok(()) => break,
                            Err(e) => tracing::warn!(error = %e, channel, "invalidation listener: still down"),
                        }
                    }
                    super::CHANGED_ALL.to_string()
                }
            };
            if tx.send(key).await.is_err() {
                break;
            }
        }
    });
    Ok(super::ChangeFeed::Announced(rx))
}

/// The claim of `claim_due` ($1 the lease's end, $2 now, $3 the batch size; times in whole seconds, as
/// `next_refresh_at` is kept). SKIP LOCKED: instances claiming at the same moment take disjoint rows. A
/// credential that needs re-authorization is never claimed, whatever its `next_refresh_at` says: only a
/// new credential from its user can help it. Public for the refresh-pass bench, which shows its plan.
pub const CLAIM_DUE_SQL: &str = "UPDATE connections c SET next_refresh_at = $1 FROM (SELECT org_id, provider, name \
     FROM connections WHERE next_refresh_at <= $2 AND status <> 'needs_reauth' ORDER BY next_refresh_at \
     LIMIT $3 FOR UPDATE SKIP LOCKED) due \
     WHERE c.org_id = due.org_id AND c.provider = due.provider AND c.name = due.name \
     RETURNING c.org_id, c.provider, c.name";

/// A lock name as `refresh_locks.key`: PostgreSQL text cannot hold the NUL of `{org}\0{provider}`, so NUL
/// becomes `\0` and a backslash `\\` (an escape, so two names never share a key).
fn lease_key(key: &str) -> String {
    key.replace('\\', "\\\\").replace('\0', "\\0")
}

/// [`CLAIM_DUE_SQL`] for checks: `next_check_at`, and every status but `needs_reauth`.
const CLAIM_DUE_CHECKS_SQL: &str = "UPDATE connections c SET next_check_at = $1 FROM (SELECT org_id, provider, \
     name FROM connections WHERE next_check_at <= $2 AND status <> 'needs_reauth' ORDER BY next_check_at \
     LIMIT $3 FOR UPDATE SKIP LOCKED) due \
     WHERE c.org_id = due.org_id AND c.provider = due.provider AND c.name = due.name \
     RETURNING c.org_id, c.provider, c.name";

impl_store!(PgStore, {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    async fn migrate(&self) -> Result<(), DbError> {
        sqlx::migrate!("./migrations/postgres").run(&self.pool).await?;
        Ok(())
    }

    async fn insert_audit_batch(&self, events: &[AuditRecord]) -> Result<(), DbError> {
        if events.is_empty() {
            return Ok(());
        }
        // One array per column: the same statement text for any batch size, so it is parsed and
        // planned once per connection (a multi-row VALUES list is a new statement for every size).
        fn col<'a>(events: &'a [AuditRecord], f: impl Fn(&'a AuditRecord) -> Option<&'a str>) -> Vec<Option<&'a str>> {
            events.iter().map(f).collect()
        }
        sqlx::query(
            "INSERT INTO audit_events (user_id, kind, provider, outcome, client_addr, detail, at, count, read_key, org_id, \
             connection_name) SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], \
             $6::text[], $7::int8[], $8::int8[], $9::text[], $10::text[], $11::text[]) \
             ON CONFLICT (read_key) WHERE read_key IS NOT NULL DO UPDATE SET count = audit_events.count + excluded.count",
        )
        .bind(col(events, |e| e.user_id.as_deref()))
        .bind(col(events, |e| Some(e.kind.as_str())))
        .bind(col(events, |e| e.provider.as_deref()))
        .bind(col(events, |e| Some(e.outcome.as_str())))
        .bind(col(events, |e| e.client_addr.as_deref()))
        .bind(col(events, |e| e.detail.as_deref()))
        .bind(events.iter().map(|e| e.at).collect::<Vec<i64>>())
        .bind(events.iter().map(|e| e.count).collect::<Vec<i64>>())
        .bind(col(events, |e| e.read_key.as_deref()))
        .bind(col(events, |e| e.org_id.as_deref()))
        .bind(col(events, |e| e.connection.as_deref()))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn notify_changed(&self, _key: &str) -> Result<Option<u64>, DbError> {
        // Nothing to do: a trigger on `connections` announces every change in the transaction that makes
        // it (migrations/postgres/0002_announce_connection_changes.sql).
        Ok(None)
    }

    async fn subscribe_changes(&self) -> Result<super::ChangeFeed, DbError> {
        listen(&self.url, CHANNEL).await
    }

    async fn notify_identity_changed(&self) -> Result<Option<u64>, DbError> {
        // Nothing to do: triggers on users, sessions and memberships announce every change in its
        // transaction (migrations/postgres/0008_announce_identity_changes.sql).
        Ok(None)
    }

    async fn subscribe_identity_changes(&self) -> Result<super::ChangeFeed, DbError> {
        listen(&self.url, IDENTITY_CHANNEL).await
    }

    async fn refresh_lock(&self, key: &str) -> Result<super::RefreshLock, DbError> {
        // First the transaction-scoped advisory lock, which is all that earlier versions take: instances
        // of both may run side by side during an upgrade. It ends with its backend connection, though,
        // even while its holder is still at the provider, so the lease row (the `lease` module) is what
        // excludes the holders of this version. Always in this order, so two takers never wait on each
        // other's half.
        let mut tx = self.lock_pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(super::lock_key(key))
            .execute(&mut *tx)
            .await?;
        // The transaction ends just after the lease's row is deleted, so that a taker of this version
        // that gets the advisory lock next finds the row gone.
        super::lease::acquire(&self.pool, &self.released, &lease_key(key), tx).await
    }

    async fn claim_due(
        &self,
        now: crate::clock::Timestamp,
        lease_until: crate::clock::Timestamp,
        limit: i64,
    ) -> Result<Vec<super::DueConnection>, DbError> {
        let rows: Vec<super::DueConnection> = sqlx::query_as(CLAIM_DUE_SQL)
            .bind(lease_until.as_secs())
            .bind(now.as_secs())
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows)
    }

    async fn claim_due_checks(
        &self,
        now: crate::clock::Timestamp,
        lease_until: crate::clock::Timestamp,
        limit: i64,
    ) -> Result<Vec<super::DueConnection>, DbError> {
        let rows: Vec<super::DueConnection> = sqlx::query_as(CLAIM_DUE_CHECKS_SQL)
            .bind(lease_until.as_secs())
            .bind(now.as_secs())
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows)
    }
});

impl_org_store!(PgStore);
impl_import_store!(PgStore);
super::outbox::impl_outbox_store!(PgStore);
impl_connect_store!(PgStore);
super::onboarding::impl_onboarding_store!(PgStore);
