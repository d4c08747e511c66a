//! Organizations (`docs/ORGS.md`): the routes, the permission table in every identity mode, `X-Org-ID`, bad
//! input, and the last admin under concurrent changes.

use reqwest::{RequestBuilder, Response};
use serde_json::{Value, json};
use tokenkeeper::db::User;

use crate::support::app::{Db, TestApp, TestConfig, error_of, spawn_app};

const INTERNAL: &str = "s3cret-internal";

fn grafana(key: &str) -> Value {
    json!({"api_key": format!("glsa_{key}_0123456789"), "base_url": "https://g.example.com"})
}

fn authjs_fixtures() -> Value {
    serde_json::from_str(include_str!("../fixtures/authjs/fixtures.json")).unwrap()
}

/// An app that accepts every identity mode: sessions, Auth.js (the fixtures' secrets, its clock at the
/// fixtures' time, so that their tokens are valid) and the internal header.
async fn app_for_every_mode(db: Db) -> (TestApp, Value) {
    let f = authjs_fixtures();
    let secrets: Vec<&str> = f["accepted_secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    let cfg = TestConfig::default()
        .with("AUTH_SECRET", &secrets.join(","))
        .with("TOKENKEEPER_INTERNAL_SECRET", INTERNAL);
    let app = spawn_app(db, cfg).await.unwrap();
    app.clock.set_ms(f["now"].as_i64().unwrap() * 1000);
    (app, f)
}

/// How a request authenticates.
#[derive(Debug, Clone)]
enum Mode {
    Session(String),
    AuthJsBearer(String),
    AuthJsCookie(String),
    Internal(String),
}

impl Mode {
    fn apply(&self, req: RequestBuilder) -> RequestBuilder {
        match self {
            Self::Session(t) | Self::AuthJsBearer(t) => req.bearer_auth(t),
            Self::AuthJsCookie(t) => req.header("Cookie", format!("authjs.session-token={t}")),
            Self::Internal(user) => req.header("X-User-ID", user).header("X-Internal-Secret", INTERNAL),
        }
    }
}

async fn send(
    app: &TestApp,
    mode: &Mode,
    method: &str,
    path: &str,
    org: Option<&str>,
    body: Option<Value>,
) -> Response {
    let mut req = app.client.request(method.parse().unwrap(), app.at(path));
    req = mode.apply(req);
    if let Some(org) = org {
        req = req.header("X-Org-ID", org);
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    req.send().await.unwrap()
}

async fn create_org(app: &TestApp, token: &str, name: &str) -> String {
    let r = app.post_auth("/api/orgs", token, json!({"name": name})).await;
    assert_eq!(r.status(), 201);
    let org: Value = r.json().await.unwrap();
    assert_eq!(
        (org["name"].as_str(), org["role"].as_str(), org["personal"].as_bool()),
        (Some(name), Some("admin"), Some(false))
    );
    org["id"].as_str().unwrap().to_string()
}

async fn add_member(app: &TestApp, admin: &str, org: &str, email: &str, role: &str) -> Response {
    app.post_auth(
        &format!("/api/orgs/{org}/members"),
        admin,
        json!({"email": email, "role": role}),
    )
    .await
}

async fn set_role(app: &TestApp, admin: &str, org: &str, user: &str, role: &str) -> Response {
    app.client
        .patch(app.at(&format!("/api/orgs/{org}/members/{user}")))
        .bearer_auth(admin)
        .json(&json!({"role": role}))
        .send()
        .await
        .unwrap()
}

/// A class of routes in the permission table: (name, method, path, body, lowest role allowed, status when
/// allowed).
type RouteClass<'a> = (&'a str, &'a str, &'a str, Option<Value>, &'a str, u16);

/// The permission table: for each route class, the status a member gets by role, in each identity mode.
/// `allowed` is the status when permitted (`DELETE` of a provider never stored: 404 past the check).
async fn permission_table(db: Db) {
    let (app, f) = app_for_every_mode(db).await;
    let (_, admin) = app.user("admin@example.com").await;
    let (member_id, member_token) = app.user("member@example.com").await;
    // The Auth.js member: a local account whose id is the fixture token's `sub`.
    let authjs_token = f["tokens"]["valid"]["token"].as_str().unwrap().to_string();
    let authjs_id = f["tokens"]["valid"]["expected"]["user_id"]
        .as_str()
        .unwrap()
        .to_string();
    let authjs_user = User {
        id: authjs_id.clone(),
        email: "authjs@example.com".into(),
        name: None,
        password_hash: None,
        password_changed_at: None,
        password_generation: 0,
        created_at: 0,
        must_change_password: false,
    };
    app.services.store.create_user(&authjs_user).await.unwrap();

    let org = create_org(&app, &admin, "Platform team").await;
    let r = send(
        &app,
        &Mode::Session(admin.clone()),
        "PUT",
        "/api/tokens/grafana",
        Some(&org),
        Some(grafana("team")),
    )
    .await;
    assert_eq!(r.status(), 200);
    for email in ["member@example.com", "authjs@example.com"] {
        assert_eq!(add_member(&app, &admin, &org, email, "viewer").await.status(), 201);
    }

    let modes = [
        (Mode::Session(member_token.clone()), member_id.clone()),
        (Mode::Internal(member_id.clone()), member_id.clone()),
        (Mode::AuthJsBearer(authjs_token.clone()), authjs_id.clone()),
        (Mode::AuthJsCookie(authjs_token.clone()), authjs_id.clone()),
    ];
    // (route class, method, path, body, lowest role allowed, status when allowed)
    let routes: [RouteClass; 8] = [
        ("list", "GET", "/api/tokens", None, "viewer", 200),
        ("metadata", "GET", "/api/tokens/grafana", None, "viewer", 200),
        ("value", "GET", "/api/tokens/grafana/credentials", None, "editor", 200),
        (
            "store",
            "PUT",
            "/api/tokens/grafana",
            Some(grafana("member")),
            "editor",
            200,
        ),
        ("refresh", "POST", "/api/tokens/grafana/refresh", None, "editor", 200),
        ("delete", "DELETE", "/api/tokens/slack", None, "editor", 404),
        (
            "members",
            "GET",
            &format!("/api/orgs/{org}/members"),
            None,
            "admin",
            200,
        ),
        ("org audit", "GET", "/api/audit?scope=org", None, "admin", 200),
    ];
    let rank = |r: &str| ["viewer", "editor", "admin"].iter().position(|x| *x == r).unwrap();
    let mut cells = 0;
    for (mode, user) in &modes {
        for role in ["viewer", "editor", "admin"] {
            assert_eq!(
                set_role(&app, &admin, &org, user, role).await.status(),
                200,
                "{mode:?} {role}"
            );
            for (class, method, path, body, lowest, allowed) in &routes {
                let permitted = match (class, mode) {
                    // A browser cookie never reads values; an internal caller reads them for any member.
                    (&"value", Mode::AuthJsCookie(_)) => false,
                    (&"value", Mode::Internal(_)) => true,
                    _ => rank(role) >= rank(lowest),
                };
                let r = send(&app, mode, method, path, Some(&org), body.clone()).await;
                let want = if permitted { *allowed } else { 403 };
                let status = r.status().as_u16();
                let text = r.text().await.unwrap();
                assert_eq!(status, want, "{class} as {role} by {mode:?}: {text}");
                if want == 403 {
                    assert!(serde_json::from_str::<Value>(&text).unwrap()["error"].is_string());
                }
                cells += 1;
            }
        }
        // Back to viewer, so that the next mode's user is the one changing.
        assert_eq!(set_role(&app, &admin, &org, user, "viewer").await.status(), 200);
    }
    assert_eq!(cells, 4 * 3 * 8);
}

/// `X-Org-ID`: absent is the personal org; an org the caller is not in is 404 (as if it did not exist);
/// malformed is 400; the connections of one org are not another's.
async fn org_header_picks_the_org(db: Db) {
    let app = spawn_app(db, TestConfig::default()).await.unwrap();
    let (alice_id, alice) = app.user("alice@example.com").await;
    let (_, bob) = app.user("bob@example.com").await;
    let mode = Mode::Session(alice.clone());
    let org = create_org(&app, &alice, "Shared").await;
    assert_eq!(
        send(
            &app,
            &mode,
            "PUT",
            "/api/tokens/grafana",
            None,
            Some(grafana("personal"))
        )
        .await
        .status(),
        200
    );
    assert_eq!(
        send(
            &app,
            &mode,
            "PUT",
            "/api/tokens/grafana",
            Some(&org),
            Some(grafana("shared"))
        )
        .await
        .status(),
        200
    );

    let key_in = |org: Option<String>| {
        let (app, mode) = (&app, &mode);
        async move {
            let r = send(
                app,
                mode,
                "GET",
                "/api/tokens/grafana/credentials",
                org.as_deref(),
                None,
            )
            .await;
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.unwrap()["tokenData"]["api_key"]
                .as_str()
                .unwrap()
                .to_string()
        }
    };
    assert_eq!(key_in(None).await, "glsa_personal_0123456789");
    assert_eq!(key_in(Some(alice_id.clone())).await, "glsa_personal_0123456789");
    assert_eq!(key_in(Some(org.clone())).await, "glsa_shared_0123456789");
    // The default connection of the personal org keeps Part 1's secret name; the shared org's its own.
    assert_eq!(
        app.row(&alice_id, "grafana").await.secret_ref,
        format!("local:kv/data/aurora/users/aurora-dev-{alice_id}-grafana-token")
    );
    assert_eq!(
        app.row(&org, "grafana").await.secret_ref,
        format!("local:kv/data/aurora/users/aurora-dev-{org}-grafana-token")
    );

    // Bob is in neither: 404 for the org (existing or not), and his own list is empty.
    let bob_mode = Mode::Session(bob.clone());
    for other in [org.as_str(), alice_id.as_str(), "org-00000000000000000000000000000000"] {
        let r = send(&app, &bob_mode, "GET", "/api/tokens", Some(other), None).await;
        assert_eq!(r.status(), 404);
        assert_eq!(error_of(r).await, "Organization not found");
    }
    let r = send(&app, &bob_mode, "GET", "/api/tokens", None, None).await;
    assert_eq!(r.json::<Value>().await.unwrap()["connections"], json!([]));
    // Malformed: 400, nothing stored.
    let long = "x".repeat(256);
    for bad in ["", long.as_str()] {
        let r = send(&app, &mode, "PUT", "/api/tokens/datadog", Some(bad), Some(json!({}))).await;
        assert_eq!(r.status(), 400, "{bad:?}");
        assert!(error_of(r).await.contains("X-Org-ID"));
    }
    // Deleting in the shared org leaves the personal one.
    assert_eq!(
        send(&app, &mode, "DELETE", "/api/tokens/grafana", Some(&org), None)
            .await
            .status(),
        200
    );
    assert_eq!(key_in(None).await, "glsa_personal_0123456789");
}

/// The member routes' answers, and bad input: each a 4xx with an error, nothing changed.
async fn members_and_bad_input(db: Db) {
    let app = spawn_app(db, TestConfig::default()).await.unwrap();
    let (admin_id, admin) = app.user("admin@example.com").await;
    let (member_id, member) = app.user("member@example.com").await;
    let org = create_org(&app, &admin, "Team").await;

    let r = app.get_auth("/api/orgs", &admin).await;
    let orgs: Value = r.json().await.unwrap();
    assert_eq!(orgs["orgs"][0]["id"], admin_id.as_str());
    assert_eq!(orgs["orgs"][0]["personal"], true);
    assert_eq!(orgs["orgs"][0]["role"], "admin");
    assert_eq!(orgs["orgs"][1]["id"], org.as_str());

    let r = add_member(&app, &admin, &org, "member@example.com", "editor").await;
    assert_eq!(r.status(), 201);
    let added: Value = r.json().await.unwrap();
    assert_eq!(
        (added["userId"].as_str(), added["role"].as_str()),
        (Some(member_id.as_str()), Some("editor"))
    );

    let members = |who: String| {
        let (app, org) = (&app, &org);
        async move { app.get_auth(&format!("/api/orgs/{org}/members"), &who).await }
    };
    let before: Value = members(admin.clone()).await.json().await.unwrap();
    let mut listed: Vec<(String, String)> = before["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["email"].as_str().unwrap().to_string(),
                m["role"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    listed.sort();
    assert_eq!(
        listed,
        [
            ("admin@example.com".into(), "admin".into()),
            ("member@example.com".into(), "editor".into())
        ]
    );

    // Bad input, each refused with a clear error and nothing changed.
    let cases: Vec<(Response, u16, &str)> = vec![
        (
            add_member(&app, &admin, &org, "member@example.com", "owner").await,
            400,
            "role must be one of viewer, editor, admin",
        ),
        (
            add_member(&app, &admin, &org, "nobody@example.com", "viewer").await,
            404,
            "User not found",
        ),
        (
            add_member(&app, &admin, &org, "member@example.com", "viewer").await,
            409,
            "The user is already a member of the organization",
        ),
        (
            add_member(
                &app,
                &admin,
                "org-00000000000000000000000000000000",
                "member@example.com",
                "viewer",
            )
            .await,
            404,
            "Organization not found",
        ),
        (
            add_member(&app, &member, &org, "admin@example.com", "viewer").await,
            403,
            "This needs the admin role in the organization",
        ),
        (
            set_role(&app, &admin, &org, &member_id, "root").await,
            400,
            "role must be one of viewer, editor, admin",
        ),
        (
            set_role(&app, &admin, &org, "no-such-user", "viewer").await,
            404,
            "The user is not a member of the organization",
        ),
        (
            set_role(&app, &admin, &org, &admin_id, "editor").await,
            409,
            "The organization's last admin cannot be removed or demoted",
        ),
        (
            app.delete_auth(&format!("/api/orgs/{org}/members/{admin_id}"), &admin)
                .await,
            409,
            "The organization's last admin cannot be removed or demoted",
        ),
        (
            app.post_auth("/api/orgs", &admin, json!({"name": "  "})).await,
            400,
            "name must be 1 to 100 characters, without control characters",
        ),
        (
            app.post_auth("/api/orgs", &admin, json!({"name": "x".repeat(101)}))
                .await,
            400,
            "name must be 1 to 100 characters, without control characters",
        ),
    ];
    for (r, status, error) in cases {
        assert_eq!(r.status(), status, "{error}");
        assert_eq!(error_of(r).await, error);
    }
    let after: Value = members(admin.clone()).await.json().await.unwrap();
    assert_eq!(after, before, "nothing changed");
    let listed: Value = app.get_auth("/api/orgs", &admin).await.json().await.unwrap();
    assert_eq!(
        listed["orgs"].as_array().unwrap().len(),
        2,
        "no org created by the bad names"
    );

    // A second admin: then the first may step down, and leave.
    assert_eq!(set_role(&app, &admin, &org, &member_id, "admin").await.status(), 200);
    let r = set_role(&app, &admin, &org, &admin_id, "viewer").await;
    assert_eq!(r.json::<Value>().await.unwrap()["role"], "viewer");
    assert_eq!(members(admin.clone()).await.status(), 403);
    assert_eq!(
        app.delete_auth(&format!("/api/orgs/{org}/members/{admin_id}"), &member)
            .await
            .status(),
        204
    );
    // Gone: the org is not found for them any more.
    assert_eq!(members(admin.clone()).await.status(), 404);
    let r = app
        .client
        .get(app.at("/api/tokens"))
        .bearer_auth(&admin)
        .header("X-Org-ID", &org)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

/// Two admins demoting each other at the same moment: one wins, the org keeps an admin. Repeated, since
/// a lost race shows only sometimes.
async fn admins_demoting_each_other_leave_one_admin(db: Db) {
    let app = spawn_app(db, TestConfig::default()).await.unwrap();
    let (a_id, a) = app.user("a@example.com").await;
    let (b_id, b) = app.user("b@example.com").await;
    for round in 0..10 {
        let org = create_org(&app, &a, &format!("Race {round}")).await;
        assert_eq!(add_member(&app, &a, &org, "b@example.com", "admin").await.status(), 201);
        let (ra, rb) = tokio::join!(
            set_role(&app, &a, &org, &b_id, "viewer"),
            set_role(&app, &b, &org, &a_id, "viewer")
        );
        let statuses = [ra.status().as_u16(), rb.status().as_u16()];
        let admins = admin_count(&app, &org).await;
        assert_eq!(admins, 1, "round {round}: statuses {statuses:?}");
        // The loser was refused: 409 (it was the last admin by then) or 403 (it was no admin any more).
        assert!(statuses.contains(&200), "{statuses:?}");
        assert!(statuses.iter().any(|s| *s == 409 || *s == 403), "{statuses:?}");
    }
}

async fn admin_count(app: &TestApp, org: &str) -> usize {
    let members = app.services.store.members(org).await.unwrap();
    members.iter().filter(|m| m.role == "admin").count()
}

/// `GET /api/audit?scope=org`: the org's events, every member's, with who acted, newest first, paged; not
/// the events of another org; admins only.
async fn org_audit_trail(db: Db) {
    let app = spawn_app(db, TestConfig::default()).await.unwrap();
    let (admin_id, admin) = app.user("admin@example.com").await;
    let (member_id, member) = app.user("member@example.com").await;
    let org = create_org(&app, &admin, "Team").await;
    assert_eq!(
        add_member(&app, &admin, &org, "member@example.com", "editor")
            .await
            .status(),
        201
    );
    let (a, m) = (Mode::Session(admin.clone()), Mode::Session(member.clone()));
    assert_eq!(
        send(&app, &a, "PUT", "/api/tokens/grafana", Some(&org), Some(grafana("a")))
            .await
            .status(),
        200
    );
    assert_eq!(
        send(&app, &m, "PUT", "/api/tokens/grafana", Some(&org), Some(grafana("m")))
            .await
            .status(),
        200
    );
    assert_eq!(
        send(&app, &m, "DELETE", "/api/tokens/grafana", Some(&org), None)
            .await
            .status(),
        200
    );
    // In the member's personal org: not the team's business.
    assert_eq!(
        send(&app, &m, "PUT", "/api/tokens/grafana", None, Some(grafana("own")))
            .await
            .status(),
        200
    );

    let page = |mode: Mode, query: String| {
        let app = &app;
        let org = org.clone();
        async move {
            send(
                app,
                &mode,
                "GET",
                &format!("/api/audit?scope=org{query}"),
                Some(&org),
                None,
            )
            .await
        }
    };
    let r = page(a.clone(), String::new()).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let seen: Vec<(String, String)> = body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_string(),
                e["userId"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("credential_delete".to_string(), member_id.clone()),
            ("credential_store".to_string(), member_id.clone()),
            ("credential_store".to_string(), admin_id.clone()),
        ]
    );
    // Paged: one at a time, newest first.
    let first: Value = page(a.clone(), "&limit=1".into()).await.json().await.unwrap();
    assert_eq!(first["events"][0]["kind"], "credential_delete");
    let before = first["nextBefore"].as_i64().unwrap();
    let second: Value = page(a.clone(), format!("&limit=1&before={before}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (
            second["events"][0]["kind"].as_str(),
            second["events"][0]["userId"].as_str()
        ),
        (Some("credential_store"), Some(member_id.as_str()))
    );
    // An editor may not; an unknown scope is 400; without scope the caller's own events, without userId.
    assert_eq!(page(m.clone(), String::new()).await.status(), 403);
    assert_eq!(app.get_auth("/api/audit?scope=everyone", &admin).await.status(), 400);
    let own: Value = app.get_auth("/api/audit", &member).await.json().await.unwrap();
    assert!(
        own["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e.get("userId").is_none())
    );
    assert_eq!(
        own["events"][0]["kind"], "credential_store",
        "the member's own last event: in their personal org"
    );
}

/// Two instances on one database: a member demoted (or removed) on one loses access on the other within a
/// second, though the other holds the member's role in memory (PostgreSQL: the triggers' announcements;
/// SQLite: the identity change counter).
async fn membership_changes_reach_every_instance(db: Db) {
    let app = spawn_app(db, TestConfig::default()).await.unwrap();
    let other = crate::support::app::spawn_sibling(&app, TestConfig::default()).await;
    let (_, admin) = app.user("admin@example.com").await;
    let (member_id, member) = app.user("member@example.com").await;
    let org = create_org(&app, &admin, "Team").await;
    assert_eq!(
        add_member(&app, &admin, &org, "member@example.com", "editor")
            .await
            .status(),
        201
    );
    let mode = Mode::Session(member.clone());
    let stored = send(
        &other,
        &mode,
        "PUT",
        "/api/tokens/grafana",
        Some(&org),
        Some(grafana("team")),
    )
    .await;
    assert_eq!(stored.status(), 200);
    let read = || {
        send(
            &other,
            &mode,
            "GET",
            "/api/tokens/grafana/credentials",
            Some(&org),
            None,
        )
    };
    assert_eq!(read().await.status(), 200);
    let answers = |want: u16, what: &'static str| {
        crate::support::wait::until_within(what, crate::revocation::WITHIN, move || async move {
            read().await.status() == want
        })
    };

    assert_eq!(set_role(&app, &admin, &org, &member_id, "viewer").await.status(), 200);
    answers(403, "demoted on the first instance, refused on the second").await;
    let removed = app
        .delete_auth(&format!("/api/orgs/{org}/members/{member_id}"), &admin)
        .await;
    assert_eq!(removed.status(), 204);
    answers(404, "removed on the first instance, gone on the second").await;
}

crate::on_both_backends!(
    membership_changes_reach_every_instance,
    permission_table,
    org_header_picks_the_org,
    members_and_bad_input,
    org_audit_trail,
    admins_demoting_each_other_leave_one_admin
);
