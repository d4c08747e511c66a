//! SQLite refresh locks: leases in the `refresh_locks` table (migration 0002).
//!
//! SQLite has no advisory locks, and a transaction cannot serve either: an open write transaction
//! would block every other writer of the file for the whole refresh (which calls the provider and the
//! secret store), and a read transaction excludes nothing. So the lock is a row: taking it is one
//! atomic upsert that succeeds only if the row is absent or its lease ran out; releasing it deletes
//! the row. Holding it holds no connection, so holders cannot starve the pool their refresh needs.
//!
//! Leases are in wall-clock time (`SystemTime`), never the service `Clock`: they are compared across
//! processes, and tests move the service clock by hours. A holder renews its lease while it holds the
//! lock, so a refresh may take as long as it needs (the outbound timeout is configurable), while a
//! holder that vanished (killed, or its runtime shut down before the release ran) blocks the others
//! for one lease at most, after which the next taker overwrites its row.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::Rng as _;
use sqlx::sqlite::SqlitePool;
use tokio::sync::{Notify, oneshot};

use super::SqliteStore;
use crate::db::{DbError, RefreshLock};

/// How long a lease lasts unless renewed: the longest a vanished holder blocks the credential.
const LEASE: Duration = Duration::from_secs(30);
/// How often a live holder renews: a third of the lease, so that one slow or failed renewal (a write
/// can wait up to the 10 s busy timeout) does not let the lease run out.
const RENEW_EVERY: Duration = Duration::from_secs(10);
/// The next renewal after a failed one.
const RENEW_RETRY: Duration = Duration::from_secs(1);
/// A waiter gives up with an error after this long rather than hang. Longer than a lease, so a
/// vanished holder is always outlived; a live holder this slow is stuck.
const WAIT_AT_MOST: Duration = Duration::from_secs(45);
/// The polling interval while another process holds the lock, drawn at random so that waiters do not
/// poll in step. (A release by this store wakes its own waiters at once.)
const POLL_MS: std::ops::RangeInclusive<u64> = 25..=50;

/// Milliseconds since the Unix epoch, by the wall clock that every process on the host shares.
fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, crate::clock::millis_i64)
}

fn lease_ms() -> i64 {
    crate::clock::millis_i64(LEASE)
}

impl SqliteStore {
    /// Takes the lock of `key`, waiting while another holder's lease lasts, and starts the task that
    /// renews and finally releases it.
    pub(super) async fn acquire_refresh_lock(&self, key: &str) -> Result<RefreshLock, DbError> {
        // A new id per acquisition: a release or renewal touches only the row this acquisition wrote,
        // never a later holder's after a takeover.
        let holder = uuid::Uuid::new_v4().to_string();
        let deadline = tokio::time::Instant::now() + WAIT_AT_MOST;
        loop {
            // Registered before the attempt, so that a release between the attempt and the wait still wakes it.
            let released = self.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            if self.try_take_lease(key, &holder).await? {
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
                () = &mut released => {}
                () = tokio::time::sleep_until((now + poll).min(deadline)) => {}
            }
        }
        let (release, released_rx) = oneshot::channel();
        tokio::spawn(hold_lease(
            self.pool.clone(),
            self.released.clone(),
            key.to_owned(),
            holder,
            released_rx,
        ));
        Ok(RefreshLock::holding(LeaseGuard { _release: release }))
    }

    /// One attempt: the row is taken if absent or expired; `rows_affected` is 0 when the conflict
    /// clause's WHERE kept a live lease. One statement, so atomic across processes (one writer at a time).
    async fn try_take_lease(&self, key: &str, holder: &str) -> Result<bool, DbError> {
        let now = wall_ms();
        let res = sqlx::query(
            "INSERT INTO refresh_locks (key, holder, until_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (key) DO UPDATE SET holder = excluded.holder, until_ms = excluded.until_ms \
             WHERE refresh_locks.until_ms < $4",
        )
        .bind(key)
        .bind(holder)
        .bind(now + lease_ms())
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(res.rows_affected() == 1)
    }
}

/// A held refresh lock. Dropping it (which cannot wait for SQL) closes the channel to its `hold_lease`
/// task, already running on the runtime that took the lock, and that task deletes the row. If that
/// runtime is gone, so is the task, and the lease simply runs out.
struct LeaseGuard {
    _release: oneshot::Sender<()>,
}

/// Renews the lease of (`key`, `holder`) until the guard drops, then releases it.
async fn hold_lease(
    pool: SqlitePool,
    released: Arc<Notify>,
    key: String,
    holder: String,
    mut release: oneshot::Receiver<()>,
) {
    let mut wait = RENEW_EVERY;
    loop {
        tokio::select! {
            _ = &mut release => break,
            () = tokio::time::sleep(wait) => {}
        }
        let renewed = sqlx::query("UPDATE refresh_locks SET until_ms = $1 WHERE key = $2 AND holder = $3")
            .bind(wall_ms() + lease_ms())
            .bind(&key)
            .bind(&holder)
            .execute(&pool)
            .await;
        match renewed {
            Ok(r) if r.rows_affected() == 1 => wait = RENEW_EVERY,
            Ok(_) => {
                // Expired and taken over (this process stalled for a whole lease): nothing is left to
                // renew or release, and the refresh under it is no longer exclusive.
                tracing::warn!(key = ?key, "refresh lock: lease lost to another process before release");
                return;
            }
            Err(e) => {
                tracing::warn!(key = ?key, error = %e, "refresh lock: lease renewal failed; retrying");
                wait = RENEW_RETRY;
            }
        }
    }
    let deleted = sqlx::query("DELETE FROM refresh_locks WHERE key = $1 AND holder = $2")
        .bind(&key)
        .bind(&holder)
        .execute(&pool)
        .await;
    if let Err(e) = deleted {
        tracing::warn!(key = ?key, error = %e, "refresh lock: release failed; the lease will run out");
    }
    released.notify_waiters();
}
