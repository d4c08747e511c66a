//! `GET /api/audit`: the caller's own audit events, newest first, paged with `limit` and `before`.

use axum::extract::{Query, State};
use axum::{Json, Router, routing};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use super::extract::Auth;
use crate::clock::rfc3339;

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/audit", routing::get(list))
}

#[derive(Deserialize)]
struct Page {
    limit: Option<i64>,
    before: Option<i64>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EventView {
    id: i64,
    kind: String,
    provider: Option<String>,
    outcome: String,
    client_addr: Option<String>,
    detail: Option<String>,
    at: String,
}

async fn list(
    State(state): State<AppState>,
    Auth(who): Auth,
    Query(page): Query<Page>,
) -> Result<Json<Value>, ApiError> {
    let limit = page.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::BadRequest("limit must be between 1 and 200".into()));
    }
    let rows = state.audit.list(&who.user_id, page.before, limit).await.map_err(ApiError::internal)?;
    let next = (rows.len() as i64 == limit).then(|| rows.last().map(|r| r.id)).flatten();
    let events: Vec<EventView> = rows
        .into_iter()
        .map(|r| EventView {
            id: r.id,
            kind: r.kind,
            provider: r.provider,
            outcome: r.outcome,
            client_addr: r.client_addr,
            detail: r.detail,
            at: rfc3339(r.at),
        })
        .collect();
    Ok(Json(json!({ "events": events, "nextBefore": next })))
}
