//! One refresh under the credential's lock, in its task: re-read the row, decide whether it is due, call
//! the provider through the stateless grant, and land the answer (the secret first, then the row).

use serde_json::Value;

use super::detach::{AuditNote, Job};
use super::persist::{self, Landing};
use super::{Landed, Trigger};
use crate::credentials::read::needs_reauth;
use crate::credentials::{CredentialError, CredentialService, TokenData, status};
use crate::db::Connection;
use crate::metrics::{self, RefreshOutcome};
use crate::refresh::grants::{self, GrantContext, GrantError, Refreshed};
use crate::refresh::timing;
use crate::secrets::SecretError;

impl CredentialService {
    /// The refresh itself, in its task, under the credential's lock (held by the caller); the provider's
    /// answer, once kept, goes in `job.note`.
    pub(super) async fn refresh_locked(&self, job: &mut Job) -> Result<Landed, CredentialError> {
        let (user_id, provider) = (job.user_id.clone(), job.provider.clone());

        let row = self.row(&user_id, &provider).await?;
        if row.status == status::NEEDS_REAUTH {
            return Err(needs_reauth(&row));
        }
        let now = self.clock.now_secs();
        let due = match job.trigger {
            Trigger::Forced { since_ms } | Trigger::Scheduled { since_ms } => row.updated_at <= since_ms,
            Trigger::Read => {
                let backing_off = row.status == status::DEGRADED && row.next_refresh_at.is_some_and(|n| n > now);
                self.is_expiring(&row, now) && !backing_off
            }
        };
        if !due {
            // Nothing read: a caller that wants the token data reads the version the row names.
            return Ok(Landed::Current(row));
        }
        let name = self.secret_name(&user_id, &provider);
        let (latest, cas) = self.newest_secret(&name, &row).await?;
        let current = crate::credentials::cache::parse(&latest)
            .ok_or_else(|| CredentialError::Inconsistent(format!("secret {name} is not a JSON object")))?;
        let ctx = GrantContext {
            http: &self.config.http,
            settings: &self.config.refresh.grants,
            now,
            user_id: &user_id,
        };
        match grants::refresh(job.spec, &current, &ctx).await {
            Ok(fresh) => self.store_refreshed(job, row, cas, fresh, now).await,
            Err(GrantError::NotRefreshable) => Ok(Landed::Current(row)),
            Err(e) => self.store_failure(job, row, &e, now).await,
        }
    }

    /// A successful refresh: the secret first (a rotated refresh token must never be lost), then the row.
    async fn store_refreshed(
        &self,
        job: &mut Job,
        row: Connection,
        cas: u64,
        fresh: Refreshed,
        now: i64,
    ) -> Result<Landed, CredentialError> {
        metrics::refresh_outcome(&job.provider, RefreshOutcome::Ok);
        let name = self.secret_name(&job.user_id, &job.provider);
        let payload = secrecy::SecretString::from(Value::Object(fresh.token_data.clone()).to_string());
        let version = match persist::write_secret(self.secrets.as_ref(), &name, &payload, cas).await {
            Ok(v) => v,
            Err(SecretError::CasMismatch) => {
                // The user stored a new credential meanwhile (or deleted it): theirs wins.
                return Ok(Landed::Current(self.row(&job.user_id, &job.provider).await?));
            }
            Err(e) => {
                tracing::error!(provider = job.provider, error = %e,
                    "a refreshed credential could not be stored; a rotated refresh token is lost");
                return Err(e.into());
            }
        };
        let updated = Connection {
            secret_version: version as i64,
            metadata: Value::Object(job.spec.metadata_of(&fresh.token_data)).to_string(),
            status: status::ACTIVE.into(),
            status_reason: None,
            expires_at: fresh.expires_at,
            next_refresh_at: fresh
                .expires_at
                .map(|e| timing::planned_refresh(self.margin_secs(), e, now)),
            refresh_failures: 0,
            updated_at: self.clock.now_ms(),
            ..row
        };
        match self.land_row(&updated).await? {
            Landing::Recorded => {
                job.note = Some(AuditNote::ok());
                Ok(Landed::Fresh(TokenData(fresh.token_data)))
            }
            Landing::Gone => Err(CredentialError::NotConnected(job.provider.clone())),
            Landing::Superseded(current) => Ok(Landed::Current(*current)),
        }
    }

    /// A failed refresh: the new status in the row (dropping cached copies everywhere), a metric, an
    /// audit note with the reason, a log line.
    async fn store_failure(
        &self,
        job: &mut Job,
        row: Connection,
        err: &GrantError,
        now: i64,
    ) -> Result<Landed, CredentialError> {
        let reason = err.reason().to_string();
        let (updated, outcome) = if err.needs_reauth() {
            let updated = Connection {
                status: status::NEEDS_REAUTH.into(),
                status_reason: Some(reason.clone()),
                next_refresh_at: None,
                ..row
            };
            (updated, RefreshOutcome::NeedsReauth)
        } else {
            let failures = row.refresh_failures.saturating_add(1);
            let updated = Connection {
                status: status::DEGRADED.into(),
                status_reason: Some(reason.clone()),
                refresh_failures: failures,
                next_refresh_at: Some(now + timing::backoff_secs(failures)),
                ..row
            };
            (updated, RefreshOutcome::Degraded)
        };
        metrics::refresh_outcome(&job.provider, outcome);
        let failures = updated.refresh_failures;
        tracing::warn!(
            provider = job.provider,
            reason,
            outcome = outcome.as_str(),
            failures,
            "refresh failed"
        );
        match self.land_row(&updated).await? {
            Landing::Recorded => {}
            // Deleted while the provider was called: nothing to record, nothing to serve.
            Landing::Gone => return Err(CredentialError::NotConnected(job.provider.clone())),
            // A new credential was stored meanwhile: the old one's failure is not its failure.
            Landing::Superseded(current) => return Ok(Landed::Current(*current)),
        }
        job.note = Some(AuditNote::failed(reason));
        Ok(Landed::Failed(updated))
    }

    /// The secret a refresh starts from, and the version its write must check-and-set against: the newest
    /// version, since after a rotation whose reference update failed it holds the live refresh token. When
    /// the current version was soft-deleted in Vault (its number stays current), the version the row names.
    async fn newest_secret(
        &self,
        name: &str,
        row: &Connection,
    ) -> Result<(secrecy::SecretString, u64), CredentialError> {
        if let Some(latest) = self.secrets.read(name, None).await? {
            return Ok((latest.value, latest.version));
        }
        let missing = || CredentialError::Inconsistent(format!("secret {name} is missing"));
        let current = self.secrets.current_version(name).await?;
        let named = self
            .secrets
            .read(name, Some(row.secret_version as u64))
            .await?
            .ok_or_else(missing)?;
        Ok((named.value, current))
    }
}
