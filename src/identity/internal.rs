//! Aurora's `X-User-ID` header, trusted only with `X-Internal-Secret` equal to the configured secret
//! (constant-time compare). With no secret configured the header is ignored, never trusted.

use axum::http::HeaderMap;
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

use super::{AuthError, valid_external_user_id};

pub const USER_HEADER: &str = "x-user-id";
pub const SECRET_HEADER: &str = "x-internal-secret";

/// `Ok(None)` when no `X-User-ID` is present; `Err` when it is present but not vouched for.
pub fn user_from_headers(headers: &HeaderMap, secret: Option<&SecretString>) -> Result<Option<String>, AuthError> {
    let Some(user) = headers.get(USER_HEADER) else {
        return Ok(None);
    };
    let expected = secret.map(|s| s.expose_secret().as_bytes()).filter(|s| !s.is_empty());
    let given = headers.get(SECRET_HEADER).map(|v| v.as_bytes());
    let vouched = match (expected, given) {
        (Some(e), Some(g)) => bool::from(e.ct_eq(g)),
        _ => false,
    };
    let user = user.to_str().map_err(|_| AuthError::Unauthenticated)?.trim();
    if vouched && valid_external_user_id(user) {
        Ok(Some(user.to_string()))
    } else {
        Err(AuthError::Unauthenticated)
    }
}
