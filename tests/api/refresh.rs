//! Always-fresh credentials through HTTP, against a local OAuth2 token endpoint with single-use rotating
//! refresh tokens that counts its calls, notices any reuse, and holds calls at its gate while a test acts
//! (`support::token_endpoint`): every race here is arranged by events, not by delays.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokenkeeper::credentials::DueBatch;

use crate::support::app::{Db, Secrets, TestApp, TestConfig, spawn_app};
use crate::support::token_endpoint::{Answer, TokenEndpoint};
use crate::support::wait;

fn now_secs(app: &TestApp) -> i64 {
    tokenkeeper::clock::Clock::now_secs(app.clock.as_ref())
}

/// The gcp credential of `uid`.
fn key(uid: &str) -> tokenkeeper::credentials::ConnectionKey {
    tokenkeeper::credentials::ConnectionKey::of_row(uid, "gcp", "default").unwrap()
}

async fn read(app: &TestApp, token: &str) -> (u16, Value) {
    let r = app.get_auth("/api/tokens/gcp/credentials", token).await;
    (r.status().as_u16(), r.json().await.unwrap())
}

/// `per_app` concurrent reads of the holder of `token` on each of `apps`, with the provider holding the
/// refresh they trigger until every one of them is inside its service: all of them race the one refresh.
async fn reads_racing_one_held_refresh(
    apps: &[&TestApp],
    endpoint: &TokenEndpoint,
    token: &str,
    per_app: usize,
) -> Vec<(u16, Value)> {
    endpoint.hold();
    let calls = endpoint.calls();
    let reads = futures::future::join_all(apps.iter().flat_map(|app| (0..per_app).map(move |_| read(app, token))));
    let release = async {
        endpoint.wait_for_calls(calls + 1).await;
        for app in apps {
            app.wait_in_flight(per_app.try_into().unwrap()).await;
        }
        endpoint.release();
    };
    tokio::join!(reads, release).0
}

async fn single_flight_in_one_process(db: Db) {
    let endpoint = TokenEndpoint::start().await;
    let app = spawn_app(db, endpoint.config(TestConfig::default())).await.unwrap();
    let (_, token) = app.user("sf@example.com").await;
    endpoint.store_gcp(&app, &token, 60, "rt-sf").await; // inside the 5-minute margin: due
    let results = reads_racing_one_held_refresh(&[&app], &endpoint, &token, 200).await;
    for (status, body) in &results {
        assert_eq!(*status, 200, "{body}");
        assert_eq!(body["tokenData"]["access_token"], "access-1");
    }
    assert_eq!(endpoint.calls(), 1, "exactly one token-endpoint call");
    assert_eq!(endpoint.reused(), 0);
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
    // Events of a kind, reads counted per row (aggregated per minute by default).
    let count = |kind: &str| {
        events
            .iter()
            .filter(|e| e["kind"] == kind && e["outcome"] == "ok")
            .map(|e| e["count"].as_i64().unwrap())
            .sum::<i64>()
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
    assert_eq!(endpoint.calls(), 2);
    assert_eq!(endpoint.reused(), 0, "a refresh token was used twice");
    let (_, body) = read(&app, &token).await;
    assert_eq!(body["tokenData"]["access_token"], "access-2");
    assert_eq!(body["tokenData"]["refresh_token"], "rt-sf-r1-r2");
}

async fn single_flight_across_instances(db: Db) {
    let endpoint = TokenEndpoint::start().await;
    let Some((a, b)) = endpoint.two_instances(db).await else {
        return;
    };
    let (_, token) = a.user("multi@example.com").await;
    endpoint.store_gcp(&a, &token, 30, "rt-multi").await;
    let results = reads_racing_one_held_refresh(&[&a, &b], &endpoint, &token, 100).await;
    for (s, b) in &results {
        assert_eq!((*s, &b["tokenData"]["access_token"]), (200, &json!("access-1")), "{b}");
    }
    assert_eq!(endpoint.calls(), 1, "exactly one call across two instances");
    assert_eq!(endpoint.reused(), 0);
}

async fn invalid_grant_needs_reauth_and_stops_calling(db: Db) {
    let endpoint = TokenEndpoint::start().await;
    let app = spawn_app(db, endpoint.config(TestConfig::default())).await.unwrap();
    let (_, token) = app.user("reauth@example.com").await;
    endpoint.store_gcp(&app, &token, 10, "rt-dead").await;
    endpoint.answer(Answer::InvalidGrant);
    let (status, body) = read(&app, &token).await;
    assert_eq!(status, 409);
    assert_eq!(body["provider"], "gcp");
    assert_eq!(body["reason"], "invalid_grant");
    assert!(body["error"].is_string());
    let calls = endpoint.calls();
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
    assert_eq!(endpoint.calls(), calls, "no calls after needs_reauth");
    // The refresh failure is in the user's audit trail, with its reason (newest first: the forced
    // refresh refused before the refresh, then the read's refresh the provider refused).
    assert_eq!(
        app.refresh_events(&token).await,
        [
            ("gcp".into(), "failed".into(), Some("needs_reauth".into())),
            ("gcp".into(), "failed".into(), Some("invalid_grant".into()))
        ]
    );
    // Storing a new credential makes it active again.
    endpoint.answer(Answer::Tokens);
    endpoint.store_gcp(&app, &token, 3600, "rt-new").await;
    assert_eq!(read(&app, &token).await.0, 200);
}

async fn outage_degrades_serves_valid_token_then_recovers(db: Db) {
    let endpoint = TokenEndpoint::start().await;
    let app = spawn_app(db, endpoint.config(TestConfig::default())).await.unwrap();
    let (_, token) = app.user("degraded@example.com").await;
    endpoint.store_gcp(&app, &token, 120, "rt-out").await;
    endpoint.answer(Answer::Unavailable);
    let (status, body) = read(&app, &token).await;
    assert_eq!(status, 200, "the still-valid token is served");
    assert_eq!(body["tokenData"]["access_token"], "access-0");
    let list: Value = app.get_auth("/api/tokens", &token).await.json().await.unwrap();
    assert_eq!(list["connections"][0]["status"], "degraded");
    // In backoff: reads do not call again.
    assert_eq!(read(&app, &token).await.0, 200);
    assert_eq!(endpoint.calls(), 1);
    // Past the token's expiry and still down: 503, not "not connected".
    app.clock.advance_secs(121);
    let (status, _) = read(&app, &token).await;
    assert_eq!(status, 503);
    // The provider is back; after the backoff the next read refreshes.
    endpoint.answer(Answer::Tokens);
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
    let endpoint = TokenEndpoint::start().await;
    let app = spawn_app(db, endpoint.config(TestConfig::default())).await.unwrap();
    // More due credentials than the pass runs at once (16), so locks and database work overlap fully.
    for i in 0..40 {
        let (_, token) = app.user(&format!("sched{i}@example.com")).await;
        // 35 due (inside the margin), 5 not.
        let expires_in = if i < 35 { 60 } else { 7200 };
        endpoint.store_gcp(&app, &token, expires_in, &format!("rt-s{i}")).await;
    }
    let (_tx, stop) = tokio::sync::watch::channel(false);
    let report = app.services.refresher.run_pass(&stop).await;
    assert_eq!(
        (report.claimed, report.refreshed, report.failed, report.skipped),
        (35, 35, 0, 0)
    );
    assert_eq!(endpoint.calls(), 35);
    let again = app.services.refresher.run_pass(&stop).await;
    assert_eq!(again.claimed, 0, "nothing due any more");
    assert_eq!(endpoint.reused(), 0);
}

/// The scheduler never claims a connection that needs re-authorization, and leaves it as it is: neither
/// the refused connection as a refusal leaves it (no planned refresh), nor one whose row still names a
/// planned refresh (set by hand, or by an older version): claimed, it would come back at the end of every
/// claim's lease, forever.
async fn scheduler_leaves_needs_reauth_connections_alone(db: Db) {
    let endpoint = TokenEndpoint::start().await;
    let app = spawn_app(db, endpoint.config(TestConfig::default())).await.unwrap();
    let mut users = Vec::new();
    for name in ["due", "refused", "refused-while-planned"] {
        let (uid, token) = app.user(&format!("{name}@example.com")).await;
        endpoint.store_gcp(&app, &token, 60, &format!("rt-{name}")).await;
        users.push((uid, token));
    }
    let mut refused_plan = None;
    for (i, (uid, _)) in users.iter().enumerate().skip(1) {
        let row = app.row(uid, "gcp").await;
        let refused = tokenkeeper::db::Connection {
            status: tokenkeeper::db::ConnectionStatus::NeedsReauth,
            status_reason: Some("invalid_grant".into()),
            next_refresh_at: if i == 1 { None } else { row.next_refresh_at },
            ..row
        };
        if i == 2 {
            refused_plan = refused.next_refresh_at;
            assert!(refused_plan.is_some());
        }
        assert!(app.services.store.update_connection(&refused).await.unwrap());
    }
    let (_tx, stop) = tokio::sync::watch::channel(false);
    let report = app.services.refresher.run_pass(&stop).await;
    // Claimed and refreshed: the due one only.
    assert_eq!(
        (report.claimed, report.refreshed, report.failed, report.skipped),
        (1, 1, 0, 0)
    );
    assert_eq!(endpoint.calls(), 1, "only the active connection reached the provider");
    assert_eq!(app.row(&users[0].0, "gcp").await.secret_version, 2);
    for (uid, token) in &users[1..] {
        let row = app.row(uid, "gcp").await;
        assert_eq!(
            (row.status.as_str(), row.status_reason.as_deref(), row.secret_version),
            ("needs_reauth", Some("invalid_grant"), 1),
            "{uid}"
        );
        let (status, body) = read(&app, token).await;
        assert_eq!((status, &body["reason"]), (409, &json!("invalid_grant")));
    }
    // Past the end of any claim's lease, still nothing to claim.
    app.clock
        .advance_secs(tokenkeeper::clock::secs_i64(tokenkeeper::credentials::DueBatch::default().lease) + 1);
    assert_eq!(app.services.refresher.run_pass(&stop).await.claimed, 0);
    assert_eq!(endpoint.calls(), 1);
    let planned = app.row(&users[2].0, "gcp").await;
    assert_eq!(
        planned.next_refresh_at, refused_plan,
        "the planned refused row was not claimed"
    );
}

/// Tokens living less than the refresh margin (200 s against 300 s): a fresh one is not due again at
/// once, so 200 concurrent readers still make exactly one call, and neither later readers nor the
/// refresher call again until half its lifetime has passed.
async fn short_lived_tokens_single_flight(db: Db) {
    let endpoint = TokenEndpoint::start().await;
    endpoint.token_lifetime(200);
    let app = spawn_app(db, endpoint.config(TestConfig::default())).await.unwrap();
    let (uid, token) = app.user("short@example.com").await;
    endpoint.store_gcp(&app, &token, 60, "rt-short").await;
    let results = reads_racing_one_held_refresh(&[&app], &endpoint, &token, 200).await;
    for (status, body) in &results {
        assert_eq!(
            (*status, &body["tokenData"]["access_token"]),
            (200, &json!("access-1")),
            "{body}"
        );
    }
    assert_eq!(endpoint.calls(), 1, "exactly one token-endpoint call");
    // Not due again: more readers, and a refresher pass, at the same moment.
    let again = futures::future::join_all((0..20).map(|_| read(&app, &token))).await;
    assert!(again.iter().all(|(_, b)| b["tokenData"]["access_token"] == "access-1"));
    let (_tx, stop) = tokio::sync::watch::channel(false);
    assert_eq!(app.services.refresher.run_pass(&stop).await.claimed, 0);
    assert_eq!(endpoint.calls(), 1);
    // Planned at half the lifetime before expiry (up to a fifth of that earlier), not at expiry - 300 s.
    let row = app.row(&uid, "gcp").await;
    let (now, e) = (now_secs(&app), row.expires_at.unwrap().as_secs());
    assert_eq!(e, now + 200);
    assert!(
        (e - 120..=e - 100).contains(&row.next_refresh_at.unwrap().as_secs()),
        "{row:?}"
    );
    // Half its lifetime later it is due: one more call, by readers...
    app.clock.advance_secs(101);
    let results = futures::future::join_all((0..50).map(|_| read(&app, &token))).await;
    assert!(
        results
            .iter()
            .all(|(s, b)| *s == 200 && b["tokenData"]["access_token"] == "access-2")
    );
    assert_eq!(endpoint.calls(), 2);
    // ...or by the refresher.
    app.clock.advance_secs(101);
    let report = app.services.refresher.run_pass(&stop).await;
    assert_eq!((report.claimed, report.refreshed), (1, 1));
    assert_eq!(endpoint.calls(), 3);
    assert_eq!(app.services.refresher.run_pass(&stop).await.claimed, 0);
    assert_eq!(endpoint.reused(), 0);
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
/// delete: the stored or fresh token (200), or 409 for `invalid_grant`. The provider holds the refresh
/// until the delete is inside the service, so the two did overlap.
async fn delete_during_refresh_stays_deleted(db: Db) {
    for answer in [Answer::Unavailable, Answer::InvalidGrant, Answer::Tokens] {
        let endpoint = TokenEndpoint::start().await;
        endpoint.answer(answer);
        let app = spawn_app(db, endpoint.config(TestConfig::default())).await.unwrap();
        let (uid, token) = app.user(&format!("del-{answer:?}@example.com")).await;
        endpoint.store_gcp(&app, &token, 60, "rt-del").await;
        endpoint.hold();
        let released = AtomicBool::new(false);
        let deleting = async {
            endpoint.wait_for_calls(1).await; // the read's refresh is at the provider
            let release = async {
                app.wait_in_flight(2).await; // the read and the delete
                released.store(true, Ordering::SeqCst);
                endpoint.release();
            };
            let (r, ()) = tokio::join!(app.delete_auth("/api/tokens/gcp", &token), release);
            assert!(
                released.load(Ordering::SeqCst),
                "{answer:?}: the delete ended while the refresh was at the provider"
            );
            r.status()
        };
        let ((status, body), deleted) = tokio::join!(read(&app, &token), deleting);
        assert_eq!(deleted, 200, "{answer:?}");
        let expected = if answer == Answer::InvalidGrant { 409 } else { 200 };
        assert_eq!(status, expected, "{answer:?}: {body}");
        let row = app.services.store.get_connection(&uid, "gcp", "default").await.unwrap();
        assert!(row.is_none(), "{answer:?}: the deleted connection came back: {row:?}");
        assert_eq!(read(&app, &token).await.0, 404, "{answer:?}");
        let name = app.services.credentials.secret_name(&key(&uid));
        assert!(
            app.services.secrets.read(&name, None).await.unwrap().is_none(),
            "{answer:?}"
        );
    }
}

/// A caller dropped while its refresh is at the provider (here: the library call's task aborted), then
/// shutdown: the refresh still stores the rotated token before the service is done.
async fn shutdown_waits_for_refreshes_whose_caller_left(db: Db) {
    let endpoint = TokenEndpoint::start().await;
    let app = spawn_app(db, endpoint.config(TestConfig::default())).await.unwrap();
    let (uid, token) = app.user("left@example.com").await;
    endpoint.store_gcp(&app, &token, 60, "rt-left").await;
    endpoint.hold();
    let creds = app.services.credentials.clone();
    let caller = {
        let uid = uid.clone();
        tokio::spawn(async move { creds.get_token_data(&uid.as_str().into(), "gcp", "test").await })
    };
    endpoint.wait_for_calls(1).await;
    caller.abort(); // the provider holds the answer: the caller is gone before it comes
    assert!(caller.await.is_err_and(|e| e.is_cancelled()));
    endpoint.release();
    app.services.credentials.finish_refreshes(Duration::from_secs(10)).await;
    let row = app.row(&uid, "gcp").await;
    assert_eq!(
        row.secret_version, 2,
        "the refresh was not stored before finish returned"
    );
    let name = app.services.credentials.secret_name(&key(&uid));
    let secret = app.services.secrets.read(&name, Some(2)).await.unwrap().unwrap();
    let data: Value = serde_json::from_str(secrecy::ExposeSecret::expose_secret(&secret.value)).unwrap();
    let stored = data["refresh_token"].as_str().unwrap().to_string();
    assert!(
        endpoint.is_live(&stored),
        "stored {stored} is not the live refresh token"
    );
    assert_eq!(endpoint.calls(), 1);
}

/// Sends `request` and leaves (closing its connection) while the refresh it caused is held at the
/// provider; lets the provider answer only once the service has dropped the request's handling.
async fn leave_during_the_provider_call(app: &TestApp, request: reqwest::RequestBuilder, endpoint: &TokenEndpoint) {
    endpoint.hold();
    let client = tokio::spawn(request.send());
    endpoint.wait_for_calls(endpoint.calls() + 1).await;
    client.abort();
    assert!(
        client.await.is_err_and(|e| e.is_cancelled()),
        "the client got its answer before leaving"
    );
    app.wait_in_flight(0).await;
    endpoint.release();
}

/// A client that disconnects while its read refreshes the credential: the refresh runs to the end, the
/// rotated refresh token is stored (the next refresh presents it), and the refresh is audited once.
async fn client_disconnect_does_not_lose_the_rotated_token(db: Db) {
    let endpoint = TokenEndpoint::start().await;
    let app = spawn_app(db, endpoint.config(TestConfig::default())).await.unwrap();
    let (uid, token) = app.user("gone@example.com").await;
    endpoint.store_gcp(&app, &token, 60, "rt-gone").await;
    let request = app
        .client
        .get(app.at("/api/tokens/gcp/credentials"))
        .bearer_auth(&token);
    leave_during_the_provider_call(&app, request, &endpoint).await;
    // The refresh finishes without its client: the reference moves to the refreshed version.
    wait::until("the refresh of the client that left lands", || async {
        app.row(&uid, "gcp").await.secret_version == 2
    })
    .await;
    // Its audit event is recorded by the refresh task after the row: wait for the task to end.
    app.services.credentials.finish_refreshes(Duration::from_secs(10)).await;
    let (status, body) = read(&app, &token).await;
    assert_eq!((status, &body["tokenData"]["access_token"]), (200, &json!("access-1")));
    assert_eq!(body["tokenData"]["refresh_token"], "rt-gone-r1");
    assert_eq!(endpoint.calls(), 1);
    let refreshes = app.refresh_events(&token).await;
    assert_eq!(refreshes, [("gcp".into(), "ok".into(), None)]);
    // The stored refresh token is the live one: the next refresh succeeds with it.
    let view = app.post_auth("/api/tokens/gcp/refresh", &token, json!({})).await;
    assert_eq!(view.status(), 200);
    assert_eq!(endpoint.calls(), 2);
    assert_eq!(endpoint.reused(), 0, "a refresh token was used twice");
}

/// A forced refresh whose client disconnects while the provider is called: the refresh is stored and
/// audited once, by its task (the request that would have audited it is gone).
async fn a_forced_refresh_whose_client_leaves_is_audited_once(db: Db) {
    let endpoint = TokenEndpoint::start().await;
    let app = spawn_app(db, endpoint.config(TestConfig::default())).await.unwrap();
    let (uid, token) = app.user("forced-gone@example.com").await;
    // Valid for an hour: only the forced refresh calls the provider.
    endpoint.store_gcp(&app, &token, 3600, "rt-forced").await;
    let request = app
        .client
        .post(app.at("/api/tokens/gcp/refresh"))
        .bearer_auth(&token)
        .json(&json!({}));
    leave_during_the_provider_call(&app, request, &endpoint).await;
    // Returns once every refresh task has ended, its audit event queued.
    app.services.credentials.finish_refreshes(Duration::from_secs(10)).await;
    let row = app.row(&uid, "gcp").await;
    assert_eq!(row.secret_version, 2, "the refresh was abandoned with its client");
    assert_eq!(endpoint.calls(), 1);
    let refreshes = app.refresh_events(&token).await;
    assert_eq!(refreshes, [("gcp".into(), "ok".into(), None)]);
}

crate::on_both_backends!(
    single_flight_in_one_process,
    invalid_grant_needs_reauth_and_stops_calling,
    outage_degrades_serves_valid_token_then_recovers,
    scheduler_refreshes_exactly_the_due,
    scheduler_leaves_needs_reauth_connections_alone,
    short_lived_tokens_single_flight,
    never_minted_credential_is_unavailable_when_its_first_refresh_fails,
    delete_during_refresh_stays_deleted,
    client_disconnect_does_not_lose_the_rotated_token,
    a_forced_refresh_whose_client_leaves_is_audited_once,
    shutdown_waits_for_refreshes_whose_caller_left,
);

/// SIGTERM-like shutdown while the background refresher is mid-pass: it stops between credentials (only
/// the refreshes at the provider when the signal came are made) and leaves no refresh half-done (every
/// stored refresh token is still the live one at the provider).
async fn shutdown_leaves_no_refresh_half_done(db: Db) {
    let endpoint = TokenEndpoint::start().await;
    let cfg = endpoint
        .config(TestConfig::default())
        .with("TOKENKEEPER_REFRESHER_DISABLED", "false")
        .with("TOKENKEEPER_REFRESH_INTERVAL_SECS", "1");
    let mut app = spawn_app(db, cfg).await.unwrap();
    let mut users = Vec::new();
    // Stored outside the margin, so that the refresher cannot take them one by one while they are
    // being stored (it could then finish them all before the shutdown)...
    for i in 0..40 {
        let (uid, token) = app.user(&format!("shut{i}@example.com")).await;
        endpoint.store_gcp(&app, &token, 7200, &format!("rt-shut{i}")).await;
        users.push(uid);
    }
    assert_eq!(endpoint.calls(), 0, "nothing was due yet");
    // ...then all due at once: the refresher's next pass takes as many as it runs at once, and the
    // provider holds them until the service has been told to stop.
    endpoint.hold();
    app.clock.advance_secs(7200 - 60);
    let at_once = DueBatch::default().concurrency as u64;
    endpoint.wait_for_calls(at_once).await;
    app.begin_shutdown().await;
    endpoint.release();
    let services = app.services.clone();
    app.shutdown().await;
    assert_eq!(
        endpoint.calls(),
        at_once,
        "the refresher stops between credentials: only the refreshes under way at the signal are made"
    );
    // Every refresh the provider answered was stored: the refresh token in the secret version the
    // reference names (read directly, so that no new refresh happens) is the provider's live one.
    let mut refreshed = 0;
    for uid in &users {
        let row = services
            .store
            .get_connection(uid, "gcp", "default")
            .await
            .unwrap()
            .unwrap();
        refreshed += usize::from(row.secret_version == 2);
        let name = services.credentials.secret_name(&key(uid));
        let secret = services
            .secrets
            .read(&name, Some(row.secret_version))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{uid}: the reference names a missing secret"));
        let data: Value = serde_json::from_str(secrecy::ExposeSecret::expose_secret(&secret.value)).unwrap();
        let rt = data["refresh_token"].as_str().unwrap();
        assert!(endpoint.is_live(rt), "{uid}: stored refresh token {rt} is dead");
    }
    assert_eq!(refreshed as u64, at_once);
    assert_eq!(endpoint.reused(), 0);
}

/// A refresh whose newest secret version was soft-deleted in Vault (`vault kv delete`: the data is gone,
/// the version number stays current) starts from the version the row names, and writes after the
/// soft-deleted one. Here the newest version came from a rotation whose row update never landed.
async fn refresh_after_the_newest_version_was_soft_deleted(db: Db) {
    use crate::support::openbao::{BASE_PATH, MOUNT, OpenBao};
    let endpoint = TokenEndpoint::start().await;
    let Some(cfg) = endpoint.config(TestConfig::default()).secrets(Secrets::OpenBao).await else {
        return;
    };
    let app = spawn_app(db, cfg).await.unwrap();
    let (uid, token) = app.user("soft-refresh@example.com").await;
    endpoint.store_gcp(&app, &token, 3600, "rt-soft").await;
    let name = app.services.credentials.secret_name(&key(&uid));
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
    assert_eq!(endpoint.reused(), 0);
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
