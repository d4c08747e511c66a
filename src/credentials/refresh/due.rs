//! The background refresher's unit of work: claim a batch of due credentials through the
//! `connections_due_idx` index (several instances take disjoint rows) and refresh them with bounded
//! concurrency, through the same single-flight path as reads.

use std::time::Duration;

use futures::StreamExt as _;

use super::detach::Job;
use super::{Landed, Trigger};
use crate::clock::Timestamp;
use crate::credentials::{
    Caller, ConnectionKey, ConnectionStatus, CredentialError, CredentialService, UserId, read::needs_reauth,
};
use crate::db::DueConnection;

/// How many credentials one claim takes, how many are refreshed at once, and for how long a claim
/// keeps other instances away from a row (longer than one refresh can take; if this instance dies, the
/// lease runs out and another picks the row up).
#[derive(Debug, Clone)]
pub struct DueBatch {
    pub limit: i64,
    pub concurrency: usize,
    pub lease: Duration,
}

impl Default for DueBatch {
    fn default() -> Self {
        Self {
            limit: 200,
            concurrency: 16,
            lease: Duration::from_secs(120),
        }
    }
}

/// What refreshing due credentials did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PassReport {
    pub claimed: usize,
    /// Refreshed, or found refreshed by someone else.
    pub refreshed: usize,
    /// The provider refused or failed (the row says so), or an error.
    pub failed: usize,
    /// Claimed but left for later because the service is stopping (their lease runs out).
    pub skipped: usize,
}

impl std::ops::AddAssign for PassReport {
    fn add_assign(&mut self, other: Self) {
        self.claimed += other.claimed;
        self.refreshed += other.refreshed;
        self.failed += other.failed;
        self.skipped += other.skipped;
    }
}

impl CredentialService {
    /// Claims up to `batch.limit` credentials due at `now` and refreshes them, `batch.concurrency` at
    /// a time. Once `stopping()` says so, the rest are left between credentials, never in the middle of
    /// one (their claims run out). A claimed credential whose row turns out not to be due any more is left
    /// as it is, without reading its secret.
    #[tracing::instrument(skip_all, fields(limit = batch.limit))]
    pub async fn refresh_due(
        &self,
        now: Timestamp,
        batch: &DueBatch,
        stopping: &(dyn Fn() -> bool + Sync),
    ) -> Result<PassReport, CredentialError> {
        let lease_until = Timestamp::from_secs(now.as_secs() + crate::clock::secs_i64(batch.lease));
        let claimed = self.store.claim_due(now, lease_until, batch.limit).await?;
        let mut report = PassReport {
            claimed: claimed.len(),
            ..PassReport::default()
        };
        // Some(true): refreshed (or found fresh); Some(false): failed; None: skipped (stopping).
        let results: Vec<Option<bool>> = futures::stream::iter(claimed)
            .map(|due| async move {
                if stopping() {
                    return None;
                }
                let since = Trigger::Scheduled { since: now };
                Some(self.refresh_scheduled(&due, since).await.is_ok())
            })
            .buffer_unordered(batch.concurrency)
            .collect()
            .await;
        for r in results {
            match r {
                Some(true) => report.refreshed += 1,
                Some(false) => report.failed += 1,
                None => report.skipped += 1,
            }
        }
        Ok(report)
    }

    /// One claimed credential: refreshed if still due; `Err` when its refresh failed.
    #[tracing::instrument(skip_all, fields(org = due.org_id, provider = due.provider, name = due.name))]
    async fn refresh_scheduled(&self, due: &DueConnection, trigger: Trigger) -> Result<(), CredentialError> {
        let key = ConnectionKey::of_row(&due.org_id, &due.provider, &due.name)
            .ok_or_else(|| CredentialError::UnknownProvider(due.provider.clone()))?;
        let org_id = due.org_id.as_str();
        // The refresher acts for the org: its events carry the org's id as their user (for a personal org,
        // its user, as before orgs).
        let caller = Caller::new(UserId::from(org_id), key.org().clone());
        let job = Job::new(key, caller, trigger, "refresher");
        let outcome = self
            .detached(job, |_, landed| async move {
                match landed? {
                    Landed::Fresh(_) | Landed::Current(_) => Ok(()),
                    Landed::Failed(row) if row.status == ConnectionStatus::NeedsReauth => Err(needs_reauth(&row)),
                    Landed::Failed(row) => Err(super::serve::unavailable(&row)),
                }
            })
            .await;
        outcome.data
    }
}
