//! Wiring: settings in, a running service out. Used by `tokenkeeper serve`, the CLI and the tests
//! (which bind port 0 and pass a controllable clock).

use std::sync::Arc;

use anyhow::Context as _;
use secrecy::ExposeSecret;
use tokio::net::TcpListener;

use crate::audit::Auditor;
use crate::background::{AuditPruner, Checker, Refresher, RefresherSettings, WebhookDriver};
use crate::clock::SharedClock;
use crate::config::{SecretBackend, Settings};
use crate::credentials::{CredentialService, DueBatch, NamingSettings, RefreshSettings};
use crate::db::{self, SharedStore};
use crate::events::ChangeEvents;
use crate::events::deliver::{Deliverer, DeliverySettings};
use crate::http::{self, AppServices, AppState};
use crate::identity::{Authenticator, Sessions};
use crate::metrics::Metrics;
use crate::orgs::OrgService;
use crate::passwords::{Hasher, PasswordService, REGISTER_WINDOW, RateLimiter};
use crate::providers::UrlPolicy;
use crate::secrets::SecretStore;
use crate::secrets::embedded::{EmbeddedKey, EmbeddedStore};
use crate::secrets::vault::{VaultAuth, VaultConfig, VaultStore};

/// Every long-lived part of the service, built once from the settings.
#[derive(Clone)]
pub struct Services {
    pub settings: Arc<Settings>,
    pub clock: SharedClock,
    pub store: SharedStore,
    pub secrets: Arc<dyn SecretStore>,
    pub audit: Auditor,
    pub passwords: PasswordService,
    pub authenticator: Authenticator,
    pub credentials: CredentialService,
    pub orgs: OrgService,
    /// Sessions, users' password changes and roles in memory (read through by `authenticator`, `orgs`).
    pub identity: Arc<db::IdentityCache>,
    pub connect: crate::connect::ConnectService,
    /// The background refresher (run by [`Services::serve`] unless disabled; tests run its passes).
    pub refresher: Refresher,
    /// The background checker of static keys (run beside the refresher; tests run its passes).
    pub checker: Checker,
    /// The audit pruner (run by [`Services::serve`]; its first pass an interval after start).
    pub audit_pruner: AuditPruner,
    /// This instance's HTTP metrics (served at `/metrics` with the process-wide counters).
    pub metrics: Metrics,
    /// The change events' deliverer, with a webhook receiver configured (run by [`Services::serve`]
    /// unless disabled; tests run its passes).
    pub webhooks: Option<Deliverer>,
}

impl Services {
    /// The Aurora importer over these services' database, secret store and credentials.
    pub fn importer(&self) -> crate::import::Importer {
        crate::import::Importer::new(
            self.store.clone(),
            self.secrets.clone(),
            self.credentials.clone(),
            self.identity.clone(),
            self.clock.clone(),
        )
    }

    pub async fn build(settings: Settings, clock: SharedClock) -> anyhow::Result<Self> {
        Self::build_wrapping_secrets(settings, clock, |secrets| secrets).await
    }

    /// [`Services::build`], with the configured secret store handed to `wrap` first: every service then
    /// uses what `wrap` returns (a decorator: instrumentation, or a test's injected failures).
    pub async fn build_wrapping_secrets(
        settings: Settings,
        clock: SharedClock,
        wrap: impl FnOnce(Arc<dyn SecretStore>) -> Arc<dyn SecretStore>,
    ) -> anyhow::Result<Self> {
        crate::files::private_dir(&settings.data_dir)
            .with_context(|| format!("cannot create data dir {}", settings.data_dir.display()))?;
        let store = db::connect(&database_url(&settings))
            .await
            .context("cannot open the database")?;
        let secrets = wrap(open_secret_store(&settings).await?);
        let audit = Auditor::new(store.clone(), clock.clone(), &settings.audit).with_context(|| {
            let target = settings
                .audit
                .log
                .as_ref()
                .map(|t| format!("{t:?}"))
                .unwrap_or_default();
            format!("{}: cannot open the audit log {target}", crate::config::audit::LOG_VAR)
        })?;
        let pw = &settings.passwords;
        // Sessions, password changes and roles in memory, dropped on every change in any process.
        let identity = db::IdentityCache::connect(store.clone()).await?;
        let sessions = Sessions::new(store.clone(), identity.clone(), clock.clone(), pw.session_ttl);
        let hasher = Hasher::new(pw).await?;
        // One table for both limits: neither prunes what the other still counts.
        let keep = pw.failure_window.max(REGISTER_WINDOW);
        let limiter = RateLimiter::new(store.clone(), clock.clone(), pw.max_failures, pw.failure_window).keeping(keep);
        let registrations =
            RateLimiter::new(store.clone(), clock.clone(), pw.register_limit, REGISTER_WINDOW).keeping(keep);
        let passwords = PasswordService::new(
            store.clone(),
            clock.clone(),
            hasher,
            limiter,
            registrations,
            sessions.clone(),
            audit.clone(),
        );
        let authenticator = Authenticator::new(
            clock.clone(),
            sessions,
            settings.auth_secrets.clone(),
            settings.internal_secret.clone(),
        );
        let settings = Arc::new(settings);
        let naming = NamingSettings {
            prefix: settings.secret_prefix.clone(),
            env: settings.env_name.clone(),
        };
        let url_policy = UrlPolicy {
            allow_private: settings.allow_private_urls,
            allow_http: settings.allow_private_urls,
        };
        let credentials = CredentialService::new(
            store.clone(),
            secrets.clone(),
            clock.clone(),
            audit.clone(),
            naming,
            url_policy,
        )
        .with_refresh(RefreshSettings {
            margin: settings.refresh_margin,
            outbound_timeout: settings.outbound_timeout,
            grants: Arc::new(settings.grants.clone()),
        })
        .with_checks(settings.checks.clone(), settings.address_policy());
        // Reference rows are always cached (they hold no secret); token data only with TOKENKEEPER_READ_CACHE.
        let credentials = credentials
            .with_cache(settings.read_cache)
            .await?
            .with_events(ChangeEvents::new(settings.webhooks.is_some()));
        let refresher = Refresher::new(
            credentials.clone(),
            clock.clone(),
            RefresherSettings {
                interval: settings.refresh_interval,
                batch: DueBatch::default(),
            },
        );
        let checker = Checker::new(
            credentials.clone(),
            clock.clone(),
            settings.checks.interval,
            settings.checks.per_second,
        );
        let audit_pruner = AuditPruner::new(audit.clone(), settings.audit.prune_interval);
        let metrics = Metrics::new();
        let webhooks = settings.webhooks.as_ref().map(|w| {
            let delivery = DeliverySettings {
                url: w.url.clone(),
                secret: w.secret.clone(),
                batch: w.batch,
                timeout: settings.outbound_timeout,
                give_up_after: std::time::Duration::from_secs(24 * 3600),
            };
            Deliverer::new(store.clone(), clock.clone(), delivery, metrics.webhooks())
        });
        let orgs = OrgService::new(store.clone(), identity.clone(), clock.clone());
        let connect = crate::connect::ConnectService::new(
            store.clone(),
            clock.clone(),
            audit.clone(),
            credentials.clone(),
            Arc::new(settings.connect.clone()),
            Arc::new(settings.grants.clone()),
            settings.outbound_timeout,
        );
        Ok(Self {
            settings,
            clock,
            store,
            secrets,
            audit,
            passwords,
            authenticator,
            credentials,
            orgs,
            identity,
            connect,
            refresher,
            checker,
            audit_pruner,
            metrics,
            webhooks,
        })
    }

    pub fn router(&self) -> axum::Router {
        let state = AppState::new(AppServices {
            passwords: self.passwords.clone(),
            authenticator: self.authenticator.clone(),
            trusted_proxies: self.settings.trusted_proxies.clone(),
            credentials: self.credentials.clone(),
            orgs: self.orgs.clone(),
            connect: self.connect.clone(),
            audit: self.audit.clone(),
            readiness: Readiness {
                store: self.store.clone(),
                secrets: self.secrets.clone(),
            },
            metrics: self.metrics.clone(),
        });
        http::router(
            state,
            self.settings.max_body_bytes,
            self.settings.http.request_timeout,
            self.settings.console,
        )
    }

    /// Serves on `listener` until `shutdown` resolves; in-flight requests finish first.
    pub async fn serve(
        &self,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let refresher = self
            .settings
            .refresher_enabled
            .then(|| tokio::spawn(self.refresher.clone().run(stop_rx.clone())));
        let webhooks = match (&self.webhooks, &self.settings.webhooks) {
            (Some(d), Some(w)) if !w.deliverer_disabled => Some(tokio::spawn(
                WebhookDriver::new(d.clone(), w.interval).run(stop_rx.clone()),
            )),
            _ => None,
        };
        // The checker runs where the refresher does (`TOKENKEEPER_REFRESHER_DISABLED` stops both).
        let checker = self
            .settings
            .refresher_enabled
            .then(|| tokio::spawn(self.checker.clone().run(stop_rx.clone())));
        let pruner = tokio::spawn(self.audit_pruner.clone().run(stop_rx));
        let gauges = self.metrics.client_connections();
        let res = http::serve::serve(listener, self.router(), self.settings.http, gauges, async move {
            shutdown.await;
            // The refresher stops between credentials; requests in flight finish.
            let _ = stop_tx.send(true);
        })
        .await;
        if let Some(r) = refresher {
            let _ = r.await;
        }
        // The deliverer finishes the batch it is sending (bounded by the outbound timeout): an event sent
        // but not yet recorded would be sent again after restart (receivers deduplicate on webhook-id).
        if let Some(w) = webhooks {
            let _ = w.await;
        }
        if let Some(c) = checker {
            let _ = c.await;
        }
        // A prune in progress is not waited for: each of its statements is atomic, the next pass goes on.
        pruner.abort();
        // Refreshes whose caller disconnected run on: let them store what they got (bounded by the
        // outbound timeout, plus the secret write's retries).
        self.credentials
            .finish_refreshes(self.settings.outbound_timeout + std::time::Duration::from_secs(5))
            .await;
        // Events still queued for the audit writer go to the database before the process exits.
        self.audit.flush().await;
        res?;
        Ok(())
    }
}

/// `DATABASE_URL`, or the embedded default: a SQLite file in the data dir.
pub fn database_url(settings: &Settings) -> String {
    match &settings.database_url {
        Some(url) => url.expose_secret().to_string(),
        None => format!("sqlite://{}", settings.data_dir.join("tokenkeeper.db").display()),
    }
}

/// Where secrets go: Vault when `VAULT_ADDR` is set, else the embedded encrypted store.
pub fn describe_secret_store(settings: &Settings) -> String {
    match &settings.secret_backend {
        SecretBackend::Vault(v) => {
            format!("Vault at {} (KV v2 mount {:?})", v.addr, settings.kv_mount)
        }
        SecretBackend::Embedded { .. } => {
            format!(
                "embedded encrypted store in {}",
                settings.data_dir.join("secrets.sqlite").display()
            )
        }
    }
}

async fn open_secret_store(settings: &Settings) -> anyhow::Result<Arc<dyn SecretStore>> {
    let (mount, base) = (settings.kv_mount.as_str(), settings.kv_base_path.as_str());
    Ok(match &settings.secret_backend {
        SecretBackend::Embedded { key } => {
            let key = match key {
                Some(k) => EmbeddedKey::from_base64(k.expose_secret()).context("TOKENKEEPER_SECRET_KEY")?,
                None => EmbeddedKey::load_or_generate(&settings.data_dir.join("secret.key"))?,
            };
            Arc::new(EmbeddedStore::open(&settings.data_dir.join("secrets.sqlite"), key, mount, base).await?)
        }
        SecretBackend::Vault(v) => {
            let auth = match (&v.token, &v.role_id, &v.secret_id) {
                (Some(_), _, _) if v.token_file.is_some() => {
                    VaultAuth::TokenFile(v.token_file.clone().expect("checked"))
                }
                (Some(t), _, _) => VaultAuth::Token(t.clone()),
                (None, Some(role_id), Some(secret_id)) => VaultAuth::AppRole {
                    role_id: role_id.clone(),
                    secret_id: secret_id.clone(),
                },
                _ => anyhow::bail!("VAULT_ADDR is set without VAULT_TOKEN or AppRole credentials"),
            };
            let ca_cert_pem = match &v.ca_cert {
                Some(p) => {
                    Some(std::fs::read(p).with_context(|| format!("VAULT_CACERT: cannot read {}", p.display()))?)
                }
                None => None,
            };
            Arc::new(
                VaultStore::connect(VaultConfig {
                    addr: v.addr.clone(),
                    auth,
                    mount: mount.to_string(),
                    base_path: base.to_string(),
                    namespace: v.namespace.clone(),
                    ca_cert_pem,
                    timeout: settings.outbound_timeout,
                })
                .await?,
            )
        }
    })
}

/// What `/readyz` checks: the database and the secret store answer.
#[derive(Clone)]
pub struct Readiness {
    store: SharedStore,
    secrets: Arc<dyn SecretStore>,
}

impl Readiness {
    /// `(database, secret store)`: `None` when reachable, else a short non-secret reason.
    pub async fn check(&self) -> (Option<String>, Option<String>) {
        let (db, secrets) = tokio::join!(self.store.ping(), self.secrets.check());
        (db.err().map(|e| e.to_string()), secrets.err().map(|e| e.to_string()))
    }
}
