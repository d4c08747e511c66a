use super::*;

fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn renders_counters_and_cumulative_histograms() {
    let m = Metrics::new();
    let get = Method::GET;
    m.observe_request("/healthz", &get, 200, Duration::from_millis(1));
    m.observe_request("/healthz", &get, 200, Duration::from_millis(60));
    m.observe_request("/api/auth/login", &Method::POST, 429, Duration::from_millis(2));
    m.observe_request("/api/tokens/{provider}", &Method::GET, 429, Duration::from_millis(2));
    m.observe_request(UNMATCHED, &Method::from_bytes(b"BREW").unwrap(), 404, Duration::ZERO);
    m.webhooks().delivered();
    m.webhooks().failed();
    m.webhooks().failed();
    let text = m.render(ScrapeValues {
        audit_write_failures: 3,
        connections_by_status: vec![("active".into(), 2)],
        outbox: (7, 1),
    });
    let expect = [
        ("tokenkeeper_connections{status=\"active\"}", 2.0),
        ("tokenkeeper_webhook_deliveries_total", 1.0),
        ("tokenkeeper_webhook_delivery_failures_total", 2.0),
        ("tokenkeeper_webhook_events_given_up_total", 0.0),
        ("tokenkeeper_webhook_backlog", 7.0),
        ("tokenkeeper_webhook_dead_events", 1.0),
        (
            "tokenkeeper_http_requests_total{route=\"/healthz\",method=\"GET\",status=\"200\"}",
            2.0,
        ),
        (
            "tokenkeeper_http_requests_total{route=\"unmatched\",method=\"other\",status=\"404\"}",
            1.0,
        ),
        (
            "tokenkeeper_http_request_duration_seconds_bucket{route=\"/healthz\",method=\"GET\",le=\"0.005\"}",
            1.0,
        ),
        (
            "tokenkeeper_http_request_duration_seconds_bucket{route=\"/healthz\",method=\"GET\",le=\"0.05\"}",
            1.0,
        ),
        (
            "tokenkeeper_http_request_duration_seconds_bucket{route=\"/healthz\",method=\"GET\",le=\"0.1\"}",
            2.0,
        ),
        (
            "tokenkeeper_http_request_duration_seconds_bucket{route=\"/healthz\",method=\"GET\",le=\"+Inf\"}",
            2.0,
        ),
        (
            "tokenkeeper_http_request_duration_seconds_count{route=\"/healthz\",method=\"GET\"}",
            2.0,
        ),
        (
            "tokenkeeper_http_request_duration_seconds_sum{route=\"/healthz\",method=\"GET\"}",
            0.061,
        ),
        (
            "tokenkeeper_rate_limit_rejections_total{route=\"/api/auth/login\"}",
            1.0,
        ),
        (
            "tokenkeeper_rate_limit_rejections_total{route=\"/api/auth/change-password\"}",
            0.0,
        ),
        ("tokenkeeper_audit_write_failures_total", 3.0),
        ("tokenkeeper_http_requests_in_flight", 0.0),
    ];
    for (series, value) in expect {
        assert_eq!(sample(&text, series), Some(value), "{series} in\n{text}");
    }
    // A 429 of a route without a limiter is not a rate-limit rejection.
    assert!(!text.contains("tokenkeeper_rate_limit_rejections_total{route=\"/api/tokens"));
    // Every family has HELP and TYPE under the name its samples carry (text format 0.0.4).
    assert!(text.contains("# TYPE tokenkeeper_http_requests_total counter\n"));
    assert!(text.contains("# HELP tokenkeeper_build_info Build information; always 1.\n"));
    assert!(!text.contains("# EOF"));
}

#[test]
fn connections_show_the_statuses_of_this_scrape_only() {
    let m = Metrics::new();
    let first = m.render(ScrapeValues {
        connections_by_status: vec![("active".into(), 2), ("degraded".into(), 1)],
        ..Default::default()
    });
    assert_eq!(
        sample(&first, "tokenkeeper_connections{status=\"degraded\"}"),
        Some(1.0)
    );
    let second = m.render(ScrapeValues {
        connections_by_status: vec![("active".into(), 1)],
        ..Default::default()
    });
    assert_eq!(sample(&second, "tokenkeeper_connections{status=\"active\"}"), Some(1.0));
    assert_eq!(sample(&second, "tokenkeeper_connections{status=\"degraded\"}"), None);
}

#[test]
fn in_flight_guard_counts_down_on_drop() {
    let m = Metrics::new();
    let in_flight = |m: &Metrics| {
        sample(
            &m.render(ScrapeValues::default()),
            "tokenkeeper_http_requests_in_flight",
        )
    };
    let a = m.in_flight();
    let _b = m.in_flight();
    assert_eq!(in_flight(&m), Some(2.0));
    drop(a);
    assert_eq!(in_flight(&m), Some(1.0));
}

#[test]
fn global_counters_start_at_zero_for_every_provider_and_count_only_catalog_ids() {
    let text = Metrics::new().render(ScrapeValues::default());
    for p in crate::providers::catalog() {
        for o in RefreshOutcome::ALL {
            let series = format!(
                "tokenkeeper_refreshes_total{{provider=\"{}\",outcome=\"{}\"}}",
                p.id,
                o.as_str()
            );
            assert!(sample(&text, &series).is_some(), "{series}");
        }
    }
    let count = || {
        let labels = RefreshLabels {
            provider: "splunk",
            outcome: RefreshOutcome::NeedsReauth,
        };
        global().refreshes.get(&labels).map(|c| c.get())
    };
    let before = count().unwrap();
    refresh_outcome("splunk", RefreshOutcome::NeedsReauth);
    assert!(count().unwrap() > before);
    // Not a catalog id: no label value made of it.
    refresh_outcome("/api/tokens/x", RefreshOutcome::Ok);
    let text = Metrics::new().render(ScrapeValues::default());
    assert!(!text.contains("/api/tokens/x"));

    let before = global().secret_store_errors.get();
    secret_store_error();
    assert!(global().secret_store_errors.get() > before);
}

#[test]
fn label_values_are_escaped() {
    let m = Metrics::new();
    m.observe_request("a\"b\\c\nd", &Method::GET, 200, Duration::ZERO);
    let text = m.render(ScrapeValues::default());
    assert!(text.contains("route=\"a\\\"b\\\\c\\nd\""), "{text}");
}
