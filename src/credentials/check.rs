//! Checking credentials with their providers (`docs/CHECKS.md`): before a store, on demand
//! (`POST .../check`) and in the background pass over static keys ([`CredentialService::check_due`]).
//! The request itself is [`crate::check`]'s; here: which credential, the result in its row, the audit.
//! Checks never run on the read path.

use std::time::Duration;

use futures::StreamExt as _;
use rand::Rng as _;

use super::{
    Caller, ConnectionKey, ConnectionStatus, CredentialError, CredentialService, Target, UserId, view::ConnectionView,
};
use crate::audit::EventKind;
use crate::check::{CheckContext, CheckOutcome};
use crate::clock::Timestamp;
use crate::db::{Connection, DueConnection};
use crate::providers::{RefreshKind, TokenData};
use crate::refresh::{GrantContext, refresh_kind_for};

/// An unreachable provider is tried again within the hour (or the interval, when shorter).
const RETRY_UNREACHABLE: Duration = Duration::from_secs(3600);

/// What `POST /api/tokens/{provider}/check` answers.
#[derive(Debug, Clone)]
pub struct CheckReport {
    /// The provider accepted the credential.
    pub ok: bool,
    pub checked_at: Timestamp,
    /// `HTTP 200`, the provider's error code, or why it could not be reached.
    pub detail: String,
    /// The connection after the check.
    pub connection: ConnectionView,
}

/// What one background pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CheckPass {
    pub claimed: usize,
    pub accepted: usize,
    /// Rejected, unreachable, not checkable now, or an error.
    pub failed: usize,
    /// Left because the service is stopping (their claims run out).
    pub skipped: usize,
}

impl CredentialService {
    /// Runs `spec`'s check on `data` (a credential of `user`).
    pub(super) async fn run_check(&self, key: &ConnectionKey, data: &TokenData, user: &str) -> CheckOutcome {
        let grants = GrantContext {
            http: &self.config.http,
            settings: &self.config.refresh.grants,
            now: self.clock.now_secs(),
            user_id: user,
        };
        let ctx = CheckContext {
            grants,
            settings: &self.config.checks.settings,
            user_urls: &self.config.checks.user_urls,
            configured: &self.config.checks.configured,
        };
        crate::check::check(key.spec(), data, &ctx).await
    }

    /// Whether a store checks first: `requested` (`?check=`), else the deployment's default.
    pub(super) fn checks_on_store(&self, requested: Option<bool>) -> bool {
        requested.unwrap_or(self.config.checks.settings.on_store)
    }

    /// When the background pass should check a credential of this kind next, after `outcome` at `now`.
    pub(super) fn next_check_at(
        &self,
        kind: RefreshKind,
        outcome: Option<&CheckOutcome>,
        now: Timestamp,
    ) -> Option<Timestamp> {
        let interval = self.config.checks.settings.interval;
        let wait = match outcome {
            _ if kind.refreshes() => return None,
            Some(CheckOutcome::Rejected { .. }) => return None,
            Some(CheckOutcome::Unreachable { .. }) => interval.min(RETRY_UNREACHABLE),
            _ => interval,
        };
        // Spread: connections stored together are not all checked together again.
        let wait = wait.mul_f64(rand::thread_rng().gen_range(0.9..1.1));
        Some(Timestamp::from_millis(now.as_millis() + crate::clock::millis_i64(wait)))
    }

    /// `POST /api/tokens/{provider}/check`: check the stored credential now and record what was found.
    #[tracing::instrument(skip_all, fields(user = %caller.user, org = %caller.org))]
    pub async fn check_now(
        &self,
        caller: &Caller,
        target: impl Into<Target>,
        addr: &str,
    ) -> Result<CheckReport, CredentialError> {
        let target = target.into();
        let res = async {
            let key = Self::key(&caller.org, &target)?;
            self.check_stored(&key, caller.user.as_str()).await
        }
        .await;
        self.audited(caller, EventKind::CredentialCheck, &target, addr, res)
            .await
    }

    /// Check the stored credential of `key` and record the result in its row.
    async fn check_stored(&self, key: &ConnectionKey, user: &str) -> Result<CheckReport, CredentialError> {
        let row = self.row(key).await?;
        let data = self.read_secret(key, &row).await?;
        let outcome = self.run_check(key, &data, user).await;
        let kind = refresh_kind_for(key.spec(), &data);
        let checked_at = self.clock.now();
        let row = self.record_check(key, &row, kind, &outcome, checked_at).await?;
        Ok(CheckReport {
            ok: matches!(outcome, CheckOutcome::Accepted { .. }),
            checked_at,
            detail: outcome.detail().to_string(),
            connection: ConnectionView::from_row(&row, self.clock.now()),
        })
    }

    /// The check's result in the row it checked (under the credential's lock); a credential replaced
    /// meanwhile keeps what its own store decided.
    async fn record_check(
        &self,
        key: &ConnectionKey,
        checked: &Connection,
        kind: RefreshKind,
        outcome: &CheckOutcome,
        now: Timestamp,
    ) -> Result<Connection, CredentialError> {
        let _lock = self.lock(key).await?;
        let current = self.row(key).await?;
        if current.secret_version != checked.secret_version {
            return Ok(current);
        }
        let (status, reason, error) = match outcome {
            CheckOutcome::Accepted { .. } => (ConnectionStatus::Active, None, None),
            CheckOutcome::Rejected { detail } => (
                ConnectionStatus::NeedsReauth,
                Some(format!("check_rejected: {detail}")),
                Some(detail.clone()),
            ),
            CheckOutcome::Unreachable { detail } => (
                ConnectionStatus::Degraded,
                Some(format!("check_unreachable: {detail}")),
                Some(detail.clone()),
            ),
            CheckOutcome::Skipped { .. } => (
                current.status,
                current.status_reason.clone(),
                current.last_check_error.clone(),
            ),
        };
        let checked_at = match outcome {
            CheckOutcome::Skipped { .. } => current.last_checked_at,
            _ => Some(now),
        };
        let before = current.clone();
        let updated = Connection {
            status,
            status_reason: reason,
            last_checked_at: checked_at,
            last_check_error: error,
            next_check_at: self.next_check_at(kind, Some(outcome), now),
            ..current
        };
        // A status the check moved is a change event, written in the transaction of the row.
        let events = (self.config.events).of_change(Some(&before), Some(&updated), &before.user_id, now);
        if !self.store.update_connection_emitting(&updated, &events).await? {
            return self.row(key).await;
        }
        self.changed(key).await;
        self.status_changed(key, before.status, &updated);
        Ok(updated)
    }

    /// Claims the static keys whose check is due at `now` and checks them, `batch.concurrency` at a time,
    /// until `stopping()` says so (the rest of the claim runs out).
    #[tracing::instrument(skip_all, fields(limit = batch.limit))]
    pub async fn check_due(
        &self,
        now: Timestamp,
        batch: &super::DueBatch,
        stopping: &(dyn Fn() -> bool + Sync),
    ) -> Result<CheckPass, CredentialError> {
        let lease_until = Timestamp::from_secs(now.as_secs() + crate::clock::secs_i64(batch.lease));
        let claimed = self.store.claim_due_checks(now, lease_until, batch.limit).await?;
        let mut pass = CheckPass {
            claimed: claimed.len(),
            ..CheckPass::default()
        };
        let results: Vec<Option<bool>> = futures::stream::iter(claimed)
            .map(|due| async move {
                if stopping() {
                    return None;
                }
                Some(self.check_scheduled(&due).await.is_ok_and(|r| r.ok))
            })
            .buffer_unordered(batch.concurrency)
            .collect()
            .await;
        for r in results {
            match r {
                Some(true) => pass.accepted += 1,
                Some(false) => pass.failed += 1,
                None => pass.skipped += 1,
            }
        }
        Ok(pass)
    }

    /// One claimed credential, checked for its org (its events carry the org's id as their user, as the
    /// refresher's do).
    async fn check_scheduled(&self, due: &DueConnection) -> Result<CheckReport, CredentialError> {
        let key = ConnectionKey::of_row(&due.org_id, &due.provider, &due.name)
            .ok_or_else(|| CredentialError::UnknownProvider(due.provider.clone()))?;
        let org_id = due.org_id.as_str();
        let caller = Caller::new(UserId::from(org_id), key.org().clone());
        let res = self.check_stored(&key, org_id).await;
        if let Err(e) = &res {
            tracing::warn!(provider = due.provider, name = due.name, error = %e, "scheduled check failed");
        }
        let target = Target::new(due.provider.clone(), key.name().clone());
        self.audited(&caller, EventKind::CredentialCheck, &target, "checker", res)
            .await
    }
}
