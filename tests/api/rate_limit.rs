//! Brute-force limits: 429 with Retry-After after 5 failures in 15 minutes, per account and per address,
//! shared by every instance on the database. Time moves by the test's clock, not by sleeping.

use serde_json::json;

use crate::support::app::{Db, TestApp, TestConfig, spawn_app, spawn_sibling};

async fn login_from(app: &TestApp, email: &str, password: &str, addr: &str) -> reqwest::Response {
    app.client
        .post(app.at("/api/auth/login"))
        .header("X-Forwarded-For", addr)
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
}

async fn login_locks_after_five_failures_until_window_passes(db: Db) {
    let app = spawn_app(db, TestConfig::default()).await.unwrap();
    app.register("victim@example.com", "correct-horse").await;
    // Five failures from five addresses: the account key trips.
    for i in 0..5 {
        let r = login_from(&app, "victim@example.com", "bad-guess", &format!("198.51.100.{i}")).await;
        assert_eq!(r.status(), 401, "failure {i}");
    }
    // Even the right password is refused now, from a fresh address.
    let r = login_from(&app, "victim@example.com", "correct-horse", "198.51.100.50").await;
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry > 0 && retry <= 15 * 60, "Retry-After {retry}");
    assert!(r.json::<serde_json::Value>().await.unwrap()["error"].is_string());

    app.clock.advance_secs(14 * 60);
    assert_eq!(
        login_from(&app, "victim@example.com", "correct-horse", "198.51.100.50")
            .await
            .status(),
        429
    );
    app.clock.advance_secs(61);
    assert_eq!(
        login_from(&app, "victim@example.com", "correct-horse", "198.51.100.50")
            .await
            .status(),
        200
    );
}

async fn login_limits_per_address(db: Db) {
    let app = spawn_app(db, TestConfig::default()).await.unwrap();
    app.register("target@example.com", "correct-horse").await;
    for i in 0..5 {
        let r = login_from(&app, &format!("guess{i}@example.com"), "bad-guess", "203.0.113.9").await;
        assert_eq!(r.status(), 401);
    }
    // Another account, same address: refused.
    assert_eq!(
        login_from(&app, "target@example.com", "correct-horse", "203.0.113.9")
            .await
            .status(),
        429
    );
    // Same account, other address: fine.
    assert_eq!(
        login_from(&app, "target@example.com", "correct-horse", "203.0.113.10")
            .await
            .status(),
        200
    );
}

async fn change_password_locks_after_five_failures(db: Db) {
    let app = spawn_app(db, TestConfig::default()).await.unwrap();
    let (_, token) = app.user("cp@example.com").await;
    let body = json!({"currentPassword": "bad-guess", "newPassword": "new-password-1"});
    for _ in 0..5 {
        assert_eq!(
            app.post_auth("/api/auth/change-password", &token, body.clone())
                .await
                .status(),
            401
        );
    }
    let good = json!({"currentPassword": "correct-horse-battery", "newPassword": "new-password-1"});
    let r = app.post_auth("/api/auth/change-password", &token, good.clone()).await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    app.clock.advance_secs(15 * 60 + 1);
    assert_eq!(
        app.post_auth("/api/auth/change-password", &token, good).await.status(),
        200
    );
}

async fn instances_share_the_count(db: Db) {
    let a = spawn_app(db, TestConfig::default()).await.unwrap();
    let b = spawn_sibling(&a, TestConfig::default()).await;
    a.register("shared@example.com", "correct-horse").await;
    for i in 0..5 {
        let app = if i % 2 == 0 { &a } else { &b };
        assert_eq!(
            login_from(app, "shared@example.com", "bad-guess", &format!("192.0.2.{i}"))
                .await
                .status(),
            401
        );
    }
    assert_eq!(
        login_from(&b, "shared@example.com", "correct-horse", "192.0.2.99")
            .await
            .status(),
        429
    );
    assert_eq!(
        login_from(&a, "shared@example.com", "correct-horse", "192.0.2.98")
            .await
            .status(),
        429
    );
}

crate::on_both_backends!(
    login_locks_after_five_failures_until_window_passes,
    login_limits_per_address,
    change_password_locks_after_five_failures,
);
// Two instances on one database: the PostgreSQL deployment shape.
crate::on_postgres!(instances_share_the_count);
