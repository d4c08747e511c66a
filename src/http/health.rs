//! `/healthz`: the process is alive and serving. It touches nothing else, so it stays fast under load.

use axum::{Json, Router, routing};
use serde_json::{Value, json};

use super::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/healthz", routing::get(healthz))
}

async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}
