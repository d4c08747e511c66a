//! Request extractors: JSON bodies with JSON errors, the authenticated caller (and the org it acts in),
//! the client address.

use std::net::SocketAddr;

use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::AppState;
use super::error::ApiError;
use crate::identity::{AuthMethod, Identity, Scope};
use crate::ids::UserId;
use crate::orgs::{Acting, Channel, OrgError};

/// `Json<T>` whose rejections are `ApiError`s: 400 malformed, 415 wrong content type, 413 too large.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Self(v)),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::UnsupportedMediaType(
                "Expected Content-Type: application/json".into(),
            )),
            Err(JsonRejection::JsonDataError(e)) => {
                Err(ApiError::BadRequest(format!("Invalid request: {}", e.body_text())))
            }
            Err(JsonRejection::JsonSyntaxError(_)) => {
                Err(ApiError::BadRequest("Invalid request: body is not valid JSON".into()))
            }
            Err(JsonRejection::BytesRejection(e)) if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE => {
                Err(ApiError::PayloadTooLarge)
            }
            Err(e) => Err(ApiError::BadRequest(format!("Invalid request: {}", e.body_text()))),
        }
    }
}

/// [`ApiJson`] for a body that may be left out: no body at all (and no `Content-Type`) is `T::default()`.
pub struct OptionalJson<T>(pub T);

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if req.headers().contains_key(axum::http::header::CONTENT_TYPE) {
            return Ok(Self(ApiJson::<T>::from_request(req, state).await?.0));
        }
        let body = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|_| ApiError::PayloadTooLarge)?;
        if body.is_empty() {
            Ok(Self(T::default()))
        } else {
            Err(ApiError::UnsupportedMediaType(
                "Expected Content-Type: application/json".into(),
            ))
        }
    }
}

/// `Path<T>` whose rejections are JSON `ApiError`s (400) rather than axum's plain-text bodies.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Self(v)),
            Err(e) => Err(ApiError::BadRequest(format!("Invalid path: {}", e.body_text()))),
        }
    }
}

/// `Query<T>` whose rejections are JSON `ApiError`s (400) rather than axum's plain-text bodies.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Self(v)),
            Err(e) => Err(ApiError::BadRequest(format!("Invalid query: {}", e.body_text()))),
        }
    }
}

/// The authenticated caller (`docs/IDENTITY.md`); 401 otherwise, 403 `password_change_required` while
/// their own session must change its password first.
pub struct Auth(pub Identity);

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        Ok(Self(state.authenticator.authenticate(&parts.headers).await?))
    }
}

/// The authenticated caller acting on their own account only (change-password, me, logout): admitted even
/// while they must change their password ([`Scope::OwnAccount`]); 401 otherwise.
pub struct OwnAccount(pub Identity);

impl FromRequestParts<AppState> for OwnAccount {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let who = (state.authenticator)
            .authenticate_for(&parts.headers, Scope::OwnAccount)
            .await?;
        Ok(Self(who))
    }
}

/// The header that names the org a request acts in (absent: the caller's personal org).
pub const ORG_HEADER: &str = "x-org-id";

/// `X-Org-ID` in the OpenAPI document (`params(OrgHeader)`); [`InOrg`] reads it.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
pub struct OrgHeader {
    /// The org to act in (an id from `GET /api/orgs`); absent: the caller's personal org.
    #[serde(rename = "X-Org-ID")]
    #[allow(dead_code)] // read from the headers by `InOrg`
    x_org_id: Option<String>,
}

/// The authenticated caller in the org the request acts in, with their role there (`docs/ORGS.md`):
/// `X-Org-ID`, else their personal org. 401 unauthenticated, 400 a malformed `X-Org-ID`, 404 an org
/// they are not a member of. Handlers then ask [`Acting::require`] for what they do.
pub struct InOrg(pub Acting);

impl FromRequestParts<AppState> for InOrg {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let Auth(who) = Auth::from_request_parts(parts, state).await?;
        Ok(Self(acting_in(state, &who, &parts.headers).await?))
    }
}

/// `who` in the org the headers name (`X-Org-ID`), else in their personal org; see [`InOrg`].
pub async fn acting_in(state: &AppState, who: &Identity, headers: &axum::http::HeaderMap) -> Result<Acting, ApiError> {
    let org = match headers.get(ORG_HEADER) {
        None => None,
        Some(v) => Some(v.to_str().map_err(|_| OrgError::BadOrgId)?),
    };
    Ok(state
        .orgs
        .acting(UserId::from(who.user_id.clone()), org, channel(who))
        .await?)
}

/// How permissions see an identity's method.
pub fn channel(who: &Identity) -> Channel {
    match who.method {
        AuthMethod::AuthJsCookie => Channel::BrowserCookie,
        AuthMethod::Internal => Channel::Internal,
        AuthMethod::Session { .. } | AuthMethod::AuthJsBearer => Channel::Bearer,
    }
}

/// The client's address: the socket's peer, or behind trusted proxies the rightmost `X-Forwarded-For`
/// entry that is not one of them ([`crate::net::TrustedProxies`]).
pub struct ClientAddr(pub String);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let Some(ConnectInfo(peer)) = parts.extensions.get::<ConnectInfo<SocketAddr>>() else {
            return Ok(Self("unknown".into()));
        };
        // A header line that is not text makes the walk stop at the proxy that passed it on.
        let lines = parts.headers.get_all("x-forwarded-for").iter();
        let lines = lines.map(|v| v.to_str().unwrap_or("?"));
        Ok(Self(state.trusted_proxies.client(peer.ip(), lines).to_string()))
    }
}
