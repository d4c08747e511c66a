//! Prometheus metrics, rendered by hand in the text exposition format (version 0.0.4) at `/metrics`.
//!
//! Two scopes:
//! - [`Metrics`]: one per running service ([`crate::app::Services`]), fed by the HTTP middleware:
//!   requests by route template and status, latency histograms, rate-limit rejections, requests in flight.
//!   Per instance, so that several services in one process (the tests) do not mix their counts.
//! - Process-global counters for code that holds no handle to the service: [`refresh_outcome`] (the
//!   refresh engine) and [`secret_store_error`] (the credential service). Every instance's `/metrics`
//!   shows them.
//!
//! Labels never carry a secret or a raw path: routes are axum's matched route templates
//! (`/api/tokens/{provider}`), `unmatched` for anything that matched no route; methods outside the
//! standard set are `other`; providers are catalog ids.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::http::Method;

/// The `route` label of requests that matched no route (404 fallback).
pub const UNMATCHED: &str = "unmatched";

/// Routes whose 429 answers are counted as rate-limit rejections.
pub const RATE_LIMITED_ROUTES: [&str; 2] = ["/api/auth/login", "/api/auth/change-password"];

/// The outcomes [`refresh_outcome`] is called with.
pub const REFRESH_OUTCOMES: [&str; 3] = ["ok", "needs_reauth", "degraded"];

/// Latency histogram bucket bounds, in seconds.
const BUCKETS: [f64; 12] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// Content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Default, Clone)]
struct Histogram {
    /// Non-cumulative counts per bucket; the last slot is `+Inf`.
    counts: [u64; BUCKETS.len() + 1],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, secs: f64) {
        let i = BUCKETS.iter().position(|b| secs <= *b).unwrap_or(BUCKETS.len());
        self.counts[i] += 1;
        self.sum += secs;
        self.count += 1;
    }
}

#[derive(Default)]
struct HttpCounters {
    /// (route, method, status) -> count
    requests: BTreeMap<(String, &'static str, u16), u64>,
    /// (route, method) -> latency
    latency: BTreeMap<(String, &'static str), Histogram>,
    /// route -> 429 answers
    rate_limited: BTreeMap<String, u64>,
}

/// One service instance's HTTP metrics. Cheap to clone (shared).
#[derive(Clone, Default)]
pub struct Metrics {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    http: Mutex<HttpCounters>,
    in_flight: AtomicI64,
}

/// Keeps a request counted as in flight until dropped (also when the request future is cancelled).
pub struct InFlight(Arc<Inner>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Values read at scrape time from other services.
#[derive(Debug, Default, Clone)]
pub struct ScrapeValues {
    /// [`crate::audit::Auditor::failed_writes`].
    pub audit_write_failures: u64,
    /// Stored connections per status (`active`, `degraded`, `needs_reauth`), counted in SQL at scrape time.
    pub connections_by_status: Vec<(String, i64)>,
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    /// Marks a request in flight until the guard drops.
    pub fn in_flight(&self) -> InFlight {
        self.inner.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.inner.clone())
    }

    /// Records one answered request. `route` is the matched route template or [`UNMATCHED`].
    pub fn observe_request(&self, route: &str, method: &Method, status: u16, latency: Duration) {
        let method = method_label(method);
        let mut h = self.inner.http.lock().unwrap_or_else(|p| p.into_inner());
        *h.requests.entry((route.to_string(), method, status)).or_default() += 1;
        h.latency
            .entry((route.to_string(), method))
            .or_default()
            .observe(latency.as_secs_f64());
        if status == 429 && RATE_LIMITED_ROUTES.contains(&route) {
            *h.rate_limited.entry(route.to_string()).or_default() += 1;
        }
    }

    /// Requests answered so far for `route` / `status` (all methods); for tests and diagnostics.
    pub fn requests(&self, route: &str, status: u16) -> u64 {
        let h = self.inner.http.lock().unwrap_or_else(|p| p.into_inner());
        h.requests
            .iter()
            .filter(|((r, _, s), _)| r == route && *s == status)
            .map(|(_, n)| n)
            .sum()
    }

    /// The whole exposition: this instance's HTTP metrics, the scrape-time values, the global counters.
    pub fn render(&self, values: ScrapeValues) -> String {
        let mut out = String::with_capacity(8 * 1024);
        header(
            &mut out,
            "tokenkeeper_build_info",
            "gauge",
            "Build information; always 1.",
        );
        let _ = writeln!(
            out,
            "tokenkeeper_build_info{{version=\"{}\"}} 1",
            escape(env!("CARGO_PKG_VERSION"))
        );

        {
            let h = self.inner.http.lock().unwrap_or_else(|p| p.into_inner());
            header(
                &mut out,
                "tokenkeeper_http_requests_total",
                "counter",
                "HTTP requests answered, by matched route template, method and status.",
            );
            for ((route, method, status), n) in &h.requests {
                let _ = writeln!(
                    out,
                    "tokenkeeper_http_requests_total{{route=\"{}\",method=\"{method}\",status=\"{status}\"}} {n}",
                    escape(route)
                );
            }

            header(
                &mut out,
                "tokenkeeper_http_request_duration_seconds",
                "histogram",
                "Time from request to response headers, by matched route template and method.",
            );
            for ((route, method), hist) in &h.latency {
                let labels = format!("route=\"{}\",method=\"{method}\"", escape(route));
                let mut cumulative = 0;
                for (i, bound) in BUCKETS.iter().enumerate() {
                    cumulative += hist.counts[i];
                    let _ = writeln!(
                        out,
                        "tokenkeeper_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {cumulative}"
                    );
                }
                cumulative += hist.counts[BUCKETS.len()];
                let _ = writeln!(
                    out,
                    "tokenkeeper_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {cumulative}"
                );
                let _ = writeln!(
                    out,
                    "tokenkeeper_http_request_duration_seconds_sum{{{labels}}} {}",
                    hist.sum
                );
                let _ = writeln!(
                    out,
                    "tokenkeeper_http_request_duration_seconds_count{{{labels}}} {}",
                    hist.count
                );
            }

            header(
                &mut out,
                "tokenkeeper_rate_limit_rejections_total",
                "counter",
                "Requests refused by the brute-force limiter (429), by route.",
            );
            for route in RATE_LIMITED_ROUTES {
                let n = h.rate_limited.get(route).copied().unwrap_or(0);
                let _ = writeln!(out, "tokenkeeper_rate_limit_rejections_total{{route=\"{route}\"}} {n}");
            }
        }

        header(
            &mut out,
            "tokenkeeper_http_requests_in_flight",
            "gauge",
            "HTTP requests being handled now.",
        );
        let _ = writeln!(
            out,
            "tokenkeeper_http_requests_in_flight {}",
            self.inner.in_flight.load(Ordering::Relaxed)
        );

        header(
            &mut out,
            "tokenkeeper_audit_write_failures_total",
            "counter",
            "Audit events that could not be written (each is also logged).",
        );
        let _ = writeln!(
            out,
            "tokenkeeper_audit_write_failures_total {}",
            values.audit_write_failures
        );

        header(
            &mut out,
            "tokenkeeper_connections",
            "gauge",
            "Stored provider connections by status.",
        );
        for (status, n) in &values.connections_by_status {
            let _ = writeln!(out, "tokenkeeper_connections{{status=\"{status}\"}} {n}");
        }

        let g = global();
        header(
            &mut out,
            "tokenkeeper_refreshes_total",
            "counter",
            "Credential refresh attempts that reached the provider, by provider and outcome (process-wide).",
        );
        {
            let mut refreshes: BTreeMap<(String, String), u64> = BTreeMap::new();
            // Every catalog provider and outcome, from zero, so that rates work from the first scrape.
            for p in crate::providers::catalog() {
                for o in REFRESH_OUTCOMES {
                    refreshes.insert((p.id.to_string(), o.to_string()), 0);
                }
            }
            let counted = g.refreshes.lock().unwrap_or_else(|p| p.into_inner());
            for (k, n) in counted.iter() {
                *refreshes.entry(k.clone()).or_default() += n;
            }
            drop(counted);
            for ((provider, outcome), n) in &refreshes {
                let _ = writeln!(
                    out,
                    "tokenkeeper_refreshes_total{{provider=\"{}\",outcome=\"{}\"}} {n}",
                    escape(provider),
                    escape(outcome)
                );
            }
        }

        header(
            &mut out,
            "tokenkeeper_secret_store_errors_total",
            "counter",
            "Secret store (Vault or embedded) operations that failed as unavailable (process-wide).",
        );
        let _ = writeln!(
            out,
            "tokenkeeper_secret_store_errors_total {}",
            g.secret_store_errors.load(Ordering::Relaxed)
        );
        out
    }
}

// ---- process-global counters --------------------------------------------------------------------------

#[derive(Default)]
struct Global {
    /// (provider, outcome) -> count
    refreshes: Mutex<BTreeMap<(String, String), u64>>,
    secret_store_errors: AtomicU64,
}

fn global() -> &'static Global {
    static GLOBAL: OnceLock<Global> = OnceLock::new();
    GLOBAL.get_or_init(Global::default)
}

/// Counts one refresh attempt of `provider` (a catalog id) that ended in `outcome`: `"ok"`,
/// `"needs_reauth"` or `"degraded"` (see [`REFRESH_OUTCOMES`]). Process-wide.
pub fn refresh_outcome(provider: &str, outcome: &str) {
    let mut m = global().refreshes.lock().unwrap_or_else(|p| p.into_inner());
    *m.entry((provider.to_string(), outcome.to_string())).or_default() += 1;
}

/// Counts one failed secret-store operation (the store was unreachable or refused). Process-wide.
pub fn secret_store_error() {
    global().secret_store_errors.fetch_add(1, Ordering::Relaxed);
}

/// The process-wide refresh count for `provider` / `outcome` (tests, diagnostics).
pub fn refreshes(provider: &str, outcome: &str) -> u64 {
    let m = global().refreshes.lock().unwrap_or_else(|p| p.into_inner());
    m.get(&(provider.to_string(), outcome.to_string()))
        .copied()
        .unwrap_or(0)
}

/// The process-wide secret-store error count (tests, diagnostics).
pub fn secret_store_errors() -> u64 {
    global().secret_store_errors.load(Ordering::Relaxed)
}

// ---- helpers --------------------------------------------------------------------------------------------

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A bounded set: arbitrary methods would let a client create unbounded label values.
fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Label value escaping of the text format: backslash, double quote, line feed.
fn escape(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_histograms() {
        let m = Metrics::new();
        let get = Method::GET;
        m.observe_request("/healthz", &get, 200, Duration::from_millis(1));
        m.observe_request("/healthz", &get, 200, Duration::from_millis(60));
        m.observe_request("/api/auth/login", &Method::POST, 429, Duration::from_millis(2));
        m.observe_request(UNMATCHED, &Method::from_bytes(b"BREW").unwrap(), 404, Duration::ZERO);
        let text = m.render(ScrapeValues {
            audit_write_failures: 3,
            connections_by_status: vec![("active".into(), 2)],
        });
        assert!(text.contains("tokenkeeper_connections{status=\"active\"} 2\n"));
        assert!(text.contains("tokenkeeper_http_requests_total{route=\"/healthz\",method=\"GET\",status=\"200\"} 2\n"));
        assert!(
            text.contains("tokenkeeper_http_requests_total{route=\"unmatched\",method=\"other\",status=\"404\"} 1\n")
        );
        assert!(text.contains(
            "tokenkeeper_http_request_duration_seconds_bucket{route=\"/healthz\",method=\"GET\",le=\"0.005\"} 1\n"
        ));
        assert!(text.contains(
            "tokenkeeper_http_request_duration_seconds_bucket{route=\"/healthz\",method=\"GET\",le=\"0.1\"} 2\n"
        ));
        assert!(text.contains(
            "tokenkeeper_http_request_duration_seconds_bucket{route=\"/healthz\",method=\"GET\",le=\"+Inf\"} 2\n"
        ));
        assert!(
            text.contains("tokenkeeper_http_request_duration_seconds_count{route=\"/healthz\",method=\"GET\"} 2\n")
        );
        assert!(text.contains("tokenkeeper_rate_limit_rejections_total{route=\"/api/auth/login\"} 1\n"));
        assert!(text.contains("tokenkeeper_rate_limit_rejections_total{route=\"/api/auth/change-password\"} 0\n"));
        assert!(text.contains("tokenkeeper_audit_write_failures_total 3\n"));
        assert!(text.contains("tokenkeeper_http_requests_in_flight 0\n"));
        assert_eq!(m.requests("/healthz", 200), 2);
        // Every sample line is `name{labels} value` or `name value`; every family has HELP and TYPE.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (_, value) = line.rsplit_once(' ').expect(line);
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }

    #[test]
    fn in_flight_guard_counts_down_on_drop() {
        let m = Metrics::new();
        let a = m.in_flight();
        let _b = m.in_flight();
        assert!(
            m.render(ScrapeValues::default())
                .contains("tokenkeeper_http_requests_in_flight 2\n")
        );
        drop(a);
        assert!(
            m.render(ScrapeValues::default())
                .contains("tokenkeeper_http_requests_in_flight 1\n")
        );
    }

    #[test]
    fn global_counters_start_at_zero_for_every_provider() {
        let text = Metrics::new().render(ScrapeValues::default());
        for p in crate::providers::catalog() {
            for o in REFRESH_OUTCOMES {
                assert!(text.contains(&format!(
                    "tokenkeeper_refreshes_total{{provider=\"{}\",outcome=\"{o}\"}}",
                    p.id
                )));
            }
        }
        let before = refreshes("test-provider", "ok");
        refresh_outcome("test-provider", "ok");
        assert_eq!(refreshes("test-provider", "ok"), before + 1);
        let before = secret_store_errors();
        secret_store_error();
        assert!(secret_store_errors() > before);
    }

    #[test]
    fn escapes_label_values() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
