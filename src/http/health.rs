//! `/healthz`: the process is alive and serving. It touches nothing else, so it stays fast under load.

use axum::{Json, Router, routing};
use serde_json::{Value, json};

use axum::extract::State;
use axum::http::StatusCode;

use super::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/healthz", routing::get(healthz)).route("/readyz", routing::get(readyz))
}

async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `/readyz`: 200 when the database and the secret store both answer; 503 naming the one that does not.
async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let (db, secrets) = state.readiness.check().await;
    if db.is_none() && secrets.is_none() {
        return (StatusCode::OK, Json(json!({ "status": "ready" })));
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
    (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "error": error, "unavailable": down })))
}
