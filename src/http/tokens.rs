//! `/api/tokens/*`: store, list, read and delete provider credentials (SPEC section 4).

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router, routing};
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiJson, Auth, ClientAddr};
use crate::credentials::ConnectionView;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/tokens", routing::get(list))
        .route("/api/tokens/{provider}", routing::put(store).get(connection).delete(delete))
        .route("/api/tokens/{provider}/credentials", routing::get(credentials))
        .route("/api/tokens/{provider}/refresh", routing::post(refresh))
}

async fn store(
    State(state): State<AppState>,
    Auth(who): Auth,
    ClientAddr(addr): ClientAddr,
    Path(provider): Path<String>,
    ApiJson(body): ApiJson<Value>,
) -> Result<Response, ApiError> {
    let stored = state.credentials.store_tokens_in_db(&who.user_id, &body, &provider, &addr).await?;
    let mut out = serde_json::to_value(&stored.connection).map_err(ApiError::internal)?;
    if let (Some(id), Some(o)) = (stored.generated_external_id, out.as_object_mut()) {
        // Shown once: the user puts it in the role's trust policy.
        o.insert("generatedExternalId".into(), Value::String(id));
    }
    Ok((StatusCode::OK, Json(out)).into_response())
}

async fn list(State(state): State<AppState>, Auth(who): Auth) -> Result<Json<Value>, ApiError> {
    let connections = state.credentials.list(&who.user_id).await?;
    Ok(Json(json!({ "connections": connections })))
}

async fn connection(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path(provider): Path<String>,
) -> Result<Json<ConnectionView>, ApiError> {
    Ok(Json(state.credentials.connection(&who.user_id, &provider).await?))
}

async fn credentials(
    State(state): State<AppState>,
    Auth(who): Auth,
    ClientAddr(addr): ClientAddr,
    Path(provider): Path<String>,
) -> Result<Response, ApiError> {
    if !who.may_read_secrets() {
        return Err(ApiError::Forbidden("Credentials are only given to Bearer and internal callers".into()));
    }
    let data = state.credentials.get_token_data(&who.user_id, &provider, &addr).await?;
    let mut resp = Json(json!({ "provider": provider, "tokenData": Value::Object(data.0) })).into_response();
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp.headers_mut().insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    Ok(resp)
}

async fn refresh(
    State(state): State<AppState>,
    Auth(who): Auth,
    ClientAddr(addr): ClientAddr,
    Path(provider): Path<String>,
) -> Result<Json<ConnectionView>, ApiError> {
    Ok(Json(state.credentials.refresh_now(&who.user_id, &provider, &addr).await?))
}

async fn delete(
    State(state): State<AppState>,
    Auth(who): Auth,
    ClientAddr(addr): ClientAddr,
    Path(provider): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.credentials.delete(&who.user_id, &provider, &addr).await?;
    Ok(StatusCode::NO_CONTENT)
}
