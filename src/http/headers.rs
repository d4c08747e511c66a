//! Response headers (`docs/OPERATING.md`, "Response headers"). On every response:
//! `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer`, and no framing (`X-Frame-Options:
//! DENY`, `Content-Security-Policy: frame-ancestors 'none'`; the Swagger UI at `/docs` is a page). On every
//! response of the routes that hand out a session token or a credential: `Cache-Control: no-store`.

use axum::Router;
use axum::http::{HeaderName, HeaderValue, header};
use tower_http::set_header::SetResponseHeaderLayer;

fn set(name: HeaderName, value: &'static str) -> SetResponseHeaderLayer<HeaderValue> {
    SetResponseHeaderLayer::overriding(name, HeaderValue::from_static(value))
}

/// The headers of every response, around the whole router (fallbacks and rejections included).
pub fn everywhere(router: Router) -> Router {
    router
        .layer(set(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .layer(set(header::REFERRER_POLICY, "no-referrer"))
        .layer(set(header::X_FRAME_OPTIONS, "DENY"))
        // The console sets its own, stricter policy (which also forbids framing).
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("frame-ancestors 'none'"),
        ))
}

/// For the routes of `/api/auth/*` (session tokens) and `/api/tokens/*` (credentials): every answer,
/// refusals included, so that no cache keeps a copy.
pub fn no_store<S: Clone + Send + Sync + 'static>(routes: Router<S>) -> Router<S> {
    routes.layer(set(header::CACHE_CONTROL, "no-store"))
}
