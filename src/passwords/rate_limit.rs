//! Brute-force limits on login and change-password, kept in SQL so every instance shares them.
//!
//! A key is an account or a client address. After `max_failures` failures inside `window`, tries
//! are refused until the oldest failure in the window ages out; the answer says when (`Retry-After`).

use std::time::Duration;

use crate::clock::SharedClock;
use crate::db::{DbError, SharedStore};

#[derive(Clone)]
pub struct RateLimiter {
    store: SharedStore,
    clock: SharedClock,
    max_failures: i64,
    window_ms: i64,
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
            window_ms: window.as_millis() as i64,
        }
    }

    /// Refuses when any key is over its limit; the longest wait wins.
    pub async fn check(&self, keys: &[String]) -> Result<Option<RetryAfter>, DbError> {
        let now = self.clock.now_ms();
        let mut wait_ms = 0i64;
        for key in keys {
            let (count, oldest) = self.store.failures_since(key, now - self.window_ms).await?;
            if count >= self.max_failures {
                let until = oldest.unwrap_or(now) + self.window_ms;
                wait_ms = wait_ms.max(until - now);
            }
        }
        Ok((wait_ms > 0).then(|| RetryAfter(((wait_ms + 999) / 1000) as u64)))
    }

    pub async fn record_failure(&self, keys: &[String]) -> Result<(), DbError> {
        let now = self.clock.now_ms();
        for key in keys {
            self.store.record_failure(key, now).await?;
        }
        // Housekeeping: drop what no window can see any more.
        self.store.prune_failures(now - self.window_ms).await?;
        Ok(())
    }

    /// A success clears the account's count (not the address's: one good password must not
    /// reopen an address that is guessing at other accounts).
    pub async fn record_success(&self, account_key: &str) -> Result<(), DbError> {
        self.store.clear_failures(account_key).await
    }
}

pub fn account_key(action: &str, account: &str) -> String {
    format!("{action}:account:{account}")
}

pub fn address_key(action: &str, addr: &str) -> String {
    format!("{action}:addr:{addr}")
}
