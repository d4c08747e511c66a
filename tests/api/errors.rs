//! Error shapes: JSON bodies for malformed JSON, wrong content type, unknown routes, oversized bodies.

use crate::support::app::{Db, TestConfig, error_of, spawn_app};

async fn malformed_requests_get_json_errors(db: Db) {
    let app = spawn_app(db, TestConfig::default().with("TOKENKEEPER_MAX_BODY_BYTES", "1024"))
        .await
        .unwrap();
    let post = |body: &'static str, ct: &'static str| {
        app.client
            .post(app.at("/api/auth/register"))
            .header("content-type", ct)
            .body(body)
            .send()
    };
    let r = post("{not json", "application/json").await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(error_of(r).await.contains("not valid JSON"));

    let r = post(r#"{"email":"a@example.com","password":"correct-horse"}"#, "text/plain")
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    assert!(!error_of(r).await.is_empty());

    let big = format!(r#"{{"email":"a@example.com","password":"{}"}}"#, "p".repeat(4096));
    let r = app
        .client
        .post(app.at("/api/auth/register"))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(error_of(r).await, "Request body too large");

    let r = app.client.get(app.at("/api/nothing-here")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(error_of(r).await, "Not found");

    let r = app.client.delete(app.at("/api/auth/login")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert!(!error_of(r).await.is_empty());
}

async fn healthz_and_request_id(db: Db) {
    let app = spawn_app(db, TestConfig::default()).await.unwrap();
    let r = app.client.get(app.at("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("x-request-id").is_some());
}

crate::on_both_backends!(malformed_requests_get_json_errors, healthz_and_request_id);
