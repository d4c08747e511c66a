//! Checks and connect flows in the browser: a key provider's check passing and failing on the connect
//! form (the stand-in provider API), "Check now" moving the status once the stand-in refuses the key, a
//! viewer without buttons, and an OAuth provider connected through the real authorization server's login
//! and consent pages (django-oauth-toolkit) back to the console.

use fantoccini::{Client, Locator};
use serde_json::{Value, json};

use super::support::app::{Db, TestApp, TestConfig, spawn_app};
use super::support::chromium::Chromedriver;
use super::support::oauth_server::OAuthServer;
use super::support::provider_api::{Mode, ProviderApi};
use super::{PASSWORD, click, fill, path, sign_in, sign_in_at, text};

const KEY: &str = "glsa_exampleExampleExample_0123abcd";

async fn has(b: &Client, css: &str) -> bool {
    !b.find_all(Locator::Css(css)).await.unwrap().is_empty()
}

async fn connect_grafana(b: &Client, base: &str) {
    b.find(Locator::Css("a[href='/connect/grafana']")).await.unwrap();
    click(b, "a[href='/connect/grafana']").await;
    fill(b, "#f-api_key", KEY).await;
    let field = b.find(Locator::Css("#f-base_url")).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys(base).await.unwrap();
    click(b, "form.stack button[type=submit]").await;
}

async fn a_check_passes_fails_and_moves_the_status(db: Db) {
    let Some(driver) = Chromedriver::start().await else {
        return;
    };
    let api = ProviderApi::start().await;
    let app = spawn_app(db, api.config(TestConfig::default())).await.unwrap();
    let (_, token) = app.user("checks@example.com").await;
    let b = driver.browser(1280, 900).await;
    sign_in(&app, &b, "checks@example.com", PASSWORD).await;

    // Failing: the provider's answer on the form, nothing stored.
    api.set(Mode::Reject);
    connect_grafana(&b, &api.base("grafana")).await;
    let alert = text(&b, "[role=alert]").await;
    assert_eq!(alert, "Credential rejected by grafana (HTTP 401): nothing was stored.");
    assert!(!b.source().await.unwrap().contains(KEY));
    b.goto(&app.at("/")).await.unwrap();
    assert!(text(&b, "main").await.contains("No provider is connected"));

    // Passing: active.
    api.set(Mode::Accept);
    connect_grafana(&b, &api.base("grafana")).await;
    let ok = text(&b, "[role=status]").await;
    assert!(ok.contains("the provider accepted it; status active"), "{ok}");
    b.goto(&app.at("/")).await.unwrap();
    assert_eq!(text(&b, "td .status").await, "active");

    // The provider starts refusing the key: "Check now" shows it and the status moves.
    api.set(Mode::Reject);
    click(&b, "form[action^='/check/grafana'] button").await;
    assert!(
        text(&b, "[role=alert]")
            .await
            .contains("the check failed (HTTP 401); status needs reauth")
    );
    assert_eq!(text(&b, "td .status").await, "needs reauth");
    let row = text(&b, "tbody").await;
    assert!(
        row.contains("failed: HTTP 401") && row.contains("check_rejected: HTTP 401"),
        "{row}"
    );

    // A viewer of the org sees the connection and no button.
    let r = app.post_auth("/api/orgs", &token, json!({"name": "Shared"})).await;
    let org = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    viewer_sees_no_buttons(&app, &driver, &token, &org, &api).await;
    b.close().await.unwrap();
}

async fn viewer_sees_no_buttons(app: &TestApp, driver: &Chromedriver, admin: &str, org: &str, api: &ProviderApi) {
    api.set(Mode::Accept);
    let r = app
        .client
        .put(app.at("/api/tokens/grafana"))
        .bearer_auth(admin)
        .header("X-Org-ID", org)
        .json(&json!({"api_key": KEY, "base_url": api.base("grafana")}));
    assert_eq!(r.send().await.unwrap().status(), 200);
    app.register("watcher@example.com", PASSWORD).await;
    let add = json!({"email": "watcher@example.com", "role": "viewer"});
    assert_eq!(
        app.post_auth(&format!("/api/orgs/{org}/members"), admin, add)
            .await
            .status(),
        201
    );
    let v = driver.browser(1280, 900).await;
    sign_in(app, &v, "watcher@example.com", PASSWORD).await;
    v.find(Locator::Css("#org"))
        .await
        .unwrap()
        .select_by_value(org)
        .await
        .unwrap();
    click(&v, "form.org button").await;
    assert!(text(&v, "tbody").await.contains("Grafana"));
    for button in [
        "form[action^='/check/']",
        "a[href^='/disconnect/']",
        "a[href^='/connect/']",
    ] {
        assert!(!has(&v, button).await, "a viewer sees {button}");
    }
    v.close().await.unwrap();
}

/// A port for Tokenkeeper's public URL, bound before the app exists (the OAuth client's redirect URI is
/// registered first), then forwarded to the app.
async fn front_door() -> (tokio::net::TcpListener, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    (listener, url)
}

fn forward(front: tokio::net::TcpListener, app: &TestApp) {
    let to = app.url.trim_start_matches("http://").to_string();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = front.accept().await {
            let to = to.clone();
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(&to).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
}

async fn an_oauth_provider_connects_through_its_consent_page(db: Db) {
    let Some(driver) = Chromedriver::start().await else {
        return;
    };
    let Some(server) = OAuthServer::shared().await else {
        return;
    };
    let (front, public) = front_door().await;
    let client = server.new_code_client(&format!("{public}/api/connect/callback")).await;
    // The platform's pages only: the console returns to its own page all the same.
    let cfg = TestConfig::default()
        .with("TOKENKEEPER_PUBLIC_URL", &public)
        .with("TOKENKEEPER_CONNECT_RETURN_URLS", "https://app.example.com/")
        .with(
            "TOKENKEEPER_GCP_AUTHORIZE_URL",
            &format!("{}/o/authorize/", server.base_url),
        )
        .with("TOKENKEEPER_GCP_TOKEN_URL", &server.token_url)
        .with("TOKENKEEPER_GCP_CLIENT_ID", &client.client_id)
        .with("TOKENKEEPER_GCP_CLIENT_SECRET", &client.client_secret);
    let app = spawn_app(db, cfg).await.unwrap();
    forward(front, &app);
    let (_, token) = app.user("oauth@example.com").await;
    let b = driver.browser(1280, 900).await;
    sign_in_at(&public, &b, "oauth@example.com", PASSWORD).await;

    click(&b, "a[href='/connect/gcp']").await;
    click(&b, "form.oauth button").await;
    // The authorization server's own login page, then its consent page.
    assert!(path(&b).await.starts_with("/test/login?next="), "{}", path(&b).await);
    fill(&b, "#id_username", &client.username).await;
    fill(&b, "#id_password", &client.password).await;
    click(&b, "#login").await;
    assert!(path(&b).await.starts_with("/o/authorize/"), "{}", path(&b).await);
    click(&b, "input[name=allow]").await;
    assert_eq!(path(&b).await, "/?connected=gcp&name=default");
    assert_eq!(text(&b, "[role=status]").await, "Google Cloud is connected.");
    assert!(text(&b, "tbody").await.contains("Google Cloud"));
    let data = app.credentials("gcp", &token).await["tokenData"].clone();
    assert!(data["refresh_token"].as_str().is_some_and(|s| !s.is_empty()), "{data}");

    // Refused on the consent page: said so, nothing stored.
    click(&b, "a[href='/connect/gcp']").await;
    fill(&b, "#oauth-name", "second").await;
    click(&b, "form.oauth button").await;
    click(&b, "input[value=Cancel]").await;
    assert_eq!(path(&b).await, "/?error=access_denied&provider=gcp");
    let alert = text(&b, "[role=alert]").await;
    assert_eq!(
        alert,
        "Connecting Google Cloud did not work (access_denied): nothing was stored."
    );
    let r = app.get_auth("/api/tokens", &token).await.json::<Value>().await.unwrap();
    assert_eq!(r["connections"].as_array().unwrap().len(), 1);
    b.close().await.unwrap();
}

crate::on_both_backends!(
    a_check_passes_fails_and_moves_the_status,
    an_oauth_provider_connects_through_its_consent_page,
);
