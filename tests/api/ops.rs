//! Operating surface: `/metrics` counters move by exactly what a scripted sequence of calls did, labels
//! are route templates (never raw paths), and every response carries an `X-Request-Id` (the caller's,
//! when it sent one).

use std::collections::HashMap;

use serde_json::json;

use crate::support::app::{Db, TestApp, TestConfig, spawn_app};

/// One scrape: `series` (name and labels, exactly as exposed) -> value.
async fn scrape(app: &TestApp) -> HashMap<String, f64> {
    let r = app.client.get(app.at("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let ct = r.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "content type {ct}");
    let text = r.text().await.unwrap();
    parse(&text)
}

fn parse(text: &str) -> HashMap<String, f64> {
    let mut out = HashMap::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad sample line {line:?}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("bad value in {line:?}"));
        assert!(
            out.insert(series.to_string(), value).is_none(),
            "duplicate series {series}"
        );
    }
    out
}

fn get(m: &HashMap<String, f64>, series: &str) -> f64 {
    m.get(series).copied().unwrap_or(0.0)
}

fn requests(route: &str, method: &str, status: u16) -> String {
    format!("tokenkeeper_http_requests_total{{route=\"{route}\",method=\"{method}\",status=\"{status}\"}}")
}

async fn post_from(app: &TestApp, path: &str, addr: &str, token: Option<&str>, body: serde_json::Value) -> u16 {
    let mut req = app
        .client
        .post(app.at(path))
        .header("X-Forwarded-For", addr)
        .json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap().status().as_u16()
}

async fn metrics_counters_move_by_the_scripted_calls(db: Db) {
    let app = spawn_app(
        db,
        TestConfig::default().with("TOKENKEEPER_RATE_LIMIT_MAX_FAILURES", "2"),
    )
    .await
    .unwrap();
    let before = scrape(&app).await;

    // The script.
    for _ in 0..3 {
        assert_eq!(app.client.get(app.at("/healthz")).send().await.unwrap().status(), 200);
    }
    app.register("ops-login@example.com", "correct-horse-battery").await; // 201
    let bad = json!({"email": "ops-login@example.com", "password": "bad-guess"});
    for i in 0..2 {
        assert_eq!(
            post_from(&app, "/api/auth/login", &format!("198.51.100.{i}"), None, bad.clone()).await,
            401
        );
    }
    // The limit (2) is reached: refused, even with the right password.
    let good = json!({"email": "ops-login@example.com", "password": "correct-horse-battery"});
    assert_eq!(
        post_from(&app, "/api/auth/login", "198.51.100.9", None, good).await,
        429
    );

    let (_, token) = app.user("ops-cp@example.com").await; // register 201, login 200
    let wrong = json!({"currentPassword": "bad-guess", "newPassword": "new-password-1"});
    for _ in 0..2 {
        assert_eq!(
            post_from(
                &app,
                "/api/auth/change-password",
                "203.0.113.7",
                Some(&token),
                wrong.clone()
            )
            .await,
            401
        );
    }
    assert_eq!(
        post_from(&app, "/api/auth/change-password", "203.0.113.7", Some(&token), wrong).await,
        429
    );

    assert_eq!(
        app.client.get(app.at("/no/such/route")).send().await.unwrap().status(),
        404
    );
    // A route with a parameter: counted under its template.
    assert_eq!(app.get_auth("/api/tokens/grafana", &token).await.status(), 404);
    assert_eq!(app.get_auth("/api/tokens/splunk", &token).await.status(), 404);

    let after = scrape(&app).await;
    let delta = |series: &str| get(&after, series) - get(&before, series);

    assert_eq!(delta(&requests("/healthz", "GET", 200)), 3.0);
    assert_eq!(delta(&requests("/api/auth/register", "POST", 201)), 2.0);
    assert_eq!(delta(&requests("/api/auth/login", "POST", 401)), 2.0);
    assert_eq!(delta(&requests("/api/auth/login", "POST", 429)), 1.0);
    assert_eq!(delta(&requests("/api/auth/login", "POST", 200)), 1.0);
    assert_eq!(delta(&requests("/api/auth/change-password", "POST", 401)), 2.0);
    assert_eq!(delta(&requests("/api/auth/change-password", "POST", 429)), 1.0);
    assert_eq!(delta(&requests("unmatched", "GET", 404)), 1.0);
    assert_eq!(delta(&requests("/api/tokens/{provider}", "GET", 404)), 2.0);
    // The first scrape itself, counted after it was answered.
    assert_eq!(delta(&requests("/metrics", "GET", 200)), 1.0);
    // Raw paths never become labels.
    assert!(
        after
            .keys()
            .all(|k| !k.contains("/api/tokens/grafana") && !k.contains("/no/such/route"))
    );

    assert_eq!(
        delta("tokenkeeper_rate_limit_rejections_total{route=\"/api/auth/login\"}"),
        1.0
    );
    assert_eq!(
        delta("tokenkeeper_rate_limit_rejections_total{route=\"/api/auth/change-password\"}"),
        1.0
    );

    // Latency histogram: one observation per request, cumulative buckets ending at the count.
    let h = "tokenkeeper_http_request_duration_seconds";
    let labels = "route=\"/healthz\",method=\"GET\"";
    assert_eq!(delta(&format!("{h}_count{{{labels}}}")), 3.0);
    assert_eq!(
        get(&after, &format!("{h}_bucket{{{labels},le=\"+Inf\"}}")),
        get(&after, &format!("{h}_count{{{labels}}}"))
    );
    assert!(
        get(&after, &format!("{h}_bucket{{{labels},le=\"0.005\"}}"))
            <= get(&after, &format!("{h}_bucket{{{labels},le=\"0.01\"}}"))
    );
    assert!(get(&after, &format!("{h}_sum{{{labels}}}")) > 0.0);
    let login = "route=\"/api/auth/login\",method=\"POST\"";
    assert_eq!(delta(&format!("{h}_count{{{login}}}")), 4.0);

    // Nothing failed to reach the audit trail; nothing is in flight but the scrape itself.
    assert_eq!(get(&after, "tokenkeeper_audit_write_failures_total"), 0.0);
    assert_eq!(get(&after, "tokenkeeper_http_requests_in_flight"), 1.0);
    // The process-wide families are exposed (their values are shared by every test in this binary).
    assert!(after.contains_key("tokenkeeper_refreshes_total{provider=\"grafana\",outcome=\"ok\"}"));
    assert!(after.contains_key("tokenkeeper_refreshes_total{provider=\"gcp\",outcome=\"needs_reauth\"}"));
    assert!(after.contains_key("tokenkeeper_secret_store_errors_total"));
    assert_eq!(after.get("tokenkeeper_build_info{version=\"0.1.0\"}"), Some(&1.0));

    // Connections by status, counted in SQL at scrape time.
    let (_, token) = app.user("gauge@example.com").await;
    let creds = serde_json::json!({"api_token": "gauge-splunk-token", "base_url": "https://s.example.com"});
    assert_eq!(app.put_auth("/api/tokens/splunk", &token, creds).await.status(), 200);
    let now = scrape(&app).await;
    assert_eq!(get(&now, "tokenkeeper_connections{status=\"active\"}"), 1.0);
}

async fn every_response_carries_a_request_id(db: Db) {
    let app = spawn_app(db, TestConfig::default()).await.unwrap();
    // None sent: a fresh UUID, a different one per request.
    let mut seen = Vec::new();
    for path in ["/healthz", "/healthz", "/no/such/route", "/api/auth/me"] {
        let r = app.client.get(app.at(path)).send().await.unwrap();
        let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
        uuid::Uuid::parse_str(&id).unwrap_or_else(|_| panic!("{path}: request id {id:?} is not a UUID"));
        assert!(!seen.contains(&id), "request ids repeat: {id}");
        seen.push(id);
    }
    // Sent: propagated unchanged, on success and on errors.
    for (path, status) in [("/healthz", 200), ("/no/such/route", 404), ("/api/auth/me", 401)] {
        let r = app
            .client
            .get(app.at(path))
            .header("X-Request-Id", "ops-test-0001")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{path}");
        assert_eq!(r.headers()["x-request-id"], "ops-test-0001", "{path}");
    }
    let r = app
        .client
        .post(app.at("/api/auth/login"))
        .header("X-Request-Id", "ops-test-0002")
        .json(&json!({"email": "nobody@example.com", "password": "whatever-123"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["x-request-id"], "ops-test-0002");
}

crate::on_both_backends!(
    metrics_counters_move_by_the_scripted_calls,
    every_response_carries_a_request_id
);
