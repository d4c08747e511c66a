//! The whole `/metrics` exposition after a scripted sequence of calls, compared line by line with
//! `tests/fixtures/metrics-scrape.txt`: every family's HELP and TYPE line, every series' name and labels,
//! every histogram bucket, and the values that the script decides. Dashboards and alerts depend on these
//! names; a change to any of them must be deliberate (edit the fixture in the same commit).
//!
//! Normalised before comparing: values that depend on timing (bucket counts, sums) or on other tests of
//! this binary (the process-wide counters) become `<v>`; the build version becomes `<version>`; series
//! within a family are sorted (the exposition format does not order them).

use serde_json::json;

use crate::support::app::{Db, TestConfig, spawn_app};

const FIXTURE: &str = include_str!("../fixtures/metrics-scrape.txt");

/// Families whose values are not decided by the script alone (the client's pooled connections too).
const VARYING: [&str; 5] = [
    "tokenkeeper_http_connections",
    "tokenkeeper_http_request_duration_seconds_bucket",
    "tokenkeeper_http_request_duration_seconds_sum",
    "tokenkeeper_refreshes_total",
    "tokenkeeper_secret_store_errors_total",
];

fn normalise(text: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut samples: Vec<String> = Vec::new();
    let flush = |out: &mut Vec<String>, samples: &mut Vec<String>| {
        samples.sort();
        out.append(samples);
    };
    for line in text.lines() {
        if line.starts_with('#') {
            flush(&mut out, &mut samples);
            out.push(line.to_string());
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad sample line {line:?}"));
        value.parse::<f64>().unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let name = series.split('{').next().unwrap_or(series);
        let value = if VARYING.contains(&name) { "<v>" } else { value };
        let series = match series.split_once("version=\"") {
            Some((head, rest)) => format!("{head}version=\"<version>\"{}", &rest[rest.find('"').unwrap() + 1..]),
            None => series.to_string(),
        };
        samples.push(format!("{series} {value}"));
    }
    flush(&mut out, &mut samples);
    out.join("\n") + "\n"
}

async fn scrape_matches_the_fixture(db: Db) {
    let cfg = TestConfig::default().with("TOKENKEEPER_RATE_LIMIT_MAX_FAILURES", "1");
    let app = spawn_app(db, cfg).await.unwrap();

    // The script: a few routes, methods and statuses; one rate-limited login; one stored connection.
    for _ in 0..2 {
        assert_eq!(app.client.get(app.at("/healthz")).send().await.unwrap().status(), 200);
    }
    let (_, token) = app.user("scrape@example.com").await;
    let bad = json!({"email": "scrape@example.com", "password": "bad-guess"});
    assert_eq!(app.post("/api/auth/login", bad.clone()).await.status(), 401);
    assert_eq!(app.post("/api/auth/login", bad).await.status(), 429);
    let splunk = json!({"api_token": "scrape-splunk-token", "base_url": "https://s.example.com"});
    assert_eq!(app.put_auth("/api/tokens/splunk", &token, splunk).await.status(), 200);
    assert_eq!(app.get_auth("/api/tokens/grafana", &token).await.status(), 404);
    let brew = reqwest::Method::from_bytes(b"BREW").unwrap();
    let r = app.client.request(brew, app.at("/no/such/route")).send().await.unwrap();
    assert_eq!(r.status(), 404);

    let r = app.client.get(app.at("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/plain; version=0.0.4; charset=utf-8");
    let actual = normalise(&r.text().await.unwrap());
    if actual != FIXTURE {
        let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("metrics-scrape.actual.txt");
        std::fs::write(&path, &actual).unwrap();
        let first = actual
            .lines()
            .zip(FIXTURE.lines())
            .find(|(a, e)| a != e)
            .map(|(a, e)| format!("first difference:\n  expected {e}\n  actual   {a}"))
            .unwrap_or_else(|| "one is a prefix of the other".into());
        panic!(
            "the scrape differs from the fixture ({} written): {first}",
            path.display()
        );
    }
}

crate::on_both_backends!(scrape_matches_the_fixture);
