//! Sessions and password changes are kept in memory by every instance (`docs/IDENTITY.md`, "The identity
//! cache"); a logout or a password change on one instance is refused on every other within a second
//! (PostgreSQL: the triggers' announcements; SQLite: the identity change counter, at once). Each test
//! first makes the other instance cache what the change must drop.

use std::time::Duration;

use serde_json::json;

use crate::support::app::{Db, TestApp, TestConfig, spawn_app, spawn_sibling};

/// The time a change has to reach every instance.
pub const WITHIN: Duration = Duration::from_secs(1);

async fn status(app: &TestApp, token: &str) -> u16 {
    app.get_auth("/api/tokens", token).await.status().as_u16()
}

/// Polls `app` (every 10 ms, for at most [`WITHIN`]) until `token` is refused.
async fn refused_within_a_second(app: &TestApp, token: &str, what: &str) {
    crate::support::wait::until_within(what, WITHIN, || async { status(app, token).await == 401 }).await;
}

async fn two_instances(db: Db) -> (TestApp, TestApp) {
    let a = spawn_app(db, TestConfig::default()).await.unwrap();
    let b = spawn_sibling(&a, TestConfig::default()).await;
    (a, b)
}

async fn logout_reaches_every_instance(db: Db) {
    let (a, b) = two_instances(db).await;
    let (_, token) = a.user("logout@example.com").await;
    let (_, other) = a.user("stays@example.com").await;
    for t in [&token, &other] {
        assert_eq!(status(&b, t).await, 200);
    }
    assert!(!b.services.identity.is_empty(), "instance B holds the sessions");
    let out = a.post_auth("/api/auth/logout", &token, json!({})).await;
    assert_eq!(out.status(), 204);
    refused_within_a_second(&b, &token, "the session logged out on A refused on B").await;
    assert_eq!(status(&a, &token).await, 401);
    assert_eq!(status(&b, &other).await, 200, "another user's session stands");
}

async fn password_change_reaches_every_instance(db: Db) {
    let (a, b) = two_instances(db).await;
    let (_, first) = a.user("change@example.com").await;
    let second = a.login("change@example.com", "correct-horse-battery").await;
    assert_eq!(status(&b, &second).await, 200);
    let body = json!({"currentPassword": "correct-horse-battery", "newPassword": "another-horse-battery"});
    assert_eq!(
        a.post_auth("/api/auth/change-password", &first, body).await.status(),
        200
    );
    refused_within_a_second(&b, &second, "a session from before the password change refused on B").await;
    assert_eq!(status(&b, &first).await, 200, "the session that changed it stays");
}

crate::on_both_backends!(logout_reaches_every_instance, password_change_reaches_every_instance);
