//! `GET /api/audit`: each event kind lands for its own user only, newest first, paged.

use serde_json::{Value, json};

use crate::support::app::{Db, TestConfig, spawn_app};

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
    assert_eq!(app.delete_auth("/api/tokens/splunk", &token).await.status(), 204);

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
                kind: EventKind::CredentialRead,
                provider: (!i.is_multiple_of(3)).then_some("datadog"),
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
            .list_audit("burst-user", before, 1_000)
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
        kind: EventKind::Login,
        provider: None,
        outcome: Outcome::Failed,
        client_addr: Some("::1"),
        detail: Some(odd),
    };
    app.services.audit.record(e).await.unwrap();
    app.services.audit.flush().await;
    let got = app.services.store.list_audit("odd-user", None, 10).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].detail.as_deref(), Some(odd));
    assert_eq!(got[0].provider, None);
    assert_eq!(got[0].client_addr.as_deref(), Some("::1"));
    assert_eq!(app.services.audit.failed_writes(), 0);
}

crate::on_both_backends!(events_are_recorded_per_user_and_paged, a_burst_of_events_lands_whole);
