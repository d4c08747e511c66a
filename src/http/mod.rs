//! The HTTP surface. Handlers parse, call a service, and shape the answer; they never touch SQL or the
//! secret store directly.

pub mod audit;
pub mod auth;
pub mod checks;
pub mod connect;
pub mod connect_aws;
mod connection;
pub mod error;
pub mod extract;
pub mod headers;
pub mod health;
mod idle_io;
pub mod metrics;
pub mod openapi;
pub mod orgs;
pub mod providers;
pub mod serve;
pub mod tokens;

use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderName, StatusCode};
use axum::response::IntoResponse;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::credentials::CredentialService;
use crate::identity::Authenticator;
use crate::passwords::PasswordService;
pub use error::ApiError;

/// What handlers can reach: services, never storage; behind one `Arc`, since every request clones the
/// state (one reference-count increment rather than a copy of each service handle).
#[derive(Clone)]
pub struct AppState(std::sync::Arc<AppServices>);

impl AppState {
    pub fn new(services: AppServices) -> Self {
        Self(std::sync::Arc::new(services))
    }
}

impl std::ops::Deref for AppState {
    type Target = AppServices;

    fn deref(&self) -> &AppServices {
        &self.0
    }
}

pub struct AppServices {
    pub passwords: PasswordService,
    pub authenticator: Authenticator,
    pub credentials: CredentialService,
    pub connect: crate::connect::ConnectService,
    pub orgs: crate::orgs::OrgService,
    pub audit: crate::audit::Auditor,
    pub readiness: crate::app::Readiness,
    pub trusted_proxies: crate::net::TrustedProxies,
    pub metrics: crate::metrics::Metrics,
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub fn router(
    state: AppState,
    max_body_bytes: usize,
    request_timeout: Duration,
    console: crate::config::ConsoleSettings,
) -> Router {
    let time_limit = axum::middleware::from_fn_with_state(request_timeout, serve::limit_request_time);
    let request_metrics = axum::middleware::from_fn_with_state(state.metrics.clone(), metrics::track);
    let router = Router::new()
        .merge(headers::no_store(auth::routes()))
        .merge(health::routes())
        .merge(metrics::routes())
        .merge(audit::routes())
        .merge(providers::routes())
        .merge(openapi::routes())
        .merge(headers::no_store(tokens::routes()))
        .merge(headers::no_store(connect::routes()))
        .merge(headers::no_store(checks::routes()))
        .merge(orgs::routes())
        // The web console: a driver of its own on the same services, behind the same limits and headers.
        .merge(crate::console::routes(console))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        // Inside the metrics, request id and trace layers: a request cut by the limit is counted and logged.
        .layer(time_limit)
        .layer(request_metrics)
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(
            // One log line per request (the response), in the span of its request id.
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request| {
                    let id = req
                        .headers()
                        .get(REQUEST_ID)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("-");
                    // `Router::layer` runs after routing: the matched route template is known here.
                    let route = req
                        .extensions()
                        .get::<MatchedPath>()
                        .map_or(crate::metrics::UNMATCHED, |p| p.as_str());
                    // The path only: query strings could carry secrets.
                    tracing::info_span!(
                        "request",
                        method = %req.method(),
                        route = %route,
                        path = %req.uri().path(),
                        request_id = %id
                    )
                })
                .on_response(
                    |res: &axum::response::Response, latency: Duration, _span: &tracing::Span| {
                        let (status, latency_ms) = (
                            res.status().as_u16(),
                            u64::try_from(latency.as_millis()).unwrap_or(u64::MAX),
                        );
                        if res.status().is_server_error() {
                            tracing::error!(status, latency_ms, "response");
                        } else {
                            tracing::info!(status, latency_ms, "response");
                        }
                    },
                )
                // 5xx are logged by `on_response` above (at ERROR): one line per request, not two.
                .on_failure(()),
        )
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid));
    headers::everywhere(router)
}

async fn not_found() -> impl IntoResponse {
    ApiError::NotFound("Not found".into())
}

async fn method_not_allowed() -> impl IntoResponse {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        axum::Json(serde_json::json!({ "error": "Method not allowed" })),
    )
}
