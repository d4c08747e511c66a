//! Registration floods: a taken email is refused before any hashing, registrations are limited per
//! address and hour (`TOKENKEEPER_REGISTER_LIMIT`), and password work beyond the hashing queue
//! (`TOKENKEEPER_HASH_QUEUE`) gets 503 with `Retry-After` instead of waiting without bound.

use secrecy::SecretString;
use serde_json::{Value, json};
use tokenkeeper::passwords::{Caller, PasswordError};

use crate::support::app::{Db, TestApp, TestConfig, spawn_app};

async fn register_from(app: &TestApp, email: &str, addr: &str) -> reqwest::Response {
    app.client
        .post(app.at("/api/auth/register"))
        .header("X-Forwarded-For", addr)
        .json(&json!({"email": email, "password": "correct-horse-battery"}))
        .send()
        .await
        .unwrap()
}

async fn registrations_are_limited_per_address_and_hour(db: Db) {
    let cfg = TestConfig::default().with("TOKENKEEPER_REGISTER_LIMIT", "3");
    let app = spawn_app(db, cfg).await.unwrap();
    let addr = "198.51.100.20";
    assert_eq!(register_from(&app, "one@example.com", addr).await.status(), 201);
    assert_eq!(register_from(&app, "two@example.com", addr).await.status(), 201);
    // A taken email counts too: a flood of them is what the limit is for.
    assert_eq!(register_from(&app, "one@example.com", addr).await.status(), 409);
    let r = register_from(&app, "four@example.com", addr).await;
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry > 0 && retry <= 3600, "Retry-After {retry}");
    assert!(r.json::<Value>().await.unwrap()["error"].is_string());
    // Another address is not held back; the first one is again after an hour, not before, although a
    // failed login after the login window (15 minutes) prunes the table both limits share.
    assert_eq!(
        register_from(&app, "four@example.com", "198.51.100.21").await.status(),
        201
    );
    app.clock.advance_secs(20 * 60);
    let bad = json!({"email": "one@example.com", "password": "a-wrong-guess"});
    assert_eq!(app.post("/api/auth/login", bad).await.status(), 401);
    assert_eq!(register_from(&app, "five@example.com", addr).await.status(), 429);
    app.clock.advance_secs(3601 - 20 * 60);
    assert_eq!(register_from(&app, "five@example.com", addr).await.status(), 201);
}

/// Sixteen logins at once (unknown emails: each checks the dummy hash) with one hashing slot and no
/// queue: those that find the slot taken get 503 with Retry-After at once, the others 401.
async fn a_full_hashing_queue_answers_503(db: Db) {
    let cfg = TestConfig::default()
        .with("TOKENKEEPER_MAX_CONCURRENT_HASHES", "1")
        .with("TOKENKEEPER_HASH_QUEUE", "0");
    let app = spawn_app(db, cfg).await.unwrap();
    let logins = (0..16).map(|i| {
        app.client
            .post(app.at("/api/auth/login"))
            .header("X-Forwarded-For", format!("198.51.100.{i}"))
            .json(&json!({"email": format!("nobody{i}@example.com"), "password": "a-wrong-guess"}))
            .send()
    });
    let (mut refused, mut busy) = (0, 0);
    for r in futures::future::join_all(logins).await {
        let r = r.unwrap();
        match r.status().as_u16() {
            401 => refused += 1,
            503 => {
                busy += 1;
                assert_eq!(r.headers()["retry-after"], "1");
                assert!(r.json::<Value>().await.unwrap()["error"].is_string());
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(refused >= 1 && busy >= 1, "401: {refused}, 503: {busy}");
}

/// Through the library: the hasher's job count shows that a taken email is refused before any hashing.
async fn a_taken_email_is_refused_before_hashing(db: Db) {
    let app = spawn_app(db, TestConfig::default()).await.unwrap();
    app.register("taken@example.com", "correct-horse-battery").await;
    let (passwords, hasher) = app.library_passwords(app.services.store.clone()).await;
    let before = hasher.jobs();
    let caller = Caller {
        client_addr: "198.51.100.30",
    };
    let pw = || SecretString::from("another-password".to_string());
    let r = passwords.register(" Taken@Example.com", pw(), None, &caller).await;
    assert!(matches!(r, Err(PasswordError::EmailTaken)), "{:?}", r.err());
    assert_eq!(hasher.jobs(), before, "no hash for a taken email");
    passwords
        .register("free@example.com", pw(), None, &caller)
        .await
        .unwrap();
    assert_eq!(hasher.jobs(), before + 1);
}

crate::on_both_backends!(
    registrations_are_limited_per_address_and_hour,
    a_full_hashing_queue_answers_503,
    a_taken_email_is_refused_before_hashing
);
