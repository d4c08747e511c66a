//! The grant layer: one outbound call that turns a stored credential into a fresh one
//! (`docs/REFRESH.md`).
//!
//! Stateless: no SQL, no secret store, no locks. [`refresh`] reads the credential's [`RefreshKind`] from the
//! catalog ([`refresh_kind_for`]) and runs the one code path of that kind:
//!
//! | kind | module | providers |
//! |---|---|---|
//! | [`RefreshKind::OAuthRefreshToken`] | `oauth` | gcp (oauth), bitbucket (HTTP Basic), slack (rotating) |
//! | [`RefreshKind::ClientCredentials`] | `oauth` | azure, tailscale |
//! | [`RefreshKind::JwtBearer`] | `jwt_bearer` | gcp (service-account key) |
//! | [`RefreshKind::AwsAssumeRole`] | `sts` | aws |
//!
//! Nothing here branches on a provider id. Failures are sorted by [`classify::classify`] into
//! [`GrantError`]; no response body, token or secret ever goes into an error or a log line.

pub mod classify;
mod code;
mod jwt_bearer;
mod oauth;
pub(crate) mod sts;

use std::time::Duration;

use serde_json::Value;

use crate::config::GrantSettings;
use crate::providers::{ProviderSpec, RefreshKind, TokenData};

pub use code::{exchange_code, revoke};
pub use jwt_bearer::GOOGLE_TOKEN_URI;
pub use sts::{parse_iso8601_utc, session_name};

/// Lifetime assumed for an access token when the token endpoint does not say (`expires_in` missing).
pub const DEFAULT_LIFETIME_SECS: i64 = 3600;

/// Largest token-endpoint answer read; anything longer is cut off and treated as malformed.
pub(crate) const MAX_RESPONSE_BYTES: usize = 256 * 1024;

/// What a grant needs besides the credential itself.
#[derive(Clone, Copy)]
pub struct GrantContext<'a> {
    /// The outbound client (see [`http_client`]): its timeout bounds every call.
    pub http: &'a reqwest::Client,
    /// Endpoint overrides, the platform's OAuth clients and AWS credentials.
    pub settings: &'a GrantSettings,
    /// Now, in epoch seconds (from the service's clock): `expires_at` is computed from it, and JWT
    /// assertions are dated with it. (SigV4 signatures use the wall clock, which AWS checks.)
    pub now: i64,
    /// The user the credential belongs to (names the AWS role session).
    pub user_id: &'a str,
}

/// A fresh credential.
#[derive(Debug, Clone)]
pub struct Refreshed {
    /// The full new token data, in the same shape and with the same field names as the stored one: the
    /// old fields, with `access_token` (or the AWS keys) and `expires_at` replaced, and a rotated
    /// `refresh_token` when the provider returned one (the old one is kept otherwise).
    pub token_data: TokenData,
    /// When the new access token expires (epoch seconds), also stored as `expires_at` in `token_data`.
    pub expires_at: Option<i64>,
}

/// Why a refresh failed. `reason` is an error code (`invalid_grant`, `SignatureDoesNotMatch`, `timeout`,
/// `http_503`, ...) or a short fixed text: never a body, a secret or a URL with one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    /// The provider refused the credential (or the client it is bound to): the user must reconnect.
    /// Do not retry until a new credential is stored.
    #[error("re-authorization needed: {reason}")]
    NeedsReauth { reason: String },
    /// Timeout, network failure, 5xx, 429, throttling: retry later with backoff.
    #[error("temporary failure: {reason}")]
    Transient { reason: String },
    /// The credential is static (its kind is [`RefreshKind::None`]).
    #[error("credential is not refreshable")]
    NotRefreshable,
}

impl GrantError {
    /// The reason code (`"not_refreshable"` for [`GrantError::NotRefreshable`]).
    pub fn reason(&self) -> &str {
        match self {
            GrantError::NeedsReauth { reason } | GrantError::Transient { reason } => reason,
            GrantError::NotRefreshable => "not_refreshable",
        }
    }

    pub fn needs_reauth(&self) -> bool {
        matches!(self, GrantError::NeedsReauth { .. })
    }

    pub fn is_transient(&self) -> bool {
        matches!(self, GrantError::Transient { .. })
    }

    pub(crate) fn reauth(reason: impl Into<String>) -> Self {
        GrantError::NeedsReauth { reason: reason.into() }
    }

    pub(crate) fn transient(reason: impl Into<String>) -> Self {
        GrantError::Transient { reason: reason.into() }
    }

    /// Tokenkeeper's own configuration is missing or wrong (e.g. `TOKENKEEPER_GCP_CLIENT_ID` unset): not the
    /// user's fault, so not [`GrantError::NeedsReauth`]; [`GrantError::Transient`] with a reason starting
    /// `not_configured: `, so the connection is degraded and recovers once an operator fixes it.
    pub(crate) fn misconfigured(reason: impl std::fmt::Display) -> Self {
        GrantError::Transient {
            reason: format!("not_configured: {reason}"),
        }
    }
}

/// The outbound client for token endpoints: rustls, `timeout` on every call (connect included), redirects
/// never followed (a token endpoint that redirects is an error, not a place to send secrets to).
pub fn http_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("tokenkeeper/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("the outbound HTTP client builds (rustls)")
}

/// How this stored token data is refreshed. Like [`ProviderSpec::refresh_kind_for`], but also recognizes
/// token data that an earlier refresh extended: a gcp service-account key stored together with the
/// `access_token`/`expires_at` it minted matches no variant exactly; the variant whose required fields are
/// all present (most of them, if several) decides.
pub fn refresh_kind_for(spec: &ProviderSpec, token_data: &TokenData) -> RefreshKind {
    if let Some(v) = spec.variant_of(token_data.fields()) {
        return v.refresh;
    }
    let present = |name: &str| match token_data.get(name) {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) => !s.trim().is_empty(),
        Some(_) => true,
    };
    spec.variants
        .iter()
        .filter_map(|v| {
            let required: Vec<&str> = v
                .fields
                .iter()
                .copied()
                .filter(|f| spec.field(f).is_some_and(|f| f.required))
                .collect();
            required.iter().all(|f| present(f)).then_some((required.len(), v))
        })
        .max_by_key(|(n, _)| *n)
        .map_or(spec.refresh, |(_, v)| v.refresh)
}

/// Perform the refresh of `token_data` (a credential of provider `spec`): one outbound call, no retries.
pub async fn refresh(
    spec: &ProviderSpec,
    token_data: &TokenData,
    ctx: &GrantContext<'_>,
) -> Result<Refreshed, GrantError> {
    let kind = refresh_kind_for(spec, token_data);
    let result = match kind {
        RefreshKind::OAuthRefreshToken {
            client_auth,
            rotates: _,
        } => oauth::refresh_token_grant(spec, client_auth, token_data, ctx).await,
        RefreshKind::ClientCredentials { scope } => oauth::client_credentials_grant(spec, scope, token_data, ctx).await,
        RefreshKind::JwtBearer { scope } => jwt_bearer::jwt_bearer_grant(spec, scope, token_data, ctx).await,
        RefreshKind::AwsAssumeRole => sts::assume_role(spec, token_data, ctx).await,
        RefreshKind::None => Err(GrantError::NotRefreshable),
    };
    match &result {
        Ok(r) => tracing::debug!(
            provider = spec.id,
            kind = kind.as_str(),
            expires_at = r.expires_at,
            "credential refreshed"
        ),
        Err(e) => tracing::info!(
            provider = spec.id,
            kind = kind.as_str(),
            error = %e,
            "credential refresh failed"
        ),
    }
    result
}

/// The token endpoint of this credential: `TOKENKEEPER_<P>_TOKEN_URL`, else the authority host override
/// plus the catalog's path template, else the catalog default.
pub(crate) fn token_url(
    spec: &ProviderSpec,
    token_data: &TokenData,
    settings: &GrantSettings,
) -> Result<String, GrantError> {
    let overrides = settings.provider(spec);
    let url = spec
        .token_url(
            token_data.fields(),
            overrides.token_url.as_deref(),
            overrides.authority_host.as_deref(),
        )
        .ok_or_else(|| {
            if spec.endpoints.token_path.is_some() {
                // A `{field}` of the path template is missing from the credential.
                GrantError::reauth("token endpoint field missing")
            } else {
                GrantError::misconfigured(format!("{} is not set", spec.token_url_env_var()))
            }
        })?;
    check_endpoint(&url)?;
    Ok(url)
}

/// An endpoint from configuration must be an absolute http(s) URL without credentials.
pub(crate) fn check_endpoint(url: &str) -> Result<url::Url, GrantError> {
    let parsed = url::Url::parse(url).map_err(|_| GrantError::misconfigured("token endpoint is not a URL"))?;
    if !matches!(parsed.scheme(), "https" | "http")
        || parsed.host_str().is_none()
        || !parsed.username().is_empty()
        || parsed.password().is_some()
    {
        return Err(GrantError::misconfigured(
            "token endpoint must be an http(s) URL without credentials",
        ));
    }
    Ok(parsed)
}

/// Send a request; return the status and at most [`MAX_RESPONSE_BYTES`] of the body.
pub(crate) async fn send(req: reqwest::RequestBuilder) -> Result<(u16, Vec<u8>), GrantError> {
    let mut resp = req.send().await.map_err(|e| classify::classify_transport(&e))?;
    let status = resp.status().as_u16();
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| classify::classify_transport(&e))? {
        let room = MAX_RESPONSE_BYTES - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= MAX_RESPONSE_BYTES {
            break;
        }
    }
    Ok((status, body))
}

/// The token data with `expires_at` set (as an integer, Aurora's shape) and `fields` replaced, in the shape
/// it was found: where the minted token lives in a nested `token_data` object (Aurora's Tailscale
/// connections) and not at the top, the nested object gets the new fields, and every other field stays.
pub(crate) fn updated(
    token_data: &TokenData,
    fields: impl IntoIterator<Item = (&'static str, Value)>,
    expires_at: i64,
) -> Refreshed {
    let expiry = std::iter::once(("expires_at", Value::from(expires_at)));
    let changes = fields.into_iter().chain(expiry);
    let token_data = match token_data.get(NESTED) {
        Some(Value::Object(nested)) if token_data.get("access_token").is_none() => {
            let mut nested = nested.clone();
            nested.extend(changes.map(|(name, value)| (name.to_string(), value)));
            token_data.with([(NESTED, Value::Object(nested))])
        }
        _ => token_data.with(changes),
    };
    Refreshed {
        token_data,
        expires_at: Some(expires_at),
    }
}

/// The nested object where Aurora keeps some providers' minted token.
const NESTED: &str = "token_data";

#[cfg(test)]
mod shape_tests {
    use serde_json::json;

    use super::*;

    fn data(v: Value) -> TokenData {
        TokenData::decode(&secrecy::SecretString::from(v.to_string())).unwrap()
    }

    #[test]
    fn a_refresh_writes_the_shape_it_found() {
        let flat = data(json!({"client_id": "c", "access_token": "old", "team_name": "kept"}));
        let fresh = updated(&flat, [("access_token", json!("new"))], 100).token_data;
        assert_eq!(
            Value::Object(fresh.fields().clone()),
            json!({"client_id": "c", "access_token": "new", "expires_at": 100, "team_name": "kept"})
        );
        let nested = data(json!({"client_id": "c", "token_data": {"access_token": "old", "scope": "s"}, "x": 1}));
        let fresh = updated(&nested, [("access_token", json!("new"))], 100).token_data;
        assert_eq!(
            Value::Object(fresh.fields().clone()),
            json!({"client_id": "c", "token_data": {"access_token": "new", "scope": "s", "expires_at": 100}, "x": 1})
        );
    }
}
