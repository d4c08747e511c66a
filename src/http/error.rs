//! The one HTTP error type: every failure becomes `{"error": "..."}` with its status code.
//! 500 bodies are generic; the detail goes to the log only.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use utoipa::ToSchema;

use crate::credentials::CredentialError;
use crate::db::DbError;
use crate::identity::AuthError;
use crate::orgs::OrgError;
use crate::passwords::PasswordError;
use crate::passwords::hashing::HashError;

/// The body of every error response.
#[derive(ToSchema)]
#[schema(as = Error, example = json!({"error": "Authentication required"}))]
pub struct ErrorBody {
    /// What went wrong, for a person to read. 500s say only "Internal server error".
    pub error: String,
}

/// The body of a 409: a plain conflict, or a connection that needs to be connected again (`needs_reauth`),
/// which also names the `provider` and the `reason`.
#[derive(ToSchema)]
#[schema(as = ConflictError, example = json!({
    "error": "The github credential needs to be connected again",
    "provider": "github",
    "reason": "invalid_grant"
}))]
pub struct ConflictBody {
    pub error: String,
    /// With `needs_reauth`: the provider whose credential must be connected again.
    #[schema(nullable = false)]
    pub provider: Option<String>,
    /// With `needs_reauth`: why (e.g. the provider refused the refresh token).
    #[schema(nullable = false)]
    pub reason: Option<String>,
}

/// The `code` of the 403 a session gets while its user must change their password first.
pub const PASSWORD_CHANGE_REQUIRED: &str = "password_change_required";

/// The body of a 403 for a session whose user must change their password first.
#[derive(ToSchema)]
#[schema(as = PasswordChangeRequiredError, example = json!({
    "error": "You must change your password first: POST /api/auth/change-password",
    "code": "password_change_required"
}))]
pub struct PasswordChangeRequiredBody {
    pub error: String,
    /// Always `password_change_required`.
    pub code: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("Authentication required")]
    Unauthenticated,
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    /// 403 with `"code": "password_change_required"`: the caller's session may only change the password.
    #[error("You must change your password first: POST /api/auth/change-password")]
    PasswordChangeRequired,
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// 409 with extra fields (e.g. `provider`, `reason` for a connection that needs re-authorization).
    #[error("{message}")]
    ConflictWith { message: String, extra: serde_json::Value },
    /// 400 with extra fields (`provider`, `detail` for a credential its provider rejected).
    #[error("{message}")]
    BadRequestWith { message: String, extra: serde_json::Value },
    /// 502 with extra fields (`provider`): a provider that could not be reached.
    #[error("{message}")]
    BadGatewayWith { message: String, extra: serde_json::Value },
    #[error("Request body too large")]
    PayloadTooLarge,
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("Too many attempts, try again later")]
    TooManyRequests { retry_after_secs: u64 },
    #[error("{0}")]
    Unavailable(String),
    /// 503 with `Retry-After`: the work could not even wait its turn (a full hashing queue).
    #[error("{message}")]
    Busy { message: String, retry_after_secs: u64 },
    #[error("Internal server error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub fn internal(e: impl Into<anyhow::Error>) -> Self {
        Self::Internal(e.into())
    }

    /// The request's audit event could not be written to the audit log, which fails closed.
    fn audit_unavailable() -> Self {
        Self::Unavailable("Audit log unavailable".into())
    }

    /// A database error: 503 when the database is unreachable or dropped the connection (the request may
    /// be retried), else 500.
    pub fn database(e: DbError) -> Self {
        if e.is_unavailable() {
            tracing::warn!(error = %e, "database unavailable");
            Self::Unavailable("Database unavailable; try again".into())
        } else {
            Self::internal(e)
        }
    }

    /// The status and the message a person reads (the web console shows them as a page); a 500's detail
    /// goes to the log, as with a JSON answer.
    pub fn status_and_message(self) -> (StatusCode, String) {
        if let Self::Internal(e) = &self {
            tracing::error!(error = %format!("{e:#}"), "internal error");
        }
        (self.status(), self.to_string())
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) | Self::BadRequestWith { .. } => StatusCode::BAD_REQUEST,
            Self::BadGatewayWith { .. } => StatusCode::BAD_GATEWAY,
            Self::Unauthenticated | Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) | Self::PasswordChangeRequired => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) | Self::ConflictWith { .. } => StatusCode::CONFLICT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) | Self::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let Self::Internal(e) = &self {
            tracing::error!(error = %format!("{e:#}"), "internal error");
        }
        let mut body = json!({ "error": self.to_string() });
        if let Self::ConflictWith { extra, .. }
        | Self::BadRequestWith { extra, .. }
        | Self::BadGatewayWith { extra, .. } = &self
            && let (Some(b), Some(x)) = (body.as_object_mut(), extra.as_object())
        {
            b.extend(x.clone());
        }
        if let Self::PasswordChangeRequired = &self {
            body["code"] = json!(PASSWORD_CHANGE_REQUIRED);
        }
        let mut resp = (status, Json(body)).into_response();
        if let Self::TooManyRequests { retry_after_secs } | Self::Busy { retry_after_secs, .. } = self {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs.max(1)));
        }
        resp
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Unauthenticated => Self::Unauthenticated,
            AuthError::PasswordChangeRequired => Self::PasswordChangeRequired,
            AuthError::Store(e) => Self::database(e),
        }
    }
}

impl From<OrgError> for ApiError {
    fn from(e: OrgError) -> Self {
        match e {
            OrgError::BadOrgId | OrgError::BadRole | OrgError::BadName => Self::BadRequest(e.to_string()),
            OrgError::OrgNotFound | OrgError::UserNotFound | OrgError::NotMember => Self::NotFound(e.to_string()),
            OrgError::Forbidden(_) | OrgError::CookieReadsNoValues => Self::Forbidden(e.to_string()),
            OrgError::AlreadyMember | OrgError::LastAdmin => Self::Conflict(e.to_string()),
            OrgError::Store(e) => Self::database(e),
        }
    }
}

impl From<PasswordError> for ApiError {
    fn from(e: PasswordError) -> Self {
        match e {
            PasswordError::Invalid(m) => Self::BadRequest(m),
            PasswordError::EmailTaken => Self::Conflict(e.to_string()),
            PasswordError::InvalidCredentials | PasswordError::WrongCurrentPassword => {
                Self::Unauthorized(e.to_string())
            }
            PasswordError::UserNotFound => Self::NotFound(e.to_string()),
            PasswordError::TooManyAttempts(wait) => Self::TooManyRequests {
                retry_after_secs: wait.0,
            },
            PasswordError::AuditUnavailable(_) => Self::audit_unavailable(),
            PasswordError::Db(e) => Self::database(e),
            PasswordError::Hash(HashError::Busy) => Self::Busy {
                message: "Too much password work at the moment, try again shortly".into(),
                retry_after_secs: 1,
            },
            PasswordError::Hash(e) => Self::internal(e),
        }
    }
}

impl From<CredentialError> for ApiError {
    fn from(e: CredentialError) -> Self {
        match e {
            CredentialError::UnknownProvider(_) | CredentialError::NotConnected(_) => Self::NotFound(e.to_string()),
            CredentialError::Invalid(f) => Self::BadRequest(f.message),
            CredentialError::NeedsReauth {
                ref provider,
                ref reason,
            } => Self::ConflictWith {
                message: e.to_string(),
                extra: serde_json::json!({ "provider": provider, "reason": reason }),
            },
            CredentialError::Conflict(_) | CredentialError::NameTaken(_) => Self::Conflict(e.to_string()),
            CredentialError::CheckRejected {
                ref provider,
                ref detail,
            } => Self::BadRequestWith {
                message: e.to_string(),
                extra: serde_json::json!({ "provider": provider, "detail": detail }),
            },
            CredentialError::CheckUnreachable {
                ref provider,
                ref detail,
            } => Self::BadGatewayWith {
                message: e.to_string(),
                extra: serde_json::json!({ "provider": provider, "detail": detail }),
            },
            CredentialError::SecretStoreUnavailable(ref inner) => {
                tracing::warn!(error = %inner, "secret store unavailable");
                Self::Unavailable("Secret store unavailable".into())
            }
            CredentialError::RefreshUnavailable {
                ref provider,
                ref reason,
            } => {
                tracing::warn!(provider, reason, "refresh unavailable");
                Self::Unavailable(e.to_string())
            }
            CredentialError::AuditUnavailable(_) => Self::audit_unavailable(),
            CredentialError::Db(e) => Self::database(e),
            CredentialError::Inconsistent(_) => Self::internal(e),
        }
    }
}
