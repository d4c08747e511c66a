//! The background refresher: finds due credentials through the `connections_due_idx` index, claims a
//! batch (several instances take disjoint rows), and refreshes them with bounded concurrency through
//! the same engine as reads, so single flight holds between readers and the scheduler too.

use std::time::Duration;

use futures::StreamExt as _;
use rand::Rng as _;
use tokio::sync::watch;

use super::engine::Trigger;
use crate::credentials::{CredentialError, CredentialService};

#[derive(Debug, Clone)]
pub struct SchedulerSettings {
    pub interval: Duration,
    pub batch: i64,
    pub concurrency: usize,
    /// How long a claim keeps other instances away from a row (longer than one refresh can take).
    pub lease: Duration,
}

impl Default for SchedulerSettings {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(15),
            batch: 200,
            concurrency: 16,
            lease: Duration::from_secs(120),
        }
    }
}

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PassReport {
    pub claimed: usize,
    pub refreshed: usize,
    pub failed: usize,
    /// Claimed but left for later because the service is stopping (their lease runs out).
    pub skipped: usize,
}

/// Claims and refreshes due credentials until none are due (batch after batch), then returns.
pub async fn run_pass(svc: &CredentialService, s: &SchedulerSettings, stop: &watch::Receiver<bool>) -> PassReport {
    let Some(engine) = svc.refresh.clone() else {
        return PassReport::default();
    };
    let mut report = PassReport::default();
    loop {
        if *stop.borrow() {
            break;
        }
        let now = svc.clock.now_secs();
        // The claim's time: a credential refreshed (or stored anew) after it is not refreshed again.
        let since_ms = svc.clock.now_ms();
        let claimed = match svc.store.claim_due(now, now + s.lease.as_secs() as i64, s.batch).await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "refresher could not claim due credentials");
                break;
            }
        };
        if claimed.is_empty() {
            break;
        }
        report.claimed += claimed.len();
        // Ok(true): refreshed (or found fresh); Ok(false): skipped because the service is stopping.
        let results: Vec<Result<bool, CredentialError>> = futures::stream::iter(claimed)
            .map(|(user, provider)| {
                let engine = engine.clone();
                let stop = stop.clone();
                async move {
                    // Stop between credentials, never in the middle of one.
                    if *stop.borrow() {
                        return Ok(false);
                    }
                    let spec = CredentialService::spec(&provider)?;
                    engine
                        .refresh(
                            svc,
                            spec,
                            &user,
                            &provider,
                            Trigger::Scheduled { since_ms },
                            "refresher",
                        )
                        .await
                        .data
                        .map(|_| true)
                }
            })
            .buffer_unordered(s.concurrency)
            .collect()
            .await;
        for r in results {
            match r {
                Ok(true) => report.refreshed += 1,
                Ok(false) => report.skipped += 1,
                Err(_) => report.failed += 1,
            }
        }
    }
    report
}

/// Runs passes every `interval` (with jitter, so instances do not beat in step) until `stop` turns true.
pub async fn run(svc: CredentialService, s: SchedulerSettings, mut stop: watch::Receiver<bool>) {
    loop {
        let report = run_pass(&svc, &s, &stop).await;
        if report.claimed > 0 {
            tracing::info!(
                claimed = report.claimed,
                refreshed = report.refreshed,
                failed = report.failed,
                "refresher pass"
            );
        }
        let pause = s.interval.mul_f64(rand::thread_rng().gen_range(0.8..1.2));
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            break;
        }
    }
}
