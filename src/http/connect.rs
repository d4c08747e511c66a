//! `/api/connect/*`: connect flows (`docs/CONNECT.md`). `POST /api/connect/{provider}` starts one for the
//! caller's org; `GET /api/connect/callback` is where the provider sends the browser back (no
//! Authorization header: the state names the flow, its user and org).

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router, routing};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiPath as Path, ApiQuery, ClientAddr, InOrg, OptionalJson, OrgHeader};
use crate::connect::{ConnectError, Finished, StartRequest};
use crate::credentials::Caller;
use crate::orgs::{Channel, Permission};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/connect/callback", routing::get(callback))
        .route("/api/connect/aws", routing::post(super::connect_aws::onboard))
        .route("/api/connect/{provider}", routing::post(start))
}

/// What starts a flow; every part is optional.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StartBody {
    /// Where the browser goes once the flow ends; must start with one of `TOKENKEEPER_CONNECT_RETURN_URLS`
    /// (default: the first of them).
    #[schema(example = "https://app.example.com/settings/connections")]
    pub return_url: Option<String>,
    /// The connection's name (`[a-z0-9][a-z0-9-]{0,39}`, default `default`).
    #[schema(example = "default")]
    pub name: Option<String>,
    /// Scopes to ask for instead of the catalog's defaults.
    pub scopes: Option<Vec<String>>,
}

/// A started flow: send the user's browser to `authorizationUrl` before `expiresAt`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StartedFlow {
    pub authorization_url: String,
    /// RFC 3339; the flow's state is refused after it.
    pub expires_at: String,
}

/// Start a connect flow: the provider's authorization URL (OAuth 2.0 authorization code with PKCE).
#[utoipa::path(
    post,
    path = "/api/connect/{provider}",
    operation_id = "startConnect",
    tag = "connect",
    params(("provider" = String, Path, description = "An OAuth provider of the catalog: gcp, slack, bitbucket"), OrgHeader),
    request_body(content = Option<StartBody>, content_type = "application/json", description = "All optional; the body may be left out"),
    security(("bearer" = []), ("authjs_session_cookie" = []), ("internal_user_id" = [], "internal_secret" = [])),
    responses(
        (status = 200, description = "The authorization URL", body = StartedFlow),
        (status = 400, description = "A return URL outside the allowed list, a bad name or scope, a provider without a connect flow, or the provider's client id not configured (the message names the variable)", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "The caller's role in the org does not allow it", body = ErrorBody),
        (status = 404, description = "Unknown provider, or an org the caller is not a member of", body = ErrorBody),
        (status = 413, description = "Request body too large", body = ErrorBody),
        (status = 415, description = "Content-Type is not application/json", body = ErrorBody),
        (status = 500, description = "Internal error (details only in the log)", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
    ),
)]
async fn start(
    State(state): State<AppState>,
    InOrg(acting): InOrg,
    Path(provider): Path<String>,
    OptionalJson(body): OptionalJson<StartBody>,
) -> Result<Json<StartedFlow>, ApiError> {
    acting.require(Permission::WriteConnections)?;
    let caller = Caller::new(acting.user.clone(), acting.org.clone());
    let req = StartRequest {
        return_url: body.return_url,
        name: body.name,
        scopes: body.scopes,
    };
    let started = state.connect.start(&caller, &provider, req).await?;
    Ok(Json(StartedFlow {
        authorization_url: started.authorization_url,
        expires_at: started.expires_at.rfc3339(),
    }))
}

/// What the provider sends the browser back with.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallbackQuery {
    /// The authorization code (absent when the user refused).
    pub code: Option<String>,
    /// The flow's state, as `POST /api/connect/{provider}` put it in the authorization URL.
    pub state: Option<String>,
    /// The provider's error code (`access_denied`, ...).
    pub error: Option<String>,
}

/// Where the provider sends the browser back: exchanges the code, stores the credential for the flow's
/// user and org, and redirects to the flow's return URL.
#[utoipa::path(
    get,
    path = "/api/connect/callback",
    operation_id = "connectCallback",
    tag = "connect",
    params(CallbackQuery),
    responses(
        (status = 303, description = "To the return URL with `?connected={provider}&name={name}`, or with `?error={code}&provider={provider}` when the provider refused or the exchange failed",
            headers(("Location" = String, description = "The flow's return URL with the outcome"))),
        (status = 400, description = "Unknown, expired or already used state: nothing stored", body = ErrorBody),
        (status = 500, description = "Internal error (details only in the log)", body = ErrorBody),
        (status = 503, description = "The database or the audit log is unavailable", body = ErrorBody),
    ),
)]
async fn callback(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    ApiQuery(q): ApiQuery<CallbackQuery>,
) -> Result<Response, ApiError> {
    let flow = state.connect.claim(q.state.as_deref()).await?;
    // The flow's user must still be allowed to write connections in its org.
    let caller = flow.caller();
    let allowed = match state.orgs.acting(caller.user, Some(flow.org()), Channel::Bearer).await {
        Ok(acting) => acting.require(Permission::WriteConnections).is_ok(),
        Err(crate::orgs::OrgError::Store(e)) => return Err(ApiError::database(e)),
        Err(_) => false,
    };
    let finished = if allowed {
        state
            .connect
            .finish(flow, q.code.as_deref(), q.error.as_deref(), &addr)
            .await?
    } else {
        state.connect.refuse(flow, &addr).await?
    };
    Ok(see_other(&finished))
}

fn see_other(f: &Finished) -> Response {
    let mut resp = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(&f.redirect_to) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

impl From<ConnectError> for ApiError {
    fn from(e: ConnectError) -> Self {
        match e {
            ConnectError::UnknownProvider(_) => Self::NotFound(e.to_string()),
            ConnectError::NoFlow(_)
            | ConnectError::NotConfigured(_)
            | ConnectError::Invalid(_)
            | ConnectError::UnknownState => Self::BadRequest(e.to_string()),
            ConnectError::Misconfigured(_) => Self::internal(e),
            ConnectError::PrincipalUnavailable(_) => Self::Unavailable(e.to_string()),
            ConnectError::Db(e) => Self::database(e),
            ConnectError::AuditUnavailable(_) => Self::Unavailable("Audit log unavailable".into()),
        }
    }
}
