//! Register, login, change-password, me, logout: success and every error code SPEC section 3 names.

use serde_json::{Value, json};

use crate::support::app::{Db, TestConfig, error_of, spawn_app};

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
}

crate::on_both_backends!(
    register_login_me_logout,
    register_errors,
    login_errors_answer_alike,
    change_password_flow,
    me_for_unknown_user_is_404,
    argon2id_accepts_long_passwords,
);
