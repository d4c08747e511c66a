//! `POST /api/tokens/{provider}/check`: check a stored credential with its provider now
//! (`docs/CHECKS.md`); and `?check=` of `PUT /api/tokens/{provider}`.

use axum::extract::State;
use axum::{Json, Router, routing};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiPath as Path, ClientAddr, InOrg, OrgHeader};
use super::tokens::{NameQuery, Named};
use crate::credentials::{Caller, ConnectionView};
use crate::db::ConnectionStatus;
use crate::orgs::Permission;

/// `PUT /api/tokens/{provider}?check=false`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StoreQuery {
    /// Check the credential with its provider before storing it (default: `TOKENKEEPER_CHECK_ON_STORE`,
    /// itself `true` by default). `false`: stored without a check, status `unchecked`.
    pub check: Option<bool>,
}

/// A store refused because of its check: 400 rejected (`detail`: the provider's code or status), 502
/// the provider could not be reached (`detail`: `timed out`, `could not connect`, `HTTP 503`, ...).
#[derive(Serialize, ToSchema)]
pub struct CheckFailedBody {
    pub error: String,
    pub provider: String,
    /// What the provider answered (`HTTP 401`, `invalid_auth`, ...), or why it could not be reached.
    #[schema(nullable = false)]
    pub detail: Option<String>,
}

/// A store refused with 400: any invalid input (`error` only), or the provider rejected the credential
/// (`provider` and `detail` as in [`CheckFailedBody`]).
#[derive(Serialize, ToSchema)]
pub struct StoreRefusedBody {
    pub error: String,
    /// Present when the provider rejected the credential.
    #[schema(nullable = false)]
    pub provider: Option<String>,
    /// What the provider answered, when it rejected the credential.
    #[schema(nullable = false)]
    pub detail: Option<String>,
}

/// What a check found.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckResult {
    /// The provider accepted the credential.
    pub ok: bool,
    /// When it was checked (RFC 3339).
    pub checked_at: String,
    /// `HTTP 200`, the provider's error code, or why it could not be reached.
    pub detail: String,
    /// The connection's status after the check: `active`, `needs_reauth` (rejected) or `degraded`
    /// (unreachable).
    pub status: ConnectionStatus,
    pub connection: ConnectionView,
}

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/tokens/{provider}/check", routing::post(check))
}

/// Check the stored credential with its provider now, and record the result in the connection's status.
#[utoipa::path(
    post,
    path = "/api/tokens/{provider}/check",
    operation_id = "checkCredential",
    tag = "tokens",
    params(("provider" = String, Path, description = "A provider id from `GET /api/providers`"), NameQuery, OrgHeader),
    security(("bearer" = []), ("authjs_session_cookie" = []), ("internal_user_id" = [], "internal_secret" = [])),
    responses(
        (status = 200, description = "Checked (`ok` false: rejected or unreachable, see `status`)", body = CheckResult),
        (status = 400, description = "`provider` is not valid UTF-8, a malformed `X-Org-ID`, or a `name` outside the pattern", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "The caller's role in the org does not allow it (editors and admins may)", body = ErrorBody),
        (status = 404, description = "Unknown provider, no credential stored for it, or an org the caller is not a member of", body = ErrorBody),
        (status = 500, description = "Internal error (details only in the log)", body = ErrorBody),
        (status = 503, description = "The secret store, the database or the audit log is unavailable", body = ErrorBody),
    ),
)]
async fn check(
    State(state): State<AppState>,
    InOrg(acting): InOrg,
    named: Named,
    ClientAddr(addr): ClientAddr,
    Path(provider): Path<String>,
) -> Result<Json<CheckResult>, ApiError> {
    acting.require(Permission::WriteConnections)?;
    let caller = Caller::new(acting.user.clone(), acting.org.clone());
    let report = state.credentials.check_now(&caller, named.of(provider), &addr).await?;
    Ok(Json(CheckResult {
        ok: report.ok,
        checked_at: report.checked_at.rfc3339(),
        detail: report.detail,
        status: report.connection.status,
        connection: report.connection,
    }))
}
