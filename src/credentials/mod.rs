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
//!   secret fails, the reference is restored and the caller told to retry; then the grant is revoked at
//!   the provider where the catalog declares how ([`revoke`]).
//!
//! Stores, deletes and refreshes of one credential hold its lock ([`lock`]), so they never overlap.

mod adopt;
pub mod cache;
mod check;
mod delete;
mod error;
mod key;
mod lock;
pub mod naming;
mod onboarding;
mod read;
pub mod refresh;
mod revoke;
mod store;
pub mod view;

use std::sync::Arc;

use crate::audit::{Auditor, Event, EventKind, Outcome};
use crate::clock::SharedClock;
use crate::config::CheckSettings;
pub use crate::db::ConnectionStatus;
use crate::db::{ChangeFeed, Connection, SharedStore};
use crate::events::ChangeEvents;
use crate::net::{AddressPolicy, SafeFetcher};
pub use crate::providers::TokenData;
use crate::providers::UrlPolicy;
use crate::secrets::SecretStore;
pub use adopt::Adopted;
pub use check::{CheckPass, CheckReport};
pub use delete::Deleted;
pub use error::CredentialError;
use error::failure_reason;
pub use key::{Caller, ConnectionKey, ConnectionName, OrgId, Target, UserId};
pub use naming::NamingSettings;
pub use refresh::{DueBatch, PassReport, RefreshSettings};
pub use view::ConnectionView;

/// What a store returns: the connection, and the external id if Tokenkeeper generated it (shown once).
#[derive(Debug)]
pub struct Stored {
    pub connection: ConnectionView,
    pub generated_external_id: Option<String>,
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
    /// The change events each write stores beside it (none without a webhook receiver).
    events: ChangeEvents,
    checks: Checks,
}

/// How credentials are checked: the settings, and the two fetchers (same timeout as the grants).
#[derive(Clone)]
struct Checks {
    settings: CheckSettings,
    policy: AddressPolicy,
    /// For base URLs users gave: the address policy holds.
    user_urls: SafeFetcher,
    /// For hosted APIs and endpoints in the configuration.
    configured: SafeFetcher,
}

/// The largest check answer read.
const CHECK_ANSWER_MAX: usize = 256 * 1024;

impl Checks {
    fn new(
        settings: CheckSettings,
        policy: AddressPolicy,
        url_policy: UrlPolicy,
        timeout: std::time::Duration,
    ) -> Self {
        Self {
            user_urls: SafeFetcher::new(policy.clone(), url_policy.allow_http, timeout, CHECK_ANSWER_MAX),
            configured: SafeFetcher::new(AddressPolicy::any(), true, timeout, CHECK_ANSWER_MAX),
            settings,
            policy,
        }
    }
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
        // Nothing is checked on store until `with_checks` says so (library callers, tests).
        let check_settings = CheckSettings::default().with_on_store(false);
        let checks = Checks::new(
            check_settings,
            AddressPolicy::public_only(),
            url_policy,
            refresh.outbound_timeout,
        );
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
                events: ChangeEvents::default(),
                checks,
            }),
            locks: Arc::default(),
            tasks: refresh::Tasks::default(),
            cache: None,
        }
    }

    /// How credentials are refreshed: the margin before expiry, the outbound timeout, the grants' settings.
    pub fn with_refresh(self, refresh: RefreshSettings) -> Self {
        let checks = &self.config.checks;
        let (settings, policy) = (checks.settings.clone(), checks.policy.clone());
        self.configured(refresh, settings, policy)
    }

    /// How credentials are checked (`docs/CHECKS.md`): on store or not, how often in the background, the
    /// providers' API URLs; `policy`: the addresses requests to user-given base URLs may reach.
    pub fn with_checks(self, settings: crate::config::CheckSettings, policy: AddressPolicy) -> Self {
        let refresh = self.config.refresh.clone();
        self.configured(refresh, settings, policy)
    }

    fn configured(mut self, refresh: RefreshSettings, settings: CheckSettings, policy: AddressPolicy) -> Self {
        let url_policy = self.config.url_policy;
        self.config = Arc::new(Config {
            naming: self.config.naming.clone(),
            url_policy,
            http: crate::refresh::http_client(refresh.outbound_timeout),
            checks: Checks::new(settings, policy, url_policy, refresh.outbound_timeout),
            refresh,
            events: self.config.events,
        });
        self
    }

    /// Writes a change event to the outbox with every change of a connection (in its transaction), for
    /// the webhook deliverer.
    pub fn with_events(mut self, events: ChangeEvents) -> Self {
        self.config = Arc::new(Config {
            naming: self.config.naming.clone(),
            url_policy: self.config.url_policy,
            http: self.config.http.clone(),
            refresh: self.config.refresh.clone(),
            checks: self.config.checks.clone(),
            events,
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
                    while let Some(announcement) = changes.recv().await {
                        let Some(cache) = weak.upgrade() else { break };
                        cache.announced(&announcement);
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

    /// At shutdown, once no request is left: waits (up to `within`) for refreshes whose caller went
    /// away, so that each stores the token it got from the provider.
    pub async fn finish_refreshes(&self, within: std::time::Duration) {
        self.tasks.finish(within).await
    }

    /// The name of the credential's secret in the secret store.
    pub fn secret_name(&self, key: &ConnectionKey) -> String {
        self.config.naming.secret_name(key)
    }

    /// The secret a row names. Usually `secret_name(key)`; a connection adopted from Aurora keeps the
    /// name Aurora gave its secret (after the user who stored it), and reads, refreshes and deletes follow
    /// the reference rather than the name the key would give.
    pub(super) fn secret_of(&self, row: &Connection) -> Result<String, CredentialError> {
        self.secrets.name_of(&row.secret_ref).ok_or_else(|| {
            CredentialError::Inconsistent(format!(
                "reference {} is not in the configured secret store",
                row.secret_ref
            ))
        })
    }

    /// The credential `target` names in `org`; unknown providers are refused (404).
    fn key(org: &OrgId, target: &Target) -> Result<ConnectionKey, CredentialError> {
        let spec = crate::providers::find(&target.provider)
            .ok_or_else(|| CredentialError::UnknownProvider(target.provider.clone()))?;
        Ok(ConnectionKey::new(org.clone(), spec, target.name.clone()))
    }

    /// A credential was written or deleted (and committed): drop cached copies here and in every other
    /// process. Other processes are told even when this one keeps no cache (a library caller, say).
    async fn changed(&self, key: &ConnectionKey) {
        if let Some(c) = &self.cache {
            c.remove(key);
        }
        match self.store.notify_changed(&key.announcement()).await {
            Ok(Some(counted)) => {
                if let Some(c) = &self.cache {
                    c.changed_here(counted)
                }
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "could not notify other processes of a changed credential"),
        }
    }

    /// Every change of a connection's status passes here, after its row is written: the one place to hook
    /// a notification. `to` is the row as written.
    fn status_changed(&self, key: &ConnectionKey, from: ConnectionStatus, to: &crate::db::Connection) {
        if from != to.status {
            tracing::info!(
                org = %key.org(),
                provider = key.provider(),
                from = from.as_str(),
                to = to.status.as_str(),
                reason = to.status_reason.as_deref().unwrap_or(""),
                "connection status changed"
            );
        }
    }

    /// Audits the outcome of an operation (with a short reason on failure) and passes it through.
    async fn audited<T>(
        &self,
        caller: &Caller,
        kind: EventKind,
        target: &Target,
        addr: &str,
        res: Result<T, CredentialError>,
    ) -> Result<T, CredentialError> {
        let reason = res.as_ref().err().map(failure_reason);
        self.audit(caller, kind, target, res.is_ok(), addr, reason).await?;
        res
    }

    /// Records the event. A failed database write is the auditor's to log and count; a sink that cannot
    /// be written (and fails closed) fails the request.
    async fn audit(
        &self,
        caller: &Caller,
        kind: EventKind,
        target: &Target,
        ok: bool,
        addr: &str,
        detail: Option<&str>,
    ) -> Result<(), CredentialError> {
        let outcome = if ok { Outcome::Ok } else { Outcome::Failed };
        let e = Event {
            user_id: Some(caller.user.as_str()),
            org_id: Some(caller.org.as_str()),
            kind,
            provider: Some(&target.provider),
            connection: Some(target.name.as_str()),
            outcome,
            client_addr: Some(addr),
            detail,
        };
        Ok(self.audit.record(e).await?)
    }
}
