//! Bitbucket's two forms in Aurora's shape, told apart by `auth_type`: the API token (`access_token` holding
//! the API token, with the account's `email`; static) and the OAuth tokens (`auth_type: "oauth"`, also what
//! the connect flow stores). Stored and read back in that shape; a bad body is a clear 400, nothing stored.

use axum::routing::post;
use serde_json::{Value, json};

use super::connect::{callback_url, start};
use crate::support::app::{Db, TestConfig, error_of, spawn_app};
use crate::support::browser::{location, query_param};
use crate::support::stand_in::StandIn;

async fn api_token_form_is_stored_and_read_back(db: Db) {
    let app = spawn_app(db, TestConfig::default()).await.unwrap();
    let (_, token) = app.user("bb-token@example.com").await;
    let body = json!({"auth_type": "api_token", "access_token": "ATATT3xFfGF0-api-token", "email": "dev@example.com"});
    let r = app.put_auth("/api/tokens/bitbucket", &token, body.clone()).await;
    let status = r.status();
    let stored: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{stored}");
    assert_eq!(
        stored["metadata"],
        json!({"auth_type": "api_token", "email": "dev@example.com"})
    );
    assert!(!stored.to_string().contains("ATATT3xFfGF0"), "no secret in the view");
    assert_eq!(app.credentials("bitbucket", &token).await["tokenData"], body);
    // Static: a refresh answers the connection as it is, the token unchanged.
    let r = app.post_auth("/api/tokens/bitbucket/refresh", &token, json!({})).await;
    assert_eq!(r.status(), 200);
    assert_eq!(app.credentials("bitbucket", &token).await["tokenData"], body);

    // Refused, and the stored connection is left as it was.
    for (bad, field, text) in [
        (
            json!({"auth_type": "api_token", "access_token": "ATATT-other"}),
            "email",
            "email is required",
        ),
        (
            json!({"auth_type": "api_token", "access_token": "ATATT-other", "email": "not-an-email"}),
            "email",
            "email",
        ),
        (
            json!({"auth_type": "api_token", "access_token": "ATATT-other", "email": "dev@example.com",
                   "refresh_token": "r"}),
            "refresh_token",
            "is not a field of the auth_type api_token form",
        ),
        (
            json!({"auth_type": "app_password", "access_token": "ATATT-other", "email": "dev@example.com"}),
            "auth_type",
            "auth_type must be one of: oauth, api_token",
        ),
        (
            json!({"access_token": "ATATT-other", "email": "dev@example.com"}),
            "refresh_token",
            "refresh_token is required",
        ),
    ] {
        let r = app.put_auth("/api/tokens/bitbucket", &token, bad.clone()).await;
        assert_eq!(r.status(), 400, "{bad}");
        let e = error_of(r).await;
        assert!(e.contains(field) && e.contains(text), "{bad}: {e}");
    }
    assert_eq!(app.credentials("bitbucket", &token).await["tokenData"], body);
    // Nothing stored under another name either.
    let (_, other) = app.user("bb-none@example.com").await;
    let r = app
        .put_auth(
            "/api/tokens/bitbucket",
            &other,
            json!({"auth_type": "api_token", "access_token": "ATATT-x"}),
        )
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(app.get_auth("/api/tokens/bitbucket", &other).await.status(), 404);
}

async fn oauth_form_carries_its_auth_type(db: Db) {
    // Bitbucket's token endpoint answering the code exchange as Bitbucket documents it.
    let bitbucket = StandIn::start(axum::Router::new().route(
        "/site/oauth2/access_token",
        post(|| async {
            axum::Json(
                json!({"access_token": "bb-access", "refresh_token": "bb-refresh", "expires_in": 7200,
                "token_type": "bearer", "scopes": "account repository", "state": "authorization_code"}),
            )
        }),
    ))
    .await;
    let cfg = TestConfig::default()
        .with("TOKENKEEPER_PUBLIC_URL", "http://tokenkeeper.test")
        .with(
            "TOKENKEEPER_BITBUCKET_TOKEN_URL",
            &bitbucket.url("/site/oauth2/access_token"),
        )
        .with("TOKENKEEPER_BITBUCKET_CLIENT_ID", "bb-client")
        .with("TOKENKEEPER_BITBUCKET_CLIENT_SECRET", "bb-secret");
    let app = spawn_app(db, cfg).await.unwrap();
    let (_, token) = app.user("bb-oauth@example.com").await;
    let state = query_param(&start(&app, &token, "bitbucket", json!({})).await, "state").unwrap();
    let url = format!("{}?code=bb-code&state={state}", callback_url()).replacen("http://tokenkeeper.test", &app.url, 1);
    let r = crate::support::browser::Browser::new().get(&url).await;
    assert_eq!(r.status(), 303);
    assert_eq!(query_param(&location(&r), "connected").as_deref(), Some("bitbucket"));
    let data = app.credentials("bitbucket", &token).await["tokenData"].clone();
    assert_eq!(data["auth_type"], "oauth", "{data}");
    assert_eq!(data["refresh_token"], "bb-refresh");
    // A PUT of the OAuth form without auth_type is stored with it, as Aurora stores it.
    let example = tokenkeeper::providers::find("bitbucket").unwrap().example_credential();
    let mut without = example.clone();
    without.as_object_mut().unwrap().remove("auth_type");
    assert_eq!(
        app.put_auth("/api/tokens/bitbucket", &token, without).await.status(),
        200
    );
    let data = app.credentials("bitbucket", &token).await["tokenData"].clone();
    assert_eq!(data["auth_type"], "oauth");
    assert_eq!(data["refresh_token"], example["refresh_token"]);
}

crate::on_both_backends!(api_token_form_is_stored_and_read_back, oauth_form_carries_its_auth_type);
