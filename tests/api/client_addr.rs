//! The client address behind proxies: the rightmost `X-Forwarded-For` entry that is not a trusted proxy
//! (`TOKENKEEPER_TRUSTED_PROXIES`), so the entries a client writes itself never choose its address; IPv6
//! clients share one count per /64, and the audit trail keeps the whole address.

use serde_json::{Value, json};

use crate::support::app::{Db, TestApp, TestConfig, spawn_app};

async fn failed_login(app: &TestApp, email: &str, forwarded_for: &str) -> u16 {
    let r = app
        .client
        .post(app.at("/api/auth/login"))
        .header("X-Forwarded-For", forwarded_for)
        .json(&json!({"email": email, "password": "a-wrong-guess"}))
        .send()
        .await
        .unwrap();
    r.status().as_u16()
}

/// The test's peer is 127.0.0.1, a trusted proxy: what it appended (the rightmost entry) is the client.
fn behind_one_proxy() -> TestConfig {
    TestConfig::default().with("TOKENKEEPER_TRUSTED_PROXIES", "127.0.0.1/32, 10.0.0.0/8")
}

async fn a_spoofed_first_entry_does_not_escape_the_address_limit(db: Db) {
    let app = spawn_app(db, behind_one_proxy()).await.unwrap();
    // Five guesses at five accounts; each request claims another address in the first entry.
    for i in 0..5 {
        let xff = format!("203.0.113.{i}, 198.51.100.7");
        assert_eq!(failed_login(&app, &format!("guess{i}@example.com"), &xff).await, 401);
    }
    // The client is 198.51.100.7 whatever it writes, also behind a second trusted proxy (10.1.2.3).
    for xff in ["203.0.113.99, 198.51.100.7", "198.51.100.7, 10.1.2.3", "198.51.100.7"] {
        assert_eq!(failed_login(&app, "another@example.com", xff).await, 429, "{xff}");
    }
    // An untrusted hop's own entry is the client: 198.51.100.8 here, which has no failures.
    assert_eq!(
        failed_login(&app, "another@example.com", "198.51.100.7, 198.51.100.8").await,
        401
    );
}

async fn ipv6_clients_are_counted_per_64(db: Db) {
    let app = spawn_app(db, behind_one_proxy()).await.unwrap();
    let (_, token) = app.user("v6@example.com").await;
    assert_eq!(failed_login(&app, "v6@example.com", "2001:db8:1:2::abcd").await, 401);
    for i in 1..5 {
        let xff = format!("2001:db8:1:2::{i}");
        assert_eq!(failed_login(&app, &format!("guess{i}@example.com"), &xff).await, 401);
    }
    // Another address in the same /64: refused; the next /64: its own count.
    assert_eq!(
        failed_login(&app, "other@example.com", "2001:db8:1:2:ffff::1").await,
        429
    );
    assert_eq!(failed_login(&app, "other@example.com", "2001:db8:1:3::1").await, 401);
    // The audit trail keeps the whole address.
    let page: Value = app.get_auth("/api/audit", &token).await.json().await.unwrap();
    let addrs: Vec<&str> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "login" && e["outcome"] == "failed")
        .filter_map(|e| e["clientAddr"].as_str())
        .collect();
    assert_eq!(addrs, ["2001:db8:1:2::abcd"]);
}

crate::on_both_backends!(
    a_spoofed_first_entry_does_not_escape_the_address_limit,
    ipv6_clients_are_counted_per_64
);
