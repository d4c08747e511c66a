//! `spawn_app`: the real service on 127.0.0.1:0 with a controllable clock, on SQLite or PostgreSQL.

use std::collections::HashMap;
use std::sync::Arc;

use reqwest::{Client, Response};
use serde_json::{Value, json};
use tokenkeeper::app::Services;
use tokenkeeper::clock::ManualClock;
use tokenkeeper::config::Settings;
use tokenkeeper::secrets::SecretStore;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

pub struct TestApp {
    pub url: String,
    pub client: Client,
    pub clock: Arc<ManualClock>,
    pub services: Services,
    pub database_url: String,
    pub dir: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

/// Settings for a test instance: defaults that keep tests fast, plus the test's own variables.
pub struct TestConfig {
    pub env: HashMap<String, String>,
}

impl Default for TestConfig {
    fn default() -> Self {
        let mut env = HashMap::new();
        env.insert("TOKENKEEPER_BCRYPT_COST".into(), "10".into());
        // The test client is the trusted proxy: a test picks its address with one X-Forwarded-For entry.
        env.insert("TOKENKEEPER_TRUSTED_PROXIES".into(), "127.0.0.1/32".into());
        // Tests register many users from one address.
        env.insert("TOKENKEEPER_REGISTER_LIMIT".into(), "100000".into());
        // Tests drive the refresher themselves (run_pass), with their clock.
        env.insert("TOKENKEEPER_REFRESHER_DISABLED".into(), "true".into());
        // Stores do not check with the provider (the suite stays offline); tests/api/checks.rs turns it on.
        env.insert("TOKENKEEPER_CHECK_ON_STORE".into(), "false".into());
        // Provider endpoints point at a closed local port: no test reaches the internet.
        for p in tokenkeeper::providers::catalog() {
            env.insert(p.token_url_env_var(), "http://127.0.0.1:9/token".into());
            if p.revocation.is_some() {
                env.insert(
                    tokenkeeper::providers::revoke_url_env_var(p.id),
                    "http://127.0.0.1:9/revoke".into(),
                );
            }
        }
        env.insert("AZURE_AUTHORITY_HOST".into(), "http://127.0.0.1:9".into());
        env.insert("AWS_ENDPOINT_URL_STS".into(), "http://127.0.0.1:9".into());
        env.insert("AWS_ACCESS_KEY_ID".into(), "AKIDEXAMPLETESTONLY".into());
        env.insert("AWS_SECRET_ACCESS_KEY".into(), "test-only-secret-key".into());
        Self { env }
    }
}

impl TestConfig {
    pub fn with(mut self, k: &str, v: &str) -> Self {
        self.env.insert(k.into(), v.into());
        self
    }
}

/// A secret-store decorator for [`spawn_app_wrapping_secrets`].
pub type WrapSecrets = Box<dyn FnOnce(Arc<dyn SecretStore>) -> Arc<dyn SecretStore> + Send>;

/// `None` when the backend is not available here (the skip is announced).
pub async fn spawn_app(db: Db, cfg: TestConfig) -> Option<TestApp> {
    spawn_app_wrapping_secrets(db, cfg, Box::new(|s| s)).await
}

/// [`spawn_app`], every service using the secret store `wrap` makes of the configured one (to inject
/// failures through the public surface).
pub async fn spawn_app_wrapping_secrets(db: Db, cfg: TestConfig, wrap: WrapSecrets) -> Option<TestApp> {
    let database_url = match db {
        Db::Sqlite => None,
        Db::Postgres => {
            let admin = super::postgres::admin_url()?;
            Some(super::postgres::fresh_database(&admin).await)
        }
    };
    Some(spawn_with_database(database_url, cfg, ManualClock::starting_now(), wrap).await)
}

/// An instance on a database the test made (an older schema to upgrade, say): `sqlite://...` or
/// `postgres://...`.
pub async fn spawn_on_database(database_url: String, cfg: TestConfig) -> TestApp {
    spawn_with_database(Some(database_url), cfg, ManualClock::starting_now(), Box::new(|s| s)).await
}

/// A second instance on the same database (and clock) as `other`: shares rate limits and sessions.
pub async fn spawn_sibling(other: &TestApp, cfg: TestConfig) -> TestApp {
    spawn_with_database(
        Some(other.database_url.clone()),
        cfg,
        other.clock.clone(),
        Box::new(|s| s),
    )
    .await
}

async fn spawn_with_database(
    database_url: Option<String>,
    cfg: TestConfig,
    clock: Arc<ManualClock>,
    wrap: WrapSecrets,
) -> TestApp {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut env = cfg.env;
    env.insert("TOKENKEEPER_DATA_DIR".into(), dir.path().display().to_string());
    let database_url = database_url.unwrap_or_else(|| format!("sqlite://{}", dir.path().join("tk.db").display()));
    env.insert("DATABASE_URL".into(), database_url.clone());
    let settings = Settings::from_lookup(&|k| env.get(k).cloned()).expect("test settings");
    let services = Services::build_wrapping_secrets(settings, clock.clone(), wrap)
        .await
        .expect("build services");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let s = services.clone();
    let server = tokio::spawn(async move {
        s.serve(listener, async move {
            let _ = rx.await;
        })
        .await
        .expect("serve");
    });
    TestApp {
        url,
        client: Client::new(),
        clock,
        services,
        database_url,
        dir,
        shutdown: Some(tx),
        server: Some(server),
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

impl TestApp {
    /// Graceful shutdown, as on SIGTERM: returns when the server and its refresher have stopped.
    pub async fn shutdown(mut self) {
        self.signal_shutdown();
        if let Some(server) = self.server.take() {
            server.await.expect("server task");
        }
    }

    /// Starts the graceful shutdown (as SIGTERM does) and returns once the server has stopped accepting
    /// connections, which it does after it told the refresher to stop.
    pub async fn begin_shutdown(&mut self) {
        self.signal_shutdown();
        let addr = self.url.trim_start_matches("http://").to_string();
        super::wait::until("the listener closes after the shutdown signal", || async {
            tokio::net::TcpStream::connect(&addr).await.is_err()
        })
        .await;
    }

    fn signal_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Requests the server is handling right now (`tokenkeeper_http_requests_in_flight`), not counting
    /// the scrape that asks.
    pub async fn requests_in_flight(&self) -> i64 {
        scraped::<i64>(
            &self.client,
            &self.at("/metrics"),
            "tokenkeeper_http_requests_in_flight",
        )
        .await
            - 1
    }

    /// Waits (bounded) until exactly `n` requests are being handled: sent requests that have arrived, or
    /// left requests whose handling was dropped.
    pub async fn wait_in_flight(&self, n: i64) {
        super::wait::until(&format!("{n} requests in flight"), || async {
            self.requests_in_flight().await == n
        })
        .await;
    }

    /// The `credential_refresh` events of the holder of `token`, newest first: (provider, outcome, detail).
    pub async fn refresh_events(&self, token: &str) -> Vec<(String, String, Option<String>)> {
        self.events_of_kind(token, "credential_refresh").await
    }

    /// The events of `kind` of the holder of `token`, newest first: (provider, outcome, detail).
    pub async fn events_of_kind(&self, token: &str, kind: &str) -> Vec<(String, String, Option<String>)> {
        let page: Value = self.get_auth("/api/audit?limit=200", token).await.json().await.unwrap();
        page["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == kind)
            .map(|e| {
                (
                    e["provider"].as_str().unwrap().to_string(),
                    e["outcome"].as_str().unwrap().to_string(),
                    e["detail"].as_str().map(str::to_string),
                )
            })
            .collect()
    }

    /// The user's reference row for `provider` (its default connection), read straight from the database
    /// (it must exist).
    pub async fn row(&self, uid: &str, provider: &str) -> tokenkeeper::db::Connection {
        self.named_row(uid, provider, "default").await
    }

    /// The reference row of `org`'s connection `name` to `provider` (it must exist).
    pub async fn named_row(&self, org: &str, provider: &str, name: &str) -> tokenkeeper::db::Connection {
        let row = self.services.store.get_connection(org, provider, name).await.unwrap();
        row.unwrap_or_else(|| panic!("no {provider} {name} row for {org}"))
    }

    /// A credential service over this app's clock and audit trail, as a library caller builds one (default
    /// refresh settings, no read cache), on the given database and secret store (wrappers that inject
    /// failures).
    pub fn library_credentials(
        &self,
        store: tokenkeeper::db::SharedStore,
        secrets: Arc<dyn tokenkeeper::secrets::SecretStore>,
    ) -> tokenkeeper::credentials::CredentialService {
        tokenkeeper::credentials::CredentialService::new(
            store,
            secrets,
            self.services.clock.clone(),
            self.services.audit.clone(),
            tokenkeeper::credentials::NamingSettings {
                prefix: "aurora".into(),
                env: "dev".into(),
            },
            tokenkeeper::providers::UrlPolicy {
                allow_private: false,
                allow_http: false,
            },
        )
    }

    /// The password workflows built through the library on `store` (a decorator of this instance's), with
    /// this instance's settings, clock and auditor; and their hasher, which counts its jobs.
    pub async fn library_passwords(
        &self,
        store: tokenkeeper::db::SharedStore,
    ) -> (tokenkeeper::passwords::PasswordService, tokenkeeper::passwords::Hasher) {
        use tokenkeeper::passwords::{Hasher, PasswordService, REGISTER_WINDOW, RateLimiter};
        let pw = &self.services.settings.passwords;
        let clock = self.services.clock.clone();
        let hasher = Hasher::new(pw).await.unwrap();
        let limiter = |max, window| RateLimiter::new(store.clone(), clock.clone(), max, window);
        let passwords = PasswordService::new(
            store.clone(),
            clock.clone(),
            hasher.clone(),
            limiter(pw.max_failures, pw.failure_window),
            limiter(pw.register_limit, REGISTER_WINDOW),
            tokenkeeper::identity::Sessions::new(
                store.clone(),
                tokenkeeper::db::IdentityCache::connect(store.clone()).await.unwrap(),
                clock.clone(),
                pw.session_ttl,
            ),
            self.services.audit.clone(),
        );
        (passwords, hasher)
    }

    pub fn at(&self, path: &str) -> String {
        format!("{}{}", self.url, path)
    }

    pub async fn post(&self, path: &str, body: Value) -> Response {
        self.client.post(self.at(path)).json(&body).send().await.unwrap()
    }

    pub async fn post_auth(&self, path: &str, token: &str, body: Value) -> Response {
        self.client
            .post(self.at(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn get_auth(&self, path: &str, token: &str) -> Response {
        self.client.get(self.at(path)).bearer_auth(token).send().await.unwrap()
    }

    /// `GET /api/tokens/{provider}/credentials` as the holder of `token`; must answer 200. The JSON body.
    pub async fn credentials(&self, provider: &str, token: &str) -> Value {
        let r = self
            .get_auth(&format!("/api/tokens/{provider}/credentials"), token)
            .await;
        let status = r.status();
        let body: Value = r.json().await.unwrap();
        assert_eq!(status, 200, "credentials of {provider}: {body}");
        body
    }

    pub async fn put_auth(&self, path: &str, token: &str, body: Value) -> Response {
        self.client
            .put(self.at(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn delete_auth(&self, path: &str, token: &str) -> Response {
        self.client
            .delete(self.at(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// Registers `email` with `password` and returns the user id.
    pub async fn register(&self, email: &str, password: &str) -> String {
        let r = self
            .post(
                "/api/auth/register",
                json!({"email": email, "password": password, "name": "Test"}),
            )
            .await;
        assert_eq!(r.status(), 201, "register {email}");
        r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string()
    }

    /// Logs in and returns the Bearer token.
    pub async fn login(&self, email: &str, password: &str) -> String {
        let r = self
            .post("/api/auth/login", json!({"email": email, "password": password}))
            .await;
        assert_eq!(r.status(), 200, "login {email}");
        r.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_string()
    }

    /// Registers and logs in a fresh user: (user id, token).
    pub async fn user(&self, email: &str) -> (String, String) {
        let id = self.register(email, "correct-horse-battery").await;
        (id, self.login(email, "correct-horse-battery").await)
    }
}

pub async fn error_of(r: Response) -> String {
    let v: Value = r.json().await.expect("JSON error body");
    v["error"].as_str().expect("error field").to_string()
}

/// Generates `mod sqlite` and `mod postgres` with one `#[tokio::test]` per listed function;
/// each function takes the [`Db`] to run on.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $name() { super::$name($crate::support::app::Db::Sqlite).await } )*
        }
        mod postgres {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $name() {
                   if $crate::support::postgres::admin_url().is_none() { return; }
                   super::$name($crate::support::app::Db::Postgres).await
               } )*
        }
    };
}

/// Where secrets go in a test: the embedded store, or a real OpenBao (shared per test binary) with a
/// token limited to Tokenkeeper's policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secrets {
    Embedded,
    OpenBao,
}

impl TestConfig {
    /// `None` (after printing why) when OpenBao is not available and skipping is allowed.
    pub async fn secrets(self, kind: Secrets) -> Option<Self> {
        match kind {
            Secrets::Embedded => Some(self),
            Secrets::OpenBao => {
                let bao = super::openbao::OpenBao::shared().await?;
                Some(
                    self.with("VAULT_ADDR", &bao.addr)
                        .with("VAULT_TOKEN", &bao.limited_token),
                )
            }
        }
    }
}

/// Like `on_both_backends!`, over the four pairs of database and secret store.
#[macro_export]
macro_rules! on_all_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite_embedded {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $name() {
                   use $crate::support::app::{Db, Secrets};
                   super::$name(Db::Sqlite, Secrets::Embedded).await
               } )*
        }
        mod sqlite_openbao {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $name() {
                   use $crate::support::app::{Db, Secrets};
                   super::$name(Db::Sqlite, Secrets::OpenBao).await
               } )*
        }
        mod postgres_embedded {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $name() {
                   use $crate::support::app::{Db, Secrets};
                   if $crate::support::postgres::admin_url().is_none() { return; }
                   super::$name(Db::Postgres, Secrets::Embedded).await
               } )*
        }
        mod postgres_openbao {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $name() {
                   use $crate::support::app::{Db, Secrets};
                   if $crate::support::postgres::admin_url().is_none() { return; }
                   super::$name(Db::Postgres, Secrets::OpenBao).await
               } )*
        }
    };
}

/// One `#[tokio::test]` per listed function, on PostgreSQL only: for the multi-instance deployment shape
/// (several instances share PostgreSQL, never a SQLite file). Each function takes the [`Db`].
#[macro_export]
macro_rules! on_postgres {
    ($($name:ident),* $(,)?) => {
        mod postgres_only {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $name() {
                   if $crate::support::postgres::admin_url().is_none() { return; }
                   super::$name($crate::support::app::Db::Postgres).await
               } )*
        }
    };
}

/// Runs one statement on the app's database directly (to inject failures).
pub async fn sql(app: &TestApp, stmt: &str) {
    use sqlx::Connection as _;
    let stmt = sqlx::AssertSqlSafe(stmt.to_string());
    if app.database_url.starts_with("postgres") {
        let mut c = sqlx::PgConnection::connect(&app.database_url).await.unwrap();
        sqlx::raw_sql(stmt).execute(&mut c).await.unwrap();
    } else {
        let mut c = sqlx::SqliteConnection::connect(&app.database_url).await.unwrap();
        sqlx::raw_sql(stmt).execute(&mut c).await.unwrap();
    }
}

/// The value of the unlabelled metric `name` in a scrape of `metrics_url` (a `name value` line).
pub async fn scraped<T: std::str::FromStr>(client: &reqwest::Client, metrics_url: &str, name: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    let text = client.get(metrics_url).send().await.unwrap().text().await.unwrap();
    sample(&text, name)
}

/// The value of the series `name` (with its labels, if any) in the exposition `text`.
pub fn sample<T: std::str::FromStr>(text: &str, name: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    let value = text
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{name} is not exposed"));
    value.parse().unwrap()
}
