//! Register, login, change-password, me, logout: success and every error code `docs/API.md` names.

use serde_json::{Value, json};
use tokenkeeper::clock::Clock as _;
use tokenkeeper::identity::sessions::hash_token;

use crate::support::app::{Db, TestApp, TestConfig, error_of, spawn_app};

/// Whether the `sessions` table still holds a row for `token` (read directly from the app's database).
async fn session_row_exists(app: &TestApp, token: &str) -> bool {
    use sqlx::Connection as _;
    let sql = "SELECT COUNT(*) FROM sessions WHERE token_hash = $1";
    let hash = hash_token(token);
    let n: i64 = if app.database_url.starts_with("postgres") {
        let mut c = sqlx::PgConnection::connect(&app.database_url).await.unwrap();
        sqlx::query_scalar(sql).bind(&hash).fetch_one(&mut c).await.unwrap()
    } else {
        let mut c = sqlx::SqliteConnection::connect(&app.database_url).await.unwrap();
        sqlx::query_scalar(sql).bind(&hash).fetch_one(&mut c).await.unwrap()
    };
    n > 0
}

async fn register_login_me_logout(db: Db) {
    let app = spawn_app(db, TestConfig::default()).await.unwrap();
    let r = app
        .post(
            "/api/auth/register",
            json!({"email": " Ada@Example.com ", "password": "correct-horse", "name": "Ada"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["email"], "ada@example.com");
    assert_eq!(body["name"], "Ada");
    let id = body["id"].as_str().unwrap().to_string();
    assert!(body.get("password").is_none() && body.get("passwordHash").is_none());

    let r = app
        .post(
            "/api/auth/login",
            json!({"email": "ADA@example.com", "password": "correct-horse"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let login: Value = r.json().await.unwrap();
    assert_eq!(login["id"], id.as_str());
    let token = login["token"].as_str().unwrap();
    assert!(token.starts_with("tks_"));
    assert!(login["expiresAt"].as_str().unwrap().ends_with('Z'));

    let r = app.get_auth("/api/auth/me", token).await;
    assert_eq!(r.status(), 200);
    let me: Value = r.json().await.unwrap();
    assert_eq!(me["id"], id.as_str());
    assert_eq!(me["email"], "ada@example.com");
    assert!(me["passwordChangedAt"].is_null());

    let r = app.post_auth("/api/auth/logout", token, json!({})).await;
    assert_eq!(r.status(), 204);
    let r = app.get_auth("/api/auth/me", token).await;
    assert_eq!(r.status(), 401);
    assert_eq!(error_of(r).await, "Authentication required");
}

async fn register_errors(db: Db) {
    let app = spawn_app(db, TestConfig::default()).await.unwrap();
    app.register("taken@example.com", "correct-horse").await;
    let cases = [
        (json!({"email": "taken@example.com", "password": "another-pass"}), 409),
        (json!({"email": "TAKEN@example.com", "password": "another-pass"}), 409),
        (json!({"password": "correct-horse"}), 400),
        (json!({"email": "a@example.com"}), 400),
        (json!({"email": "not-an-email", "password": "correct-horse"}), 400),
        (json!({"email": "b@example.com", "password": "short"}), 400),
        (json!({"email": "b@example.com", "password": 12345678}), 400),
        (json!({"email": "c@example.com", "password": "x".repeat(73)}), 400),
        // Bytes, not characters: 37 characters of 2 bytes each are 74 bytes.
        (json!({"email": "d@example.com", "password": "é".repeat(37)}), 400),
    ];
    for (body, status) in cases {
        let r = app.post("/api/auth/register", body.clone()).await;
        assert_eq!(r.status(), status, "{body}");
        assert!(!error_of(r).await.is_empty());
    }
}

async fn login_errors_answer_alike(db: Db) {
    let app = spawn_app(db, TestConfig::default()).await.unwrap();
    app.register("known@example.com", "correct-horse").await;
    let wrong = app
        .post(
            "/api/auth/login",
            json!({"email": "known@example.com", "password": "wrong-horse"}),
        )
        .await;
    let unknown = app
        .post(
            "/api/auth/login",
            json!({"email": "nobody@example.com", "password": "wrong-horse"}),
        )
        .await;
    assert_eq!(wrong.status(), 401);
    assert_eq!(unknown.status(), 401);
    assert_eq!(error_of(wrong).await, error_of(unknown).await);
    let r = app.post("/api/auth/login", json!({"email": "known@example.com"})).await;
    assert_eq!(r.status(), 400);
}

async fn change_password_flow(db: Db) {
    let app = spawn_app(db, TestConfig::default()).await.unwrap();
    let (_, token) = app.user("chg@example.com").await;
    let other = app.login("chg@example.com", "correct-horse-battery").await;

    // Unauthenticated.
    let r = app
        .post(
            "/api/auth/change-password",
            json!({"currentPassword": "x", "newPassword": "new-password-1"}),
        )
        .await;
    assert_eq!(r.status(), 401);
    // Missing field, too short, too long for bcrypt.
    for body in [
        json!({"currentPassword": "correct-horse-battery"}),
        json!({"currentPassword": "correct-horse-battery", "newPassword": "short"}),
        json!({"currentPassword": "correct-horse-battery", "newPassword": "y".repeat(73)}),
        json!({"currentPassword": "correct-horse-battery", "newPassword": "€".repeat(25)}),
    ] {
        let r = app.post_auth("/api/auth/change-password", &token, body).await;
        assert_eq!(r.status(), 400);
    }
    // Wrong current password.
    let r = app
        .post_auth(
            "/api/auth/change-password",
            &token,
            json!({"currentPassword": "nope-nope", "newPassword": "new-password-1"}),
        )
        .await;
    assert_eq!(r.status(), 401);
    assert_eq!(error_of(r).await, "Current password is incorrect");

    app.clock.advance_secs(2);
    let r = app
        .post_auth(
            "/api/auth/change-password",
            &token,
            json!({"currentPassword": "correct-horse-battery", "newPassword": "new-password-1"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"message": "Password changed successfully"})
    );

    // The session that changed it lives on; every other session is revoked.
    assert_eq!(app.get_auth("/api/auth/me", &token).await.status(), 200);
    assert_eq!(app.get_auth("/api/auth/me", &other).await.status(), 401);
    let me: Value = app.get_auth("/api/auth/me", &token).await.json().await.unwrap();
    assert!(me["passwordChangedAt"].as_str().unwrap().ends_with('Z'));
    // Old password refused, new one works.
    let r = app
        .post(
            "/api/auth/login",
            json!({"email": "chg@example.com", "password": "correct-horse-battery"}),
        )
        .await;
    assert_eq!(r.status(), 401);
    app.login("chg@example.com", "new-password-1").await;
}

async fn me_for_unknown_user_is_404(db: Db) {
    let cfg = TestConfig::default().with("TOKENKEEPER_INTERNAL_SECRET", "internal-test-secret");
    let app = spawn_app(db, cfg).await.unwrap();
    let r = app
        .client
        .get(app.at("/api/auth/me"))
        .header("X-User-ID", "no-such-user")
        .header("X-Internal-Secret", "internal-test-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(error_of(r).await, "User not found");
}

async fn change_password_for_unknown_user_is_404(db: Db) {
    let cfg = TestConfig::default().with("TOKENKEEPER_INTERNAL_SECRET", "internal-test-secret");
    let app = spawn_app(db, cfg).await.unwrap();
    let r = app
        .client
        .post(app.at("/api/auth/change-password"))
        .header("X-User-ID", "no-such-user")
        .header("X-Internal-Secret", "internal-test-secret")
        .json(&json!({"currentPassword": "whatever-it-was", "newPassword": "new-password-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(error_of(r).await, "User not found");
}

async fn logout_needs_a_session(db: Db) {
    let app = spawn_app(db, TestConfig::default()).await.unwrap();
    let (_, token) = app.user("logout@example.com").await;
    // No credentials at all.
    let r = app.client.post(app.at("/api/auth/logout")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(error_of(r).await, "Authentication required");
    // A token that is no session, one that is not even shaped like one, and the real one once it is logged out.
    for bad in ["tks_not-a-real-session", "garbage"] {
        let r = app.post_auth("/api/auth/logout", bad, json!({})).await;
        assert_eq!(r.status(), 401, "{bad}");
        assert_eq!(error_of(r).await, "Authentication required");
    }
    assert_eq!(app.post_auth("/api/auth/logout", &token, json!({})).await.status(), 204);
    let r = app.post_auth("/api/auth/logout", &token, json!({})).await;
    assert_eq!(r.status(), 401, "logged out twice");
    assert_eq!(error_of(r).await, "Authentication required");
}

async fn login_refuses_malformed_requests(db: Db) {
    let app = spawn_app(db, TestConfig::default()).await.unwrap();
    app.register("shape@example.com", "correct-horse").await;
    let post = |body: String, ct: Option<&'static str>| {
        let mut req = app.client.post(app.at("/api/auth/login")).body(body);
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        req.send()
    };
    // Over the maximum any hash format takes (1024 bytes): 400, not a failed login.
    let long = json!({"email": "shape@example.com", "password": "p".repeat(1025)}).to_string();
    let r = post(long, Some("application/json")).await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(error_of(r).await.contains("at most"));
    // Not JSON.
    let r = post("{not json".into(), Some("application/json")).await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(error_of(r).await.contains("not valid JSON"));
    // JSON, but not labelled as JSON: 415, with or without a content type.
    let body = json!({"email": "shape@example.com", "password": "correct-horse"}).to_string();
    for ct in [Some("text/plain"), Some("application/x-www-form-urlencoded"), None] {
        let r = post(body.clone(), ct).await.unwrap();
        assert_eq!(r.status(), 415, "{ct:?}");
        assert!(!error_of(r).await.is_empty());
    }
    // None of these counted as a failed attempt, and the account still logs in.
    app.login("shape@example.com", "correct-horse").await;
}

/// A Bearer session works until `TOKENKEEPER_SESSION_TTL_SECS` has passed, then 401. Dead rows (expired,
/// or revoked a session lifetime ago) are deleted when the user logs in again.
async fn sessions_expire_and_dead_ones_are_deleted(db: Db) {
    let app = spawn_app(db, TestConfig::default().with("TOKENKEEPER_SESSION_TTL_SECS", "3600"))
        .await
        .unwrap();
    app.register("ttl@example.com", "correct-horse").await;
    let issued_at = app.clock.now_ms();
    let r = app
        .post(
            "/api/auth/login",
            json!({"email": "ttl@example.com", "password": "correct-horse"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let login: Value = r.json().await.unwrap();
    assert_eq!(
        login["expiresAt"],
        tokenkeeper::clock::rfc3339(issued_at + 3_600_000).as_str()
    );
    let first = login["token"].as_str().unwrap().to_string();

    app.clock.advance_secs(3599);
    assert_eq!(
        app.get_auth("/api/auth/me", &first).await.status(),
        200,
        "before the TTL"
    );
    // A second session, logged out at once: revoked, not yet expired.
    let revoked = app.login("ttl@example.com", "correct-horse").await;
    assert_eq!(
        app.post_auth("/api/auth/logout", &revoked, json!({})).await.status(),
        204
    );

    app.clock.advance_secs(1);
    let r = app.get_auth("/api/auth/me", &first).await;
    assert_eq!(r.status(), 401, "after the TTL");
    assert_eq!(error_of(r).await, "Authentication required");
    assert_eq!(app.post_auth("/api/auth/logout", &first, json!({})).await.status(), 401);
    assert!(session_row_exists(&app, &first).await, "nothing deleted yet");

    // The next login deletes the expired row; the revoked one stays for a session lifetime.
    let second = app.login("ttl@example.com", "correct-horse").await;
    assert!(!session_row_exists(&app, &first).await, "expired session deleted");
    assert!(session_row_exists(&app, &revoked).await);
    assert!(session_row_exists(&app, &second).await);
    assert_eq!(app.get_auth("/api/auth/me", &second).await.status(), 200);

    app.clock.advance_secs(3600);
    let third = app.login("ttl@example.com", "correct-horse").await;
    assert!(!session_row_exists(&app, &revoked).await, "revoked session deleted");
    assert!(!session_row_exists(&app, &second).await, "expired session deleted");
    assert_eq!(app.get_auth("/api/auth/me", &third).await.status(), 200);
    assert_eq!(app.get_auth("/api/auth/me", &second).await.status(), 401);
}

async fn argon2id_accepts_long_passwords(db: Db) {
    let cfg = TestConfig::default().with("TOKENKEEPER_PASSWORD_HASH", "argon2id");
    let app = spawn_app(db, cfg).await.unwrap();
    let long = "z".repeat(73);
    app.register("long@example.com", &long).await;
    app.login("long@example.com", &long).await;
    // Not truncated: the first 72 bytes alone do not match.
    let r = app
        .post(
            "/api/auth/login",
            json!({"email": "long@example.com", "password": "z".repeat(72)}),
        )
        .await;
    assert_eq!(r.status(), 401);
    // Multibyte: 40 characters, 80 bytes; its first 72 bytes alone do not match either.
    let wide = "ž".repeat(40);
    app.register("wide@example.com", &wide).await;
    app.login("wide@example.com", &wide).await;
    let r = app
        .post(
            "/api/auth/login",
            json!({"email": "wide@example.com", "password": "ž".repeat(36)}),
        )
        .await;
    assert_eq!(r.status(), 401);
}

/// bcrypt takes exactly 72 bytes: a multibyte password of 72 bytes (36 characters) is accepted whole.
async fn bcrypt_takes_72_bytes_of_multibyte_text(db: Db) {
    let app = spawn_app(db, TestConfig::default()).await.unwrap();
    let full = "ü".repeat(36);
    app.register("umlaut@example.com", &full).await;
    app.login("umlaut@example.com", &full).await;
    let r = app
        .post(
            "/api/auth/login",
            json!({"email": "umlaut@example.com", "password": "ü".repeat(35)}),
        )
        .await;
    assert_eq!(r.status(), 401);
}

crate::on_both_backends!(
    bcrypt_takes_72_bytes_of_multibyte_text,
    register_login_me_logout,
    register_errors,
    login_errors_answer_alike,
    change_password_flow,
    me_for_unknown_user_is_404,
    change_password_for_unknown_user_is_404,
    logout_needs_a_session,
    login_refuses_malformed_requests,
    sessions_expire_and_dead_ones_are_deleted,
    argon2id_accepts_long_passwords,
);
