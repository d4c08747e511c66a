//! An in-process OAuth2 token endpoint for `gcp`'s refresh-token grant (client `platform-client`), for the
//! tests that need to steer a provider: single-use rotating refresh tokens (like Slack or
//! django-oauth-toolkit; a token presented twice is counted as reuse), a chosen answer, and a gate that
//! holds every call until the test releases it, so that a test can act while a refresh is at the
//! provider and know that it did.
//!
//! ```ignore
//! let endpoint = TokenEndpoint::start().await;
//! let app = spawn_app(db, endpoint.config(TestConfig::default())).await.unwrap();
//! endpoint.store_gcp(&app, &token, 60, "rt-1").await; // due within the margin, "rt-1" live
//! endpoint.hold();                                     // calls wait at the gate
//! let read = tokio::spawn(/* a read */);
//! endpoint.wait_for_calls(1).await;                    // the refresh is at the provider
//! // ... act while it is held ...
//! endpoint.release();
//! ```

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Form, Json, Router, routing};
use serde_json::{Value, json};
use tokio::sync::watch;

use super::app::{Db, Secrets, TestApp, TestConfig, spawn_app, spawn_sibling};
use super::stand_in::StandIn;
use super::wait;

pub const CLIENT_ID: &str = "platform-client";

/// What the endpoint answers to the calls that pass the gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// A new access token and a new refresh token, when the presented one is live.
    Tokens,
    /// 400 `invalid_grant`.
    InvalidGrant,
    /// 503 `temporarily_unavailable`.
    Unavailable,
}

struct Inner {
    /// Calls received, also those still held at the gate.
    calls: watch::Sender<u64>,
    open: watch::Sender<bool>,
    answer: Mutex<Answer>,
    /// The live refresh tokens: one per grant family, each good for one use.
    live: Mutex<HashSet<String>>,
    reused: AtomicU64,
    /// `expires_in` of the tokens it issues.
    lifetime: AtomicI64,
}

pub struct TokenEndpoint {
    /// `http://127.0.0.1:PORT/token`
    pub url: String,
    inner: Arc<Inner>,
    _server: StandIn,
}

impl TokenEndpoint {
    /// A server of the test's own, its gate open, answering [`Answer::Tokens`] valid for an hour.
    pub async fn start() -> TokenEndpoint {
        let inner = Arc::new(Inner {
            calls: watch::Sender::new(0),
            open: watch::Sender::new(true),
            answer: Mutex::new(Answer::Tokens),
            live: Mutex::default(),
            reused: AtomicU64::new(0),
            lifetime: AtomicI64::new(3600),
        });
        let router = Router::new()
            .route("/token", routing::post(token))
            .with_state(inner.clone());
        let server = StandIn::start(router).await;
        TokenEndpoint {
            url: server.url("/token"),
            inner,
            _server: server,
        }
    }

    /// `cfg` with `gcp` refreshing here.
    pub fn config(&self, cfg: TestConfig) -> TestConfig {
        cfg.with("TOKENKEEPER_GCP_TOKEN_URL", &self.url)
            .with("TOKENKEEPER_GCP_CLIENT_ID", CLIENT_ID)
            .with("TOKENKEEPER_GCP_CLIENT_SECRET", "platform-client-secret")
    }

    /// Two instances refreshing here, sharing the database `db` and the secret store (OpenBao), as in
    /// production; `None` when OpenBao is not installed.
    pub async fn two_instances(&self, db: Db) -> Option<(TestApp, TestApp)> {
        let a = spawn_app(db, self.config(TestConfig::default()).secrets(Secrets::OpenBao).await?)
            .await
            .unwrap();
        let cfg = self.config(TestConfig::default()).secrets(Secrets::OpenBao).await?;
        let b = spawn_sibling(&a, cfg).await;
        Some((a, b))
    }

    /// Calls received so far (held ones included).
    pub fn calls(&self) -> u64 {
        *self.inner.calls.borrow()
    }

    /// Refresh tokens presented that were not live (used before, or never issued).
    pub fn reused(&self) -> u64 {
        self.inner.reused.load(Ordering::SeqCst)
    }

    pub fn answer(&self, answer: Answer) {
        *self.inner.answer.lock().unwrap() = answer;
    }

    /// `expires_in` of the tokens issued from now on.
    pub fn token_lifetime(&self, secs: i64) {
        self.inner.lifetime.store(secs, Ordering::SeqCst);
    }

    /// Makes `refresh_token` live, as the provider's consent flow would have.
    pub fn issue(&self, refresh_token: &str) {
        self.inner.live.lock().unwrap().insert(refresh_token.into());
    }

    pub fn is_live(&self, refresh_token: &str) -> bool {
        self.inner.live.lock().unwrap().contains(refresh_token)
    }

    /// Calls from now on wait at the gate until [`TokenEndpoint::release`].
    pub fn hold(&self) {
        self.inner.open.send_replace(false);
    }

    /// Lets every held call (and every later one) through.
    pub fn release(&self) {
        self.inner.open.send_replace(true);
    }

    /// Waits (bounded) until `n` calls have been received.
    pub async fn wait_for_calls(&self, n: u64) {
        let mut calls = self.inner.calls.subscribe();
        wait::bounded(&format!("{n} calls at the token endpoint"), calls.wait_for(|c| *c >= n))
            .await
            .unwrap();
    }

    /// Stores a `gcp` OAuth credential for the holder of `token` whose access token expires in
    /// `expires_in` seconds, with the refresh token `rt` (made live here).
    pub async fn store_gcp(&self, app: &TestApp, token: &str, expires_in: i64, rt: &str) {
        self.issue(rt);
        let expires_at = tokenkeeper::clock::Clock::now_secs(app.clock.as_ref()) + expires_in;
        let body = json!({"access_token": "access-0", "refresh_token": rt, "expires_at": expires_at, "email": "u@example.com"});
        let r = app.put_auth("/api/tokens/gcp", token, body).await;
        assert_eq!(r.status(), 200, "{:?}", r.text().await);
    }
}

async fn token(State(p): State<Arc<Inner>>, Form(f): Form<HashMap<String, String>>) -> (StatusCode, Json<Value>) {
    let mut n = 0;
    p.calls.send_modify(|c| {
        *c += 1;
        n = *c;
    });
    let mut open = p.open.subscribe();
    // The sender lives as long as the server.
    let _ = open.wait_for(|open| *open).await;
    let answer = *p.answer.lock().unwrap();
    match answer {
        Answer::Unavailable => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"error": "temporarily_unavailable"})),
            );
        }
        Answer::InvalidGrant => return (StatusCode::BAD_REQUEST, Json(json!({"error": "invalid_grant"}))),
        Answer::Tokens => {}
    }
    if f.get("grant_type").map(String::as_str) != Some("refresh_token")
        || f.get("client_id").map(String::as_str) != Some(CLIENT_ID)
    {
        return (StatusCode::BAD_REQUEST, Json(json!({"error": "invalid_request"})));
    }
    let presented = f.get("refresh_token").cloned().unwrap_or_default();
    let mut live = p.live.lock().unwrap();
    if !live.remove(&presented) {
        p.reused.fetch_add(1, Ordering::SeqCst);
        return (StatusCode::BAD_REQUEST, Json(json!({"error": "invalid_grant"})));
    }
    let next = format!("{presented}-r{n}");
    live.insert(next.clone());
    let expires_in = p.lifetime.load(Ordering::SeqCst);
    (
        StatusCode::OK,
        Json(
            json!({"access_token": format!("access-{n}"), "expires_in": expires_in, "refresh_token": next, "token_type": "Bearer"}),
        ),
    )
}
