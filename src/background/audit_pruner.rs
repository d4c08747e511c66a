//! The audit pruner: a driver that, every interval (with jitter), asks the auditor to delete the events
//! older than the retention ([`Auditor::prune`]): in bounded batches, by one instance at a time.

use std::time::Duration;

use tokio::sync::watch;

use crate::audit::Auditor;
use crate::db::PruneReport;

#[derive(Clone)]
pub struct AuditPruner {
    audit: Auditor,
    /// `TOKENKEEPER_AUDIT_PRUNE_INTERVAL_SECS`, give or take a fifth.
    interval: Duration,
}

impl AuditPruner {
    pub fn new(audit: Auditor, interval: Duration) -> Self {
        Self { audit, interval }
    }

    /// One prune; `None` when another instance was pruning (or the prune failed, which is logged).
    pub async fn run_pass(&self) -> Option<PruneReport> {
        match self.audit.prune().await {
            Ok(Some(report)) => {
                if report.deleted > 0 {
                    tracing::info!(
                        deleted = report.deleted,
                        batches = report.batches,
                        "audit events pruned"
                    );
                }
                Some(report)
            }
            Ok(None) => {
                tracing::debug!("another instance is pruning the audit trail");
                None
            }
            Err(e) => {
                tracing::error!(error = %e, "audit prune failed");
                None
            }
        }
    }

    /// Waits an interval, prunes, and again, until `stop` turns true.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        loop {
            if super::pause_or_stop(self.interval, &mut stop).await {
                break;
            }
            self.run_pass().await;
        }
    }
}
