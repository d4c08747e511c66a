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

/// 30 wrong guesses sent at once, from 30 addresses, spread over `apps`: each attempt is recorded before
/// its password is checked and waits for the five ahead of it, so five reach the check (401) and the rest
/// are refused (429) once those five failed. Checking first and recording after the hash would let all 30
/// through.
async fn burst(apps: &[&TestApp], email: &str) -> (usize, usize) {
    let (checked, retry_afters) = burst_from(apps, email, |i| format!("198.18.0.{i}")).await;
    (checked, retry_afters.len())
}

/// The number of guesses checked (401), and the `Retry-After` of each refused one (429).
async fn burst_from(apps: &[&TestApp], email: &str, addr: impl Fn(usize) -> String) -> (usize, Vec<u64>) {
    let addr = &addr;
    let guesses = (0..30).map(|i| async move {
        let app = apps[i % apps.len()];
        login_from(app, email, "bad-guess", &addr(i)).await
    });
    let answers = futures::future::join_all(guesses).await;
    let statuses: Vec<u16> = answers.iter().map(|r| r.status().as_u16()).collect();
    let checked = statuses.iter().filter(|s| **s == 401).count();
    let retry_afters: Vec<u64> = answers
        .iter()
        .filter(|r| r.status() == 429)
        .map(|r| r.headers()["retry-after"].to_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(
        checked + retry_afters.len(),
        30,
        "only 401 and 429 expected: {statuses:?}"
    );
    (checked, retry_afters)
}

async fn concurrent_guesses_cannot_pass_the_check(db: Db) {
    let app = spawn_app(db, TestConfig::default()).await.unwrap();
    app.register("burst@example.com", "correct-horse").await;
    let (checked, _) = burst(&[&app], "burst@example.com").await;
    assert_eq!(checked, 5, "guesses that reached the password check");
}

/// The same burst from one address: every attempt is reserved under two keys (account and address), and
/// attempts must be in one order on both, or two of them can each wait for the other until they give up
/// (after 10 s, with `Retry-After: 1`) instead of being refused for the five failures (`Retry-After`: the
/// rest of the 15-minute window).
async fn concurrent_guesses_from_one_address(db: Db) {
    let app = spawn_app(db, TestConfig::default()).await.unwrap();
    app.register("burst3@example.com", "correct-horse").await;
    let (checked, retry_afters) = burst_from(&[&app], "burst3@example.com", |_| "198.18.1.1".into()).await;
    assert_eq!(checked, 5, "guesses that reached the password check");
    assert!(
        retry_afters.iter().all(|s| *s > 60),
        "refused for waiting on each other, not for the failures: Retry-After {retry_afters:?}"
    );
}

async fn concurrent_guesses_across_instances(db: Db) {
    let a = spawn_app(db, TestConfig::default()).await.unwrap();
    let b = spawn_sibling(&a, TestConfig::default()).await;
    a.register("burst2@example.com", "correct-horse").await;
    let (checked, _) = burst(&[&a, &b], "burst2@example.com").await;
    assert_eq!(checked, 5, "guesses that reached the password check");
}

/// Concurrent logins with the right password all get in: an attempt that would be the sixth in flight
/// waits for those ahead of it to settle instead of being refused.
async fn concurrent_right_passwords_all_get_in(db: Db) {
    let app = spawn_app(db, TestConfig::default()).await.unwrap();
    app.register("many@example.com", "correct-horse").await;
    let logins = (0..12).map(|i| {
        let app = &app;
        async move { login_from(app, "many@example.com", "correct-horse", &format!("198.19.0.{i}")).await }
    });
    let statuses: Vec<u16> = futures::future::join_all(logins)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
}

crate::on_both_backends!(
    concurrent_right_passwords_all_get_in,
    login_locks_after_five_failures_until_window_passes,
    login_limits_per_address,
    change_password_locks_after_five_failures,
    concurrent_guesses_cannot_pass_the_check,
    concurrent_guesses_from_one_address,
);
// Two instances on one database: the PostgreSQL deployment shape.
crate::on_postgres!(instances_share_the_count, concurrent_guesses_across_instances);
