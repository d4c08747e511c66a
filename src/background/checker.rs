//! The background checker: a driver like the refresher. About once a minute (with jitter) it asks the
//! credential service to check the static keys whose check is due ([`CredentialService::check_due`]),
//! batch after batch; each connection's own next check is a check interval
//! (`TOKENKEEPER_CHECK_INTERVAL_SECS`, ±10 %) after its last. Instances claim disjoint rows.

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
    /// `interval`: the check interval (a connection is checked once per interval).
    pub fn new(credentials: CredentialService, clock: SharedClock, interval: Duration) -> Self {
        Self {
            credentials,
            clock,
            every: interval.min(LOOK_EVERY),
            batch: DueBatch {
                limit: 100,
                concurrency: 8,
                lease: Duration::from_secs(120),
            },
        }
    }

    /// Checks due connections until none are due, or `stop` turns true.
    pub async fn run_pass(&self, stop: &watch::Receiver<bool>) -> CheckPass {
        let mut total = CheckPass::default();
        let stopping = || *stop.borrow();
        while !stopping() {
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
