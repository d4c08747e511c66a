//! Always-fresh credentials through HTTP (SPEC section 5), against a local OAuth2 token endpoint with
//! single-use rotating refresh tokens that counts its calls and notices any reuse.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::{Form, Json, Router, routing};
use serde_json::{Value, json};
use tokenkeeper::refresh::scheduler::{SchedulerSettings, run_pass};
use tokio::sync::Mutex;

use crate::audit::refresh_events;
use crate::support::app::{Db, Secrets, TestApp, TestConfig, spawn_app, spawn_sibling};

#[derive(Default)]
struct Provider {
    calls: AtomicU64,
    /// "ok", "invalid_grant" or "unavailable".
    mode: Mutex<&'static str>,
    /// The one refresh token currently valid per grant family (single use, like Slack or DOT).
    live: Mutex<std::collections::HashSet<String>>,
    reused: AtomicU64,
    /// `expires_in` of the tokens it issues (0: an hour).
    lifetime: AtomicI64,
    /// How long it takes to answer, in ms (0: 150).
    delay_ms: AtomicU64,
}

async fn token(
    State(p): State<Arc<Provider>>,
    Form(f): Form<std::collections::HashMap<String, String>>,
) -> (axum::http::StatusCode, Json<Value>) {
    let n = p.calls.fetch_add(1, Ordering::SeqCst) + 1;
    // A slow endpoint widens any race window.
    let delay = match p.delay_ms.load(Ordering::SeqCst) {
        0 => 150,
        ms => ms,
    };
    tokio::time::sleep(Duration::from_millis(delay)).await;
    match *p.mode.lock().await {
        "unavailable" => {
            return (
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"error": "temporarily_unavailable"})),
            );
        }
        "invalid_grant" => {
            return (
                axum::http::StatusCode::BAD_REQUEST,
                Json(json!({"error": "invalid_grant"})),
            );
        }
        _ => {}
    }
    let presented = f.get("refresh_token").cloned().unwrap_or_default();
    let mut live = p.live.lock().await;
    if f.get("client_id").map(String::as_str) != Some("platform-client") || !live.remove(&presented) {
        p.reused.fetch_add(1, Ordering::SeqCst);
        return (
            axum::http::StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_grant"})),
        );
    }
    let next = format!("{presented}-r{n}");
    live.insert(next.clone());
    let expires_in = match p.lifetime.load(Ordering::SeqCst) {
        0 => 3600,
        s => s,
    };
    (
        axum::http::StatusCode::OK,
        Json(
            json!({"access_token": format!("access-{n}"), "expires_in": expires_in, "refresh_token": next, "token_type": "Bearer"}),
        ),
    )
}

async fn start_provider() -> (Arc<Provider>, String) {
    let p = Arc::new(Provider::default());
    *p.mode.lock().await = "ok";
    let app = Router::new()
        .route("/token", routing::post(token))
        .with_state(p.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/token", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (p, url)
}

fn config(token_url: &str) -> TestConfig {
    TestConfig::default()
        .with("TOKENKEEPER_GCP_TOKEN_URL", token_url)
        .with("TOKENKEEPER_GCP_CLIENT_ID", "platform-client")
        .with("TOKENKEEPER_GCP_CLIENT_SECRET", "platform-client-secret")
}

/// Stores a gcp OAuth credential expiring in `expires_in` seconds, with a live refresh token.
async fn store_gcp(app: &TestApp, p: &Provider, token: &str, expires_in: i64, rt: &str) {
    p.live.lock().await.insert(rt.to_string());
    let body = json!({"access_token": "access-0", "refresh_token": rt, "expires_at": app.clock.now_secs_for_test() + expires_in, "email": "u@example.com"});
    let r = app.put_auth("/api/tokens/gcp", token, body).await;
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
}

trait ClockSecs {
    fn now_secs_for_test(&self) -> i64;
}
impl ClockSecs for Arc<tokenkeeper::clock::ManualClock> {
    fn now_secs_for_test(&self) -> i64 {
        tokenkeeper::clock::Clock::now_secs(self.as_ref())
    }
}

async fn read(app: &TestApp, token: &str) -> (u16, Value) {
    let r = app.get_auth("/api/tokens/gcp/credentials", token).await;
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn single_flight_in_one_process(db: Db) {
    let (p, url) = start_provider().await;
    let app = spawn_app(db, config(&url)).await.unwrap();
    let (_, token) = app.user("sf@example.com").await;
    store_gcp(&app, &p, &token, 60, "rt-sf").await; // inside the 5-minute margin: due
    let reads = (0..200).map(|_| read(&app, &token));
    let results = futures::future::join_all(reads).await;
    for (status, body) in &results {
        assert_eq!(*status, 200, "{body}");
        assert_eq!(body["tokenData"]["access_token"], "access-1");
    }
    assert_eq!(p.calls.load(Ordering::SeqCst), 1, "exactly one token-endpoint call");
    assert_eq!(p.reused.load(Ordering::SeqCst), 0);
    // One refresh, one audit event (and 200 reads): walk every page of the trail.
    let (mut events, mut before) = (Vec::new(), None::<i64>);
    loop {
        let q = before.map_or(String::new(), |b| format!("&before={b}"));
        let page: Value = app
            .get_auth(&format!("/api/audit?limit=100{q}"), &token)
            .await
            .json()
            .await
            .unwrap();
        events.extend(page["events"].as_array().unwrap().iter().cloned());
        match page["nextBefore"].as_i64() {
            Some(b) => before = Some(b),
            None => break,
        }
    }
    let count = |kind: &str| {
        events
            .iter()
            .filter(|e| e["kind"] == kind && e["outcome"] == "ok")
            .count()
    };
    assert_eq!((count("credential_refresh"), count("credential_read")), (1, 200));
    // The rotated refresh token was stored: the next refresh presents it and succeeds.
    let view: Value = app
        .post_auth("/api/tokens/gcp/refresh", &token, json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(view["status"], "active");
    assert_eq!(p.calls.load(Ordering::SeqCst), 2);
    assert_eq!(p.reused.load(Ordering::SeqCst), 0, "a refresh token was used twice");
    let (_, body) = read(&app, &token).await;
    assert_eq!(body["tokenData"]["access_token"], "access-2");
    assert_eq!(body["tokenData"]["refresh_token"], "rt-sf-r1-r2");
}

async fn single_flight_across_instances(db: Db) {
    let (p, url) = start_provider().await;
    // Instances share the database and the secret store (OpenBao), as in production.
    let Some(cfg) = config(&url).secrets(Secrets::OpenBao).await else {
        return;
    };
    let a = spawn_app(db, cfg).await.unwrap();
    let b = spawn_sibling(&a, config(&url).secrets(Secrets::OpenBao).await.unwrap()).await;
    let (_, token) = a.user("multi@example.com").await;
    store_gcp(&a, &p, &token, 30, "rt-multi").await;
    let reads = (0..100)
        .map(|_| read(&a, &token))
        .chain((0..100).map(|_| read(&b, &token)));
    let results = futures::future::join_all(reads).await;
    for (s, b) in &results {
        assert_eq!((*s, &b["tokenData"]["access_token"]), (200, &json!("access-1")), "{b}");
    }
    assert_eq!(
        p.calls.load(Ordering::SeqCst),
        1,
        "exactly one call across two instances"
    );
    assert_eq!(p.reused.load(Ordering::SeqCst), 0);
}

async fn invalid_grant_needs_reauth_and_stops_calling(db: Db) {
    let (p, url) = start_provider().await;
    let app = spawn_app(db, config(&url)).await.unwrap();
    let (_, token) = app.user("reauth@example.com").await;
    store_gcp(&app, &p, &token, 10, "rt-dead").await;
    *p.mode.lock().await = "invalid_grant";
    let (status, body) = read(&app, &token).await;
    assert_eq!(status, 409);
    assert_eq!(body["provider"], "gcp");
    assert_eq!(body["reason"], "invalid_grant");
    assert!(body["error"].is_string());
    let calls = p.calls.load(Ordering::SeqCst);
    for _ in 0..3 {
        assert_eq!(read(&app, &token).await.0, 409);
    }
    assert_eq!(
        app.post_auth("/api/tokens/gcp/refresh", &token, json!({}))
            .await
            .status(),
        409
    );
    let list: Value = app.get_auth("/api/tokens", &token).await.json().await.unwrap();
    assert_eq!(list["connections"][0]["status"], "needs_reauth");
    assert_eq!(p.calls.load(Ordering::SeqCst), calls, "no calls after needs_reauth");
    // The refresh failure is in the user's audit trail, with its reason (newest first: the forced
    // refresh refused before the engine, then the read's refresh the provider refused).
    assert_eq!(
        refresh_events(&app, &token).await,
        [
            ("gcp".into(), "failed".into(), Some("needs_reauth".into())),
            ("gcp".into(), "failed".into(), Some("invalid_grant".into()))
        ]
    );
    // Storing a new credential makes it active again.
    *p.mode.lock().await = "ok";
    store_gcp(&app, &p, &token, 3600, "rt-new").await;
    assert_eq!(read(&app, &token).await.0, 200);
}

async fn outage_degrades_serves_valid_token_then_recovers(db: Db) {
    let (p, url) = start_provider().await;
    let app = spawn_app(db, config(&url)).await.unwrap();
    let (_, token) = app.user("degraded@example.com").await;
    store_gcp(&app, &p, &token, 120, "rt-out").await;
    *p.mode.lock().await = "unavailable";
    let (status, body) = read(&app, &token).await;
    assert_eq!(status, 200, "the still-valid token is served");
    assert_eq!(body["tokenData"]["access_token"], "access-0");
    let list: Value = app.get_auth("/api/tokens", &token).await.json().await.unwrap();
    assert_eq!(list["connections"][0]["status"], "degraded");
    // In backoff: reads do not call again.
    assert_eq!(read(&app, &token).await.0, 200);
    assert_eq!(p.calls.load(Ordering::SeqCst), 1);
    // Past the token's expiry and still down: 503, not "not connected".
    app.clock.advance_secs(121);
    let (status, _) = read(&app, &token).await;
    assert_eq!(status, 503);
    // The provider is back; after the backoff the next read refreshes.
    *p.mode.lock().await = "ok";
    app.clock.advance_secs(3600);
    let (status, body) = read(&app, &token).await;
    assert_eq!(status, 200);
    assert!(
        body["tokenData"]["access_token"]
            .as_str()
            .unwrap()
            .starts_with("access-")
    );
    assert_ne!(body["tokenData"]["access_token"], "access-0");
    let list: Value = app.get_auth("/api/tokens", &token).await.json().await.unwrap();
    assert_eq!(list["connections"][0]["status"], "active");
}

async fn scheduler_refreshes_exactly_the_due(db: Db) {
    let (p, url) = start_provider().await;
    let app = spawn_app(db, config(&url)).await.unwrap();
    // More due credentials than the pass runs at once (16), so locks and database work overlap fully.
    for i in 0..40 {
        let (_, token) = app.user(&format!("sched{i}@example.com")).await;
        // 35 due (inside the margin), 5 not.
        store_gcp(&app, &p, &token, if i < 35 { 60 } else { 7200 }, &format!("rt-s{i}")).await;
    }
    let (_tx, stop) = tokio::sync::watch::channel(false);
    let report = run_pass(&app.services.credentials, &SchedulerSettings::default(), &stop).await;
    assert_eq!(
        (report.claimed, report.refreshed, report.failed, report.skipped),
        (35, 35, 0, 0)
    );
    assert_eq!(p.calls.load(Ordering::SeqCst), 35);
    let again = run_pass(&app.services.credentials, &SchedulerSettings::default(), &stop).await;
    assert_eq!(again.claimed, 0, "nothing due any more");
    assert_eq!(p.reused.load(Ordering::SeqCst), 0);
}

/// Tokens living less than the refresh margin (200 s against 300 s): a fresh one is not due again at
/// once, so 200 concurrent readers still make exactly one call, and neither later readers nor the
/// refresher call again until half its lifetime has passed.
async fn short_lived_tokens_single_flight(db: Db) {
    let (p, url) = start_provider().await;
    p.lifetime.store(200, Ordering::SeqCst);
    let app = spawn_app(db, config(&url)).await.unwrap();
    let (uid, token) = app.user("short@example.com").await;
    store_gcp(&app, &p, &token, 60, "rt-short").await;
    let results = futures::future::join_all((0..200).map(|_| read(&app, &token))).await;
    for (status, body) in &results {
        assert_eq!(
            (*status, &body["tokenData"]["access_token"]),
            (200, &json!("access-1")),
            "{body}"
        );
    }
    assert_eq!(p.calls.load(Ordering::SeqCst), 1, "exactly one token-endpoint call");
    // Not due again: more readers, and a refresher pass, at the same moment.
    let again = futures::future::join_all((0..20).map(|_| read(&app, &token))).await;
    assert!(again.iter().all(|(_, b)| b["tokenData"]["access_token"] == "access-1"));
    let (_tx, stop) = tokio::sync::watch::channel(false);
    let settings = SchedulerSettings::default();
    assert_eq!(run_pass(&app.services.credentials, &settings, &stop).await.claimed, 0);
    assert_eq!(p.calls.load(Ordering::SeqCst), 1);
    // Planned at half the lifetime before expiry (up to a fifth of that earlier), not at expiry - 300 s.
    let row = app.row(&uid, "gcp").await;
    let (now, e) = (app.clock.now_secs_for_test(), row.expires_at.unwrap());
    assert_eq!(e, now + 200);
    assert!((e - 120..=e - 100).contains(&row.next_refresh_at.unwrap()), "{row:?}");
    // Half its lifetime later it is due: one more call, by readers...
    app.clock.advance_secs(101);
    let results = futures::future::join_all((0..50).map(|_| read(&app, &token))).await;
    assert!(
        results
            .iter()
            .all(|(s, b)| *s == 200 && b["tokenData"]["access_token"] == "access-2")
    );
    assert_eq!(p.calls.load(Ordering::SeqCst), 2);
    // ...or by the refresher.
    app.clock.advance_secs(101);
    let report = run_pass(&app.services.credentials, &settings, &stop).await;
    assert_eq!((report.claimed, report.refreshed), (1, 1));
    assert_eq!(p.calls.load(Ordering::SeqCst), 3);
    assert_eq!(run_pass(&app.services.credentials, &settings, &stop).await.claimed, 0);
    assert_eq!(p.reused.load(Ordering::SeqCst), 0);
}

/// A credential with no token yet (azure: client credentials only) whose first refresh fails for now
/// is not served as 200 with no token in it: 503, also while the provider is in backoff.
async fn never_minted_credential_is_unavailable_when_its_first_refresh_fails(db: Db) {
    // The default test configuration points azure at a closed local port: a connection error.
    let app = spawn_app(db, TestConfig::default()).await.unwrap();
    let (_, token) = app.user("unminted@example.com").await;
    let azure = tokenkeeper::providers::find("azure").unwrap().example_credential();
    assert_eq!(app.put_auth("/api/tokens/azure", &token, azure).await.status(), 200);
    for _ in 0..2 {
        let r = app.get_auth("/api/tokens/azure/credentials", &token).await;
        assert_eq!(r.status(), 503, "{:?}", r.text().await);
    }
    let list: Value = app.get_auth("/api/tokens", &token).await.json().await.unwrap();
    assert_eq!(list["connections"][0]["status"], "degraded");
    assert_eq!(list["connections"][0]["statusReason"], "connect_error");
}

/// The user deletes the connection while its refresh is at the provider: whatever the provider
/// answers, the deleted row does not come back (it would point at a destroyed secret). The delete waits
/// for the refresh (both hold the credential's lock), so the read answers as it would have before the
/// delete: the stored or fresh token (200), or 409 for `invalid_grant`.
async fn delete_during_refresh_stays_deleted(db: Db) {
    for mode in ["unavailable", "invalid_grant", "ok"] {
        let (p, url) = start_provider().await;
        *p.mode.lock().await = mode;
        let app = spawn_app(db, config(&url)).await.unwrap();
        let (uid, token) = app.user(&format!("del-{mode}@example.com")).await;
        store_gcp(&app, &p, &token, 60, "rt-del").await;
        let deleting = async {
            // The provider takes 150 ms to answer: delete while it is being called.
            while p.calls.load(Ordering::SeqCst) == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            app.delete_auth("/api/tokens/gcp", &token).await.status()
        };
        let ((status, body), deleted) = tokio::join!(read(&app, &token), deleting);
        assert_eq!(deleted, 204, "{mode}");
        let expected = if mode == "invalid_grant" { 409 } else { 200 };
        assert_eq!(status, expected, "{mode}: {body}");
        let row = app.services.store.get_connection(&uid, "gcp").await.unwrap();
        assert!(row.is_none(), "{mode}: the deleted connection came back: {row:?}");
        assert_eq!(read(&app, &token).await.0, 404, "{mode}");
        let name = app.services.credentials.secret_name(&uid, "gcp");
        assert!(
            app.services.secrets.read(&name, None).await.unwrap().is_none(),
            "{mode}"
        );
    }
}

/// A caller dropped while its refresh is at the provider (here: the library call's task aborted), then
/// shutdown: the refresh still stores the rotated token before the service is done.
async fn shutdown_waits_for_refreshes_whose_caller_left(db: Db) {
    let (p, url) = start_provider().await;
    let app = spawn_app(db, config(&url)).await.unwrap();
    let (uid, token) = app.user("left@example.com").await;
    store_gcp(&app, &p, &token, 60, "rt-left").await;
    let creds = app.services.credentials.clone();
    let caller = {
        let uid = uid.clone();
        tokio::spawn(async move { creds.get_token_data(&uid, "gcp", "test").await })
    };
    while p.calls.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    caller.abort(); // the provider takes 150 ms to answer: the caller is gone before it does
    app.services.credentials.finish_refreshes(Duration::from_secs(10)).await;
    let row = app.row(&uid, "gcp").await;
    assert_eq!(
        row.secret_version, 2,
        "the refresh was not stored before finish returned"
    );
    let name = app.services.credentials.secret_name(&uid, "gcp");
    let secret = app.services.secrets.read(&name, Some(2)).await.unwrap().unwrap();
    let data: Value = serde_json::from_str(secrecy::ExposeSecret::expose_secret(&secret.value)).unwrap();
    let stored = data["refresh_token"].as_str().unwrap().to_string();
    assert!(
        p.live.lock().await.contains(&stored),
        "stored {stored} is not the live refresh token"
    );
    assert_eq!(p.calls.load(Ordering::SeqCst), 1);
}

/// A client that disconnects while its read refreshes the credential: the refresh runs to the end, the
/// rotated refresh token is stored (the next refresh presents it), and the refresh is audited once.
/// Sends `request` and drops it (closing its connection) once the provider has been called, while the
/// provider is still answering (slowed to a second here): the client leaves in the middle of the refresh.
async fn leave_during_the_provider_call(request: reqwest::RequestBuilder, p: &Provider) {
    p.delay_ms.store(1000, Ordering::SeqCst);
    let before = p.calls.load(Ordering::SeqCst);
    let client = tokio::spawn(request.send());
    for _ in 0..500 {
        if p.calls.load(Ordering::SeqCst) > before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(p.calls.load(Ordering::SeqCst) > before, "the provider was never called");
    client.abort();
    assert!(
        client.await.is_err_and(|e| e.is_cancelled()),
        "the client got its answer before leaving"
    );
    p.delay_ms.store(0, Ordering::SeqCst);
}

async fn client_disconnect_does_not_lose_the_rotated_token(db: Db) {
    let (p, url) = start_provider().await;
    let app = spawn_app(db, config(&url)).await.unwrap();
    let (uid, token) = app.user("gone@example.com").await;
    store_gcp(&app, &p, &token, 60, "rt-gone").await;
    let request = app
        .client
        .get(app.at("/api/tokens/gcp/credentials"))
        .bearer_auth(&token);
    leave_during_the_provider_call(request, &p).await;
    // The refresh finishes without its client: the reference moves to the refreshed version.
    let mut landed = false;
    for _ in 0..100 {
        let row = app.row(&uid, "gcp").await;
        if row.secret_version == 2 {
            landed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(landed, "the refresh was abandoned with its client");
    let (status, body) = read(&app, &token).await;
    assert_eq!((status, &body["tokenData"]["access_token"]), (200, &json!("access-1")));
    assert_eq!(body["tokenData"]["refresh_token"], "rt-gone-r1");
    assert_eq!(p.calls.load(Ordering::SeqCst), 1);
    let refreshes = refresh_events(&app, &token).await;
    assert_eq!(refreshes, [("gcp".into(), "ok".into(), None)]);
    // The stored refresh token is the live one: the next refresh succeeds with it.
    let view = app.post_auth("/api/tokens/gcp/refresh", &token, json!({})).await;
    assert_eq!(view.status(), 200);
    assert_eq!(p.calls.load(Ordering::SeqCst), 2);
    assert_eq!(p.reused.load(Ordering::SeqCst), 0, "a refresh token was used twice");
}

/// A forced refresh whose client disconnects while the provider is called: the refresh is stored and
/// audited once, by its task (the request that would have audited it is gone).
async fn a_forced_refresh_whose_client_leaves_is_audited_once(db: Db) {
    let (p, url) = start_provider().await;
    let app = spawn_app(db, config(&url)).await.unwrap();
    let (uid, token) = app.user("forced-gone@example.com").await;
    // Valid for an hour: only the forced refresh calls the provider.
    store_gcp(&app, &p, &token, 3600, "rt-forced").await;
    let request = app
        .client
        .post(app.at("/api/tokens/gcp/refresh"))
        .bearer_auth(&token)
        .json(&json!({}));
    leave_during_the_provider_call(request, &p).await;
    // Returns once every refresh task has ended, its audit event queued.
    app.services.credentials.finish_refreshes(Duration::from_secs(10)).await;
    let row = app.row(&uid, "gcp").await;
    assert_eq!(row.secret_version, 2, "the refresh was abandoned with its client");
    assert_eq!(p.calls.load(Ordering::SeqCst), 1);
    let refreshes = refresh_events(&app, &token).await;
    assert_eq!(refreshes, [("gcp".into(), "ok".into(), None)]);
}

crate::on_both_backends!(
    single_flight_in_one_process,
    invalid_grant_needs_reauth_and_stops_calling,
    outage_degrades_serves_valid_token_then_recovers,
    scheduler_refreshes_exactly_the_due,
    short_lived_tokens_single_flight,
    never_minted_credential_is_unavailable_when_its_first_refresh_fails,
    delete_during_refresh_stays_deleted,
    client_disconnect_does_not_lose_the_rotated_token,
    a_forced_refresh_whose_client_leaves_is_audited_once,
    shutdown_waits_for_refreshes_whose_caller_left,
);

/// SIGTERM-like shutdown while the background refresher is mid-pass: it stops between credentials and
/// leaves no refresh half-done (every stored refresh token is still the live one at the provider).
async fn shutdown_leaves_no_refresh_half_done(db: Db) {
    let (p, url) = start_provider().await;
    let cfg = config(&url)
        .with("TOKENKEEPER_REFRESHER_DISABLED", "false")
        .with("TOKENKEEPER_REFRESH_INTERVAL_SECS", "1");
    let app = spawn_app(db, cfg).await.unwrap();
    let mut users = Vec::new();
    // Stored outside the margin, so that the refresher cannot take them one by one while they are
    // being stored (it could then finish them all before the shutdown)...
    for i in 0..40 {
        let (uid, token) = app.user(&format!("shut{i}@example.com")).await;
        store_gcp(&app, &p, &token, 7200, &format!("rt-shut{i}")).await;
        users.push(uid);
    }
    assert_eq!(p.calls.load(Ordering::SeqCst), 0, "nothing was due yet");
    // ...then all due at once: one pass, 16 at a time, 150 ms per call at the provider.
    app.clock.advance_secs(7200 - 60);
    // Wait until the refresher is at work (calls in flight), then shut down.
    for _ in 0..100 {
        if p.calls.load(Ordering::SeqCst) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let services = app.services.clone();
    app.shutdown().await;
    let calls = p.calls.load(Ordering::SeqCst);
    assert!(calls > 0, "the refresher never started");
    assert!(
        calls < 40,
        "it should stop between credentials, not finish the batch: {calls}"
    );
    // Every refresh the provider answered was stored: the refresh token in the secret version the
    // reference names (read directly, so that no new refresh happens) is the provider's live one.
    let live = p.live.lock().await.clone();
    for uid in &users {
        let row = services.store.get_connection(uid, "gcp").await.unwrap().unwrap();
        let name = services.credentials.secret_name(uid, "gcp");
        let secret = services
            .secrets
            .read(&name, Some(row.secret_version as u64))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{uid}: the reference names a missing secret"));
        let data: Value = serde_json::from_str(secrecy::ExposeSecret::expose_secret(&secret.value)).unwrap();
        let rt = data["refresh_token"].as_str().unwrap();
        assert!(live.contains(rt), "{uid}: stored refresh token {rt} is dead");
    }
    assert_eq!(p.reused.load(Ordering::SeqCst), 0);
}

/// A refresh whose newest secret version was soft-deleted in Vault (`vault kv delete`: the data is gone,
/// the version number stays current) starts from the version the row names, and writes after the
/// soft-deleted one. Here the newest version came from a rotation whose row update never landed.
async fn refresh_after_the_newest_version_was_soft_deleted(db: Db) {
    use crate::support::openbao::{BASE_PATH, MOUNT, OpenBao};
    let (p, url) = start_provider().await;
    let Some(cfg) = config(&url).secrets(Secrets::OpenBao).await else {
        return;
    };
    let app = spawn_app(db, cfg).await.unwrap();
    let (uid, token) = app.user("soft-refresh@example.com").await;
    store_gcp(&app, &p, &token, 3600, "rt-soft").await;
    let name = app.services.credentials.secret_name(&uid, "gcp");
    let orphan =
        secrecy::SecretString::from(json!({"access_token": "orphan", "refresh_token": "rt-orphan"}).to_string());
    assert_eq!(app.services.secrets.write(&name, &orphan, Some(1)).await.unwrap(), 2);
    let bao = OpenBao::shared().await.unwrap();
    let (status, _) = bao
        .root("DELETE", &format!("{MOUNT}/data/{BASE_PATH}/{name}"), None)
        .await;
    assert_eq!(status, 204);

    let r = app.post_auth("/api/tokens/gcp/refresh", &token, json!({})).await;
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    let (status, body) = read(&app, &token).await;
    assert_eq!(
        (status, &body["tokenData"]["access_token"]),
        (200, &json!("access-1")),
        "{body}"
    );
    assert_eq!(body["tokenData"]["refresh_token"], "rt-soft-r1");
    let row = app.row(&uid, "gcp").await;
    assert_eq!(row.secret_version, 3, "written after the soft-deleted version");
    assert_eq!(p.reused.load(Ordering::SeqCst), 0);
}

mod soft_deleted {
    use super::refresh_after_the_newest_version_was_soft_deleted;
    crate::on_both_backends!(refresh_after_the_newest_version_was_soft_deleted);
}

// Several instances share PostgreSQL, not a SQLite file.
crate::on_postgres!(single_flight_across_instances);

mod shutdown {
    use super::shutdown_leaves_no_refresh_half_done;
    crate::on_both_backends!(shutdown_leaves_no_refresh_half_done);
}
