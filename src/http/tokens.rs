//! `/api/tokens/*`: store, list, read and delete provider credentials (`docs/API.md`).

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router, routing};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::AppState;
use super::checks::{CheckFailedBody, StoreQuery, StoreRefusedBody};
use super::error::{ApiError, ConflictBody, ErrorBody};
use super::extract::{ApiJson, ApiPath as Path, ApiQuery, ClientAddr, InOrg, OrgHeader};
use crate::credentials::{Caller, ConnectionName, ConnectionView, Target, TokenData};
use crate::orgs::{Acting, Permission};

/// A stored connection, as `PUT` answers it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StoredConnection {
    #[serde(flatten)]
    pub connection: ConnectionView,
    /// Only when Tokenkeeper generated the external id (aws): shown this once, for the role's trust policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub generated_external_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ConnectionList {
    pub connections: Vec<ConnectionView>,
}

/// What `DELETE` answers: the connection is gone locally whatever the provider said.
#[derive(Serialize, ToSchema)]
pub struct DeletedConnection {
    /// `true`: the provider confirmed the revocation of the grant; `false`: it refused, failed or did not
    /// answer within the outbound timeout; `null`: the provider has no revocation for this credential.
    #[schema(nullable = true)]
    pub revoked: Option<bool>,
}

/// Secret token data: only for Bearer and internal callers.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenDataResponse {
    pub provider: String,
    /// The connection's name (`default` unless named).
    pub name: String,
    /// The credential's fields (secret ones included), refreshed first when due.
    #[schema(value_type = Object)]
    pub token_data: TokenData,
}

/// `?name=`: which of the org's connections to a provider a request means (several per provider).
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NameQuery {
    /// The connection's name: 1 to 40 lowercase letters, digits and `-`, starting with a letter or digit.
    /// Absent: `default`.
    #[param(pattern = "^[a-z0-9][a-z0-9-]{0,39}$", max_length = 40, example = "prod")]
    name: Option<String>,
}

/// The connection name a request gives (`None` when it gives none); 400 outside the pattern, before
/// anything is read or changed.
pub(super) struct Named(Option<ConnectionName>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Named {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, ApiError> {
        let ApiQuery(q) = ApiQuery::<NameQuery>::from_request_parts(parts, state).await?;
        match q.name {
            None => Ok(Self(None)),
            Some(text) => ConnectionName::parse(&text).map(|n| Self(Some(n))).ok_or_else(|| {
                ApiError::BadRequest(
                    "Invalid connection name: use 1 to 40 lowercase letters, digits and '-', starting with a \
                     letter or digit"
                        .into(),
                )
            }),
        }
    }
}

impl Named {
    /// The connection of `provider` the request names (`default` without `?name=`).
    pub(super) fn of(self, provider: String) -> Target {
        Target::new(provider, self.0.unwrap_or_default())
    }
}

/// Who acts on credentials: the caller, in the org the request acts in.
fn caller(acting: &Acting) -> Caller {
    Caller::new(acting.user.clone(), acting.org.clone())
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/tokens", routing::get(list))
        .route(
            "/api/tokens/{provider}",
            routing::put(store).get(connection).delete(delete),
        )
        .route("/api/tokens/{provider}/credentials", routing::get(credentials))
        .route("/api/tokens/{provider}/refresh", routing::post(refresh))
}

/// Connect a provider: store (or replace) the caller's credential for it.
#[utoipa::path(
    put,
    path = "/api/tokens/{provider}",
    operation_id = "storeCredential",
    tag = "tokens",
    params(("provider" = String, Path, description = "A provider id from `GET /api/providers`"), NameQuery, StoreQuery, OrgHeader),
    // The body schema (anyOf the providers' `TokenBody_<id>`) is set from the catalog in `openapi.rs`.
    request_body(
        content = Value,
        content_type = "application/json",
        description = "The provider's fields (Aurora's names; unknown fields are refused): the \
                       `TokenBody_<provider>` schema, also shown by the provider's own `PUT /api/tokens/<id>`, \
                       and listed by `GET /api/providers`"
    ),
    security(("bearer" = []), ("authjs_session_cookie" = []), ("internal_user_id" = [], "internal_secret" = [])),
    responses(
        (status = 200, description = "Stored (status `active` when checked, `unchecked` with `?check=false`)", body = StoredConnection),
        (status = 400, description = "Malformed body, a field missing, unknown or invalid, a malformed `X-Org-ID`, a `name` outside the pattern, or the provider rejected the credential (`provider`, `detail`; nothing stored)", body = StoreRefusedBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "The caller's role in the org does not allow it", body = ErrorBody),
        (status = 404, description = "Unknown provider", body = ErrorBody),
        (status = 409, description = "The credential was changed at the same time (retry), or a new connection's secret name would be another connection's (choose another name)", body = ConflictBody),
        (status = 413, description = "Request body too large", body = ErrorBody),
        (status = 415, description = "Content-Type is not application/json", body = ErrorBody),
        (status = 500, description = "Internal error (details only in the log)", body = ErrorBody),
        (status = 502, description = "The provider could not be reached to check the credential (`provider`; nothing stored)", body = CheckFailedBody),
        (status = 503, description = "The secret store (or the provider, to check the credential), or the audit log, is unavailable", body = ErrorBody),
    ),
)]
async fn store(
    State(state): State<AppState>,
    InOrg(acting): InOrg,
    named: Named,
    ClientAddr(addr): ClientAddr,
    Path(provider): Path<String>,
    ApiQuery(query): ApiQuery<StoreQuery>,
    ApiJson(body): ApiJson<Value>,
) -> Result<Response, ApiError> {
    acting.require(Permission::WriteConnections)?;
    let stored = state
        .credentials
        .store_checked(&caller(&acting), &body, named.of(provider), &addr, query.check)
        .await?;
    // The generated external id is shown once: the user puts it in the role's trust policy.
    let out = StoredConnection {
        connection: stored.connection,
        generated_external_id: stored.generated_external_id,
    };
    Ok((StatusCode::OK, Json(out)).into_response())
}

/// The org's connections (with `?name=`, those of that name): metadata, status and age, never a secret.
#[utoipa::path(
    get,
    path = "/api/tokens",
    operation_id = "listConnections",
    tag = "tokens",
    params(NameQuery, OrgHeader),
    security(("bearer" = []), ("authjs_session_cookie" = []), ("internal_user_id" = [], "internal_secret" = [])),
    responses(
        (status = 200, description = "The org's connections", body = ConnectionList),
        (status = 400, description = "A malformed `X-Org-ID`, or a `name` outside the pattern", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "The caller's role in the org does not allow it", body = ErrorBody),
        (status = 404, description = "An org the caller is not a member of", body = ErrorBody),
        (status = 500, description = "Internal error (details only in the log)", body = ErrorBody),
    ),
)]
async fn list(
    State(state): State<AppState>,
    InOrg(acting): InOrg,
    Named(name): Named,
) -> Result<Json<ConnectionList>, ApiError> {
    acting.require(Permission::ReadConnections)?;
    let mut connections = state.credentials.list(&acting.org).await?;
    if let Some(name) = name {
        connections.retain(|c| c.name == name.as_str());
    }
    Ok(Json(ConnectionList { connections }))
}

/// One connection of the caller: metadata, status and age, never a secret.
#[utoipa::path(
    get,
    path = "/api/tokens/{provider}",
    operation_id = "getConnection",
    tag = "tokens",
    params(("provider" = String, Path, description = "A provider id from `GET /api/providers`"), NameQuery, OrgHeader),
    security(("bearer" = []), ("authjs_session_cookie" = []), ("internal_user_id" = [], "internal_secret" = [])),
    responses(
        (status = 200, description = "The connection", body = ConnectionView),
        (status = 400, description = "`provider` is not valid UTF-8, a malformed `X-Org-ID`, or a `name` outside the pattern", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "The caller's role in the org does not allow it", body = ErrorBody),
        (status = 404, description = "Unknown provider, no credential stored for it, or an org the caller is not a member of", body = ErrorBody),
        (status = 500, description = "Internal error (details only in the log)", body = ErrorBody),
    ),
)]
async fn connection(
    State(state): State<AppState>,
    InOrg(acting): InOrg,
    named: Named,
    Path(provider): Path<String>,
) -> Result<Json<ConnectionView>, ApiError> {
    acting.require(Permission::ReadConnections)?;
    Ok(Json(
        state.credentials.connection(&acting.org, named.of(provider)).await?,
    ))
}

/// The secret token data, refreshed first when due. Bearer and internal callers only (not a browser cookie).
#[utoipa::path(
    get,
    path = "/api/tokens/{provider}/credentials",
    operation_id = "getCredentials",
    tag = "tokens",
    params(("provider" = String, Path, description = "A provider id from `GET /api/providers`"), NameQuery, OrgHeader),
    security(("bearer" = []), ("internal_user_id" = [], "internal_secret" = [])),
    responses(
        (status = 200, description = "The credential", body = TokenDataResponse,
            headers(
                ("Cache-Control" = String, description = "`no-store`"),
                ("Pragma" = String, description = "`no-cache`"),
            )),
        (status = 400, description = "`provider` is not valid UTF-8, a malformed `X-Org-ID`, or a `name` outside the pattern", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "The caller's role in the org does not allow it, or the Auth.js session cookie, which may not read secrets", body = ErrorBody),
        (status = 404, description = "Unknown provider, no credential stored for it, or an org the caller is not a member of", body = ErrorBody),
        (status = 409, description = "The credential needs to be connected again (`provider`, `reason`), or was changed at the same time", body = ConflictBody),
        (status = 500, description = "Internal error (details only in the log)", body = ErrorBody),
        (status = 503, description = "The secret store, the provider (for a due refresh) or the audit log is unavailable", body = ErrorBody),
    ),
)]
async fn credentials(
    State(state): State<AppState>,
    InOrg(acting): InOrg,
    named: Named,
    ClientAddr(addr): ClientAddr,
    Path(provider): Path<String>,
) -> Result<Response, ApiError> {
    acting.require(Permission::ReadValues)?;
    let target = named.of(provider);
    let data = state
        .credentials
        .get_token_data(&caller(&acting), &target, &addr)
        .await?;
    let mut resp = Json(TokenDataResponse {
        provider: target.provider,
        name: target.name.to_string(),
        token_data: data,
    })
    .into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp.headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    Ok(resp)
}

/// Refresh the credential now (for providers whose credentials refresh; others are answered as they are).
#[utoipa::path(
    post,
    path = "/api/tokens/{provider}/refresh",
    operation_id = "refreshCredential",
    tag = "tokens",
    params(("provider" = String, Path, description = "A provider id from `GET /api/providers`"), NameQuery, OrgHeader),
    security(("bearer" = []), ("authjs_session_cookie" = []), ("internal_user_id" = [], "internal_secret" = [])),
    responses(
        (status = 200, description = "The connection after the refresh", body = ConnectionView),
        (status = 400, description = "`provider` is not valid UTF-8, a malformed `X-Org-ID`, or a `name` outside the pattern", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "The caller's role in the org does not allow it", body = ErrorBody),
        (status = 404, description = "Unknown provider, no credential stored for it, or an org the caller is not a member of", body = ErrorBody),
        (status = 409, description = "The credential needs to be connected again (`provider`, `reason`), or was changed at the same time", body = ConflictBody),
        (status = 500, description = "Internal error (details only in the log)", body = ErrorBody),
        (status = 503, description = "The secret store, the provider or the audit log is unavailable", body = ErrorBody),
    ),
)]
async fn refresh(
    State(state): State<AppState>,
    InOrg(acting): InOrg,
    named: Named,
    ClientAddr(addr): ClientAddr,
    Path(provider): Path<String>,
) -> Result<Json<ConnectionView>, ApiError> {
    acting.require(Permission::WriteConnections)?;
    Ok(Json(
        state
            .credentials
            .refresh_now(&caller(&acting), named.of(provider), &addr)
            .await?,
    ))
}

/// Disconnect a provider: the reference, then the secret (all its versions), then the grant at the
/// provider where it has a revocation endpoint (best effort, within the outbound timeout).
#[utoipa::path(
    delete,
    path = "/api/tokens/{provider}",
    operation_id = "deleteConnection",
    tag = "tokens",
    params(("provider" = String, Path, description = "A provider id from `GET /api/providers`"), NameQuery, OrgHeader),
    security(("bearer" = []), ("authjs_session_cookie" = []), ("internal_user_id" = [], "internal_secret" = [])),
    responses(
        (status = 200, description = "Deleted; `revoked` tells whether the provider took the grant back", body = DeletedConnection),
        (status = 400, description = "`provider` is not valid UTF-8, a malformed `X-Org-ID`, or a `name` outside the pattern", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "The caller's role in the org does not allow it", body = ErrorBody),
        (status = 404, description = "Unknown provider, no credential stored for it, or an org the caller is not a member of", body = ErrorBody),
        (status = 409, description = "The credential was changed at the same time; retry", body = ConflictBody),
        (status = 500, description = "Internal error (details only in the log)", body = ErrorBody),
        (status = 503, description = "The secret store is unavailable (nothing was deleted, retry), or the audit log is", body = ErrorBody),
    ),
)]
async fn delete(
    State(state): State<AppState>,
    InOrg(acting): InOrg,
    named: Named,
    ClientAddr(addr): ClientAddr,
    Path(provider): Path<String>,
) -> Result<Json<DeletedConnection>, ApiError> {
    acting.require(Permission::WriteConnections)?;
    let deleted = state
        .credentials
        .delete(&caller(&acting), named.of(provider), &addr)
        .await?;
    Ok(Json(DeletedConnection {
        revoked: deleted.revoked,
    }))
}
