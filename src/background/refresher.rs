//! The background refresher: a driver, like the HTTP layer, that calls the credential service. Every
//! interval (with jitter, so instances do not beat in step) it asks the service to refresh what is due
//! ([`CredentialService::refresh_due`]), batch after batch until nothing is, and stops between
//! credentials when the service shuts down.

use std::time::Duration;

use tokio::sync::watch;

use crate::clock::SharedClock;
use crate::credentials::{CredentialService, DueBatch, PassReport};

#[derive(Debug, Clone)]
pub struct RefresherSettings {
    /// How often to look for due credentials (`TOKENKEEPER_REFRESH_INTERVAL_SECS`), give or take a fifth.
    pub interval: Duration,
    pub batch: DueBatch,
}

impl Default for RefresherSettings {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(15),
            batch: DueBatch::default(),
        }
    }
}

#[derive(Clone)]
pub struct Refresher {
    credentials: CredentialService,
    clock: SharedClock,
    settings: RefresherSettings,
}

impl Refresher {
    pub fn new(credentials: CredentialService, clock: SharedClock, settings: RefresherSettings) -> Self {
        Self {
            credentials,
            clock,
            settings,
        }
    }

    /// Refreshes due credentials until none are due (batch after batch), or `stop` turns true.
    pub async fn run_pass(&self, stop: &watch::Receiver<bool>) -> PassReport {
        let mut report = PassReport::default();
        let stopping = || *stop.borrow();
        while !stopping() {
            // The claim's time: a credential refreshed (or stored anew) after it is not refreshed again.
            let now = self.clock.now();
            match self.credentials.refresh_due(now, &self.settings.batch, &stopping).await {
                Ok(batch) if batch.claimed == 0 => break,
                Ok(batch) => report += batch,
                Err(e) => {
                    tracing::error!(error = %e, "refresher could not claim due credentials");
                    break;
                }
            }
        }
        report
    }

    /// Runs passes every interval until `stop` turns true.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        loop {
            let report = self.run_pass(&stop).await;
            if report.claimed > 0 {
                tracing::info!(
                    claimed = report.claimed,
                    refreshed = report.refreshed,
                    failed = report.failed,
                    "refresher pass"
                );
            }
            if super::pause_or_stop(self.settings.interval, &mut stop).await {
                break;
            }
        }
    }
}
