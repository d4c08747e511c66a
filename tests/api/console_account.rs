//! The web console's account and team pages through HTTP: change password (the API's rules and messages,
//! other sessions signed out), members and roles, the paged audit trail; its headers; turning it off.

use serde_json::{Value, json};

use crate::support::app::{Db, TestApp, TestConfig, spawn_app};
use crate::support::console::Browser;

const PASSWORD: &str = "correct-horse-battery";

async fn signed_in(app: &TestApp, email: &str) -> Browser {
    let mut b = Browser::new(app);
    b.sign_in(email, PASSWORD).await;
    b
}

async fn change(b: &mut Browser, current: &str, new: &str, again: &str) -> crate::support::console::Page {
    let fields = [
        ("current_password", current),
        ("new_password", new),
        ("confirm_password", again),
    ];
    b.submit("/password", "/password", &fields).await
}

/// Change the password: mistakes answered with the API's messages and nothing changed; then the other
/// sessions are signed out and this one stays.
async fn changing_the_password_signs_out_elsewhere(db: Db) {
    let app = spawn_app(db, TestConfig::default()).await.unwrap();
    app.register("fay@example.com", PASSWORD).await;
    let mut here = signed_in(&app, "fay@example.com").await;
    let mut elsewhere = signed_in(&app, "fay@example.com").await;
    let new = "a-new-battery-staple";

    let fields = [
        ("current_password", PASSWORD),
        ("new_password", new),
        ("confirm_password", new),
    ];
    assert_eq!(here.post("/password", &fields).await.status, 403);
    let cases = [
        (PASSWORD, new, "a-different-one", 400, "differ"),
        (
            PASSWORD,
            "short",
            "short",
            400,
            "The new password must be at least 8 characters",
        ),
        ("not-the-password", new, new, 401, "Current password is incorrect"),
    ];
    for (current, new, again, status, message) in cases {
        let page = change(&mut here, current, new, again).await;
        assert_eq!(page.status, status, "{message}");
        assert!(page.body.contains(message), "{}", page.body);
    }
    assert_eq!(elsewhere.get("/").await.status, 200);
    app.login("fay@example.com", PASSWORD).await;

    let page = change(&mut here, PASSWORD, new, new).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Password changed successfully"));
    assert_eq!(here.get("/").await.status, 200);
    let gone = elsewhere.get("/").await;
    assert_eq!(gone.location.as_deref(), Some("/sign-in?next=%2F&expired=1"));
    app.login("fay@example.com", new).await;
}

/// An admin creates an org, adds a member, changes their role and removes them; the last admin stays.
async fn admins_manage_members(db: Db) {
    let app = spawn_app(db, TestConfig::default()).await.unwrap();
    let gus = app.register("gus@example.com", PASSWORD).await;
    let (hal, _) = app.user("hal@example.com").await;
    let mut b = signed_in(&app, "gus@example.com").await;

    let page = b.submit("/members", "/orgs", &[("name", "Ops")]).await;
    assert_eq!(page.location.as_deref(), Some("/members"));
    let page = b
        .submit(
            "/members",
            "/members",
            &[("email", "hal@example.com"), ("role", "editor")],
        )
        .await;
    assert_eq!(page.location.as_deref(), Some("/members"));
    let members = b.get("/members").await;
    assert!(members.body.contains("Ops (admin)") && members.body.contains("hal@example.com"));

    let unknown = b
        .submit(
            "/members",
            "/members",
            &[("email", "nobody@example.com"), ("role", "viewer")],
        )
        .await;
    assert_eq!(unknown.status, 404);
    assert!(unknown.body.contains("User not found"));
    let bad = b
        .submit("/members", &format!("/members/{hal}/role"), &[("role", "owner")])
        .await;
    assert_eq!(bad.status, 400);

    let page = b
        .submit("/members", &format!("/members/{hal}/role"), &[("role", "viewer")])
        .await;
    assert_eq!(page.location.as_deref(), Some("/members"));
    let hal_token = app.login("hal@example.com", PASSWORD).await;
    let orgs: Value = app.get_auth("/api/orgs", &hal_token).await.json().await.unwrap();
    let ops = orgs["orgs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "Ops")
        .unwrap()
        .clone();
    assert_eq!(ops["role"], "viewer");

    let last = b.submit("/members", &format!("/members/{gus}/remove"), &[]).await;
    assert_eq!(last.status, 409);
    assert!(last.body.contains("last admin"));
    assert_eq!(b.post(&format!("/members/{hal}/remove"), &[]).await.status, 403);
    let page = b.submit("/members", &format!("/members/{hal}/remove"), &[]).await;
    assert_eq!(page.location.as_deref(), Some("/members"));
    assert!(!b.get("/members").await.body.contains("hal@example.com"));
}

/// The audit trail comes a page of 25 at a time, newest first, with a link to the older ones.
async fn the_audit_trail_is_paged(db: Db) {
    let app = spawn_app(db, TestConfig::default()).await.unwrap();
    let (_, token) = app.user("ida@example.com").await;
    for i in 0..30 {
        let body = json!({"api_key": format!("glsa_k{i:02}_0123456789abcdef"), "base_url": "https://g.example.com"});
        assert_eq!(app.put_auth("/api/tokens/grafana", &token, body).await.status(), 200);
    }
    let mut b = signed_in(&app, "ida@example.com").await;
    let first = b.get("/audit").await;
    let rows = |body: &str| body.matches("<tr><td>").count();
    assert_eq!(rows(&first.body), 25, "{}", first.body);
    assert_eq!(first.body.matches("<td>credential_store</td>").count(), 24);
    let at = first.body.find("/audit?before=").unwrap();
    let older = first.body[at..].split('"').next().unwrap().to_string();
    let second = b.get(&older).await;
    // Register, the API's login, 30 stores, the console's sign-in: 33 events.
    assert_eq!(rows(&second.body), 8);
    assert!(second.body.contains("<td>register</td>"));
    assert!(!second.body.contains("Older events"));
    assert_eq!(b.get("/audit?before=x").await.status, 400);
}

/// Console pages: a strict policy (no script from anywhere), no framing, never cached; the API keeps its
/// own headers.
async fn pages_have_a_strict_policy(db: Db) {
    let app = spawn_app(db, TestConfig::default()).await.unwrap();
    for path in ["/sign-in", "/assets/console.css"] {
        let r = app.client.get(app.at(path)).send().await.unwrap();
        let csp = r.headers()["content-security-policy"].to_str().unwrap();
        assert!(
            csp.starts_with("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
            "{csp}"
        );
        assert!(!csp.contains("unsafe-inline") && !csp.contains("script-src"));
        assert_eq!(r.headers()["x-frame-options"], "DENY");
    }
    let r = app.client.get(app.at("/sign-in")).send().await.unwrap();
    assert_eq!(r.headers()["cache-control"], "no-store");
    let body = r.text().await.unwrap();
    assert!(
        !body.contains("<script")
            && !body.contains("style=")
            && !body.contains("http://")
            && !body.contains("https://")
    );
    let r = app.client.get(app.at("/healthz")).send().await.unwrap();
    assert_eq!(r.headers()["content-security-policy"], "frame-ancestors 'none'");
}

/// `TOKENKEEPER_CONSOLE=false`: no console; the API stays.
async fn the_console_can_be_turned_off(db: Db) {
    let app = spawn_app(db, TestConfig::default().with("TOKENKEEPER_CONSOLE", "false"))
        .await
        .unwrap();
    for path in ["/", "/sign-in", "/assets/console.css"] {
        assert_eq!(
            app.client.get(app.at(path)).send().await.unwrap().status(),
            404,
            "{path}"
        );
    }
    assert_eq!(app.client.get(app.at("/healthz")).send().await.unwrap().status(), 200);
}

crate::on_both_backends!(
    changing_the_password_signs_out_elsewhere,
    admins_manage_members,
    the_audit_trail_is_paged,
    pages_have_a_strict_policy,
    the_console_can_be_turned_off,
);
