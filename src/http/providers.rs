//! `GET /api/providers`: the catalog (fields, which are secret, how each is refreshed). Public data.

use axum::{Json, Router, routing};
use serde_json::{Value, json};

use super::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/providers", routing::get(list))
}

async fn list() -> Json<Value> {
    Json(json!({ "providers": crate::providers::catalog() }))
}
