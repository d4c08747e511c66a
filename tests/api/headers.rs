//! Response headers: `nosniff`, `no-referrer` and no framing on every response; `Cache-Control:
//! no-store` on every response of the routes that carry a session token or a credential.

use reqwest::Response;
use serde_json::json;

use crate::support::app::{Db, TestConfig, spawn_app};

fn header(r: &Response, name: &str) -> String {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

/// The headers every response carries, whatever its route and status.
fn assert_everywhere(r: &Response, what: &str) {
    assert_eq!(header(r, "x-content-type-options"), "nosniff", "{what}");
    assert_eq!(header(r, "referrer-policy"), "no-referrer", "{what}");
    assert_eq!(header(r, "x-frame-options"), "DENY", "{what}");
    assert!(
        header(r, "content-security-policy").contains("frame-ancestors 'none'"),
        "{what}"
    );
}

fn assert_no_store(r: &Response, what: &str) {
    assert_eq!(header(r, "cache-control"), "no-store", "{what}");
}

async fn security_headers_on_every_class_of_route(db: Db) {
    let app = spawn_app(db, TestConfig::default()).await.unwrap();
    // Public routes, the documentation, errors outside any route.
    for path in ["/healthz", "/api/providers", "/openapi.json", "/docs", "/no-such-route"] {
        let r = app.client.get(app.at(path)).send().await.unwrap();
        assert_everywhere(&r, path);
    }
    // Routes that hand out a session token: register, login; their refusals too.
    let body = json!({"email": "headers@example.com", "password": "correct-horse-battery"});
    let r = app.post("/api/auth/register", body.clone()).await;
    assert_eq!(r.status(), 201);
    assert_everywhere(&r, "register");
    assert_no_store(&r, "register");
    let r = app.post("/api/auth/login", body).await;
    assert_eq!(r.status(), 200);
    assert_everywhere(&r, "login");
    assert_no_store(&r, "login");
    let token = r.json::<serde_json::Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let r = app
        .post(
            "/api/auth/login",
            json!({"email": "headers@example.com", "password": "wrong-password"}),
        )
        .await;
    assert_eq!(r.status(), 401);
    assert_no_store(&r, "refused login");
    // Routes that carry credentials: the token data, a refresh, a listing.
    let splunk = json!({"api_token": "splunk-token", "base_url": "https://s.example.com"});
    assert_eq!(app.put_auth("/api/tokens/splunk", &token, splunk).await.status(), 200);
    for path in ["/api/tokens/splunk/credentials", "/api/tokens", "/api/auth/me"] {
        let r = app.get_auth(path, &token).await;
        assert_eq!(r.status(), 200, "{path}");
        assert_everywhere(&r, path);
        assert_no_store(&r, path);
    }
    let r = app.post_auth("/api/tokens/splunk/refresh", &token, json!({})).await;
    assert_eq!(r.status(), 200);
    assert_no_store(&r, "refresh");
}

crate::on_both_backends!(security_headers_on_every_class_of_route);
