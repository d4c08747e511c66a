//! A real OAuth2 server for integration tests: django-oauth-toolkit (`tests/oauth_server/`), with rotating,
//! single-use refresh tokens and reuse protection (reusing a refresh token revokes its whole family).
//!
//! ```ignore
//! let Some(dot) = OAuthServer::shared().await else { return }; // one server per test binary
//! let client = dot.new_client("password").await;             // an OAuth client of this test's own
//! let pair = dot.password_tokens(&client).await;             // initial access + refresh token
//! let stats = dot.stats(&client.client_id).await;            // token-endpoint calls, reuse, revocations
//! ```
//!
//! Needs `python3` (or `$TOKENKEEPER_PYTHON`) with `django-oauth-toolkit` (`pip install django-oauth-toolkit`).
//! When missing, [`OAuthServer::shared`] returns `None` after the skip notice of `support::skip` (a failure
//! under `TOKENKEEPER_REQUIRE_ALL=1`).
//!
//! Stats are kept per OAuth client, so tests sharing the server do not see each other's calls.
//! `TK_OAUTH_ACCESS_TOKEN_SECONDS` (access-token lifetime) is [`ACCESS_TOKEN_SECONDS`].
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::process::{ExternalProcess, free_port};
use super::skip::{Dependency, skip};

/// Access-token lifetime the server is started with.
pub const ACCESS_TOKEN_SECONDS: i64 = 300;

pub struct OAuthServer {
    /// `http://127.0.0.1:PORT`
    pub base_url: String,
    /// `{base_url}/o/token/`
    pub token_url: String,
    dir: tempfile::TempDir,
    process: ExternalProcess,
}

/// An OAuth client (DOT application) created for one test.
#[derive(Debug, Clone, Deserialize)]
pub struct OAuthClient {
    pub client_id: String,
    pub client_secret: String,
    pub username: String,
    pub password: String,
}

/// A token pair from the password grant.
#[derive(Debug, Clone, Deserialize)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: i64,
}

/// What the server saw for one client.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Stats {
    /// POSTs to the token endpoint, all grant types.
    pub token_requests: u64,
    /// Per `grant_type`.
    pub grants: std::collections::HashMap<String, u64>,
    pub refresh_ok: u64,
    pub refresh_failed: u64,
    /// Per `error` code answered.
    pub errors: std::collections::HashMap<String, u64>,
    /// Refresh-grant calls presenting a refresh token that had been presented before.
    pub refresh_token_reuse: u64,
    /// Times reuse protection revoked this client's token family.
    pub family_revocations: u64,
}

impl Stats {
    pub fn refresh_grants(&self) -> u64 {
        self.grants.get("refresh_token").copied().unwrap_or(0)
    }
}

static SHARED: tokio::sync::OnceCell<Option<OAuthServer>> = tokio::sync::OnceCell::const_new();

impl OAuthServer {
    /// The server shared by all tests of this binary. `None`: skipped (see module docs).
    pub async fn shared() -> Option<&'static OAuthServer> {
        SHARED.get_or_init(Self::start).await.as_ref()
    }

    /// A server of its own.
    pub async fn start() -> Option<OAuthServer> {
        let python = python_with(Dependency::DjangoOAuthToolkit, "import django, oauth2_provider")?;
        let project = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oauth_server");
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("db.sqlite3");
        let migrate = Command::new(&python)
            .args(["manage.py", "migrate", "--noinput"])
            .current_dir(&project)
            .env("TK_OAUTH_DB", &db)
            .output()
            .expect("run manage.py migrate");
        assert!(
            migrate.status.success(),
            "django-oauth-toolkit test server: migrate failed:\n{}",
            String::from_utf8_lossy(&migrate.stderr)
        );
        let port = free_port();
        let log = dir.path().join("server.log");
        let mut cmd = Command::new(&python);
        cmd.args(["manage.py", "runserver", &format!("127.0.0.1:{port}"), "--noreload"])
            .current_dir(&project)
            .env("TK_OAUTH_DB", &db)
            .env("TK_OAUTH_ACCESS_TOKEN_SECONDS", ACCESS_TOKEN_SECONDS.to_string())
            .env("PYTHONUNBUFFERED", "1");
        let process = ExternalProcess::spawn(cmd, &log);
        let base_url = format!("http://127.0.0.1:{port}");
        wait_for_http(&format!("{base_url}/test/stats"), &log, Duration::from_secs(60)).await;
        Some(OAuthServer {
            token_url: format!("{base_url}/o/token/"),
            base_url,
            dir,
            process,
        })
    }

    /// A new confidential client allowed the `grant` (`"password"` or `"client-credentials"`).
    pub async fn new_client(&self, grant: &str) -> OAuthClient {
        let resp = http()
            .post(format!("{}/test/clients", self.base_url))
            .form(&[("grant", grant)])
            .send()
            .await
            .expect("POST /test/clients");
        assert!(resp.status().is_success(), "/test/clients: {}", resp.status());
        resp.json().await.expect("client JSON")
    }

    /// A new confidential client of the authorization-code grant (PKCE required), sending browsers back
    /// to `redirect_uri` only.
    pub async fn new_code_client(&self, redirect_uri: &str) -> OAuthClient {
        let resp = http()
            .post(format!("{}/test/clients", self.base_url))
            .form(&[("grant", "authorization-code"), ("redirect_uri", redirect_uri)])
            .send()
            .await
            .expect("POST /test/clients");
        assert!(resp.status().is_success(), "/test/clients: {}", resp.status());
        resp.json().await.expect("client JSON")
    }

    /// The refresh grant with `refresh_token`, as the provider's own client would call it: the status and
    /// the `error` code (after a revocation: `400`, `invalid_grant`).
    pub async fn try_refresh(&self, client: &OAuthClient, refresh_token: &str) -> (u16, Option<String>) {
        let resp = http()
            .post(&self.token_url)
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
                ("client_id", client.client_id.as_str()),
                ("client_secret", client.client_secret.as_str()),
            ])
            .send()
            .await
            .expect("refresh grant");
        let status = resp.status().as_u16();
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        (status, body["error"].as_str().map(str::to_string))
    }

    /// An initial token pair for `client` (a `"password"` client) with the password grant.
    pub async fn password_tokens(&self, client: &OAuthClient) -> TokenPair {
        let resp = http()
            .post(&self.token_url)
            .form(&[
                ("grant_type", "password"),
                ("username", client.username.as_str()),
                ("password", client.password.as_str()),
                ("client_id", client.client_id.as_str()),
                ("client_secret", client.client_secret.as_str()),
            ])
            .send()
            .await
            .expect("password grant");
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        assert!(status.is_success(), "password grant: {status} {body}");
        serde_json::from_str(&body).expect("token pair JSON")
    }

    /// The server's log so far (requests, Python tracebacks): print it when a test fails unexpectedly.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// What the server saw for this client so far.
    pub async fn stats(&self, client_id: &str) -> Stats {
        http()
            .get(format!("{}/test/stats", self.base_url))
            .query(&[("client_id", client_id)])
            .send()
            .await
            .expect("GET /test/stats")
            .json()
            .await
            .expect("stats JSON")
    }
}

// ---------------------------------------------------------------------------------------------------------
// Shared by the external-server harnesses (this one and `sts`).

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("reqwest client")
}

/// A Python interpreter (`$TOKENKEEPER_PYTHON`, else `python3`) that can run `check` (an import), or
/// `None` after the skip notice for `dep`.
pub fn python_with(dep: Dependency, check: &str) -> Option<PathBuf> {
    let python = std::env::var_os("TOKENKEEPER_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("python3"));
    match Command::new(&python).args(["-c", check]).output() {
        Ok(out) if out.status.success() => Some(python),
        Ok(_) => skip(
            dep,
            &format!(
                "`{} -c '{check}'` failed (see scripts/test.sh for the pip install)",
                python.display()
            ),
        ),
        Err(e) => skip(dep, &format!("cannot run {}: {e}", python.display())),
    }
}

/// Wait until `url` answers at all; panic with the server's log after `limit`.
pub async fn wait_for_http(url: &str, log: &Path, limit: Duration) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let start = Instant::now();
    while start.elapsed() < limit {
        if client.get(url).send().await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!(
        "server at {url} did not come up within {limit:?}; its log:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}
