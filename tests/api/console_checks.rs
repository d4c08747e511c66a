//! The console's checks and connect flows (`docs/CONSOLE.md`): a key provider's form showing the check's
//! result, "Check now" moving the status (editors only), and an OAuth provider's "Connect" button running
//! the connect flow against a real authorization server (django-oauth-toolkit) back to the console.

use serde_json::Value;

use super::connect::{PUBLIC_URL, callback, gcp_config};
use crate::support::app::{Db, TestApp, TestConfig, spawn_app};
use crate::support::browser::{Browser as OAuthBrowser, location, query_param};
use crate::support::console::Browser;
use crate::support::oauth_server::OAuthServer;
use crate::support::provider_api::{Mode, ProviderApi};

const PASSWORD: &str = "correct-horse-battery";
const KEY: &str = "glsa_exampleExampleExample_0123abcd";

async fn signed_in(app: &TestApp, email: &str) -> (Browser, String) {
    app.register(email, PASSWORD).await;
    let mut b = Browser::new(app);
    b.sign_in(email, PASSWORD).await;
    (b, app.login(email, PASSWORD).await)
}

async fn connections(app: &TestApp, token: &str) -> Vec<Value> {
    let r = app.get_auth("/api/tokens", token).await;
    r.json::<Value>().await.unwrap()["connections"]
        .as_array()
        .unwrap()
        .clone()
}

/// The connect form says what the check found; "Check now" shows its result and moves the status; a
/// viewer has no button and is refused.
async fn the_console_checks(db: Db) {
    let api = ProviderApi::start().await;
    let app = spawn_app(db, api.config(TestConfig::default())).await.unwrap();
    let (mut b, token) = signed_in(&app, "checker@example.com").await;
    let base = api.base("grafana");
    let fields = [("api_key", KEY), ("base_url", base.as_str())];

    // Failing: the provider's answer, the non-secret input kept, the key not sent back, nothing stored.
    api.set(Mode::Reject);
    let refused = b.submit("/connect/grafana", "/connect/grafana", &fields).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(
        refused
            .body
            .contains("Credential rejected by grafana (HTTP 401): nothing was stored."),
        "{}",
        refused.body
    );
    assert!(refused.body.contains(&format!("value=\"{base}\"")) && !refused.body.contains(KEY));
    assert!(connections(&app, &token).await.is_empty());

    // Passing: active.
    api.set(Mode::Accept);
    let done = b.submit("/connect/grafana", "/connect/grafana", &fields).await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(
        done.body
            .contains("Grafana is connected: the provider accepted it; status active."),
        "{}",
        done.body
    );
    assert_eq!(connections(&app, &token).await[0]["status"], "active");
    let list = b.get("/").await;
    assert!(list.body.contains("status active") && list.body.contains("action=\"/check/grafana?name=default\""));
    assert!(!list.body.contains("failed: "));

    // The provider starts refusing the key: "Check now" says so and the status moves.
    api.set(Mode::Reject);
    assert_eq!(
        b.post("/check/grafana?name=default", &[]).await.status,
        403,
        "no CSRF token"
    );
    let checked = b.submit("/", "/check/grafana?name=default", &[]).await;
    assert_eq!(checked.status, 200, "{}", checked.body);
    assert!(
        checked
            .body
            .contains("Grafana: the check failed (HTTP 401); status needs reauth."),
        "{}",
        checked.body
    );
    assert!(checked.body.contains("status needs_reauth") && checked.body.contains("failed: HTTP 401"));
    assert!(checked.body.contains("check_rejected: HTTP 401"), "the status's reason");
    let listed = &connections(&app, &token).await[0];
    assert_eq!(
        (listed["status"].as_str(), listed["lastCheckError"].as_str()),
        (Some("needs_reauth"), Some("HTTP 401"))
    );
    let at = listed["lastCheckedAt"].as_str().unwrap();
    assert!(b.get("/").await.body.contains(at), "the last check's time is shown");

    api.set(Mode::Accept);
    let checked = b.submit("/", "/check/grafana?name=default", &[]).await;
    assert!(
        checked
            .body
            .contains("Grafana: the check passed (HTTP 200); status active."),
        "{}",
        checked.body
    );
    assert_eq!(b.submit("/", "/check/datadog?name=default", &[]).await.status, 404);

    // A viewer of the org: no button, and the server refuses the post.
    let r = app
        .post_auth("/api/orgs", &token, serde_json::json!({"name": "Checks"}))
        .await;
    let org = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let put = app
        .client
        .put(app.at("/api/tokens/grafana"))
        .bearer_auth(&token)
        .header("X-Org-ID", &org);
    let put = put.json(&serde_json::json!({"api_key": KEY, "base_url": base}));
    assert_eq!(put.send().await.unwrap().status(), 200);
    let (mut viewer, _) = signed_in(&app, "looker@example.com").await;
    let add = serde_json::json!({"email": "looker@example.com", "role": "viewer"});
    assert_eq!(
        app.post_auth(&format!("/api/orgs/{org}/members"), &token, add)
            .await
            .status(),
        201
    );
    viewer.submit("/", "/org", &[("org", &org)]).await;
    let list = viewer.get("/").await;
    assert!(
        list.body.contains("Grafana") && !list.body.contains("Check now"),
        "{}",
        list.body
    );
    let csrf = list.csrf();
    assert_eq!(
        viewer
            .post("/check/grafana?name=default", &[("csrf", &csrf)])
            .await
            .status,
        403
    );
}

/// The OAuth button: the flow's authorization URL, consent at the real authorization server, back to the
/// console's page (not listed in TOKENKEEPER_CONNECT_RETURN_URLS) with the outcome; a refusal shown too.
async fn the_console_connects_through_oauth(db: Db) {
    let Some(server) = OAuthServer::shared().await else {
        return;
    };
    let client = server.new_code_client(&super::connect::callback_url()).await;
    let app = spawn_app(db, gcp_config(server, &client)).await.unwrap();
    let (mut b, token) = signed_in(&app, "oauth-console@example.com").await;

    let page = b.get("/connect/gcp").await;
    assert!(page.body.contains("action=\"/connect/gcp/authorize\"") && page.body.contains("Connect with Google Cloud"));
    let r = app
        .client
        .get(app.at("/connect/gcp"))
        .header("cookie", format!("tk_session={}", b.cookies["tk_session"]));
    let csp = r.send().await.unwrap().headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    let origin = url::Url::parse(&server.base_url)
        .unwrap()
        .origin()
        .ascii_serialization();
    assert!(csp.contains(&format!("form-action 'self' {origin};")), "{csp}");
    // Slack has no client id here: no button, and starting it is refused with the variable's name.
    assert!(!b.get("/connect/slack").await.body.contains("/connect/slack/authorize"));
    let no_client = b.submit("/connect/slack", "/connect/slack/authorize", &[]).await;
    assert_eq!(no_client.status, 400);
    assert!(no_client.body.contains("TOKENKEEPER_SLACK_CLIENT_ID is not set"));

    let started = b
        .submit("/connect/gcp", "/connect/gcp/authorize", &[("connection_name", "")])
        .await;
    assert_eq!(started.status, 303);
    let url = started.location.unwrap();
    assert!(url.starts_with(&format!("{}/o/authorize/", server.base_url)), "{url}");
    assert_eq!(
        query_param(&url, "client_id").as_deref(),
        Some(client.client_id.as_str())
    );
    let mut consent = OAuthBrowser::new();
    consent.login(server, &client).await;
    let back = callback(&app, &consent.consent(&url, true).await).await;
    let to = location(&back);
    assert_eq!(to, format!("{PUBLIC_URL}/?connected=gcp&name=default"));
    let shown = b.get(to.trim_start_matches(PUBLIC_URL)).await;
    assert!(shown.body.contains("Google Cloud is connected."), "{}", shown.body);
    assert_eq!(connections(&app, &token).await[0]["provider"], "gcp");

    // Refused on the consent page: the console says so, nothing more is stored.
    let started = b
        .submit(
            "/connect/gcp",
            "/connect/gcp/authorize",
            &[("connection_name", "second")],
        )
        .await;
    let back = callback(&app, &consent.consent(&started.location.unwrap(), false).await).await;
    let to = location(&back);
    assert_eq!(to, format!("{PUBLIC_URL}/?error=access_denied&provider=gcp"));
    let shown = b.get(to.trim_start_matches(PUBLIC_URL)).await;
    assert!(
        shown
            .body
            .contains("Connecting Google Cloud did not work (access_denied): nothing was stored.")
    );
    assert_eq!(connections(&app, &token).await.len(), 1);
    // Free text in the URL is never shown.
    let forged = b.get("/?error=Call%20555-0100%20now&provider=gcp").await;
    assert!(forged.body.contains("(invalid_response)") && !forged.body.contains("555-0100"));
}

crate::on_both_backends!(the_console_checks, the_console_connects_through_oauth);
