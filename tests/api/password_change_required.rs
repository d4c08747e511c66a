//! `must_change_password` (an account adopted from Aurora with the flag; here set in SQL the way the
//! import writes it): the old password logs in, but the user's own sessions get 403
//! `password_change_required` from everything except change-password, me and logout, the console sends
//! them to its password page, until they change it; the change clears the flag at once (the identity cache
//! included), on this instance and on a second one. Internal callers are not held to it.

use serde_json::{Value, json};

use crate::support::app::{Db, TestConfig, spawn_app, spawn_sibling, sql};
use crate::support::console::Browser;

const OLD: &str = "handed-out-password";
const NEW: &str = "a-password-of-my-own";
const INTERNAL: &str = "internal-test-secret";

async fn status_and_body(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// 403 with the code.
async fn refused(r: reqwest::Response, what: &str) {
    let (status, body) = status_and_body(r).await;
    assert_eq!(status, 403, "{what}: {body}");
    assert_eq!(body["code"], "password_change_required", "{what}: {body}");
    assert!(
        body["error"].as_str().unwrap().contains("change your password"),
        "{body}"
    );
}

async fn a_flagged_account_must_change_its_password_first(db: Db) {
    let cfg = TestConfig::default().with("TOKENKEEPER_INTERNAL_SECRET", INTERNAL);
    let app = spawn_app(db, cfg).await.unwrap();
    let other = spawn_sibling(&app, TestConfig::default()).await;
    let id = app.register("flagged@example.com", OLD).await;
    sql(
        &app,
        &format!("UPDATE users SET must_change_password = TRUE WHERE id = '{id}'"),
    )
    .await;

    // The old password logs in; the session may read its own account and nothing else.
    let token = app.login("flagged@example.com", OLD).await;
    let spare = app.login("flagged@example.com", OLD).await;
    let me: Value = app.get_auth("/api/auth/me", &token).await.json().await.unwrap();
    assert_eq!(me["mustChangePassword"], true, "{me}");
    refused(app.get_auth("/api/orgs", &token).await, "orgs").await;
    refused(app.get_auth("/api/tokens", &token).await, "list").await;
    refused(other.get_auth("/api/orgs", &token).await, "another instance").await;
    let put = app
        .put_auth(
            "/api/tokens/datadog",
            &token,
            json!({"api_key": "0123456789abcdef0123456789abcdef",
                   "app_key": "0123456789abcdef0123456789abcdef01234567"}),
        )
        .await;
    refused(put, "store").await;
    let internal = app
        .client
        .get(app.at("/api/tokens"))
        .header("X-User-ID", &id)
        .header("X-Internal-Secret", INTERNAL)
        .send()
        .await
        .unwrap();
    let (status, listed) = status_and_body(internal).await;
    assert_eq!(status, 200, "the platform's backend is not held to it: {listed}");
    assert_eq!(listed["connections"], json!([]), "nothing was stored: {listed}");

    // The console: every page leads to the password page, which works.
    let mut browser = Browser::new(&app);
    browser.sign_in("flagged@example.com", OLD).await;
    let home = browser.get("/").await;
    assert_eq!(home.status, 303);
    assert_eq!(home.location.as_deref(), Some("/password?required=1"));
    let page = browser.get("/password?required=1").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("choose your own"), "{}", page.body);
    let audit = browser.get("/audit").await;
    assert_eq!(audit.location.as_deref(), Some("/password?required=1"));
    let out = browser.submit("/password", "/sign-out", &[]).await;
    assert_eq!((out.status.as_u16(), out.location.as_deref()), (303, Some("/sign-in")));
    assert_eq!(browser.get("/password").await.status, 303, "signed out");

    // Logging out one session is allowed; a wrong current password changes nothing.
    let r = app.post_auth("/api/auth/logout", &spare, json!({})).await;
    assert_eq!(r.status(), 204);
    let wrong = json!({"currentPassword": "not-the-password", "newPassword": NEW});
    let r = app.post_auth("/api/auth/change-password", &token, wrong).await;
    assert_eq!(r.status(), 401);
    refused(app.get_auth("/api/orgs", &token).await, "after a failed change").await;

    // The change clears the flag: the same session may do anything, here and on the other instance.
    let change = json!({"currentPassword": OLD, "newPassword": NEW});
    let r = app.post_auth("/api/auth/change-password", &token, change).await;
    assert_eq!(r.status(), 200);
    let (status, orgs) = status_and_body(app.get_auth("/api/orgs", &token).await).await;
    assert_eq!(status, 200, "{orgs}");
    crate::support::wait::until("the other instance sees the change", || async {
        other.get_auth("/api/orgs", &token).await.status() == 200
    })
    .await;
    let me: Value = app.get_auth("/api/auth/me", &token).await.json().await.unwrap();
    assert_eq!(me["mustChangePassword"], false, "{me}");
    let fresh = app.login("flagged@example.com", NEW).await;
    assert_eq!(app.get_auth("/api/tokens", &fresh).await.status(), 200);
}

crate::on_both_backends!(a_flagged_account_must_change_its_password_first);
