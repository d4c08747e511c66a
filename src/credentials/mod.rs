//! Provider credentials: every workflow on one credential's life is a method of [`CredentialService`].
//! The secret goes to the [`SecretStore`]; SQL keeps only the reference and non-secret metadata
//! (`docs/STORAGE.md`).
//!
//! - store ([`CredentialService::store_tokens_in_db`]): write the secret first (check-and-set), then the
//!   reference; if the SQL write fails, put the secret store back as it was;
//! - read ([`CredentialService::get_token_data`]): the version the reference names, refreshed first when due;
//! - refresh ([`refresh`]: on a read, on `POST .../refresh`, and [`CredentialService::refresh_due`] for the
//!   background refresher), through the stateless grants of [`crate::refresh`];
//! - delete ([`CredentialService::delete`]): the reference first, then the secret; if destroying the
//!   secret fails, the reference is restored and the caller told to retry.
//!
//! Stores, deletes and refreshes of one credential hold its lock ([`lock`]), so they never overlap.

pub mod cache;
mod delete;
mod lock;
pub mod naming;
mod read;
pub mod refresh;
mod store;
pub mod view;

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::audit::{Auditor, Event, EventKind, Outcome};
use crate::clock::SharedClock;
use crate::db::{ChangeFeed, DbError, SharedStore};
use crate::providers::{FieldError, ProviderSpec, UrlPolicy};
use crate::secrets::{SecretError, SecretStore};
pub use refresh::{DueBatch, PassReport, RefreshSettings};
pub use view::ConnectionView;

/// Connection states, as shown in listings.
pub mod status {
    pub const ACTIVE: &str = "active";
    pub const DEGRADED: &str = "degraded";
    pub const NEEDS_REAUTH: &str = "needs_reauth";
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("Unknown provider: {0}")]
    UnknownProvider(String),
    #[error("{0}")]
    Invalid(#[from] FieldError),
    #[error("No {0} credential is stored")]
    NotConnected(String),
    #[error("The {provider} credential needs to be connected again")]
    NeedsReauth { provider: String, reason: String },
    #[error("The {0} credential was changed at the same time; retry")]
    Conflict(String),
    #[error("Secret store unavailable")]
    SecretStoreUnavailable(#[source] SecretError),
    #[error("The provider could not refresh the {provider} credential")]
    RefreshUnavailable { provider: String, reason: String },
    #[error("stored credential is inconsistent: {0}")]
    Inconsistent(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<SecretError> for CredentialError {
    fn from(e: SecretError) -> Self {
        match e {
            SecretError::Unavailable(_) => {
                crate::metrics::secret_store_error();
                Self::SecretStoreUnavailable(e)
            }
            SecretError::CasMismatch => Self::Conflict(String::new()),
            SecretError::Corrupt(m) => Self::Inconsistent(m),
        }
    }
}

/// Secret token data, in Aurora's field names. `Debug` shows the field names only.
pub struct TokenData(pub Map<String, Value>);

impl std::fmt::Debug for TokenData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: Vec<&String> = self.0.keys().collect();
        write!(f, "TokenData(<redacted: {keys:?}>)")
    }
}

/// What a store returns: the connection, and the external id if Tokenkeeper generated it (shown once).
#[derive(Debug)]
pub struct Stored {
    pub connection: ConnectionView,
    pub generated_external_id: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NamingSettings {
    pub prefix: String,
    pub env: String,
}

/// Stores, reads, refreshes and deletes provider credentials. Cheap to clone (shared parts).
#[derive(Clone)]
pub struct CredentialService {
    store: SharedStore,
    secrets: Arc<dyn SecretStore>,
    clock: SharedClock,
    audit: Auditor,
    /// Fixed once built: secret naming, the URL policy, how refreshes are made.
    config: Arc<Config>,
    /// One lock per credential, held by its stores, deletes and refreshes.
    locks: Arc<lock::CredentialLocks>,
    /// Refreshes running in tasks of their own (awaited at shutdown).
    tasks: refresh::Tasks,
    cache: Option<Arc<cache::ReadCache>>,
}

struct Config {
    naming: NamingSettings,
    url_policy: UrlPolicy,
    refresh: RefreshSettings,
    /// The outbound client of the refresh grants (its timeout bounds every call).
    http: reqwest::Client,
}

impl CredentialService {
    /// A service with the default refresh settings (see [`CredentialService::with_refresh`]) and no read
    /// cache (see [`CredentialService::with_cache`]).
    pub fn new(
        store: SharedStore,
        secrets: Arc<dyn SecretStore>,
        clock: SharedClock,
        audit: Auditor,
        naming: NamingSettings,
        url_policy: UrlPolicy,
    ) -> Self {
        let refresh = RefreshSettings::default();
        let http = crate::refresh::http_client(refresh.outbound_timeout);
        Self {
            store,
            secrets,
            clock,
            audit,
            config: Arc::new(Config {
                naming,
                url_policy,
                refresh,
                http,
            }),
            locks: Arc::default(),
            tasks: refresh::Tasks::default(),
            cache: None,
        }
    }

    /// How credentials are refreshed: the margin before expiry, the outbound timeout, the grants' settings.
    pub fn with_refresh(mut self, refresh: RefreshSettings) -> Self {
        self.config = Arc::new(Config {
            naming: self.config.naming.clone(),
            url_policy: self.config.url_policy,
            http: crate::refresh::http_client(refresh.outbound_timeout),
            refresh,
        });
        self
    }

    /// Turns on the in-memory read cache (reference rows always; token data when `secrets`), kept in step
    /// with the other processes' changes (PostgreSQL: by listening for them; SQLite: a shared counter).
    pub async fn with_cache(mut self, secrets: bool) -> Result<Self, CredentialError> {
        let cache = match self.store.subscribe_changes().await? {
            ChangeFeed::Counted(counter) => Arc::new(cache::ReadCache::new(secrets, Some(counter))),
            ChangeFeed::Announced(mut changes) => {
                let cache = Arc::new(cache::ReadCache::new(secrets, None));
                let weak = Arc::downgrade(&cache);
                tokio::spawn(async move {
                    while let Some(key) = changes.recv().await {
                        let Some(cache) = weak.upgrade() else { break };
                        cache.announced(&key);
                    }
                });
                cache
            }
        };
        self.cache = Some(cache);
        Ok(self)
    }

    /// How many credentials the read cache holds (0 when it is off).
    pub fn cached_entries(&self) -> usize {
        self.cache.as_ref().map_or(0, |c| c.len())
    }

    /// How many change announcements (PostgreSQL `NOTIFY`, this instance's own included) the read cache
    /// has applied; they arrive in commit order. Always 0 on SQLite and without a cache.
    pub fn cache_announcements(&self) -> u64 {
        self.cache.as_ref().map_or(0, |c| c.announcements())
    }

    /// A credential was written or deleted (and committed): drop cached copies here and in every other
    /// process. Other processes are told even when this one keeps no cache (a library caller, say).
    async fn changed(&self, user_id: &str, provider: &str) {
        let key = cache::key(user_id, provider);
        if let Some(c) = &self.cache {
            c.remove(&key);
        }
        match self.store.notify_changed(&key).await {
            Ok(Some(counted)) => {
                if let Some(c) = &self.cache {
                    c.changed_here(counted)
                }
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "could not notify other processes of a changed credential"),
        }
    }

    /// At shutdown, once no request is left: waits (up to `within`) for refreshes whose caller went
    /// away, so that each stores the token it got from the provider.
    pub async fn finish_refreshes(&self, within: std::time::Duration) {
        self.tasks.finish(within).await
    }

    pub fn secret_name(&self, user_id: &str, provider: &str) -> String {
        let naming = &self.config.naming;
        naming::secret_name(&naming.prefix, &naming.env, user_id, provider)
    }

    fn spec(provider: &str) -> Result<&'static ProviderSpec, CredentialError> {
        crate::providers::find(provider).ok_or_else(|| CredentialError::UnknownProvider(provider.to_string()))
    }

    /// Audits the outcome of an operation (with a short reason on failure) and passes it through.
    async fn audited<T>(
        &self,
        user: &str,
        kind: EventKind,
        provider: &str,
        addr: &str,
        res: Result<T, CredentialError>,
    ) -> Result<T, CredentialError> {
        let reason = res.as_ref().err().map(failure_reason);
        self.audit(user, kind, provider, res.is_ok(), addr, reason).await;
        res
    }

    async fn audit(&self, user: &str, kind: EventKind, provider: &str, ok: bool, addr: &str, detail: Option<&str>) {
        let outcome = if ok { Outcome::Ok } else { Outcome::Failed };
        let e = Event {
            user_id: Some(user),
            kind,
            provider: Some(provider),
            outcome,
            client_addr: Some(addr),
            detail,
        };
        // Failures are logged and counted by the auditor; they never fail the user's request.
        let _ = self.audit.record(e).await;
    }
}

/// A short, non-secret reason for the audit trail.
fn failure_reason(e: &CredentialError) -> &'static str {
    match e {
        CredentialError::UnknownProvider(_) => "unknown provider",
        CredentialError::Invalid(_) => "invalid input",
        CredentialError::NotConnected(_) => "not connected",
        CredentialError::NeedsReauth { .. } => "needs_reauth",
        CredentialError::Conflict(_) => "concurrent change",
        CredentialError::SecretStoreUnavailable(_) => "secret store unavailable",
        CredentialError::RefreshUnavailable { .. } => "refresh failed",
        CredentialError::Inconsistent(_) => "inconsistent",
        CredentialError::Db(_) => "database error",
    }
}
