//! `GET /api/audit`: each event kind lands for its own user only, newest first, paged.

use serde_json::{Value, json};

use crate::support::alone::alone;
use crate::support::app::{Db, TestApp, TestConfig, scraped, spawn_app, sql};
use crate::support::token_endpoint::{Answer, TokenEndpoint};

async fn events_are_recorded_per_user_and_paged(db: Db) {
    let app = spawn_app(db, TestConfig::default()).await.unwrap();
    let (_, token) = app.user("audited@example.com").await;
    let (_, other) = app.user("other@example.com").await;
    let bad = app
        .post(
            "/api/auth/login",
            json!({"email": "audited@example.com", "password": "wrong-password"}),
        )
        .await;
    assert_eq!(bad.status(), 401);
    let body = json!({"currentPassword": "correct-horse-battery", "newPassword": "brand-new-password"});
    assert_eq!(
        app.post_auth("/api/auth/change-password", &token, body).await.status(),
        200
    );
    let creds = json!({"api_token": "audit-splunk-token-1", "base_url": "https://s.example.com"});
    assert_eq!(app.put_auth("/api/tokens/splunk", &token, creds).await.status(), 200);
    assert_eq!(
        app.get_auth("/api/tokens/splunk/credentials", &token).await.status(),
        200
    );
    assert_eq!(app.delete_auth("/api/tokens/splunk", &token).await.status(), 200);

    let page: Value = app.get_auth("/api/audit", &token).await.json().await.unwrap();
    let kinds: Vec<(String, String)> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap().into(),
                e["outcome"].as_str().unwrap().into(),
            )
        })
        .collect();
    let expect = [
        ("credential_delete", "ok"),
        ("credential_read", "ok"),
        ("credential_store", "ok"),
        ("change_password", "ok"),
        ("login", "failed"),
        ("login", "ok"),
        ("register", "ok"),
    ];
    let expect: Vec<(String, String)> = expect.iter().map(|(k, o)| (k.to_string(), o.to_string())).collect();
    assert_eq!(kinds, expect, "newest first");
    assert!(
        !page.to_string().contains("audit-splunk-token-1"),
        "no secret in the audit trail"
    );
    // The other user sees only their own two events.
    let theirs: Value = app.get_auth("/api/audit", &other).await.json().await.unwrap();
    assert_eq!(theirs["events"].as_array().unwrap().len(), 2);
    // Paging.
    let p1: Value = app.get_auth("/api/audit?limit=3", &token).await.json().await.unwrap();
    assert_eq!(p1["events"].as_array().unwrap().len(), 3);
    let before = p1["nextBefore"].as_i64().unwrap();
    let p2: Value = app
        .get_auth(&format!("/api/audit?limit=3&before={before}"), &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(p2["events"][0]["kind"], "change_password");
    assert_eq!(app.get_auth("/api/audit?limit=0", &token).await.status(), 400);
}

/// A burst larger than one writer batch (1,024 events) lands whole: every event once, absent fields kept
/// absent (PostgreSQL writes batches from per-column arrays, SQLite from one JSON array).
async fn a_burst_of_events_lands_whole(db: Db) {
    use tokenkeeper::audit::{Event, EventKind, Outcome};
    let app = spawn_app(db, TestConfig::default()).await.unwrap();
    const N: usize = 2_500;
    let recording = (0..N).map(|i| {
        let audit = app.services.audit.clone();
        async move {
            let detail = format!("n{i}");
            let e = Event {
                user_id: Some("burst-user"),
                org_id: None,
                kind: EventKind::CredentialRead,
                provider: (!i.is_multiple_of(3)).then_some("datadog"),
                connection: None,
                outcome: if i.is_multiple_of(5) {
                    Outcome::Failed
                } else {
                    Outcome::Ok
                },
                client_addr: (i.is_multiple_of(2)).then_some("10.0.0.7"),
                detail: Some(detail.as_str()),
            };
            audit.record(e).await.unwrap();
        }
    });
    futures::future::join_all(recording).await;
    app.services.audit.flush().await;

    let mut seen = std::collections::HashMap::new();
    let mut before = None;
    loop {
        let page = app
            .services
            .store
            .list_audit(tokenkeeper::db::AuditOwner::User("burst-user"), before, 1_000)
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        before = Some(last.id);
        for r in page {
            let i: usize = r.detail.as_deref().unwrap()[1..].parse().unwrap();
            assert_eq!(r.kind, "credential_read");
            assert_eq!(
                r.provider.as_deref(),
                (!i.is_multiple_of(3)).then_some("datadog"),
                "event {i}"
            );
            assert_eq!(
                r.outcome,
                if i.is_multiple_of(5) { "failed" } else { "ok" },
                "event {i}"
            );
            assert_eq!(
                r.client_addr.as_deref(),
                (i.is_multiple_of(2)).then_some("10.0.0.7"),
                "event {i}"
            );
            assert!(r.at > 0);
            assert!(seen.insert(i, r.id).is_none(), "event {i} written twice");
        }
    }
    assert_eq!(seen.len(), N, "every event of the burst is in the trail");

    // Text that needs escaping on its way through a batch comes back as it went in.
    let odd = "quote \" backslash \\ newline \n tab \t nul-free unicode é 🔑 [1,{\"a\":null}]";
    let e = Event {
        user_id: Some("odd-user"),
        org_id: None,
        kind: EventKind::Login,
        provider: None,
        connection: None,
        outcome: Outcome::Failed,
        client_addr: Some("::1"),
        detail: Some(odd),
    };
    app.services.audit.record(e).await.unwrap();
    app.services.audit.flush().await;
    let got = app
        .services
        .store
        .list_audit(tokenkeeper::db::AuditOwner::User("odd-user"), None, 10)
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].detail.as_deref(), Some(odd));
    assert_eq!(got[0].provider, None);
    assert_eq!(got[0].client_addr.as_deref(), Some("::1"));
    assert_eq!(app.services.audit.failed_writes(), 0);
}

/// `POST /api/tokens/{provider}/refresh` leaves exactly one `credential_refresh` event per request, ok or
/// failed: also when it fails before the refresh engine runs, and never two when the engine ran.
async fn every_forced_refresh_is_audited_once(db: Db) {
    let endpoint = TokenEndpoint::start().await;
    let app = spawn_app(db, endpoint.config(TestConfig::default())).await.unwrap();
    let (uid, token) = app.user("forced@example.com").await;
    let (_, other) = app.user("bystander@example.com").await;
    let refresh = async |provider: &str| {
        let r = app
            .post_auth(&format!("/api/tokens/{provider}/refresh"), &token, json!({}))
            .await;
        // On PostgreSQL the audit writer has several batches in flight, so events recorded milliseconds
        // apart may be numbered in either order (docs/AUDIT.md): each step's event is written before the
        // next step, so that the listing's order below is the requests' order.
        app.services.audit.flush().await;
        r
    };
    let ev = |provider: &str, outcome: &str, detail: Option<&str>| {
        (provider.to_string(), outcome.to_string(), detail.map(str::to_string))
    };

    // Before the engine: nothing stored, an unknown provider.
    assert_eq!(refresh("gcp").await.status(), 404);
    assert_eq!(refresh("no-such-provider").await.status(), 404);
    // A provider whose credentials do not refresh: answered as it is.
    let splunk = json!({"api_token": "forced-splunk-token", "base_url": "https://s.example.com"});
    assert_eq!(app.put_auth("/api/tokens/splunk", &token, splunk).await.status(), 200);
    assert_eq!(refresh("splunk").await.status(), 200);
    // The engine: a refresh the provider grants, then one it refuses for now (503; the still-valid
    // token is served, the connection is degraded). The engine records these itself.
    endpoint.store_gcp(&app, &token, 3600, "rt-0").await;
    assert_eq!(refresh("gcp").await.status(), 200);
    endpoint.answer(Answer::Unavailable);
    let r = refresh("gcp").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "degraded");
    assert_eq!(endpoint.calls(), 2);
    // A connection that needs re-authorization: refused (409) before the refresh.
    let row = app.row(&uid, "gcp").await;
    let reauth = tokenkeeper::db::Connection {
        status: tokenkeeper::db::ConnectionStatus::NeedsReauth,
        status_reason: Some("invalid_grant".into()),
        next_refresh_at: None,
        ..row
    };
    assert!(app.services.store.update_connection(&reauth).await.unwrap());
    assert_eq!(refresh("gcp").await.status(), 409);
    assert_eq!(endpoint.calls(), 2);

    let events = app.refresh_events(&token).await;
    assert_eq!(events.len(), 6, "one event per forced refresh: {events:?}");
    assert_eq!(events[0], ev("gcp", "failed", Some("needs_reauth")));
    assert_eq!((events[1].0.as_str(), events[1].1.as_str()), ("gcp", "failed"));
    assert!(events[1].2.is_some(), "the provider's reason: {events:?}");
    assert_eq!(events[2], ev("gcp", "ok", None));
    assert_eq!(events[3], ev("splunk", "ok", None));
    assert_eq!(events[4], ev("no-such-provider", "failed", Some("unknown provider")));
    assert_eq!(events[5], ev("gcp", "failed", Some("not connected")));
    assert!(
        app.refresh_events(&other).await.is_empty(),
        "the user's own events only"
    );
}

/// Makes every insert into `audit_events` fail (or stops doing so).
async fn break_audit_writes(app: &TestApp, on: bool) {
    let pg = app.database_url.starts_with("postgres");
    let stmt = match (pg, on) {
        (true, true) => {
            "CREATE FUNCTION tk_fail_audit() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'injected failure'; END $$ \
             LANGUAGE plpgsql; CREATE TRIGGER tk_fail_audit BEFORE INSERT ON audit_events \
             FOR EACH ROW EXECUTE FUNCTION tk_fail_audit();"
        }
        (true, false) => "DROP TRIGGER tk_fail_audit ON audit_events; DROP FUNCTION tk_fail_audit();",
        (false, true) => {
            "CREATE TRIGGER tk_fail_audit BEFORE INSERT ON audit_events BEGIN SELECT RAISE(ABORT, 'injected'); END;"
        }
        (false, false) => "DROP TRIGGER tk_fail_audit;",
    };
    sql(app, stmt).await;
}

async fn audit_write_failures(app: &TestApp) -> f64 {
    scraped(
        &app.client,
        &app.at("/metrics"),
        "tokenkeeper_audit_write_failures_total",
    )
    .await
}

/// An audit write that fails is logged and counted, and the read it was for still answers.
async fn a_failed_audit_write_is_logged_counted_and_does_not_fail_a_read(db: Db) {
    if !alone(
        module_path!(),
        db,
        "a_failed_audit_write_is_logged_counted_and_does_not_fail_a_read",
    )
    .await
    {
        return;
    }
    // Installed globally: this test runs alone (see `alone`).
    let logs = crate::support::logs::Capture::install("tokenkeeper=warn");
    let app = spawn_app(db, TestConfig::default()).await.unwrap();
    let (_, token) = app.user("unaudited@example.com").await;
    let creds = json!({"api_token": "unaudited-splunk-token", "base_url": "https://s.example.com"});
    assert_eq!(app.put_auth("/api/tokens/splunk", &token, creds).await.status(), 200);
    // Everything so far is written before the failure is injected.
    app.services.audit.flush().await;
    assert_eq!(audit_write_failures(&app).await, 0.0);

    break_audit_writes(&app, true).await;
    let data = app.credentials("splunk", &token).await;
    assert_eq!(data["tokenData"]["api_token"], "unaudited-splunk-token");
    app.services.audit.flush().await;
    assert_eq!(audit_write_failures(&app).await, 1.0);
    assert_eq!(app.services.audit.failed_writes(), 1);
    let log = logs.text();
    let line = log
        .lines()
        .find(|l| l.contains("audit write failed"))
        .unwrap_or_else(|| panic!("the failed write is logged:\n{log}"));
    assert!(line.contains("credential_read") && line.contains("injected"), "{line}");
    assert!(!log.contains("unaudited-splunk-token"), "no secret in the log");

    // Repaired: writes land again and nothing more is counted.
    break_audit_writes(&app, false).await;
    app.credentials("splunk", &token).await;
    let page: Value = app.get_auth("/api/audit", &token).await.json().await.unwrap();
    let reads = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "credential_read")
        .count();
    assert_eq!(
        reads, 1,
        "the read while writes failed is not in the trail, the one after is"
    );
    assert_eq!(audit_write_failures(&app).await, 1.0);
}

/// Attempts refused by the brute-force limit (429) land in the targeted user's trail as failures.
async fn refused_attempts_are_audited(db: Db) {
    let cfg = TestConfig::default().with("TOKENKEEPER_RATE_LIMIT_MAX_FAILURES", "1");
    let app = spawn_app(db, cfg).await.unwrap();
    let (_, token) = app.user("limited@example.com").await;
    let login = json!({"email": "limited@example.com", "password": "wrong-password"});
    assert_eq!(app.post("/api/auth/login", login.clone()).await.status(), 401);
    assert_eq!(app.post("/api/auth/login", login).await.status(), 429);
    let change = json!({"currentPassword": "wrong-password", "newPassword": "brand-new-password"});
    assert_eq!(
        app.post_auth("/api/auth/change-password", &token, change.clone())
            .await
            .status(),
        401
    );
    assert_eq!(
        app.post_auth("/api/auth/change-password", &token, change)
            .await
            .status(),
        429
    );
    let page: Value = app.get_auth("/api/audit?limit=50", &token).await.json().await.unwrap();
    let refused: Vec<&str> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["detail"] == "too many attempts" && e["outcome"] == "failed")
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(refused, ["change_password", "login"], "{page}");
}

crate::on_both_backends!(
    refused_attempts_are_audited,
    events_are_recorded_per_user_and_paged,
    a_burst_of_events_lands_whole,
    every_forced_refresh_is_audited_once,
    a_failed_audit_write_is_logged_counted_and_does_not_fail_a_read
);
