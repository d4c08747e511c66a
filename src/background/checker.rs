//! The background checker: a driver like the refresher. About once a minute (with jitter) it asks the
//! credential service to check the static keys whose check is due ([`CredentialService::check_due`]),
//! batch after batch; each connection's own next check is a check interval
//! (`TOKENKEEPER_CHECK_INTERVAL_SECS`, ±10 %) after its last. Instances claim disjoint rows. Each instance
//! runs at most `TOKENKEEPER_CHECKS_PER_SECOND` checks a second: batches of one second's worth, each
//! followed by a pause until its second is over, so a backlog never takes the CPU that reads need.

use std::time::Duration;

use rand::Rng as _;
use tokio::sync::watch;

use crate::clock::SharedClock;
use crate::credentials::{CheckPass, CredentialService, DueBatch};

/// How often to look for due checks, at most (the check interval, when shorter).
const LOOK_EVERY: Duration = Duration::from_secs(60);

#[derive(Clone)]
pub struct Checker {
    credentials: CredentialService,
    clock: SharedClock,
    /// How often to look for due checks.
    every: Duration,
    batch: DueBatch,
}

impl Checker {
    /// `interval`: the check interval (a connection is checked once per interval); `per_second`: the
    /// most checks a second (at least 1).
    pub fn new(credentials: CredentialService, clock: SharedClock, interval: Duration, per_second: u32) -> Self {
        let per_second = per_second.max(1);
        Self {
            credentials,
            clock,
            every: interval.min(LOOK_EVERY),
            batch: DueBatch {
                limit: i64::from(per_second),
                concurrency: usize::try_from(per_second.min(8)).unwrap_or(8),
                lease: Duration::from_secs(120),
            },
        }
    }

    /// Checks due connections until none are due, or `stop` turns true.
    pub async fn run_pass(&self, stop: &watch::Receiver<bool>) -> CheckPass {
        let mut total = CheckPass::default();
        let stopping = || *stop.borrow();
        while !stopping() {
            let started = tokio::time::Instant::now();
            match self
                .credentials
                .check_due(self.clock.now(), &self.batch, &stopping)
                .await
            {
                Ok(pass) if pass.claimed == 0 => break,
                Ok(pass) => {
                    total.claimed += pass.claimed;
                    total.accepted += pass.accepted;
                    total.failed += pass.failed;
                    total.skipped += pass.skipped;
                    let rest = pause_after(pass.claimed, self.batch.limit, started.elapsed());
                    tokio::select! {
                        _ = tokio::time::sleep(rest) => {}
                        _ = wait_for_stop(stop) => {}
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "checker could not claim due checks");
                    break;
                }
            }
        }
        total
    }

    /// Runs passes until `stop` turns true.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        loop {
            let pass = self.run_pass(&stop).await;
            if pass.claimed > 0 {
                tracing::info!(
                    claimed = pass.claimed,
                    accepted = pass.accepted,
                    failed = pass.failed,
                    "checker pass"
                );
            }
            let pause = self.every.mul_f64(rand::thread_rng().gen_range(0.8..1.2));
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = stop.changed() => {}
            }
            if *stop.borrow() {
                break;
            }
        }
    }
}

/// What is left of a batch's share of time after it took `took`: `claimed` checks at `per_second` a second.
fn pause_after(claimed: usize, per_second: i64, took: Duration) -> Duration {
    let per_second = u32::try_from(per_second.max(1)).unwrap_or(u32::MAX);
    let claimed = u32::try_from(claimed).unwrap_or(u32::MAX);
    let share = Duration::from_secs(1).mul_f64(f64::from(claimed) / f64::from(per_second));
    share.saturating_sub(took)
}

/// Until `stop` turns true. A sender gone never asks to stop: then only the pause ends the wait (not at
/// once, which would drop the pacing).
async fn wait_for_stop(stop: &watch::Receiver<bool>) {
    if stop.clone().wait_for(|stopping| *stopping).await.is_err() {
        std::future::pending::<()>().await;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::pause_after;

    #[test]
    fn a_batch_waits_out_its_share_of_a_second() {
        let ms = Duration::from_millis;
        // A full batch of 5 at 5 a second that took 200 ms waits 800 ms.
        assert_eq!(pause_after(5, 5, ms(200)), ms(800));
        // A partial batch has a smaller share.
        assert_eq!(pause_after(2, 4, ms(100)), ms(400));
        // A batch slower than its share goes on at once.
        assert_eq!(pause_after(5, 5, ms(1500)), Duration::ZERO);
        assert_eq!(pause_after(1, 1000, ms(0)), ms(1));
    }
}
