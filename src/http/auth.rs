//! `/api/auth/*`: register, login, change-password, me, logout (SPEC section 3).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Json, Router, routing};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiJson, Auth, ClientAddr};
use crate::clock::rfc3339;
use crate::passwords::Caller;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/auth/register", routing::post(register))
        .route("/api/auth/login", routing::post(login))
        .route("/api/auth/change-password", routing::post(change_password))
        .route("/api/auth/me", routing::get(me))
        .route("/api/auth/logout", routing::post(logout))
}

#[derive(Deserialize)]
pub struct RegisterRequest {
    pub email: String,
    pub password: SecretString,
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Serialize)]
pub struct UserResponse {
    pub id: String,
    pub email: String,
    pub name: Option<String>,
}

async fn register(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    ApiJson(req): ApiJson<RegisterRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let caller = Caller { client_addr: &addr };
    let user = state
        .passwords
        .register(&req.email, req.password, req.name, &caller)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(UserResponse {
            id: user.id,
            email: user.email,
            name: user.name,
        }),
    ))
}

#[derive(Deserialize)]
pub struct LoginRequest {
    pub email: String,
    pub password: SecretString,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LoginResponse {
    pub id: String,
    pub email: String,
    pub name: Option<String>,
    pub token: String,
    pub expires_at: String,
}

async fn login(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<Json<LoginResponse>, ApiError> {
    let caller = Caller { client_addr: &addr };
    let done = state
        .passwords
        .login(&req.email, req.password, &caller)
        .await?;
    Ok(Json(LoginResponse {
        id: done.user.id,
        email: done.user.email,
        name: done.user.name,
        token: done.session.token.expose_secret().to_string(),
        expires_at: rfc3339(done.session.expires_at_ms),
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangePasswordRequest {
    pub current_password: SecretString,
    pub new_password: SecretString,
}

async fn change_password(
    State(state): State<AppState>,
    Auth(who): Auth,
    ClientAddr(addr): ClientAddr,
    ApiJson(req): ApiJson<ChangePasswordRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let caller = Caller { client_addr: &addr };
    state
        .passwords
        .change_password(
            &who.user_id,
            req.current_password,
            req.new_password,
            who.session_hash(),
            &caller,
        )
        .await?;
    Ok(Json(
        serde_json::json!({ "message": "Password changed successfully" }),
    ))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MeResponse {
    pub id: String,
    pub email: String,
    pub name: Option<String>,
    pub password_changed_at: Option<String>,
}

async fn me(State(state): State<AppState>, Auth(who): Auth) -> Result<Json<MeResponse>, ApiError> {
    let user = state.passwords.me(&who.user_id).await?;
    Ok(Json(MeResponse {
        id: user.id,
        email: user.email,
        name: user.name,
        password_changed_at: user.password_changed_at.map(rfc3339),
    }))
}

async fn logout(State(state): State<AppState>, Auth(who): Auth) -> Result<StatusCode, ApiError> {
    state.passwords.logout(who.session_hash()).await?;
    Ok(StatusCode::NO_CONTENT)
}
