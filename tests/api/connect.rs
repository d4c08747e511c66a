//! Connect flows end to end: Tokenkeeper's `POST /api/connect/{provider}` and callback against a real
//! authorization server (django-oauth-toolkit, PKCE required), its consent page answered by a browser that
//! logged in to Django; Slack's answer from a stand-in serving what Slack documents.

use std::time::Duration;

use axum::routing::post;
use serde_json::{Value, json};

use crate::support::app::{Db, Secrets, TestApp, TestConfig, error_of, spawn_app, spawn_sibling};
use crate::support::browser::{Browser, location, query_param};
use crate::support::oauth_server::{OAuthClient, OAuthServer};
use crate::support::provider_api::ProviderApi;
use crate::support::stand_in::StandIn;

/// The URL browsers reach Tokenkeeper at (a load balancer in front of every instance): the tests send the
/// callback to whichever instance they pick.
pub(crate) const PUBLIC_URL: &str = "http://tokenkeeper.test";
pub(crate) const RETURN: &str = "https://app.example.com/connections";

pub(crate) fn callback_url() -> String {
    format!("{PUBLIC_URL}/api/connect/callback")
}

/// An instance whose gcp OAuth client is `client` at `server` (authorize, token and revoke endpoints).
pub(crate) fn gcp_config(server: &OAuthServer, client: &OAuthClient) -> TestConfig {
    TestConfig::default()
        .with("TOKENKEEPER_PUBLIC_URL", PUBLIC_URL)
        .with(
            "TOKENKEEPER_CONNECT_RETURN_URLS",
            "https://app.example.com/,https://admin.example.com/",
        )
        .with(
            "TOKENKEEPER_GCP_AUTHORIZE_URL",
            &format!("{}/o/authorize/", server.base_url),
        )
        .with("TOKENKEEPER_GCP_TOKEN_URL", &server.token_url)
        .with(
            "TOKENKEEPER_GCP_REVOKE_URL",
            &format!("{}/o/revoke_token/", server.base_url),
        )
        .with("TOKENKEEPER_GCP_CLIENT_ID", &client.client_id)
        .with("TOKENKEEPER_GCP_CLIENT_SECRET", &client.client_secret)
}

/// `POST /api/connect/{provider}` as the holder of `token`; must answer 200: the authorization URL.
pub(crate) async fn start(app: &TestApp, token: &str, provider: &str, body: Value) -> String {
    let r = app.post_auth(&format!("/api/connect/{provider}"), token, body).await;
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "start {provider}: {body}");
    assert!(body["expiresAt"].as_str().is_some_and(|s| s.ends_with('Z')), "{body}");
    body["authorizationUrl"].as_str().unwrap().to_string()
}

/// The callback `redirect` (Tokenkeeper's public URL) sent to `app`: the response, redirects not followed.
pub(crate) async fn callback(app: &TestApp, redirect: &str) -> reqwest::Response {
    assert!(
        redirect.starts_with(&callback_url()),
        "sent back to the callback: {redirect}"
    );
    let url = redirect.replacen(PUBLIC_URL, &app.url, 1);
    Browser::new().get(&url).await
}

/// A browser logged in to the authorization server.
pub(crate) async fn browser(server: &OAuthServer, client: &OAuthClient) -> Browser {
    let mut b = Browser::new();
    b.login(server, client).await;
    b
}

pub(crate) async fn stored(app: &TestApp, token: &str, provider: &str) -> bool {
    let r = app.get_auth(&format!("/api/tokens/{provider}"), token).await;
    match r.status().as_u16() {
        200 => true,
        404 => false,
        s => panic!("GET /api/tokens/{provider}: {s}"),
    }
}

/// The `credential_connect` events of the holder of `token`: (outcome, detail).
pub(crate) async fn connect_events(app: &TestApp, token: &str) -> Vec<(String, Option<String>)> {
    let events = app.events_of_kind(token, "credential_connect").await;
    events
        .into_iter()
        .map(|(_, outcome, detail)| (outcome, detail))
        .collect()
}

/// A gcp instance on the shared authorization server with a client of its own, and a user of it: `None`
/// when the server is not available (skipped).
pub(crate) async fn gcp_app(db: Db, email: &str) -> Option<(&'static OAuthServer, OAuthClient, TestApp, String)> {
    let server = OAuthServer::shared().await?;
    let client = server.new_code_client(&callback_url()).await;
    let app = spawn_app(db, gcp_config(server, &client)).await?;
    let (_, token) = app.user(email).await;
    Some((server, client, app, token))
}

async fn gcp_connects_through_the_consent_page_and_refreshes(db: Db, secrets: Secrets) {
    let Some(server) = OAuthServer::shared().await else {
        return;
    };
    let client = server.new_code_client(&callback_url()).await;
    let Some(cfg) = gcp_config(server, &client).secrets(secrets).await else {
        return;
    };
    let app = spawn_app(db, cfg).await.unwrap();
    let (_, token) = app.user("connect@example.com").await;
    let url = start(&app, &token, "gcp", json!({"returnUrl": format!("{RETURN}?tab=cloud")})).await;
    for (k, v) in [
        ("response_type", "code"),
        ("client_id", client.client_id.as_str()),
        ("redirect_uri", callback_url().as_str()),
        ("code_challenge_method", "S256"),
        ("access_type", "offline"),
        ("prompt", "consent"),
        ("scope", "https://www.googleapis.com/auth/cloud-platform"),
    ] {
        assert_eq!(query_param(&url, k).as_deref(), Some(v), "{k} in {url}");
    }
    let state = query_param(&url, "state").unwrap();
    assert!(state.len() >= 22, "at least 128 bits of state: {state}");
    assert_eq!(query_param(&url, "code_challenge").unwrap().len(), 43);

    let redirect = browser(server, &client).await.consent(&url, true).await;
    assert_eq!(query_param(&redirect, "state").as_deref(), Some(state.as_str()));
    let r = callback(&app, &redirect).await;
    assert_eq!(r.status(), 303);
    assert_eq!(
        location(&r),
        format!("{RETURN}?tab=cloud&connected=gcp&name=default"),
        "back to the return URL"
    );
    let data = app.credentials("gcp", &token).await["tokenData"].clone();
    assert!(data["access_token"].as_str().is_some_and(|s| !s.is_empty()), "{data:?}");
    assert!(data["refresh_token"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(data["expires_at"].as_i64().is_some());
    assert_eq!(connect_events(&app, &token).await, vec![("ok".to_string(), None)]);
    // The stored refresh token is the grant's: the refresh engine uses it like a stored one.
    assert_eq!(
        app.post_auth("/api/tokens/gcp/refresh", &token, json!({}))
            .await
            .status(),
        200
    );
    let after = app.credentials("gcp", &token).await["tokenData"].clone();
    assert_ne!(after["access_token"], data["access_token"]);
    assert_eq!(
        server.stats(&client.client_id).await.grants.get("authorization_code"),
        Some(&1)
    );
}

async fn a_used_expired_unknown_or_tampered_state_is_refused(db: Db) {
    let Some((server, client, app, token)) = gcp_app(db, "replay@example.com").await else {
        return;
    };
    let mut b = browser(server, &client).await;
    let redirect = b.consent(&start(&app, &token, "gcp", json!({})).await, true).await;
    assert_eq!(callback(&app, &redirect).await.status(), 303);
    // Replayed.
    let again = callback(&app, &redirect).await;
    assert_eq!(again.status(), 400);
    assert_eq!(error_of(again).await, "Unknown, expired or already used state");
    // Tampered, unknown, missing.
    let state = query_param(&redirect, "state").unwrap();
    let code = query_param(&redirect, "code").unwrap();
    let tampered = format!("{}A", &state[..state.len() - 1]);
    for q in [
        format!("code={code}&state={tampered}"),
        format!("code={code}&state=nope"),
        format!("code={code}"),
    ] {
        let r = callback(&app, &format!("{}?{q}", callback_url())).await;
        assert_eq!(r.status(), 400, "{q}");
    }
    // Expired: started, then eleven minutes pass before the browser comes back.
    let (_, other) = app.user("late@example.com").await;
    let url = start(&app, &other, "gcp", json!({})).await;
    let redirect = b.consent(&url, true).await;
    app.clock.advance_secs(11 * 60);
    assert_eq!(callback(&app, &redirect).await.status(), 400);
    assert!(
        !stored(&app, &other, "gcp").await,
        "nothing stored for an expired state"
    );
    assert_eq!(
        server.stats(&client.client_id).await.grants.get("authorization_code"),
        Some(&1)
    );
}

async fn a_refusal_or_a_failed_exchange_redirects_with_the_error(db: Db) {
    let Some((server, client, app, token)) = gcp_app(db, "refuse@example.com").await else {
        return;
    };
    let mut b = browser(server, &client).await;
    // The user cancels on the consent page.
    let denied = b.consent(&start(&app, &token, "gcp", json!({})).await, false).await;
    assert_eq!(query_param(&denied, "error").as_deref(), Some("access_denied"));
    let r = callback(&app, &denied).await;
    assert_eq!(r.status(), 303);
    assert_eq!(
        location(&r),
        format!("https://app.example.com/?error=access_denied&provider=gcp")
    );
    // A code presented with another flow's state: exchanged with the wrong verifier, refused by the server.
    let first = b.consent(&start(&app, &token, "gcp", json!({})).await, true).await;
    let second = b.consent(&start(&app, &token, "gcp", json!({})).await, true).await;
    let swapped = format!(
        "{}?code={}&state={}",
        callback_url(),
        query_param(&first, "code").unwrap(),
        query_param(&second, "state").unwrap()
    );
    let r = callback(&app, &swapped).await;
    assert_eq!(r.status(), 303);
    assert_eq!(
        location(&r),
        "https://app.example.com/?error=invalid_grant&provider=gcp"
    );
    assert!(!stored(&app, &token, "gcp").await, "nothing stored");
    let events = connect_events(&app, &token).await;
    assert_eq!(
        events,
        vec![
            ("failed".to_string(), Some("invalid_grant".to_string())),
            ("failed".to_string(), Some("access_denied".to_string())),
        ]
    );
}

async fn a_flow_started_by_a_stores_for_a_in_bs_browser(db: Db) {
    let Some((server, client, app, alice)) = gcp_app(db, "alice@example.com").await else {
        return;
    };
    let (_, bob) = app.user("bob@example.com").await;
    let url = start(&app, &alice, "gcp", json!({})).await;
    let redirect = browser(server, &client).await.consent(&url, true).await;
    // Bob's browser brings the callback back, with Bob's session: the state decides.
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = no_redirects
        .get(redirect.replacen(PUBLIC_URL, &app.url, 1))
        .bearer_auth(&bob)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(stored(&app, &alice, "gcp").await, "stored for Alice");
    assert!(!stored(&app, &bob, "gcp").await, "nothing for Bob");
}

async fn two_callbacks_for_one_state_exchange_once(db: Db) {
    let Some((server, client, app, token)) = gcp_app(db, "twice@example.com").await else {
        return;
    };
    let redirect = browser(server, &client)
        .await
        .consent(&start(&app, &token, "gcp", json!({})).await, true)
        .await;
    let (a, b) = tokio::join!(callback(&app, &redirect), callback(&app, &redirect));
    let mut statuses = [a.status().as_u16(), b.status().as_u16()];
    statuses.sort();
    assert_eq!(statuses, [303, 400]);
    assert_eq!(
        server.stats(&client.client_id).await.grants.get("authorization_code"),
        Some(&1)
    );
}

async fn start_is_refused_for_bad_input(db: Db) {
    let app = spawn_app(
        db,
        TestConfig::default()
            .with("TOKENKEEPER_CONNECT_RETURN_URLS", "https://app.example.com/")
            .with("TOKENKEEPER_SLACK_CLIENT_ID", "slack-client"),
    )
    .await
    .unwrap();
    let (_, token) = app.user("bad@example.com").await;
    let cases = [
        ("gcp", json!({}), 400, "TOKENKEEPER_GCP_CLIENT_ID is not set"),
        (
            "slack",
            json!({"returnUrl": "https://app.example.com.evil.test/"}),
            400,
            "returnUrl is not allowed",
        ),
        (
            "slack",
            json!({"returnUrl": "https://evil.test/"}),
            400,
            "returnUrl is not allowed",
        ),
        ("slack", json!({"name": "Not Valid"}), 400, "name must be"),
        ("slack", json!({"scopes": ["a b"]}), 400, "scopes"),
        ("slack", json!({"extra": 1}), 400, "unknown field"),
        ("azure", json!({}), 400, "azure has no connect flow"),
        ("nosuch", json!({}), 404, "Unknown provider"),
    ];
    for (provider, body, status, text) in cases {
        let r = app
            .post_auth(&format!("/api/connect/{provider}"), &token, body.clone())
            .await;
        assert_eq!(r.status().as_u16(), status, "{provider} {body}");
        let e = error_of(r).await;
        assert!(e.contains(text), "{provider} {body}: {e}");
    }
    // No body at all: the defaults.
    let r = app
        .client
        .post(app.at("/api/connect/slack"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Not signed in.
    assert_eq!(app.post("/api/connect/slack", json!({})).await.status(), 401);
}

/// Slack's `oauth.v2.access` answer with token rotation on, as Slack documents it.
async fn slack_access(form: axum::extract::Form<std::collections::HashMap<String, String>>) -> axum::Json<Value> {
    let ok = form.get("grant_type").map(String::as_str) == Some("authorization_code")
        && form.get("code").map(String::as_str) == Some("slack-code")
        && form.get("code_verifier").is_some_and(|v| v.len() == 43)
        && form.get("client_id").map(String::as_str) == Some("slack-client");
    if !ok {
        return axum::Json(json!({"ok": false, "error": "invalid_code"}));
    }
    axum::Json(json!({
        "ok": true,
        "app_id": "A0KRD7HC3",
        "authed_user": {"id": "U1234", "scope": "chat:write", "access_token": "xoxp-1234", "token_type": "user"},
        "scope": "channels:read,chat:write",
        "token_type": "bot",
        "access_token": "xoxe.xoxb-1-slack-access",
        "refresh_token": "xoxe-1-slack-refresh",
        "expires_in": 43200,
        "bot_user_id": "U0KRQLJ9H",
        "team": {"name": "Slack Softball Team", "id": "T9TK3CUKW"},
        "enterprise": null,
        "is_enterprise_install": false
    }))
}

async fn slack_answer_is_stored_in_auroras_shape(db: Db) {
    let slack = StandIn::start(axum::Router::new().route("/api/oauth.v2.access", post(slack_access))).await;
    let cfg = TestConfig::default()
        .with("TOKENKEEPER_PUBLIC_URL", PUBLIC_URL)
        .with("TOKENKEEPER_SLACK_TOKEN_URL", &slack.url("/api/oauth.v2.access"))
        .with("TOKENKEEPER_SLACK_CLIENT_ID", "slack-client")
        .with("TOKENKEEPER_SLACK_CLIENT_SECRET", "slack-secret");
    let app = spawn_app(db, cfg).await.unwrap();
    let (_, token) = app.user("slack@example.com").await;
    let url = start(&app, &token, "slack", json!({"name": "workspace-2"})).await;
    assert!(url.starts_with("https://slack.com/oauth/v2/authorize?"), "{url}");
    assert_eq!(query_param(&url, "scope").as_deref(), Some("channels:read,chat:write"));
    let state = query_param(&url, "state").unwrap();
    let r = callback(&app, &format!("{}?code=slack-code&state={state}", callback_url())).await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), format!("{PUBLIC_URL}/?connected=slack&name=workspace-2"));
    assert!(
        !stored(&app, &token, "slack").await,
        "the named connection, not the default one"
    );
    let r = app
        .get_auth("/api/tokens/slack/credentials?name=workspace-2", &token)
        .await;
    assert_eq!(r.status(), 200);
    let data = r.json::<Value>().await.unwrap()["tokenData"].clone();
    let now = tokenkeeper::clock::Clock::now_secs(app.clock.as_ref());
    assert_eq!(
        data,
        json!({
            "access_token": "xoxe.xoxb-1-slack-access",
            "refresh_token": "xoxe-1-slack-refresh",
            "expires_at": now + 43200,
            "team_id": "T9TK3CUKW",
            "team_name": "Slack Softball Team",
            "user_id": "U1234",
            "connected_at": now,
        })
    );
}

async fn a_provider_down_or_slow_ends_the_flow_with_an_error(db: Db) {
    let slow = StandIn::start(axum::Router::new().route(
        "/token",
        post(|| async {
            // Slower than the outbound timeout (1 s): the exchange gives up, the flow ends.
            tokio::time::sleep(Duration::from_secs(5)).await;
            "{}"
        }),
    ))
    .await;
    for token_url in [slow.url("/token"), "http://127.0.0.1:9/token".to_string()] {
        let cfg = TestConfig::default()
            .with("TOKENKEEPER_OUTBOUND_TIMEOUT_SECS", "1")
            .with("TOKENKEEPER_PUBLIC_URL", PUBLIC_URL)
            .with("TOKENKEEPER_BITBUCKET_TOKEN_URL", &token_url)
            .with("TOKENKEEPER_BITBUCKET_CLIENT_ID", "bb-client");
        let app = spawn_app(db, cfg).await.unwrap();
        let (_, token) = app.user("down@example.com").await;
        let state = query_param(&start(&app, &token, "bitbucket", json!({})).await, "state").unwrap();
        let r = callback(&app, &format!("{}?code=c&state={state}", callback_url())).await;
        assert_eq!(r.status(), 303);
        assert_eq!(
            location(&r),
            format!("{PUBLIC_URL}/?error=temporarily_unavailable&provider=bitbucket"),
            "{token_url}"
        );
        assert!(!stored(&app, &token, "bitbucket").await);
    }
}

/// With checks on store, the token a provider just issued is checked like a stored one: refused by the
/// provider's API, the browser goes back with `credential_rejected`; the API unreachable,
/// `temporarily_unavailable`; nothing is stored either way and the failed connect is audited.
async fn a_connected_token_failing_its_check_is_not_stored(db: Db) {
    let Some(server) = OAuthServer::shared().await else {
        return;
    };
    let client = server.new_code_client(&callback_url()).await;
    // The stand-in's tokeninfo knows only the catalog's example tokens: Django's token is not one of them.
    let api = ProviderApi::start().await;
    for (api_url, code) in [
        (api.base("gcp"), "credential_rejected"),
        ("http://127.0.0.1:9".to_string(), "temporarily_unavailable"),
    ] {
        let cfg = gcp_config(server, &client)
            .with("TOKENKEEPER_CHECK_ON_STORE", "true")
            .with("TOKENKEEPER_ALLOW_PRIVATE_URLS", "true")
            .with("TOKENKEEPER_OUTBOUND_TIMEOUT_SECS", "2")
            .with("TOKENKEEPER_GCP_API_URL", &api_url);
        let app = spawn_app(db, cfg).await.unwrap();
        let (_, token) = app.user("checked@example.com").await;
        let redirect = browser(server, &client)
            .await
            .consent(&start(&app, &token, "gcp", json!({})).await, true)
            .await;
        let r = callback(&app, &redirect).await;
        assert_eq!(r.status(), 303);
        assert_eq!(
            location(&r),
            format!("https://app.example.com/?error={code}&provider=gcp")
        );
        assert!(!stored(&app, &token, "gcp").await, "nothing stored ({code})");
        let events = connect_events(&app, &token).await;
        assert!(
            events.iter().any(|(outcome, _)| outcome == "failed"),
            "the failed connect is audited: {events:?}"
        );
        assert!(!events.iter().any(|(outcome, _)| outcome == "success"), "{events:?}");
    }
    assert_eq!(api.hits("/gcp/tokeninfo"), 1, "the rejecting check asked the API once");
}

/// Two instances behind one public URL, sharing the PostgreSQL database and OpenBao: a flow started on one
/// is finished by the other, and each serves what the other stored (and revokes it on delete).
async fn two_instances_share_a_flow(db: Db) {
    let Some(server) = OAuthServer::shared().await else {
        return;
    };
    let client = server.new_code_client(&callback_url()).await;
    let Some(cfg) = gcp_config(server, &client).secrets(Secrets::OpenBao).await else {
        return;
    };
    let one = spawn_app(db, cfg).await.unwrap();
    let cfg = gcp_config(server, &client).secrets(Secrets::OpenBao).await.unwrap();
    let two = spawn_sibling(&one, cfg).await;
    let (_, token) = one.user("shared@example.com").await;
    let redirect = browser(server, &client)
        .await
        .consent(&start(&one, &token, "gcp", json!({"name": "shared"})).await, true)
        .await;
    let r = callback(&two, &redirect).await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "https://app.example.com/?connected=gcp&name=shared");
    // The state is claimed in the shared database: the first instance refuses it now.
    assert_eq!(callback(&one, &redirect).await.status(), 400);
    // The first instance reads the credential the second stored, from the shared secret store.
    let read = |app: &TestApp| {
        let app_url = app.at("/api/tokens/gcp/credentials?name=shared");
        let (client, token) = (app.client.clone(), token.clone());
        async move {
            let r = client.get(app_url).bearer_auth(token).send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.unwrap()["tokenData"].clone()
        }
    };
    let data = read(&one).await;
    assert!(data["refresh_token"].as_str().is_some_and(|s| !s.is_empty()), "{data}");
    assert_eq!(read(&two).await, data);
    assert_eq!(
        server.stats(&client.client_id).await.grants.get("authorization_code"),
        Some(&1)
    );
    // Deleted on the first: revoked at the server, gone on both.
    let r = one.delete_auth("/api/tokens/gcp?name=shared", &token).await;
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"revoked": true}));
    let gone = two.get_auth("/api/tokens/gcp?name=shared", &token).await;
    assert_eq!(gone.status(), 404);
    let (status, _) = server
        .try_refresh(&client, data["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(status, 400, "the refresh token is revoked");
}

crate::on_all_stores!(gcp_connects_through_the_consent_page_and_refreshes);
crate::on_both_backends!(
    a_used_expired_unknown_or_tampered_state_is_refused,
    a_refusal_or_a_failed_exchange_redirects_with_the_error,
    a_flow_started_by_a_stores_for_a_in_bs_browser,
    two_callbacks_for_one_state_exchange_once,
    start_is_refused_for_bad_input,
    slack_answer_is_stored_in_auroras_shape,
    a_provider_down_or_slow_ends_the_flow_with_an_error,
    a_connected_token_failing_its_check_is_not_stored,
);
crate::on_postgres!(two_instances_share_a_flow);
