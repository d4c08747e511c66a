//! The refresh engine: one code path for every provider and every trigger (a read within the margin,
//! `POST .../refresh`, the background scheduler).
//!
//! Single flight: an in-process mutex per credential, then the database's cross-instance lock
//! ([`crate::db::Store::refresh_lock`]). Under both, the row is read again: another caller or instance
//! may have refreshed already, and then its result is served instead of calling the provider again
//! (rotating refresh tokens are single-use: a second call would revoke the grant).
//!
//! Each refresh runs in a task of its own ([`super::detach`]): a caller that goes away does not cut a
//! refresh between the provider call and the secret write, nor lose its audit event.

use std::sync::Arc;

use serde_json::Value;

use super::detach::{AuditNote, Job, Tasks};
use super::grants::{self, GrantContext, GrantError, Refreshed};
use super::lock::CredentialLocks;
use super::persist::{self, Landing};
use super::timing;
use crate::config::Settings;
use crate::credentials::read::needs_reauth;
use crate::credentials::{CredentialError, CredentialService, TokenData, status};
use crate::db::Connection;
use crate::metrics::{self, RefreshOutcome};
use crate::providers::ProviderSpec;
use crate::secrets::SecretError;

pub use super::detach::Outcome;
pub(crate) use super::lock::CredentialLock;
pub use super::timing::backoff_secs;

/// Why a refresh is attempted; it decides what "due" means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// A read: refresh when expiring, unless a failing provider is in backoff.
    Read,
    /// The background scheduler, which claimed the row at `since_ms` because it was due (its backoff, if
    /// any, over): refresh unless someone did, or stored a new credential, since the claim.
    Scheduled { since_ms: i64 },
    /// `POST /api/tokens/{provider}/refresh`: refresh unless someone did since the request began.
    Forced { since_ms: i64 },
}

#[derive(Clone)]
pub struct RefreshEngine {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    settings: Arc<Settings>,
    margin_secs: i64,
    locks: CredentialLocks,
    tasks: Tasks,
}

impl RefreshEngine {
    pub fn new(settings: Arc<Settings>) -> Self {
        let http = grants::http_client(settings.outbound_timeout);
        let margin_secs = settings.refresh_margin.as_secs() as i64;
        Self {
            inner: Arc::new(Inner {
                http,
                settings,
                margin_secs,
                locks: CredentialLocks::default(),
                tasks: Tasks::default(),
            }),
        }
    }

    pub fn margin_secs(&self) -> i64 {
        self.inner.margin_secs
    }

    /// Whether a credential is due for a refresh at `now`: within the margin of its expiry (a margin
    /// capped by the lifetime of tokens this engine obtained), expired, or none minted yet
    /// ([`timing::is_expiring`]).
    pub fn is_expiring(&self, row: &Connection, now_secs: i64) -> bool {
        timing::is_expiring(self.inner.margin_secs, row.expires_at, row.next_refresh_at, now_secs)
    }

    /// Holds one credential's lock until dropped: first in this process, then across processes
    /// ([`crate::db::Store::refresh_lock`]). Refreshes, stores and deletes of a credential take it, so they
    /// never overlap: a delete cannot fall between a store's secret write and its reference, and a
    /// refresh never works on a credential being replaced or deleted.
    pub(crate) async fn lock(
        &self,
        svc: &CredentialService,
        user_id: &str,
        provider: &str,
    ) -> Result<CredentialLock, CredentialError> {
        self.inner.locks.lock(svc.store.as_ref(), user_id, provider).await
    }

    /// At shutdown, once no request is left: waits (up to `within`) for refreshes still running, those
    /// whose caller went away, so that none is cut between the provider's answer and the secret write.
    pub async fn finish(&self, within: std::time::Duration) {
        self.inner.tasks.finish(within).await
    }

    /// Refreshes the credential if `trigger` says it is due: the token data to serve, and whether the
    /// refresh recorded its audit event ([`Outcome`]).
    ///
    /// The work runs in a spawned task that this call awaits: dropping this future (a client that
    /// disconnects) leaves the refresh running to the end, so a rotated refresh token is always stored.
    pub async fn refresh(
        &self,
        svc: &CredentialService,
        spec: &'static ProviderSpec,
        user_id: &str,
        provider: &str,
        trigger: Trigger,
        client_addr: &str,
    ) -> Outcome {
        let job = Job::new(spec, user_id, provider, trigger, client_addr);
        self.inner.tasks.run(self, svc, job).await
    }

    /// The refresh itself, in its task ([`Tasks::run`]); the provider's answer, once kept, goes in `job.note`.
    pub(super) async fn refresh_in_task(
        &self,
        svc: &CredentialService,
        job: &mut Job,
    ) -> Result<TokenData, CredentialError> {
        let (user_id, provider) = (job.user_id.clone(), job.provider.clone());
        let _lock = self.lock(svc, &user_id, &provider).await?;

        let row = svc.row(&user_id, &provider).await?;
        if row.status == status::NEEDS_REAUTH {
            return Err(needs_reauth(&row));
        }
        let now = svc.clock.now_secs();
        let due = match job.trigger {
            Trigger::Forced { since_ms } | Trigger::Scheduled { since_ms } => row.updated_at <= since_ms,
            Trigger::Read => {
                let backing_off = row.status == status::DEGRADED && row.next_refresh_at.is_some_and(|n| n > now);
                self.is_expiring(&row, now) && !backing_off
            }
        };
        if !due {
            return self.serve_current(svc, &row, now).await;
        }
        let name = svc.secret_name(&user_id, &provider);
        let (latest, cas) = newest_secret(svc, &name, &row).await?;
        let current = crate::credentials::cache::parse(&latest)
            .ok_or_else(|| CredentialError::Inconsistent(format!("secret {name} is not a JSON object")))?;
        let ctx = GrantContext {
            http: &self.inner.http,
            settings: &self.inner.settings,
            now,
            user_id: &user_id,
        };
        match grants::refresh(job.spec, &current, &ctx).await {
            Ok(fresh) => self.store_refreshed(svc, job, row, cas, fresh, now).await,
            Err(GrantError::NotRefreshable) => self.serve_current(svc, &row, now).await,
            Err(e) => self.store_failure(svc, job, row, &e, now).await,
        }
    }

    /// A successful refresh: the secret first (a rotated refresh token must never be lost), then the row.
    async fn store_refreshed(
        &self,
        svc: &CredentialService,
        job: &mut Job,
        row: Connection,
        cas: u64,
        fresh: Refreshed,
        now: i64,
    ) -> Result<TokenData, CredentialError> {
        metrics::refresh_outcome(&job.provider, RefreshOutcome::Ok);
        let name = svc.secret_name(&job.user_id, &job.provider);
        let payload = secrecy::SecretString::from(Value::Object(fresh.token_data.clone()).to_string());
        let version = match persist::write_secret(svc.secrets.as_ref(), &name, &payload, cas).await {
            Ok(v) => v,
            Err(SecretError::CasMismatch) => {
                // The user stored a new credential meanwhile (or deleted it): theirs wins.
                let row = svc.row(&job.user_id, &job.provider).await?;
                return svc.read_secret(&row).await;
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
                .map(|e| timing::planned_refresh(self.inner.margin_secs, e, now)),
            refresh_failures: 0,
            updated_at: svc.clock.now_ms(),
            ..row
        };
        match persist::land_row(svc, &updated).await? {
            Landing::Recorded => {
                job.note = Some(AuditNote::ok());
                Ok(TokenData(fresh.token_data))
            }
            Landing::Gone => Err(CredentialError::NotConnected(job.provider.clone())),
            Landing::Superseded(current) => svc.read_secret(&current).await,
        }
    }

    /// A failed refresh: the new status in the row (dropping cached copies everywhere), a metric, an
    /// audit event with the reason, a log line; then what the caller gets.
    async fn store_failure(
        &self,
        svc: &CredentialService,
        job: &mut Job,
        row: Connection,
        err: &GrantError,
        now: i64,
    ) -> Result<TokenData, CredentialError> {
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
        match persist::land_row(svc, &updated).await? {
            Landing::Recorded => {}
            // Deleted while the provider was called: nothing to record, nothing to serve.
            Landing::Gone => return Err(CredentialError::NotConnected(job.provider.clone())),
            // A new credential was stored meanwhile: the old one's failure is not its failure.
            Landing::Superseded(current) => return svc.read_secret(&current).await,
        }
        job.note = Some(AuditNote::failed(reason));
        if updated.status == status::NEEDS_REAUTH {
            return Err(needs_reauth(&updated));
        }
        // Still-valid tokens keep being served; otherwise 503 (serve_current).
        self.serve_current(svc, &updated, now).await
    }

    /// The stored credential, unless the last refresh failed and it holds no usable token: then
    /// [`CredentialError::RefreshUnavailable`] (503).
    ///
    /// Usable means unexpired; with no known expiry, holding an access token at all. A credential never
    /// minted (azure, tailscale, aws before their first token) has neither: serving its stored fields
    /// would answer 200 with no token in it.
    async fn serve_current(
        &self,
        svc: &CredentialService,
        row: &Connection,
        now: i64,
    ) -> Result<TokenData, CredentialError> {
        let unavailable = || CredentialError::RefreshUnavailable {
            provider: row.provider.clone(),
            reason: row.status_reason.clone().unwrap_or_default(),
        };
        if row.status != status::DEGRADED {
            return svc.read_secret(row).await;
        }
        match row.expires_at {
            Some(e) if e <= now => Err(unavailable()),
            Some(_) => svc.read_secret(row).await,
            None => {
                let data = svc.read_secret(row).await?;
                match grants::str_field(&data.0, "access_token") {
                    Some(_) => Ok(data),
                    None => Err(unavailable()),
                }
            }
        }
    }
}

/// The secret a refresh starts from, and the version its write must check-and-set against: the newest
/// version, since after a rotation whose reference update failed it holds the live refresh token. When
/// the current version was soft-deleted in Vault (its number stays current), the version the row names.
async fn newest_secret(
    svc: &CredentialService,
    name: &str,
    row: &Connection,
) -> Result<(secrecy::SecretString, u64), CredentialError> {
    if let Some(latest) = svc.secrets.read(name, None).await? {
        return Ok((latest.value, latest.version));
    }
    let missing = || CredentialError::Inconsistent(format!("secret {name} is missing"));
    let current = svc.secrets.current_version(name).await?;
    let named = svc
        .secrets
        .read(name, Some(row.secret_version as u64))
        .await?
        .ok_or_else(missing)?;
    Ok((named.value, current))
}
