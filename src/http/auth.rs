//! `/api/auth/*`: register, login, change-password, me, logout (`docs/API.md`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Json, Router, routing};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ClientAddr, OwnAccount};
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

#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"email": "ada@example.com", "password": "correct-horse-battery", "name": "Ada"}))]
pub struct RegisterRequest {
    /// The account's e-mail address (unique, compared case-insensitively).
    #[schema(format = Email, max_length = 254)]
    pub email: String,
    /// At least 8 characters; at most 72 bytes with bcrypt (the default), 1024 with argon2id.
    #[schema(value_type = String, format = Password, min_length = 8)]
    pub password: SecretString,
    /// Display name, at most 200 characters.
    #[schema(max_length = 200)]
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct UserResponse {
    pub id: String,
    pub email: String,
    pub name: Option<String>,
}

/// Register a user with e-mail and password.
#[utoipa::path(
    post,
    path = "/api/auth/register",
    operation_id = "register",
    tag = "auth",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "The user was created", body = UserResponse),
        (status = 400, description = "Malformed body, invalid e-mail or password too short or long", body = ErrorBody),
        (status = 409, description = "The e-mail address is already registered", body = ErrorBody),
        (status = 413, description = "Request body too large", body = ErrorBody),
        (status = 415, description = "Content-Type is not application/json", body = ErrorBody),
        (status = 429, description = "Too many registrations from this address within the hour", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 500, description = "Internal error (details only in the log)", body = ErrorBody),
        (status = 503, description = "Too much password work waiting already (retry after `Retry-After` seconds), or the audit log cannot be written (`TOKENKEEPER_AUDIT_LOG`, failing closed)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait, when the hashing queue is full"))),
    ),
)]
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

#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"email": "ada@example.com", "password": "correct-horse-battery"}))]
pub struct LoginRequest {
    pub email: String,
    #[schema(value_type = String, format = Password)]
    pub password: SecretString,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoginResponse {
    pub id: String,
    pub email: String,
    pub name: Option<String>,
    /// The session token (`tks_...`), sent back as `Authorization: Bearer <token>`.
    pub token: String,
    /// When the session expires (RFC 3339).
    pub expires_at: String,
}

/// Log in with e-mail and password; answers a Bearer session token.
///
/// Repeated failures for an account or a client address are answered 429 with `Retry-After`.
#[utoipa::path(
    post,
    path = "/api/auth/login",
    operation_id = "login",
    tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in", body = LoginResponse),
        (status = 400, description = "Malformed body or missing fields", body = ErrorBody),
        (status = 401, description = "Wrong e-mail or password", body = ErrorBody),
        (status = 413, description = "Request body too large", body = ErrorBody),
        (status = 415, description = "Content-Type is not application/json", body = ErrorBody),
        (status = 429, description = "Too many failed attempts", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
        (status = 500, description = "Internal error (details only in the log)", body = ErrorBody),
        (status = 503, description = "Too much password work waiting already (retry after `Retry-After` seconds), or the audit log cannot be written (`TOKENKEEPER_AUDIT_LOG`, failing closed)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait, when the hashing queue is full"))),
    ),
)]
async fn login(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<Json<LoginResponse>, ApiError> {
    let caller = Caller { client_addr: &addr };
    let done = state.passwords.login(&req.email, req.password, &caller).await?;
    Ok(Json(LoginResponse {
        id: done.user.id,
        email: done.user.email,
        name: done.user.name,
        token: done.session.token.expose_secret().to_string(),
        expires_at: rfc3339(done.session.expires_at_ms),
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChangePasswordRequest {
    #[schema(value_type = String, format = Password)]
    pub current_password: SecretString,
    /// At least 8 characters; at most 72 bytes with bcrypt (the default), 1024 with argon2id.
    #[schema(value_type = String, format = Password, min_length = 8)]
    pub new_password: SecretString,
}

#[derive(Serialize, ToSchema)]
pub struct MessageResponse {
    pub message: String,
}

/// Change the caller's password. Every other session of the user is ended; the caller's own stays. Clears
/// `mustChangePassword`: a session held to changing its password may do anything again.
#[utoipa::path(
    post,
    path = "/api/auth/change-password",
    operation_id = "changePassword",
    tag = "auth",
    request_body = ChangePasswordRequest,
    security(("bearer" = []), ("authjs_session_cookie" = []), ("internal_user_id" = [], "internal_secret" = [])),
    responses(
        (status = 200, description = "Password changed", body = MessageResponse,
            example = json!({"message": "Password changed successfully"})),
        (status = 400, description = "Malformed body or unacceptable new password", body = ErrorBody),
        (status = 401, description = "Not authenticated, or the current password is wrong", body = ErrorBody),
        (status = 404, description = "The caller's user does not exist (internal caller)", body = ErrorBody),
        (status = 413, description = "Request body too large", body = ErrorBody),
        (status = 415, description = "Content-Type is not application/json", body = ErrorBody),
        (status = 429, description = "Too many failed attempts", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
        (status = 500, description = "Internal error (details only in the log)", body = ErrorBody),
        (status = 503, description = "Too much password work waiting already (retry after `Retry-After` seconds), or the audit log cannot be written (`TOKENKEEPER_AUDIT_LOG`, failing closed)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait, when the hashing queue is full"))),
    ),
)]
async fn change_password(
    State(state): State<AppState>,
    OwnAccount(who): OwnAccount,
    ClientAddr(addr): ClientAddr,
    ApiJson(req): ApiJson<ChangePasswordRequest>,
) -> Result<Json<MessageResponse>, ApiError> {
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
    Ok(Json(MessageResponse {
        message: "Password changed successfully".into(),
    }))
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MeResponse {
    pub id: String,
    pub email: String,
    pub name: Option<String>,
    /// When the password was last changed (RFC 3339); null if never.
    pub password_changed_at: Option<String>,
    /// The password was handed to the user (an account adopted from Aurora): until it is changed, their
    /// Tokenkeeper sessions may only change it, read this, and log out (403 `password_change_required`).
    pub must_change_password: bool,
}

/// The caller's account.
#[utoipa::path(
    get,
    path = "/api/auth/me",
    operation_id = "me",
    tag = "auth",
    security(("bearer" = []), ("authjs_session_cookie" = []), ("internal_user_id" = [], "internal_secret" = [])),
    responses(
        (status = 200, description = "The caller", body = MeResponse),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "The caller's user does not exist (internal caller)", body = ErrorBody),
        (status = 500, description = "Internal error (details only in the log)", body = ErrorBody),
    ),
)]
async fn me(State(state): State<AppState>, OwnAccount(who): OwnAccount) -> Result<Json<MeResponse>, ApiError> {
    let user = state.passwords.me(&who.user_id).await?;
    Ok(Json(MeResponse {
        id: user.id,
        email: user.email,
        name: user.name,
        password_changed_at: user.password_changed_at.map(rfc3339),
        must_change_password: user.must_change_password,
    }))
}

/// End the caller's Tokenkeeper session (Bearer `tks_...`); other methods have no session here to end.
#[utoipa::path(
    post,
    path = "/api/auth/logout",
    operation_id = "logout",
    tag = "auth",
    security(("bearer" = []), ("authjs_session_cookie" = []), ("internal_user_id" = [], "internal_secret" = [])),
    responses(
        (status = 204, description = "Logged out"),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 500, description = "Internal error (details only in the log)", body = ErrorBody),
    ),
)]
async fn logout(State(state): State<AppState>, OwnAccount(who): OwnAccount) -> Result<StatusCode, ApiError> {
    state.passwords.logout(who.session_hash()).await?;
    Ok(StatusCode::NO_CONTENT)
}
