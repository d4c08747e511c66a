//! Operating surface: `/metrics` counters move by exactly what a scripted sequence of calls did, labels
//! are route templates (never raw paths), and every response carries an `X-Request-Id` (the caller's,
//! when it sent one).
//!
//! The process-wide counters (refreshes, secret-store errors) are shared by every test of this binary,
//! which run in parallel: their exact deltas are checked in a child process running that one test alone.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::support::alone::alone;
use crate::support::app::{Db, TestApp, TestConfig, spawn_app};
use crate::support::openbao::OpenBao;
use crate::support::token_endpoint::{Answer, TokenEndpoint};

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
    assert_eq!(after.get("tokenkeeper_build_info{version=\"0.1.0\"}"), Some(&1.0));

    // Connections by status, counted in SQL (this test's own database) at scrape time: a store adds
    // exactly one connection (unchecked: the test app stores without a check), its delete takes it away.
    let active = "tokenkeeper_connections{status=\"unchecked\"}";
    let (_, token) = app.user("gauge@example.com").await;
    let creds = json!({"api_token": "gauge-splunk-token", "base_url": "https://s.example.com"});
    let before = scrape(&app).await;
    assert_eq!(app.put_auth("/api/tokens/splunk", &token, creds).await.status(), 200);
    let stored = scrape(&app).await;
    assert_eq!(get(&stored, active) - get(&before, active), 1.0);
    assert_eq!(app.delete_auth("/api/tokens/splunk", &token).await.status(), 200);
    let deleted = scrape(&app).await;
    assert_eq!(get(&deleted, active), get(&before, active));
    for status in ["active", "degraded", "needs_reauth", "unchecked"] {
        let series = format!("tokenkeeper_connections{{status=\"{status}\"}}");
        assert_eq!(get(&deleted, &series), get(&before, &series), "{series}");
    }
}

// ---- process-wide counters --------------------------------------------------------------------------

/// Refreshes by provider and outcome, and secret-store errors, move by exactly what was done.
async fn process_wide_counters_move_by_exact_amounts(db: Db) {
    if !alone(module_path!(), db, "process_wide_counters_move_by_exact_amounts").await {
        return;
    }
    let refreshes = |outcome: &str| format!("tokenkeeper_refreshes_total{{provider=\"gcp\",outcome=\"{outcome}\"}}");
    let errors = "tokenkeeper_secret_store_errors_total";

    // Refreshes: one forced refresh that the provider grants, one it refuses for now (503).
    let endpoint = TokenEndpoint::start().await;
    let app = spawn_app(db, endpoint.config(TestConfig::default())).await.unwrap();
    let (_, token) = app.user("ops-refresh@example.com").await;
    endpoint.store_gcp(&app, &token, 3600, "rt-0").await;
    let before = scrape(&app).await;
    let r = app.post_auth("/api/tokens/gcp/refresh", &token, json!({})).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "active");
    let refreshed = scrape(&app).await;
    let delta = |m: &HashMap<String, f64>, series: &str| get(m, series) - get(&before, series);
    assert_eq!(endpoint.calls(), 1);
    assert_eq!(delta(&refreshed, &refreshes("ok")), 1.0);
    assert_eq!(delta(&refreshed, &refreshes("degraded")), 0.0);
    assert_eq!(delta(&refreshed, &refreshes("needs_reauth")), 0.0);

    endpoint.answer(Answer::Unavailable);
    let r = app.post_auth("/api/tokens/gcp/refresh", &token, json!({})).await;
    assert_eq!(r.status(), 200, "the access token is still valid: served as it is");
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "degraded");
    let failed = scrape(&app).await;
    assert_eq!(endpoint.calls(), 2);
    assert_eq!(delta(&failed, &refreshes("ok")), 1.0);
    assert_eq!(delta(&failed, &refreshes("degraded")), 1.0);
    assert_eq!(delta(&failed, &refreshes("needs_reauth")), 0.0);
    assert_eq!(get(&failed, "tokenkeeper_connections{status=\"degraded\"}"), 1.0);
    assert_eq!(get(&failed, "tokenkeeper_connections{status=\"active\"}"), 0.0);
    assert_eq!(delta(&failed, errors), 0.0);

    // Secret-store errors: an instance on its own OpenBao, stopped.
    let Some(mut bao) = OpenBao::start().await else { return };
    let cfg = TestConfig::default()
        .with("VAULT_ADDR", &bao.addr)
        .with("VAULT_TOKEN", &bao.limited_token)
        .with("TOKENKEEPER_OUTBOUND_TIMEOUT_SECS", "2");
    let vault_app = spawn_app(db, cfg).await.unwrap();
    let (_, token) = vault_app.user("ops-vault@example.com").await;
    let grafana = json!({"api_key": "glsa_ops_secret_store_err", "base_url": "https://g.example.com"});
    assert_eq!(
        vault_app
            .put_auth("/api/tokens/grafana", &token, grafana)
            .await
            .status(),
        200
    );
    let up = scrape(&vault_app).await;
    bao.stop();
    let r = vault_app.get_auth("/api/tokens/grafana/credentials", &token).await;
    assert_eq!(r.status(), 503);
    let splunk = json!({"api_token": "splunk-ops-outage", "base_url": "https://s.example.com"});
    assert_eq!(
        vault_app.put_auth("/api/tokens/splunk", &token, splunk).await.status(),
        503
    );
    let after = scrape(&vault_app).await;
    assert_eq!(get(&after, errors) - get(&up, errors), 2.0, "one per failed request");
    // Both instances show the same process-wide value.
    assert_eq!(get(&scrape(&app).await, errors), get(&after, errors));
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
    every_response_carries_a_request_id,
    process_wide_counters_move_by_exact_amounts
);
