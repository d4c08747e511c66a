//! The web console through HTTP (`docs/CONSOLE.md`): its session cookie, CSRF on every form, the pages and
//! forms, a viewer's refusals, session expiry, and its headers. The browser scenarios are in
//! `tests/browser.rs`.

use serde_json::{Value, json};

use crate::support::app::{Db, Secrets, TestApp, TestConfig, spawn_app};
use crate::support::console::Browser;

const PASSWORD: &str = "correct-horse-battery";
const GRAFANA_KEY: &str = "glsa_consoleSecretValue_0123456789";

async fn signed_in(app: &TestApp, email: &str) -> Browser {
    app.register(email, PASSWORD).await;
    let mut b = Browser::new(app);
    b.sign_in(email, PASSWORD).await;
    b
}

async fn api_connections(app: &TestApp, token: &str) -> Vec<Value> {
    let r = app.get_auth("/api/tokens", token).await;
    r.json::<Value>().await.unwrap()["connections"]
        .as_array()
        .unwrap()
        .clone()
}

/// Pages need a session; the session cookie is HttpOnly, SameSite=Lax, and Secure only behind https.
async fn sign_in_sets_a_strict_cookie(db: Db) {
    let app = spawn_app(db, TestConfig::default()).await.unwrap();
    app.register("ada@example.com", PASSWORD).await;
    let mut b = Browser::new(&app);
    let page = b.get("/").await;
    assert_eq!(
        (page.status.as_u16(), page.location.as_deref()),
        (303, Some("/sign-in?next=%2F"))
    );

    // A sign-in post without the form's token: refused, no session.
    let page = b
        .post("/sign-in", &[("email", "ada@example.com"), ("password", PASSWORD)])
        .await;
    assert_eq!(page.status, 403);
    assert!(!b.cookies.contains_key("tk_session"));

    // A wrong password: 401, the e-mail kept, the password never sent back.
    let page = b
        .submit(
            "/sign-in",
            "/sign-in",
            &[("email", "ada@example.com"), ("password", "wrong-password-1")],
        )
        .await;
    assert_eq!(page.status, 401);
    assert!(page.body.contains("Invalid email or password"), "{}", page.body);
    assert!(page.body.contains("value=\"ada@example.com\"") && !page.body.contains("wrong-password-1"));

    b.sign_in("ada@example.com", PASSWORD).await;
    let session = b
        .set_cookie
        .iter()
        .find(|c| c.starts_with("tk_session=tks_"))
        .unwrap()
        .clone();
    assert!(session.contains("HttpOnly") && session.contains("SameSite=Lax") && !session.contains("Secure"));
    assert_eq!(b.get("/").await.status, 200);

    // Sign out ends the session on the server, not only in the browser.
    let token = b.cookies["tk_session"].clone();
    let page = b.submit("/", "/sign-out", &[]).await;
    assert_eq!(page.location.as_deref(), Some("/sign-in"));
    assert_eq!(app.get_auth("/api/auth/me", &token).await.status(), 401);

    let app = spawn_app(
        db,
        TestConfig::default().with("TOKENKEEPER_PUBLIC_URL", "https://keys.example.com"),
    )
    .await
    .unwrap();
    let b = signed_in(&app, "bea@example.com").await;
    assert!(
        b.set_cookie
            .iter()
            .any(|c| c.starts_with("tk_session=") && c.contains("; Secure"))
    );
}

/// The console's rate limits are the API's: failed sign-ins are counted per account and address.
async fn sign_in_is_rate_limited(db: Db) {
    let cfg = TestConfig::default().with("TOKENKEEPER_RATE_LIMIT_MAX_FAILURES", "2");
    let app = spawn_app(db, cfg).await.unwrap();
    app.register("cy@example.com", PASSWORD).await;
    let mut b = Browser::new(&app);
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let page = b
            .submit(
                "/sign-in",
                "/sign-in",
                &[("email", "cy@example.com"), ("password", "wrong-password-1")],
            )
            .await;
        statuses.push(page.status.as_u16());
    }
    assert_eq!(statuses, [401, 401, 429]);
}

/// Connect a key provider from the catalog's form, see it listed without its secret, disconnect it; each
/// post without the CSRF token is refused with nothing changed.
async fn connect_list_and_disconnect(db: Db, secrets: Secrets) {
    let Some(cfg) = TestConfig::default().secrets(secrets).await else {
        return;
    };
    let app = spawn_app(db, cfg).await.unwrap();
    let mut b = signed_in(&app, "dee@example.com").await;
    let token = app.login("dee@example.com", PASSWORD).await;

    let form = b.get("/connect/grafana").await;
    assert_eq!(form.status, 200);
    for (field, help) in [
        ("api_key", "Service-account token or API key."),
        ("base_url", "The Grafana instance"),
    ] {
        assert!(
            form.body.contains(&format!("<label for=\"f-{field}\">{field}</label>")),
            "{}",
            form.body
        );
        assert!(form.body.contains(help));
    }
    assert!(form.body.contains("name=\"api_key\" type=\"password\""));

    let fields = [("api_key", GRAFANA_KEY), ("base_url", "https://g.example.com")];
    let refused = b.post("/connect/grafana", &fields).await;
    let wrong = b
        .post(
            "/connect/grafana",
            &[fields[0], fields[1], ("csrf", "0".repeat(64).as_str())],
        )
        .await;
    assert_eq!((refused.status.as_u16(), wrong.status.as_u16()), (403, 403));
    assert!(api_connections(&app, &token).await.is_empty());

    // Bad input: the catalog's message, the non-secret field kept, the secret not sent back.
    let bad = b
        .submit(
            "/connect/grafana",
            "/connect/grafana",
            &[("api_key", GRAFANA_KEY), ("base_url", "ftp://x")],
        )
        .await;
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("base_url") && bad.body.contains("value=\"ftp://x\"") && !bad.body.contains(GRAFANA_KEY));
    assert!(api_connections(&app, &token).await.is_empty());

    let done = b.submit("/connect/grafana", "/connect/grafana", &fields).await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(api_connections(&app, &token).await.len(), 1);
    let list = b.get("/").await;
    assert!(list.body.contains("Grafana") && list.body.contains("https://g.example.com"));
    assert!(list.body.contains("status unchecked") && list.body.contains("/disconnect/grafana"));
    assert!(!list.body.contains(GRAFANA_KEY));

    let confirm = b.get("/disconnect/grafana").await;
    assert!(confirm.body.contains("Disconnect Grafana"));
    assert_eq!(b.post("/disconnect/grafana", &[]).await.status, 403);
    assert_eq!(api_connections(&app, &token).await.len(), 1);
    let gone = b.submit("/disconnect/grafana", "/disconnect/grafana", &[]).await;
    assert_eq!(gone.location.as_deref(), Some("/"));
    assert!(api_connections(&app, &token).await.is_empty());
    assert_eq!(b.get("/disconnect/grafana").await.status, 404);

    // A named connection beside the default one; a name outside the pattern is refused.
    let named = [fields[0], fields[1], ("connection_name", "staging")];
    assert_eq!(
        b.submit("/connect/grafana", "/connect/grafana", &named).await.status,
        200
    );
    let bad = [fields[0], fields[1], ("connection_name", "Not A Name")];
    assert_eq!(b.submit("/connect/grafana", "/connect/grafana", &bad).await.status, 400);
    let listed = api_connections(&app, &token).await;
    assert_eq!(
        listed.iter().map(|c| c["name"].as_str().unwrap()).collect::<Vec<_>>(),
        ["staging"]
    );
    assert!(b.get("/").await.body.contains("/disconnect/grafana?name=staging"));
    let page = "/disconnect/grafana?name=staging";
    assert!(b.get(page).await.body.contains("Disconnect Grafana (staging)"));
    assert_eq!(b.submit(page, page, &[]).await.location.as_deref(), Some("/"));
    assert!(api_connections(&app, &token).await.is_empty());
}

/// A viewer sees no button they cannot use, and the server refuses them anyway.
async fn a_viewer_sees_no_buttons_and_is_refused(db: Db) {
    let app = spawn_app(db, TestConfig::default()).await.unwrap();
    let (_, admin) = app.user("admin@example.com").await;
    let r = app.post_auth("/api/orgs", &admin, json!({"name": "Team"})).await;
    let org = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let grafana = json!({"api_key": GRAFANA_KEY, "base_url": "https://g.example.com"});
    let r = app
        .client
        .put(app.at("/api/tokens/grafana"))
        .bearer_auth(&admin)
        .header("X-Org-ID", &org)
        .json(&grafana);
    assert_eq!(r.send().await.unwrap().status(), 200);
    let mut b = signed_in(&app, "viewer@example.com").await;
    let members = format!("/api/orgs/{org}/members");
    let r = app.post_auth(
        &members,
        &admin,
        json!({"email": "viewer@example.com", "role": "viewer"}),
    );
    assert_eq!(r.await.status(), 201);

    let page = b.submit("/", "/org", &[("org", &org)]).await;
    assert_eq!(page.location.as_deref(), Some("/"));
    let list = b.get("/").await;
    assert!(
        list.body.contains("Team (viewer)") && list.body.contains("Grafana"),
        "{}",
        list.body
    );
    for button in ["/connect/", "/disconnect/", "href=\"/members\""] {
        assert!(!list.body.contains(button), "a viewer sees {button}");
    }
    let csrf = list.csrf();
    let fields = [
        ("api_key", GRAFANA_KEY),
        ("base_url", "https://v.example.com"),
        ("csrf", &csrf),
    ];
    assert_eq!(b.post("/connect/grafana", &fields).await.status, 403);
    assert_eq!(b.post("/disconnect/grafana", &[("csrf", &csrf)]).await.status, 403);
    assert_eq!(b.get("/connect/grafana").await.status, 403);
    assert_eq!(b.get("/members").await.status, 403);
    let add = [("email", "viewer@example.com"), ("role", "admin"), ("csrf", &csrf)];
    assert_eq!(b.post("/members", &add).await.status, 403);
    assert_eq!(b.get("/audit?org=true").await.status, 403);
    let r = app
        .client
        .get(app.at("/api/tokens/grafana"))
        .bearer_auth(&admin)
        .header("X-Org-ID", &org);
    let still: Value = r.send().await.unwrap().json().await.unwrap();
    assert_eq!(still["metadata"]["base_url"], "https://g.example.com");

    // An org the caller is not in: 404, and the console keeps acting where it was.
    assert_eq!(
        b.post(
            "/org",
            &[("org", "org-00000000000000000000000000000000"), ("csrf", &csrf)]
        )
        .await
        .status,
        404
    );
}

/// An expired session leads back to sign-in, which says so, and then to the page asked for.
async fn an_expired_session_goes_back_to_sign_in(db: Db) {
    let app = spawn_app(db, TestConfig::default().with("TOKENKEEPER_SESSION_TTL_SECS", "600"))
        .await
        .unwrap();
    let mut b = signed_in(&app, "eve@example.com").await;
    assert_eq!(b.get("/audit").await.status, 200);
    app.clock.advance_secs(601);
    let page = b.get("/audit").await;
    assert_eq!(page.location.as_deref(), Some("/sign-in?next=%2Faudit&expired=1"));
    // A form's POST-only action goes back to the page holding the form (a GET of the action would be 405).
    for (action, page) in [
        ("/members/someone/role", "%2Fmembers"),
        ("/check/grafana", "%2F"),
        ("/connect/gcp/authorize", "%2Fconnect%2Fgcp"),
    ] {
        let posted = b.post(action, &[("role", "admin")]).await;
        let to = format!("/sign-in?next={page}&expired=1");
        assert_eq!(posted.location.as_deref(), Some(to.as_str()), "{action}");
    }
    let form = b.get("/sign-in?next=%2Faudit&expired=1").await;
    assert!(form.body.contains("Your session has expired") && form.body.contains("value=\"/audit\""));
    let fields = [("email", "eve@example.com"), ("password", PASSWORD), ("next", "/audit")];
    let back = b.submit("/sign-in?next=%2Faudit&expired=1", "/sign-in", &fields).await;
    assert_eq!(back.location.as_deref(), Some("/audit"));
    // Only paths of the console are gone back to.
    let fields = [
        ("email", "eve@example.com"),
        ("password", PASSWORD),
        ("next", "//evil.example.com/"),
    ];
    assert_eq!(
        b.submit("/sign-in", "/sign-in", &fields).await.location.as_deref(),
        Some("/")
    );
}

crate::on_both_backends!(
    sign_in_sets_a_strict_cookie,
    sign_in_is_rate_limited,
    a_viewer_sees_no_buttons_and_is_refused,
    an_expired_session_goes_back_to_sign_in,
);
crate::on_all_stores!(connect_list_and_disconnect);
