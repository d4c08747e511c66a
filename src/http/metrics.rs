//! `/metrics` (Prometheus text format) and the middleware that feeds it: one count and one latency
//! observation per request, labelled with axum's matched route template (never the raw path).

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Router, routing};

use super::AppState;
use crate::metrics::{self, Metrics, ScrapeValues};

pub fn routes() -> Router<AppState> {
    Router::new().route("/metrics", routing::get(scrape))
}

/// Every metric of this instance, plus the process-wide refresh and secret-store counters.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "health",
    responses((status = 200, description = "Prometheus text exposition format", body = String, content_type = "text/plain")),
)]
pub(crate) async fn scrape(State(state): State<AppState>) -> impl IntoResponse {
    let connections_by_status = state.credentials.count_by_status().await.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "metrics: could not count connections");
        Vec::new()
    });
    let outbox = state.credentials.outbox_counts().await.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "metrics: could not count change events");
        (0, 0)
    });
    let values = ScrapeValues {
        audit_write_failures: state.audit.failed_writes(),
        connections_by_status,
        outbox,
    };
    ([(CONTENT_TYPE, metrics::CONTENT_TYPE)], state.metrics.render(values))
}

/// Middleware (installed with `Router::layer`, so it runs after routing and sees [`MatchedPath`]).
pub async fn track(State(metrics): State<Metrics>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| metrics::UNMATCHED.to_string(), |p| p.as_str().to_string());
    let method = req.method().clone();
    let _in_flight = metrics.in_flight();
    let started = Instant::now();
    let res = next.run(req).await;
    metrics.observe_request(&route, &method, res.status().as_u16(), started.elapsed());
    res
}
