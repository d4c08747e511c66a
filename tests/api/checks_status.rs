//! What a check does to a stored connection: `POST /api/tokens/{provider}/check` moving the status,
//! `?check=false` and `TOKENKEEPER_CHECK_ON_STORE=false` storing `unchecked`, who may check, and the
//! background pass over static keys, claimed once across instances.

use serde_json::{Value, json};

use crate::support::app::{Db, Secrets, TestApp, TestConfig, spawn_app, spawn_sibling};
use crate::support::provider_api::{Mode, ProviderApi};

fn grafana(api: &ProviderApi) -> Value {
    json!({"api_key": "glsa_exampleExampleExample_0123abcd", "base_url": api.base("grafana")})
}

async fn check(app: &TestApp, token: &str) -> (u16, Value) {
    let r = app.post_auth("/api/tokens/grafana/check", token, json!({})).await;
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn view(app: &TestApp, token: &str) -> Value {
    let list: Value = app.get_auth("/api/tokens", token).await.json().await.unwrap();
    list["connections"][0].clone()
}

async fn read_status(app: &TestApp, token: &str) -> u16 {
    app.get_auth("/api/tokens/grafana/credentials", token)
        .await
        .status()
        .as_u16()
}

/// active -> needs_reauth (rejected: reads refused) -> active -> degraded (a hang: reads still served).
async fn the_check_endpoint_moves_the_status(db: Db) {
    let api = ProviderApi::start().await;
    let app = spawn_app(db, api.config(TestConfig::default())).await.unwrap();
    let (_, token) = app.user("check-now@example.com").await;
    assert_eq!(
        app.put_auth("/api/tokens/grafana", &token, grafana(&api))
            .await
            .status(),
        200
    );
    assert_eq!(read_status(&app, &token).await, 200);

    api.set(Mode::Reject);
    let (status, answer) = check(&app, &token).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        (answer["ok"].as_bool(), answer["detail"].as_str()),
        (Some(false), Some("HTTP 401"))
    );
    assert_eq!(answer["status"], "needs_reauth");
    assert!(answer["checkedAt"].is_string());
    let listed = view(&app, &token).await;
    assert_eq!(listed["status"], "needs_reauth");
    assert_eq!(listed["lastCheckError"], "HTTP 401");
    assert_eq!(listed["lastCheckedAt"], answer["checkedAt"]);
    assert_eq!(
        read_status(&app, &token).await,
        409,
        "a rejected credential is not served"
    );

    api.set(Mode::Accept);
    let (_, answer) = check(&app, &token).await;
    assert_eq!(
        (answer["ok"].as_bool(), answer["status"].as_str()),
        (Some(true), Some("active"))
    );
    assert_eq!(view(&app, &token).await["lastCheckError"], Value::Null);
    assert_eq!(read_status(&app, &token).await, 200);

    api.set(Mode::Hang);
    let (_, answer) = check(&app, &token).await;
    assert_eq!(answer["ok"], false);
    assert_eq!(
        (answer["status"].as_str(), answer["detail"].as_str()),
        (Some("degraded"), Some("timed out"))
    );
    assert_eq!(view(&app, &token).await["lastCheckError"], "timed out");
    assert_eq!(
        read_status(&app, &token).await,
        200,
        "an unreachable provider says nothing of the key"
    );

    // Nothing stored: 404.
    let r = app.post_auth("/api/tokens/datadog/check", &token, json!({})).await;
    assert_eq!(r.status(), 404);
}

/// `?check=false`, and the deployment default off: stored `unchecked`, the provider never called.
async fn unchecked_stores_call_nobody(db: Db) {
    let api = ProviderApi::start().await;
    let app = spawn_app(db, api.config(TestConfig::default())).await.unwrap();
    let (_, token) = app.user("unchecked@example.com").await;
    let r = app
        .put_auth("/api/tokens/grafana?check=false", &token, grafana(&api))
        .await;
    assert_eq!(r.status(), 200);
    let stored: Value = r.json().await.unwrap();
    assert_eq!(
        (stored["status"].as_str(), &stored["lastCheckedAt"]),
        (Some("unchecked"), &Value::Null)
    );
    assert_eq!(api.hits("/grafana/api/org"), 0);
    assert_eq!(read_status(&app, &token).await, 200, "an unchecked key is served");

    let r = app
        .put_auth("/api/tokens/grafana?check=maybe", &token, grafana(&api))
        .await;
    assert_eq!(r.status(), 400);

    let off = spawn_app(
        db,
        api.config(TestConfig::default())
            .with("TOKENKEEPER_CHECK_ON_STORE", "false"),
    )
    .await
    .unwrap();
    let (_, token) = off.user("default-off@example.com").await;
    let r = off.put_auth("/api/tokens/grafana", &token, grafana(&api)).await;
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "unchecked");
    assert_eq!(api.hits("/grafana/api/org"), 0);
    let r = off
        .put_auth("/api/tokens/grafana?check=true", &token, grafana(&api))
        .await;
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "active");
    assert_eq!(api.hits("/grafana/api/org"), 1);
}

/// A viewer of an org may list its connections but not check them; an editor may.
async fn a_viewer_may_not_check(db: Db) {
    let api = ProviderApi::start().await;
    let app = spawn_app(db, api.config(TestConfig::default())).await.unwrap();
    let (_, admin) = app.user("check-admin@example.com").await;
    let (viewer_id, viewer) = app.user("check-viewer@example.com").await;
    let org: Value = app
        .post_auth("/api/orgs", &admin, json!({"name": "Checks"}))
        .await
        .json()
        .await
        .unwrap();
    let org = org["id"].as_str().unwrap().to_string();
    let members = format!("/api/orgs/{org}/members");
    let r = app
        .post_auth(
            &members,
            &admin,
            json!({"email": "check-viewer@example.com", "role": "viewer"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let send = |token: &str, method: reqwest::Method, path: &str| {
        app.client
            .request(method, app.at(path))
            .bearer_auth(token)
            .header("X-Org-ID", &org)
    };
    let r = send(&admin, reqwest::Method::PUT, "/api/tokens/grafana")
        .json(&grafana(&api))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let hits = api.hits("/grafana/api/org");
    let r = send(&viewer, reqwest::Method::POST, "/api/tokens/grafana/check")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(api.hits("/grafana/api/org"), hits, "nothing was checked");
    let r = send(&admin, reqwest::Method::PATCH, &format!("{members}/{viewer_id}"))
        .json(&json!({"role": "editor"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = send(&viewer, reqwest::Method::POST, "/api/tokens/grafana/check")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(api.hits("/grafana/api/org"), hits + 1);
}

/// Four static keys stored unchecked; a check interval later, two instances' passes run at once: each key
/// is checked exactly once, and the next pass finds nothing due.
async fn the_background_pass_checks_each_key_once_across_instances(db: Db) {
    let api = ProviderApi::start().await;
    // The instances share the database and, through OpenBao, the secrets (an embedded store is per instance).
    let shared = || api.config(TestConfig::default()).secrets(Secrets::OpenBao);
    let Some(cfg) = shared().await else { return };
    let a = spawn_app(db, cfg).await.unwrap();
    let b = spawn_sibling(&a, shared().await.unwrap()).await;
    let mut tokens = Vec::new();
    for i in 0..4 {
        let (_, token) = a.user(&format!("pass-{i}@example.com")).await;
        let r = a
            .put_auth("/api/tokens/grafana?check=false", &token, grafana(&api))
            .await;
        assert_eq!(r.status(), 200);
        tokens.push(token);
    }
    // A refreshing credential is not the checker's.
    let (_, other) = a.user("pass-oauth@example.com").await;
    let gcp = json!({"access_token": "ya29.example-access-token", "refresh_token": "1//example-refresh-token",
                     "expires_at": 1893456000});
    assert_eq!(
        a.put_auth("/api/tokens/gcp?check=false", &other, gcp).await.status(),
        200
    );

    let (_, stop) = tokio::sync::watch::channel(false);
    let early = a.services.checker.run_pass(&stop).await;
    assert_eq!(early.claimed, 0, "nothing is due before the interval");
    a.clock.advance_secs(86_400 * 12 / 10);
    let (pa, pb) = tokio::join!(a.services.checker.run_pass(&stop), b.services.checker.run_pass(&stop));
    assert_eq!(pa.claimed + pb.claimed, 4, "{pa:?} {pb:?}");
    assert_eq!(pa.accepted + pb.accepted, 4);
    assert_eq!(api.hits("/grafana/api/org"), 4);
    assert_eq!(api.hits("/gcp/tokeninfo"), 0);
    for token in &tokens {
        let listed = view(&a, token).await;
        assert_eq!(
            (listed["status"].as_str(), listed["lastCheckedAt"].is_string()),
            (Some("active"), true)
        );
    }
    let again = a.services.checker.run_pass(&stop).await;
    assert_eq!(again.claimed, 0, "the next check is an interval later");
}

crate::on_both_backends!(
    the_check_endpoint_moves_the_status,
    unchecked_stores_call_nobody,
    a_viewer_may_not_check,
    the_background_pass_checks_each_key_once_across_instances,
);
