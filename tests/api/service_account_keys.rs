//! Service-account keys over 4096 bits are refused when stored: each refresh would spend a worker's second
//! signing with them. The stored credential stays as it was; a key at the limit is taken.

use serde_json::{Value, json};

use crate::support::app::{Db, TestConfig, error_of, spawn_app};

/// The test key file with its `private_key` replaced.
fn key_file_with(pem: &str) -> Value {
    let mut key: Value = serde_json::from_str(include_str!("../fixtures/gcp-service-account.json")).unwrap();
    key["private_key"] = json!(pem);
    json!({"service_account_json": key.to_string()})
}

async fn keys_over_4096_bits_are_refused_when_stored(db: Db) {
    let app = spawn_app(db, TestConfig::default()).await.unwrap();
    let (_, token) = app.user("sa-keys@example.com").await;
    let body = json!({"service_account_json": include_str!("../fixtures/gcp-service-account.json")});
    assert_eq!(app.put_auth("/api/tokens/gcp", &token, body).await.status(), 200);
    let before: Value = app.get_auth("/api/tokens/gcp", &token).await.json().await.unwrap();

    let over = key_file_with(include_str!("../fixtures/rsa-4098.pem"));
    let r = app.put_auth("/api/tokens/gcp", &token, over).await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        error_of(r).await,
        "service_account_json private_key is an RSA key of 4098 bits; at most 4096 are accepted"
    );
    let after: Value = app.get_auth("/api/tokens/gcp", &token).await.json().await.unwrap();
    assert_eq!(after, before, "the stored credential is untouched");

    let at_limit = key_file_with(include_str!("../fixtures/rsa-4096.pem"));
    let r = app.put_auth("/api/tokens/gcp", &token, at_limit).await;
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    assert_eq!(r.json::<Value>().await.unwrap()["secretVersion"], 2);
}

crate::on_both_backends!(keys_over_4096_bits_are_refused_when_stored);
