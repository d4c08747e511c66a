//! Revocation on delete: `DELETE /api/tokens/{provider}` takes the grant back at the provider where the
//! catalog (or `TOKENKEEPER_<P>_REVOKE_URL`) says how, and answers `{"revoked": true|false|null}`; the local
//! delete happens whatever the provider answers. Against django-oauth-toolkit's RFC 7009 endpoint, a Slack
//! stand-in serving `auth.revoke` as Slack documents it, and providers that are down or slow.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::Form;
use axum::http::HeaderMap;
use axum::routing::post;
use serde_json::{Value, json};

use super::connect::{browser, callback, gcp_app, start, stored};
use crate::support::app::{Db, TestApp, TestConfig, spawn_app};
use crate::support::stand_in::StandIn;

/// `DELETE` of the holder of `token`'s `provider` connection: must answer 200; its `revoked`.
async fn delete(app: &TestApp, token: &str, provider: &str) -> Value {
    let r = app.delete_auth(&format!("/api/tokens/{provider}"), token).await;
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "DELETE {provider}: {body}");
    assert_eq!(body.as_object().map(|o| o.len()), Some(1), "{body}");
    body["revoked"].clone()
}

/// The detail of the holder of `token`'s latest `credential_delete` event for `provider`.
async fn delete_detail(app: &TestApp, token: &str, provider: &str) -> Option<String> {
    let events = app.events_of_kind(token, "credential_delete").await;
    let (_, outcome, detail) = events
        .into_iter()
        .find(|(p, _, _)| p == provider)
        .expect("a credential_delete event");
    assert_eq!(outcome, "ok");
    detail
}

async fn a_connected_grant_is_revoked_at_the_authorization_server(db: Db) {
    let Some((server, client, app, token)) = gcp_app(db, "revoke@example.com").await else {
        return;
    };
    let redirect = browser(server, &client)
        .await
        .consent(&start(&app, &token, "gcp", json!({})).await, true)
        .await;
    assert_eq!(callback(&app, &redirect).await.status(), 303);
    let data = app.credentials("gcp", &token).await["tokenData"].clone();
    let refresh_token = data["refresh_token"].as_str().unwrap().to_string();

    assert_eq!(delete(&app, &token, "gcp").await, json!(true));
    assert!(!stored(&app, &token, "gcp").await, "the connection is gone");
    assert_eq!(delete_detail(&app, &token, "gcp").await.as_deref(), Some("revoked"));
    // The refresh token no longer refreshes at the authorization server.
    let (status, error) = server.try_refresh(&client, &refresh_token).await;
    assert_eq!((status, error.as_deref()), (400, Some("invalid_grant")));
}

/// What the Slack stand-in saw: the `token` of each `auth.revoke` call.
type Seen = Arc<Mutex<Vec<String>>>;

/// Slack's `auth.revoke` (form `token`): `{"ok": true, "revoked": true}` for the token it issued,
/// `{"ok": false, "error": "invalid_auth"}` for any other, as Slack documents it.
fn slack(seen: &Seen, issued: &'static str) -> axum::Router {
    let seen = seen.clone();
    axum::Router::new().route(
        "/api/auth.revoke",
        post(move |Form(form): Form<HashMap<String, String>>| {
            let seen = seen.clone();
            async move {
                let token = form.get("token").cloned().unwrap_or_default();
                seen.lock().unwrap().push(token.clone());
                if token == issued {
                    axum::Json(json!({"ok": true, "revoked": true}))
                } else {
                    axum::Json(json!({"ok": false, "error": "invalid_auth"}))
                }
            }
        }),
    )
}

async fn slack_tokens_are_revoked_with_auth_revoke(db: Db) {
    let seen = Seen::default();
    let stand_in = StandIn::start(slack(&seen, "xoxb-1-issued-bot-token")).await;
    let cfg = TestConfig::default()
        .with("TOKENKEEPER_SLACK_REVOKE_URL", &stand_in.url("/api/auth.revoke"))
        .with("TOKENKEEPER_SLACK_CLIENT_ID", "slack-client")
        .with("TOKENKEEPER_SLACK_CLIENT_SECRET", "slack-secret");
    let app = spawn_app(db, cfg).await.unwrap();
    let (_, token) = app.user("slack-revoke@example.com").await;
    let put = |access: &str| json!({"access_token": access, "team_id": "T0123456789"});
    assert_eq!(
        app.put_auth("/api/tokens/slack", &token, put("xoxb-1-issued-bot-token"))
            .await
            .status(),
        200
    );
    assert_eq!(delete(&app, &token, "slack").await, json!(true));
    assert_eq!(*seen.lock().unwrap(), vec!["xoxb-1-issued-bot-token".to_string()]);
    assert!(!stored(&app, &token, "slack").await);
    // A token Slack does not know: `ok: false`, so not revoked; deleted all the same.
    assert_eq!(
        app.put_auth("/api/tokens/slack", &token, put("xoxb-1-unknown-token"))
            .await
            .status(),
        200
    );
    assert_eq!(delete(&app, &token, "slack").await, json!(false));
    assert!(!stored(&app, &token, "slack").await, "deleted whatever Slack says");
    assert_eq!(
        delete_detail(&app, &token, "slack").await.as_deref(),
        Some("revocation refused")
    );
    assert_eq!(seen.lock().unwrap().len(), 2);
}

async fn a_provider_down_or_slow_bounds_the_delete(db: Db) {
    let slow = StandIn::start(axum::Router::new().route(
        "/revoke",
        post(|| async {
            // Slower than the outbound timeout (1 s).
            tokio::time::sleep(Duration::from_secs(10)).await;
            "{}"
        }),
    ))
    .await;
    let gcp = json!({"access_token": "ya29.down", "refresh_token": "1//down", "expires_at": 4_102_444_800_i64});
    for (url, reason) in [
        (slow.url("/revoke"), "timeout"),
        ("http://127.0.0.1:9/revoke".to_string(), "connect"),
    ] {
        let cfg = TestConfig::default()
            .with("TOKENKEEPER_OUTBOUND_TIMEOUT_SECS", "1")
            .with("TOKENKEEPER_GCP_REVOKE_URL", &url)
            .with("TOKENKEEPER_GCP_CLIENT_ID", "gcp-client");
        let app = spawn_app(db, cfg).await.unwrap();
        let (_, token) = app.user("down@example.com").await;
        assert_eq!(app.put_auth("/api/tokens/gcp", &token, gcp.clone()).await.status(), 200);
        let began = Instant::now();
        assert_eq!(delete(&app, &token, "gcp").await, json!(false), "{url}");
        assert!(
            began.elapsed() < Duration::from_secs(5),
            "bounded: {:?}",
            began.elapsed()
        );
        assert!(!stored(&app, &token, "gcp").await, "the row is gone: {url}");
        let detail = delete_detail(&app, &token, "gcp").await.unwrap();
        assert!(detail.starts_with("revocation failed: "), "{detail}");
        assert!(detail.contains(reason), "{url}: {detail}");
    }
}

/// What an RFC 7009 stand-in saw: `(token, token_type_hint, Authorization)` per call.
type Revocations = Arc<Mutex<Vec<(String, String, String)>>>;

/// RFC 7009 at `TOKENKEEPER_BITBUCKET_REVOKE_URL` (no revocation in Bitbucket's catalog entry): the form
/// `token`, `token_type_hint`, and the client's HTTP Basic authentication as Bitbucket's token endpoint
/// takes it.
fn rfc7009(seen: &Revocations) -> axum::Router {
    let seen = seen.clone();
    axum::Router::new().route(
        "/revoke",
        post(move |headers: HeaderMap, Form(form): Form<HashMap<String, String>>| {
            let seen = seen.clone();
            async move {
                let auth = headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                let field = |k: &str| form.get(k).cloned().unwrap_or_default();
                seen.lock()
                    .unwrap()
                    .push((field("token"), field("token_type_hint"), auth));
                ""
            }
        }),
    )
}

async fn providers_without_revocation_answer_null(db: Db) {
    let seen = Revocations::default();
    let stand_in = StandIn::start(rfc7009(&seen)).await;
    let app = spawn_app(db, TestConfig::default()).await.unwrap();
    let (_, token) = app.user("null@example.com").await;
    // A static key and an OAuth provider whose catalog declares no revocation.
    for provider in ["splunk", "bitbucket"] {
        let example = tokenkeeper::providers::find(provider).unwrap().example_credential();
        assert_eq!(
            app.put_auth(&format!("/api/tokens/{provider}"), &token, example)
                .await
                .status(),
            200
        );
        assert_eq!(delete(&app, &token, provider).await, Value::Null, "{provider}");
        assert_eq!(delete_detail(&app, &token, provider).await, None);
    }
    // gcp revokes OAuth grants, not service-account keys.
    let gcp = tokenkeeper::providers::find("gcp").unwrap().example_credentials()[1].clone();
    assert_eq!(app.put_auth("/api/tokens/gcp", &token, gcp).await.status(), 200);
    assert_eq!(delete(&app, &token, "gcp").await, Value::Null);

    // Configured with an RFC 7009 endpoint, Bitbucket's OAuth grant is revoked there.
    let cfg = TestConfig::default()
        .with("TOKENKEEPER_BITBUCKET_REVOKE_URL", &stand_in.url("/revoke"))
        .with("TOKENKEEPER_BITBUCKET_CLIENT_ID", "bb-client")
        .with("TOKENKEEPER_BITBUCKET_CLIENT_SECRET", "bb-secret");
    let app = spawn_app(db, cfg).await.unwrap();
    let (_, token) = app.user("rfc7009@example.com").await;
    let example = tokenkeeper::providers::find("bitbucket").unwrap().example_credential();
    assert_eq!(
        app.put_auth("/api/tokens/bitbucket", &token, example).await.status(),
        200
    );
    assert_eq!(delete(&app, &token, "bitbucket").await, json!(true));
    let basic = format!(
        "Basic {}",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "bb-client:bb-secret")
    );
    assert_eq!(
        *seen.lock().unwrap(),
        vec![(
            "example-bitbucket-refresh-token".to_string(),
            "refresh_token".to_string(),
            basic
        )]
    );
}

crate::on_both_backends!(
    a_connected_grant_is_revoked_at_the_authorization_server,
    slack_tokens_are_revoked_with_auth_revoke,
    a_provider_down_or_slow_bounds_the_delete,
    providers_without_revocation_answer_null,
);
