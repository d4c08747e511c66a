//! One refresh under the credential's lock, in its task: re-read the row, decide whether it is due, call
//! the provider through the stateless grant, and land the answer (the secret first, then the row).

use super::detach::{AuditNote, Job};
use super::persist::{self, Landing};
use super::{Landed, Trigger};
use crate::clock::Timestamp;
use crate::credentials::read::needs_reauth;
use crate::credentials::{ConnectionStatus, CredentialError, CredentialService, TokenData};
use crate::db::Connection;
use crate::metrics::{self, RefreshOutcome};
use crate::refresh::grants::{self, GrantContext, GrantError, Refreshed};
use crate::refresh::timing;
use crate::secrets::SecretError;

impl CredentialService {
    /// The refresh itself, in its task, under the credential's lock (held by the caller); the provider's
    /// answer, once kept, goes in `job.note`.
    pub(super) async fn refresh_locked(&self, job: &mut Job) -> Result<Landed, CredentialError> {
        let key = job.key.clone();

        let row = self.row(&key).await?;
        if row.status == ConnectionStatus::NeedsReauth {
            return Err(needs_reauth(&row));
        }
        let now = self.clock.now();
        let due = match job.trigger {
            Trigger::Forced { since } | Trigger::Scheduled { since } => row.updated_at <= since,
            Trigger::Read => {
                let backing_off =
                    row.status == ConnectionStatus::Degraded && row.next_refresh_at.is_some_and(|n| n > now);
                self.is_expiring(&row, now) && !backing_off
            }
        };
        if !due {
            // Nothing read: a caller that wants the token data reads the version the row names.
            return Ok(Landed::Current(row));
        }
        let name = self.secret_of(&row)?;
        let (current, cas) = self.newest_secret(&name, &row).await?;
        let ctx = GrantContext {
            http: &self.config.http,
            settings: &self.config.refresh.grants,
            now: now.as_secs(),
            user_id: row.user_id.as_str(),
        };
        match grants::refresh(key.spec(), &current, &ctx).await {
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
        now: Timestamp,
    ) -> Result<Landed, CredentialError> {
        let provider = job.key.provider();
        metrics::refresh_outcome(provider, RefreshOutcome::Ok);
        let name = self.secret_of(&row)?;
        let payload = fresh.token_data.encode();
        let version = match persist::write_secret(self.secrets.as_ref(), &name, &payload, cas).await {
            Ok(v) => v,
            Err(SecretError::CasMismatch) => {
                // The user stored a new credential meanwhile (or deleted it): theirs wins.
                return Ok(Landed::Current(self.row(&job.key).await?));
            }
            Err(e) => {
                tracing::error!(provider, error = %e,
                    "a refreshed credential could not be stored; a rotated refresh token is lost");
                return Err(e.into());
            }
        };
        let before = row.clone();
        let updated = Connection {
            secret_version: version,
            metadata: job.key.spec().metadata_of(fresh.token_data.fields()),
            status: ConnectionStatus::Active,
            status_reason: None,
            expires_at: fresh.expires_at.map(Timestamp::from_secs),
            next_refresh_at: fresh
                .expires_at
                .map(|e| Timestamp::from_secs(timing::planned_refresh(self.margin_secs(), e, now.as_secs()))),
            refresh_failures: 0,
            updated_at: self.clock.now(),
            ..row
        };
        match self.land_row(&job.key, &before, &updated).await? {
            Landing::Recorded => {
                job.note = Some(AuditNote::ok());
                Ok(Landed::Fresh(fresh.token_data))
            }
            Landing::Gone => Err(CredentialError::NotConnected(job.key.describe())),
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
        now: Timestamp,
    ) -> Result<Landed, CredentialError> {
        let provider = job.key.provider();
        let reason = err.reason().to_string();
        let before = row.clone();
        let (updated, outcome) = if err.needs_reauth() {
            let updated = Connection {
                status: ConnectionStatus::NeedsReauth,
                status_reason: Some(reason.clone()),
                next_refresh_at: None,
                ..row
            };
            (updated, RefreshOutcome::NeedsReauth)
        } else {
            let failures = row.refresh_failures.saturating_add(1);
            let updated = Connection {
                status: ConnectionStatus::Degraded,
                status_reason: Some(reason.clone()),
                refresh_failures: failures,
                next_refresh_at: Some(Timestamp::from_secs(now.as_secs() + timing::backoff_secs(failures))),
                ..row
            };
            (updated, RefreshOutcome::Degraded)
        };
        metrics::refresh_outcome(provider, outcome);
        let failures = updated.refresh_failures;
        tracing::warn!(provider, reason, outcome = outcome.as_str(), failures, "refresh failed");
        match self.land_row(&job.key, &before, &updated).await? {
            Landing::Recorded => {}
            // Deleted while the provider was called: nothing to record, nothing to serve.
            Landing::Gone => return Err(CredentialError::NotConnected(job.key.describe())),
            // A new credential was stored meanwhile: the old one's failure is not its failure.
            Landing::Superseded(current) => return Ok(Landed::Current(*current)),
        }
        job.note = Some(AuditNote::failed(reason));
        Ok(Landed::Failed(updated))
    }

    /// The secret a refresh starts from, and the version its write must check-and-set against: the newest
    /// version, since after a rotation whose reference update failed it holds the live refresh token. When
    /// the current version was soft-deleted in Vault (its number stays current), the version the row names.
    async fn newest_secret(&self, name: &str, row: &Connection) -> Result<(TokenData, u64), CredentialError> {
        let decode =
            |text| TokenData::decode(text).map_err(|e| CredentialError::Inconsistent(format!("secret {name}: {e}")));
        if let Some(latest) = self.secrets.read(name, None).await? {
            return Ok((decode(&latest.value)?, latest.version));
        }
        let missing = || CredentialError::Inconsistent(format!("secret {name} is missing"));
        let current = self.secrets.current_version(name).await?;
        let named = self
            .secrets
            .read(name, Some(row.secret_version))
            .await?
            .ok_or_else(missing)?;
        Ok((decode(&named.value)?, current))
    }
}
