//! The webhook driver: every interval (with jitter) it asks the [`Deliverer`] to send what the outbox
//! holds, until nothing is due; at shutdown it gives the deliverer's lease up so that another instance
//! takes over at once. Events still waiting stay in the database for the next pass, here or elsewhere.

use std::time::Duration;

use tokio::sync::watch;

use crate::events::deliver::Deliverer;

#[derive(Clone)]
pub struct WebhookDriver {
    deliverer: Deliverer,
    interval: Duration,
}

impl WebhookDriver {
    pub fn new(deliverer: Deliverer, interval: Duration) -> Self {
        Self { deliverer, interval }
    }

    /// Runs passes (the first at once: events left by a stopped instance go out) until `stop` turns true.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        loop {
            let report = self.deliverer.run_pass(&stop).await;
            if report.delivered + report.failed > 0 {
                tracing::info!(
                    delivered = report.delivered,
                    failed = report.failed,
                    dead = report.dead,
                    "webhook pass"
                );
            }
            if super::pause_or_stop(self.interval, &mut stop).await {
                break;
            }
        }
        self.deliverer.release().await;
    }
}
