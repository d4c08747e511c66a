//! Refresh locks as leases: one row per credential being refreshed in `refresh_locks`, for both backends.
//!
//! Taking the lock is one atomic upsert that succeeds only if the row is absent or its lease ran out;
//! releasing it deletes the row; the holder renews the lease while it holds it. Holding it holds no
//! database connection, so holders cannot starve the pool their refresh needs.
//!
//! Why a row and not a lock of the database's own:
//! - SQLite has no advisory locks, and a transaction cannot serve either: an open write transaction
//!   would block every other writer of the file for the whole refresh (which calls the provider and the
//!   secret store), and a read transaction excludes nothing.
//! - PostgreSQL's advisory locks belong to a backend connection. When that backend goes away under a
//!   live holder (`pg_terminate_backend`, a restart, a failover, a proxy dropping idle connections), the
//!   lock is released while the holder is still at the provider with the old single-use refresh token:
//!   another instance took the lock, read the same token and spent it too, and the provider revoked the
//!   grant. A lease row survives the loss of any connection; only its expiry ends it.
//!
//! The price of a lease: a holder that vanished (killed, or its runtime shut down before the release ran)
//! blocks the credential until its lease runs out, after which the next taker overwrites its row. What is
//! left open: a holder that cannot reach the database for a whole lease while another instance can, and
//! is at the provider all that time, may overlap with the next holder (docs/REFRESH.md).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rand::Rng as _;
use sqlx::postgres::PgPool;
use sqlx::sqlite::SqlitePool;
use tokio::sync::{Notify, oneshot};

use crate::db::{DbError, RefreshLock};

/// A waiter gives up with an error after this long rather than hang. Longer than either lease, so a
/// vanished holder is always outlived; a live holder this slow is stuck.
const WAIT_AT_MOST: Duration = Duration::from_secs(45);
/// The polling interval while another process holds the lock, drawn at random so that waiters do not
/// poll in step. (A release by this store wakes its own waiters at once.)
const POLL_MS: std::ops::RangeInclusive<u64> = 25..=50;
/// The next renewal (or release) after a failed one.
const RETRY: Duration = Duration::from_secs(1);

/// A backend's `refresh_locks` table: the three statements, and the lease's timing.
#[async_trait]
pub(super) trait LeaseTable: Clone + Send + Sync + 'static {
    /// How long a lease lasts unless renewed: the longest a vanished holder blocks the credential.
    const LEASE: Duration;
    /// How often a live holder renews: a third of the lease, so that one slow or failed renewal does not
    /// let the lease run out.
    const RENEW_EVERY: Duration;
    /// Takes `key` for `holder` if the row is absent or its lease ran out.
    async fn try_take(&self, key: &str, holder: &str) -> Result<bool, DbError>;
    /// Extends `holder`'s lease; false when the row is no longer its own (taken over).
    async fn renew(&self, key: &str, holder: &str) -> Result<bool, DbError>;
    /// Deletes `holder`'s row (never a later holder's).
    async fn release(&self, key: &str, holder: &str) -> Result<(), DbError>;
}

/// Takes the lock of `key` in `table`, waiting while another holder's lease lasts, and starts the task
/// that renews and finally releases it. `released` is signalled after each release by this store; `then`
/// (another lock held with this one) is dropped just after the release.
pub(super) async fn acquire<T: LeaseTable>(
    table: &T,
    released: &Arc<Notify>,
    key: &str,
    then: impl Send + 'static,
) -> Result<RefreshLock, DbError> {
    // A new id per acquisition: a release or renewal touches only the row this acquisition wrote, never a
    // later holder's after a takeover.
    let holder = uuid::Uuid::new_v4().to_string();
    let deadline = tokio::time::Instant::now() + WAIT_AT_MOST;
    loop {
        // Registered before the attempt, so that a release between the attempt and the wait still wakes it.
        let notified = released.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if table.try_take(key, &holder).await? {
            break;
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            tracing::warn!(key = ?key, waited_secs = WAIT_AT_MOST.as_secs(), "refresh lock: still held, giving up");
            return Err(DbError::Sql(sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "timed out after {} s waiting for a refresh lock held by another process",
                    WAIT_AT_MOST.as_secs()
                ),
            ))));
        }
        let poll = Duration::from_millis(rand::thread_rng().gen_range(POLL_MS));
        tokio::select! {
            () = &mut notified => {}
            () = tokio::time::sleep_until((now + poll).min(deadline)) => {}
        }
    }
    let (release, release_rx) = oneshot::channel();
    tokio::spawn(hold(
        table.clone(),
        released.clone(),
        key.to_owned(),
        holder,
        release_rx,
        then,
    ));
    Ok(RefreshLock::holding(LeaseGuard { _release: release }))
}

/// A held refresh lock. Dropping it (which cannot wait for SQL) closes the channel to its `hold` task,
/// already running on the runtime that took the lock, and that task deletes the row. If that runtime is
/// gone, so is the task, and the lease simply runs out.
struct LeaseGuard {
    _release: oneshot::Sender<()>,
}

/// Renews the lease of (`key`, `holder`) until the guard drops, then releases it.
async fn hold<T: LeaseTable>(
    table: T,
    released: Arc<Notify>,
    key: String,
    holder: String,
    mut release: oneshot::Receiver<()>,
    then: impl Send,
) {
    let mut wait = T::RENEW_EVERY;
    loop {
        tokio::select! {
            _ = &mut release => break,
            () = tokio::time::sleep(wait) => {}
        }
        match table.renew(&key, &holder).await {
            Ok(true) => wait = T::RENEW_EVERY,
            Ok(false) => {
                // Expired and taken over (this process could not renew for a whole lease): nothing is
                // left to renew or release, and the refresh under it is no longer exclusive.
                tracing::warn!(key = ?key, "refresh lock: lease lost to another process before release");
                return;
            }
            Err(e) => {
                tracing::warn!(key = ?key, error = %e, "refresh lock: lease renewal failed; retrying");
                wait = RETRY;
            }
        }
    }
    // Retried while the lease could still be alive: a row left behind blocks the credential until it ends.
    let give_up = tokio::time::Instant::now() + T::LEASE;
    while let Err(e) = table.release(&key, &holder).await {
        if tokio::time::Instant::now() + RETRY >= give_up {
            tracing::warn!(key = ?key, error = %e, "refresh lock: release failed; the lease will run out");
            break;
        }
        tokio::time::sleep(RETRY).await;
    }
    drop(then);
    released.notify_waiters();
}

const RELEASE_SQL: &str = "DELETE FROM refresh_locks WHERE key = $1 AND holder = $2";

/// `impl LeaseTable` for a pool, given its SQL for "now in epoch milliseconds" (the lease's clock, read by
/// the database so that every taker reads the same one) and its timing.
macro_rules! lease_table {
    ($pool:ty, $now_ms:literal, lease: $lease:expr, renew_every: $renew:expr) => {
        #[async_trait]
        impl LeaseTable for $pool {
            const LEASE: Duration = $lease;
            const RENEW_EVERY: Duration = $renew;

            async fn try_take(&self, key: &str, holder: &str) -> Result<bool, DbError> {
                // `rows_affected` is 0 when the conflict clause's WHERE kept a live lease. One statement, so
                // atomic across takers.
                let res = sqlx::query(concat!(
                    "INSERT INTO refresh_locks (key, holder, until_ms) VALUES ($1, $2, ",
                    $now_ms,
                    " + $3) ON CONFLICT (key) DO UPDATE SET holder = excluded.holder, \
                     until_ms = excluded.until_ms WHERE refresh_locks.until_ms < ",
                    $now_ms
                ))
                .bind(key)
                .bind(holder)
                .bind(crate::clock::millis_i64(Self::LEASE))
                .execute(self)
                .await?;
                Ok(res.rows_affected() == 1)
            }

            async fn renew(&self, key: &str, holder: &str) -> Result<bool, DbError> {
                let res = sqlx::query(concat!(
                    "UPDATE refresh_locks SET until_ms = ",
                    $now_ms,
                    " + $1 WHERE key = $2 AND holder = $3"
                ))
                .bind(crate::clock::millis_i64(Self::LEASE))
                .bind(key)
                .bind(holder)
                .execute(self)
                .await?;
                Ok(res.rows_affected() == 1)
            }

            async fn release(&self, key: &str, holder: &str) -> Result<(), DbError> {
                sqlx::query(RELEASE_SQL)
                    .bind(key)
                    .bind(holder)
                    .execute(self)
                    .await?;
                Ok(())
            }
        }
    };
}

// SQLite: the processes sharing the file share a host, and SQLite's `'now'` is its wall clock (never the
// service `Clock`, which tests move by hours). A long lease: a renewal is a write, which can wait up to the
// 10 s busy timeout.
lease_table!(
    SqlitePool,
    "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)",
    lease: Duration::from_secs(30),
    renew_every: Duration::from_secs(10)
);

// PostgreSQL: the database server's clock, so that instances on several hosts compare leases by one clock.
// A short lease, so that an instance killed while holding one blocks that credential on the others for
// seconds (the request time limit is 30 s by default), not for half a minute.
lease_table!(
    PgPool,
    "(extract(epoch FROM clock_timestamp()) * 1000)::bigint",
    lease: Duration::from_secs(10),
    renew_every: Duration::from_secs(3)
);
