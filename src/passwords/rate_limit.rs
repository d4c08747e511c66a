//! Brute-force limits on login and change-password, and the registration limit (every registration
//! counts, per address and hour), kept in SQL so every instance shares them.
//!
//! A key is an account or a client address. After `max_failures` failures inside `window`, tries
//! are refused until the oldest failure in the window ages out; the answer says when (`Retry-After`).
//!
//! An attempt is recorded *before* its password is checked ([`RateLimiter::begin`]), as pending:
//! checking the count first and recording a failure after the (slow, on purpose) hash would let every
//! guess sent at the same moment pass the check. Attempts go to the password check in arrival order
//! while fewer than `max_failures` attempts are ahead of them; the others wait for those ahead to
//! settle (a right password removes its record, a wrong one confirms it as a failure) and are refused
//! once the settled failures reach the limit. So at most `max_failures` wrong guesses are ever checked,
//! and concurrent logins with the right password still all get in.

use std::time::Duration;

use crate::clock::SharedClock;
use crate::db::{DbError, SharedStore};

#[derive(Clone)]
pub struct RateLimiter {
    store: SharedStore,
    clock: SharedClock,
    max_failures: i64,
    window_ms: i64,
    /// Records younger than this survive pruning: the longest window of every limiter on the table.
    keep_ms: i64,
}

/// How long an attempt waits for the attempts ahead of it to settle before it is refused.
const SETTLE_WAIT: Duration = Duration::from_secs(10);
/// Records older than this that are still pending were left by a process that died mid-check: they
/// count as failures.
const PENDING_STALE_MS: i64 = 60_000;

enum Verdict {
    Go,
    Refuse(RetryAfter),
    Settling,
}

/// Refused: try again after this many seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub u64);

impl RateLimiter {
    pub fn new(store: SharedStore, clock: SharedClock, max_failures: u32, window: Duration) -> Self {
        Self {
            store,
            clock,
            max_failures: i64::from(max_failures),
            window_ms: crate::clock::millis_i64(window),
            keep_ms: crate::clock::millis_i64(window),
        }
    }

    /// Another limiter shares the table with a longer window: prune nothing it still counts.
    pub fn keeping(mut self, longest_window: Duration) -> Self {
        self.keep_ms = self.keep_ms.max(crate::clock::millis_i64(longest_window));
        self
    }

    /// Records the attempt on every key, then admits it, refuses it (its record taken back; the longest
    /// wait wins), or waits for the attempts ahead of it to settle.
    // Spans without fields: a key names an account (an email) or an address.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn begin(&self, keys: &[String]) -> Result<Admission, DbError> {
        let now = self.clock.now_ms();
        let ids = self.store.reserve_attempts(keys, now).await?;
        let attempt = Attempt { ids };
        let started = tokio::time::Instant::now();
        loop {
            let verdict = match self.verdict(keys, &attempt, now).await {
                Ok(v) => v,
                Err(e) => {
                    self.abandon(attempt).await;
                    return Err(e);
                }
            };
            let wait = match verdict {
                Verdict::Go => return Ok(Admission::Go(attempt)),
                Verdict::Refuse(wait) => wait,
                Verdict::Settling if started.elapsed() < SETTLE_WAIT => {
                    let ms = 20 + rand::random::<u64>() % 30;
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    continue;
                }
                Verdict::Settling => RetryAfter(1),
            };
            self.abandon(attempt).await;
            return Ok(Admission::Refused(wait));
        }
    }

    async fn verdict(&self, keys: &[String], attempt: &Attempt, now: i64) -> Result<Verdict, DbError> {
        let (mut wait_ms, mut settling) = (0i64, false);
        for (key, id) in keys.iter().zip(&attempt.ids) {
            let c = self
                .store
                .failures_since(key, now - self.window_ms, now - PENDING_STALE_MS, *id)
                .await?;
            if c.ahead < self.max_failures {
                continue;
            }
            // Settled failures (this attempt is among the pending ones, so never one of them).
            if c.all - c.pending >= self.max_failures {
                let until = c.oldest.unwrap_or(now) + self.window_ms;
                wait_ms = wait_ms.max(until - now).max(1);
            } else {
                settling = true;
            }
        }
        Ok(if wait_ms > 0 {
            Verdict::Refuse(RetryAfter(u64::try_from((wait_ms + 999) / 1000).unwrap_or(1)))
        } else if settling {
            Verdict::Settling
        } else {
            Verdict::Go
        })
    }

    /// The password was wrong (or, for a limit on every attempt, the attempt happened): the attempt's
    /// record becomes a failure, counted until it leaves the window.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn failed(&self, attempt: Attempt) -> Result<(), DbError> {
        self.store.confirm_failures(&attempt.ids).await?;
        // Housekeeping: drop what no window can see any more.
        self.store.prune_failures(self.clock.now_ms() - self.keep_ms).await?;
        Ok(())
    }

    /// The attempt ended without a verdict on the password (a server error): it does not count.
    pub async fn abandon(&self, attempt: Attempt) {
        if let Err(e) = self.store.delete_failures(&attempt.ids).await {
            tracing::warn!(error = %e, "could not take back a rate-limit reservation");
        }
    }

    /// The password was right: the reservation is taken back, and the account's count is cleared (not
    /// the address's: one good password must not reopen an address that is guessing at other accounts).
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn succeeded(&self, attempt: Attempt, account_key: &str) -> Result<(), DbError> {
        self.store.delete_failures(&attempt.ids).await?;
        self.store.clear_failures(account_key).await
    }
}

/// The answer of [`RateLimiter::begin`].
#[derive(Debug)]
pub enum Admission {
    /// Check the password, then report with `failed`, `succeeded` or `abandon`.
    Go(Attempt),
    Refused(RetryAfter),
}

/// A reserved attempt: the failure rows recorded for it, one per key.
#[derive(Debug)]
#[must_use = "report the attempt's outcome to the rate limiter"]
pub struct Attempt {
    ids: Vec<i64>,
}

pub fn account_key(action: &str, account: &str) -> String {
    format!("{action}:account:{account}")
}

/// The key of a client address: IPv6 clients are counted per /64 ([`crate::net::address_group`]).
pub fn address_key(action: &str, addr: &str) -> String {
    format!("{action}:addr:{}", crate::net::address_group(addr))
}
