//! Prometheus metrics at `/metrics`, kept in `prometheus-client` metrics with typed label sets and exposed
//! in the Prometheus text format 0.0.4 (what every scraper has always been given here; the library's
//! OpenMetrics encoder is not used).
//!
//! Two scopes:
//! - [`Metrics`]: one registry per running service ([`crate::app::Services`]), fed by the HTTP middleware:
//!   requests by route template and status, latency histograms, rate-limit rejections, requests in flight.
//!   Per instance, so that several services in one process (the tests) do not mix their counts.
//! - Process-global counters for code that holds no handle to the service: [`refresh_outcome`] (the
//!   refresh engine) and [`secret_store_error`] (the credential service). Every instance's registry holds
//!   the same two metrics, so every `/metrics` shows them.
//!
//! Labels never carry a secret or a raw path: routes are axum's matched route templates
//! (`/api/tokens/{provider}`), `unmatched` for anything that matched no route; methods outside the
//! standard set are `other`; providers are catalog ids.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::http::Method;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

mod client_connections;
pub use client_connections::ClientConnections;

/// The `route` label of requests that matched no route (404 fallback).
pub const UNMATCHED: &str = "unmatched";

/// Routes whose 429 answers are counted as rate-limit rejections.
const RATE_LIMITED_ROUTES: [&str; 2] = ["/api/auth/login", "/api/auth/change-password"];

/// Latency histogram bucket bounds, in seconds.
const BUCKETS: [f64; 12] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// Content type of the text exposition format (0.0.4).
pub use prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// How a refresh attempt that reached the provider ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefreshOutcome {
    Ok,
    NeedsReauth,
    Degraded,
}

impl RefreshOutcome {
    pub const ALL: [RefreshOutcome; 3] = [Self::Ok, Self::NeedsReauth, Self::Degraded];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::NeedsReauth => "needs_reauth",
            Self::Degraded => "degraded",
        }
    }
}

impl EncodeLabelValue for RefreshOutcome {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        std::fmt::Write::write_str(encoder, self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: &'static str,
    status: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct LatencyLabels {
    route: String,
    method: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RouteLabels {
    route: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StatusLabels {
    status: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RefreshLabels {
    provider: &'static str,
    outcome: RefreshOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

type LatencyFamily = Family<LatencyLabels, Histogram, fn() -> Histogram>;

/// One service instance's metrics. Cheap to clone (shared).
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: LatencyFamily,
    rate_limited: Family<RouteLabels, Counter>,
    in_flight: Gauge<i64, AtomicI64>,
    audit_write_failures: Counter<u64, AtomicU64>,
    connections: Family<StatusLabels, Gauge>,
    client_connections: ClientConnections,
    webhooks: WebhookCounters,
    webhook_backlog: Gauge,
    webhook_dead: Gauge,
    /// Held while a scrape sets its scrape-time values and encodes, so that two scrapes do not mix them.
    scrape: Mutex<()>,
}

/// Keeps one thing counted in a gauge until dropped (also when the future holding it is cancelled): a
/// request in flight, a client connection in a state.
pub struct Counted(Gauge<i64, AtomicI64>);

impl Counted {
    fn enter(gauge: &Gauge<i64, AtomicI64>) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Values read at scrape time from other services.
#[derive(Debug, Default, Clone)]
pub struct ScrapeValues {
    /// [`crate::audit::Auditor::failed_writes`].
    pub audit_write_failures: u64,
    /// Stored connections per status (`active`, `degraded`, `needs_reauth`, `unchecked`), counted in SQL at scrape time.
    pub connections_by_status: Vec<(String, i64)>,
    /// Change events in the outbox: `(waiting, dead)`.
    pub outbox: (i64, i64),
}

/// The webhook deliverer's counts. Cheap to clone (shared).
#[derive(Clone, Default)]
pub struct WebhookCounters {
    delivered: Counter,
    failed: Counter,
    dead: Counter,
}

impl WebhookCounters {
    pub fn delivered(&self) {
        self.delivered.inc();
    }

    pub fn failed(&self) {
        self.failed.inc();
    }

    pub fn dead(&self) {
        self.dead.inc();
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let requests = Family::default();
        let latency = LatencyFamily::new_with_constructor(|| Histogram::new(BUCKETS));
        let rate_limited = Family::default();
        let in_flight = Gauge::default();
        let audit_write_failures = Counter::default();
        let connections = Family::default();
        let webhooks = WebhookCounters::default();
        let (webhook_backlog, webhook_dead) = (Gauge::default(), Gauge::default());
        // Every limited route from zero, so that rates work from the first scrape.
        for route in RATE_LIMITED_ROUTES {
            let _created = rate_limited.get_or_create(&RouteLabels { route });
        }

        // Help texts without a final period: the registry adds one.
        let mut r = Registry::default();
        let build = Info::new(BuildLabels {
            version: env!("CARGO_PKG_VERSION"),
        });
        r.register("tokenkeeper_build", "Build information; always 1", build);
        r.register(
            "tokenkeeper_http_requests",
            "HTTP requests answered, by matched route template, method and status",
            requests.clone(),
        );
        r.register(
            "tokenkeeper_http_request_duration_seconds",
            "Time from request to response headers, by matched route template and method",
            latency.clone(),
        );
        r.register(
            "tokenkeeper_rate_limit_rejections",
            "Requests refused by the brute-force limiter (429), by route",
            rate_limited.clone(),
        );
        r.register(
            "tokenkeeper_http_requests_in_flight",
            "HTTP requests being handled now",
            in_flight.clone(),
        );
        let client_connections = Family::default();
        let clients = ClientConnections::of(&client_connections);
        r.register(
            "tokenkeeper_http_connections",
            "Client connections open, by state: waiting between requests or serving one",
            client_connections,
        );
        r.register(
            "tokenkeeper_audit_write_failures",
            "Audit events that could not be written (each is also logged)",
            audit_write_failures.clone(),
        );
        r.register(
            "tokenkeeper_connections",
            "Stored provider connections by status",
            connections.clone(),
        );
        r.register(
            "tokenkeeper_webhook_deliveries",
            "Change events delivered to the webhook receiver (a 2xx answer)",
            webhooks.delivered.clone(),
        );
        r.register(
            "tokenkeeper_webhook_delivery_failures",
            "Webhook delivery attempts that failed (retried with backoff)",
            webhooks.failed.clone(),
        );
        r.register(
            "tokenkeeper_webhook_events_given_up",
            "Change events marked dead after failing for a day",
            webhooks.dead.clone(),
        );
        r.register(
            "tokenkeeper_webhook_backlog",
            "Change events waiting in the outbox for delivery",
            webhook_backlog.clone(),
        );
        r.register(
            "tokenkeeper_webhook_dead_events",
            "Change events kept in the outbox as dead",
            webhook_dead.clone(),
        );
        let g = global();
        r.register(
            "tokenkeeper_refreshes",
            "Credential refresh attempts that reached the provider, by provider and outcome (process-wide)",
            g.refreshes.clone(),
        );
        r.register(
            "tokenkeeper_secret_store_errors",
            "Secret store (Vault or embedded) operations that failed as unavailable (process-wide)",
            g.secret_store_errors.clone(),
        );
        Self {
            inner: Arc::new(Inner {
                registry: r,
                requests,
                latency,
                rate_limited,
                in_flight,
                audit_write_failures,
                connections,
                client_connections: clients,
                webhooks,
                webhook_backlog,
                webhook_dead,
                scrape: Mutex::new(()),
            }),
        }
    }

    /// The webhook deliverer's counters.
    pub fn webhooks(&self) -> WebhookCounters {
        self.inner.webhooks.clone()
    }

    /// The gauges of open client connections, for the accept loop.
    pub fn client_connections(&self) -> ClientConnections {
        self.inner.client_connections.clone()
    }

    /// Marks a request in flight until the guard drops.
    pub fn in_flight(&self) -> Counted {
        Counted::enter(&self.inner.in_flight)
    }

    /// Records one answered request. `route` is the matched route template or [`UNMATCHED`].
    pub fn observe_request(&self, route: &str, method: &Method, status: u16, latency: Duration) {
        let method = method_label(method);
        let labels = RequestLabels {
            route: route.to_string(),
            method,
            status,
        };
        self.inner.requests.get_or_create(&labels).inc();
        let labels = LatencyLabels {
            route: labels.route,
            method,
        };
        self.inner.latency.get_or_create(&labels).observe(latency.as_secs_f64());
        if status == 429
            && let Some(route) = RATE_LIMITED_ROUTES.into_iter().find(|r| *r == route)
        {
            self.inner.rate_limited.get_or_create(&RouteLabels { route }).inc();
        }
    }

    /// The whole exposition: this instance's metrics, the scrape-time values, the global counters.
    pub fn render(&self, values: ScrapeValues) -> String {
        let _one_scrape = self.inner.scrape.lock().unwrap_or_else(|p| p.into_inner());
        let i = &self.inner;
        i.audit_write_failures
            .inner()
            .store(values.audit_write_failures, Ordering::Relaxed);
        // Only the statuses that have rows, as counted now.
        i.connections.clear();
        for (status, n) in values.connections_by_status {
            i.connections.get_or_create(&StatusLabels { status }).set(n);
        }
        i.webhook_backlog.set(values.outbox.0);
        i.webhook_dead.set(values.outbox.1);
        let mut out = String::with_capacity(8 * 1024);
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &i.registry);
        out
    }
}

// ---- process-global counters --------------------------------------------------------------------------

struct Global {
    refreshes: Family<RefreshLabels, Counter>,
    secret_store_errors: Counter,
}

fn global() -> &'static Global {
    static GLOBAL: OnceLock<Global> = OnceLock::new();
    GLOBAL.get_or_init(|| {
        let refreshes = Family::default();
        // Every catalog provider and outcome, from zero, so that rates work from the first scrape.
        for p in crate::providers::catalog() {
            for outcome in RefreshOutcome::ALL {
                let _created = refreshes.get_or_create(&RefreshLabels {
                    provider: p.id,
                    outcome,
                });
            }
        }
        Global {
            refreshes,
            secret_store_errors: Counter::default(),
        }
    })
}

/// Counts one refresh attempt of `provider` (a catalog id; anything else is not counted) that ended in
/// `outcome`. Process-wide.
pub fn refresh_outcome(provider: &str, outcome: RefreshOutcome) {
    if let Some(spec) = crate::providers::find(provider) {
        let labels = RefreshLabels {
            provider: spec.id,
            outcome,
        };
        global().refreshes.get_or_create(&labels).inc();
    }
}

/// Counts one failed secret-store operation (the store was unreachable or refused). Process-wide.
pub fn secret_store_error() {
    global().secret_store_errors.inc();
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

#[cfg(test)]
mod tests;
