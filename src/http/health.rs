//! `/healthz`: the process is alive and serving. It touches nothing else, so it stays fast under load.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router, routing};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", routing::get(healthz))
        .route("/readyz", routing::get(readyz))
}

#[derive(Serialize, ToSchema)]
pub struct Status {
    /// `ok` (`/healthz`) or `ready` (`/readyz`).
    pub status: &'static str,
}

/// `/readyz` when a dependency does not answer.
#[derive(Serialize, ToSchema)]
pub struct NotReady {
    /// E.g. `Not ready: secret store unavailable`.
    pub error: String,
    /// Which: `database`, `secret store`, or both.
    pub unavailable: Vec<&'static str>,
}

/// The process is alive.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    tag = "health",
    responses((status = 200, description = "Alive", body = Status, example = json!({"status": "ok"}))),
)]
async fn healthz() -> Json<Status> {
    Json(Status { status: "ok" })
}

/// `/readyz`: 200 when the database and the secret store both answer; 503 naming the one that does not.
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    tag = "health",
    responses(
        (status = 200, description = "The database and the secret store answer", body = Status,
            example = json!({"status": "ready"})),
        (status = 503, description = "The database or the secret store does not answer", body = NotReady),
    ),
)]
async fn readyz(State(state): State<AppState>) -> Response {
    let (db, secrets) = state.readiness.check().await;
    if db.is_none() && secrets.is_none() {
        return (StatusCode::OK, Json(Status { status: "ready" })).into_response();
    }
    let mut down = Vec::new();
    if let Some(e) = db {
        tracing::warn!(error = %e, "readiness: database unreachable");
        down.push("database");
    }
    if let Some(e) = secrets {
        tracing::warn!(error = %e, "readiness: secret store unreachable");
        down.push("secret store");
    }
    let error = format!("Not ready: {} unavailable", down.join(" and "));
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(NotReady {
            error,
            unavailable: down,
        }),
    )
        .into_response()
}
