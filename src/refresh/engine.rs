//! The refresh engine: one code path for every provider and every trigger (a read within the margin,
//! `POST .../refresh`, the background scheduler).
//!
//! Single flight: an in-process mutex per credential, then the database's cross-instance lock
//! ([`crate::db::Store::refresh_lock`]). Under both, the row is read again: another caller or instance
//! may have refreshed already, and then its result is served instead of calling the provider again
//! (rotating refresh tokens are single-use: a second call would revoke the grant).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use rand::Rng as _;
use serde_json::Value;

use super::grants::{self, GrantContext, GrantError};
use crate::audit::EventKind;
use crate::config::Settings;
use crate::credentials::{CredentialError, CredentialService, TokenData, status};
use crate::db::Connection;
use crate::providers::ProviderSpec;
use crate::secrets::SecretError;

/// Why a refresh is attempted; it decides what "due" means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// A read: refresh when expiring, unless a failing provider is in backoff.
    Read,
    /// The background scheduler, which claimed the row when its backoff (if any) was over.
    Scheduled,
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
    locks: Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>,
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
                locks: Mutex::new(HashMap::new()),
            }),
        }
    }

    pub fn margin_secs(&self) -> i64 {
        self.inner.margin_secs
    }

    /// Whether a credential's access token expires within the margin (or is unknown: none minted yet).
    pub fn is_expiring(&self, row: &Connection, now_secs: i64) -> bool {
        row.next_refresh_at.is_some() && row.expires_at.is_none_or(|e| e - self.inner.margin_secs <= now_secs)
    }

    fn local_lock(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.inner.locks.lock().expect("lock map poisoned");
        if let Some(l) = locks.get(key).and_then(Weak::upgrade) {
            return l;
        }
        locks.retain(|_, w| w.strong_count() > 0);
        let l = Arc::new(tokio::sync::Mutex::new(()));
        locks.insert(key.to_string(), Arc::downgrade(&l));
        l
    }

    /// Refreshes the credential if `trigger` says it is due, and returns the token data to serve.
    pub async fn refresh(
        &self,
        svc: &CredentialService,
        spec: &'static ProviderSpec,
        user_id: &str,
        provider: &str,
        trigger: Trigger,
        client_addr: &str,
    ) -> Result<TokenData, CredentialError> {
        let key = format!("{user_id}\u{0}{provider}");
        let local = self.local_lock(&key);
        let _local = local.lock().await;
        let _cross = svc.store.refresh_lock(&key).await?;

        let row = svc.row(user_id, provider).await?;
        if row.status == status::NEEDS_REAUTH {
            return Err(crate::credentials::read::needs_reauth(&row));
        }
        let now = svc.clock.now_secs();
        let due = match trigger {
            Trigger::Forced { since_ms } => row.updated_at <= since_ms,
            // The scheduler plans refreshes up to a fifth of the margin early (jitter spreads them).
            Trigger::Scheduled => self.is_expiring(&row, now + self.inner.margin_secs / 5),
            Trigger::Read => {
                let backing_off = row.status == status::DEGRADED && row.next_refresh_at.is_some_and(|n| n > now);
                self.is_expiring(&row, now) && !backing_off
            }
        };
        if !due {
            return self.serve_current(svc, &row, now).await;
        }
        // The newest version: after a rotation whose reference update failed, it holds the live refresh token.
        let name = svc.secret_name(user_id, provider);
        let latest = svc
            .secrets
            .read(&name, None)
            .await?
            .ok_or_else(|| CredentialError::Inconsistent(format!("secret {name} is missing")))?;
        let current = crate::credentials::cache::parse(&latest.value)
            .ok_or_else(|| CredentialError::Inconsistent(format!("secret {name} is not a JSON object")))?;
        let ctx = GrantContext {
            http: &self.inner.http,
            settings: &self.inner.settings,
            now,
            user_id,
        };
        let outcome = grants::refresh(spec, &current, &ctx).await;
        match outcome {
            Ok(fresh) => {
                crate::metrics::refresh_outcome(provider, "ok");
                let payload = secrecy::SecretString::from(Value::Object(fresh.token_data.clone()).to_string());
                // Stored before it is served: a rotated refresh token must never be lost.
                let version = match svc.secrets.write(&name, &payload, Some(latest.version)).await {
                    Ok(v) => v,
                    Err(SecretError::CasMismatch) => {
                        // The user stored a new credential meanwhile: theirs wins.
                        let row = svc.row(user_id, provider).await?;
                        return svc.read_secret(&row).await;
                    }
                    Err(e) => return Err(e.into()),
                };
                let updated = Connection {
                    secret_version: version as i64,
                    metadata: Value::Object(spec.metadata_of(&fresh.token_data)).to_string(),
                    status: status::ACTIVE.into(),
                    status_reason: None,
                    expires_at: fresh.expires_at,
                    next_refresh_at: fresh
                        .expires_at
                        .map(|e| e - self.inner.margin_secs - jitter(self.inner.margin_secs / 5)),
                    refresh_failures: 0,
                    updated_at: svc.clock.now_ms(),
                    ..row
                };
                svc.store.upsert_connection(&updated).await?;
                svc.changed(user_id, provider).await;
                svc.audit(user_id, EventKind::CredentialRefresh, provider, true, client_addr, None)
                    .await;
                Ok(TokenData(fresh.token_data))
            }
            Err(GrantError::NotRefreshable) => self.serve_current(svc, &row, now).await,
            Err(GrantError::NeedsReauth { reason }) => {
                let updated = Connection {
                    status: status::NEEDS_REAUTH.into(),
                    status_reason: Some(reason),
                    next_refresh_at: None,
                    ..row
                };
                self.record_failure(svc, &updated, client_addr).await?;
                Err(crate::credentials::read::needs_reauth(&updated))
            }
            Err(GrantError::Transient { reason }) => {
                let failures = row.refresh_failures + 1;
                let updated = Connection {
                    status: status::DEGRADED.into(),
                    status_reason: Some(reason),
                    refresh_failures: failures,
                    next_refresh_at: Some(now + backoff_secs(failures)),
                    ..row
                };
                self.record_failure(svc, &updated, client_addr).await?;
                // Still-valid tokens keep being served; an expired one answers 503 (serve_current).
                self.serve_current(svc, &updated, now).await
            }
        }
    }

    /// A failed refresh: the new status in SQL (dropping cached copies everywhere), a metric, an audit
    /// event with the reason, a log line.
    async fn record_failure(
        &self,
        svc: &CredentialService,
        updated: &Connection,
        client_addr: &str,
    ) -> Result<(), CredentialError> {
        let (provider, reason) = (
            updated.provider.as_str(),
            updated.status_reason.as_deref().unwrap_or(""),
        );
        let outcome = if updated.status == status::NEEDS_REAUTH {
            "needs_reauth"
        } else {
            "degraded"
        };
        crate::metrics::refresh_outcome(provider, outcome);
        svc.store.upsert_connection(updated).await?;
        svc.changed(&updated.user_id, provider).await;
        let kind = EventKind::CredentialRefresh;
        svc.audit(&updated.user_id, kind, provider, false, client_addr, Some(reason))
            .await;
        tracing::warn!(
            provider,
            reason,
            outcome,
            failures = updated.refresh_failures,
            "refresh failed"
        );
        Ok(())
    }

    /// The stored credential, as long as its token has not expired (or it has no expiry).
    async fn serve_current(
        &self,
        svc: &CredentialService,
        row: &Connection,
        now: i64,
    ) -> Result<TokenData, CredentialError> {
        if row.expires_at.is_some_and(|e| e <= now) && row.status == status::DEGRADED {
            return Err(CredentialError::RefreshUnavailable {
                provider: row.provider.clone(),
                reason: row.status_reason.clone().unwrap_or_default(),
            });
        }
        svc.read_secret(row).await
    }
}

/// Exponential backoff with jitter: 30 s, 60 s, 120 s ... capped at one hour, each +-20 %.
pub fn backoff_secs(failures: i32) -> i64 {
    let base = 30i64
        .saturating_mul(1 << failures.clamp(1, 8).saturating_sub(1))
        .min(3600);
    base - base / 5 + jitter(2 * base / 5)
}

fn jitter(max: i64) -> i64 {
    if max <= 0 {
        0
    } else {
        rand::thread_rng().gen_range(0..=max)
    }
}
