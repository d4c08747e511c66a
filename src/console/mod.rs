//! The web console: server-rendered pages at `/` for people (sign in, connections, connect, disconnect,
//! password, members, audit trail). A driver beside `http/`: its handlers call the same services as the
//! API's (`AppState` holds nothing else), and map failures through the same `ApiError`.
//!
//! No JavaScript at all: every action is a plain form, so the Content-Security-Policy allows scripts from
//! nowhere. The stylesheet is compiled into the binary and served from `/assets/console.css`.

mod account;
mod audit;
mod connections;
mod forms;
mod layout;
mod members;
mod next;
mod oauth;
mod overview;
mod session;

use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use axum::{Extension, Router, routing};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::config::ConsoleSettings;
use crate::http::AppState;

pub use session::{CSRF_FIELD, SESSION_COOKIE};

/// Nothing from anywhere but this origin's stylesheet; forms post only here; never framed.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
    form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

const STYLESHEET: &str = include_str!("console.css");

/// The console's routes (empty when `TOKENKEEPER_CONSOLE=false`).
pub fn routes(settings: ConsoleSettings) -> Router<AppState> {
    if !settings.enabled {
        return Router::new();
    }
    let pages = Router::new()
        .route("/", routing::get(overview::list))
        .route("/check/{provider}", routing::post(overview::check))
        .route("/sign-in", routing::get(session::sign_in_page).post(session::sign_in))
        .route("/sign-out", routing::post(session::sign_out))
        .route("/org", routing::post(session::switch_org))
        .route(
            "/connect/{provider}",
            routing::get(connections::connect_page).post(connections::connect),
        )
        .route("/connect/{provider}/authorize", routing::post(oauth::start))
        .route(
            "/disconnect/{provider}",
            routing::get(connections::disconnect_page).post(connections::disconnect),
        )
        .route(
            session::PASSWORD_PAGE,
            routing::get(account::page).post(account::change),
        )
        .route("/members", routing::get(members::page).post(members::add))
        .route("/orgs", routing::post(members::create_org))
        .route("/members/{user}/role", routing::post(members::set_role))
        .route("/members/{user}/remove", routing::post(members::remove))
        .route("/audit", routing::get(audit::page))
        // Pages carry CSRF tokens and account data: never cached.
        .layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ));
    pages
        .route("/assets/console.css", routing::get(stylesheet))
        // A page that lets a form go elsewhere (an OAuth provider's consent page) sets its own.
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ))
        .layer(Extension(settings))
}

/// `page` with the console's policy, its forms also allowed to lead to `origin` (a provider's authorize
/// endpoint, which the console's redirect sends the browser to).
fn with_form_action(origin: &str, page: maud::Markup) -> axum::response::Response {
    let policy = CONTENT_SECURITY_POLICY.replace("form-action 'self'", &format!("form-action 'self' {origin}"));
    match HeaderValue::from_str(&policy) {
        Ok(v) => ([(header::CONTENT_SECURITY_POLICY, v)], page).into_response(),
        // An origin is ASCII without controls; should it not be, the strict policy stays.
        Err(_) => page.into_response(),
    }
}

async fn stylesheet() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLESHEET)
}
