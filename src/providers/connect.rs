//! How a provider is connected through the browser (`docs/CONNECT.md`): data of the catalog, like the rest.
//! An OAuth provider declares its authorize and token endpoints, default scopes, extra parameters, how its
//! token answer maps onto Aurora's field names, and its revocation endpoint; adding one is an entry in
//! `catalog.rs`, never a branch in code.

use serde::Serialize;
use serde_json::{Map, Value};

use super::{ProviderSpec, RefreshKind};

/// How `POST /api/connect/{provider}` works for a provider.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Connect {
    /// No connect flow: credentials are only stored with `PUT /api/tokens/{provider}`.
    None,
    /// OAuth 2.0 authorization code with PKCE (S256).
    #[serde(rename = "oauth2_authorization_code")]
    OAuth(&'static OAuthConnect),
    /// The user creates an IAM role that trusts Tokenkeeper's principal with an external id issued first.
    AwsRole,
}

/// An OAuth provider's connect flow.
#[derive(Debug, Serialize)]
pub struct OAuthConnect {
    /// Where the browser is sent (override: `TOKENKEEPER_<P>_AUTHORIZE_URL`).
    pub authorize_url: &'static str,
    /// Scopes asked for when the request names none.
    pub default_scopes: &'static [&'static str],
    /// The query parameter the scopes go in (`scope`), and how they are joined (`" "`; Slack: `","`).
    pub scope_param: &'static str,
    pub scope_separator: &'static str,
    /// Fixed extra parameters of the authorize URL (gcp: `access_type=offline`, `prompt=consent`).
    pub extra_params: &'static [(&'static str, &'static str)],
    /// The token data stored, field by field, from the token endpoint's answer.
    pub answer: &'static [(&'static str, AnswerValue)],
}

/// Where a stored field's value comes from.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerValue {
    /// A JSON pointer into the answer (`/team/id`); the field is left out when the answer has no such value.
    Pointer(&'static str),
    /// A fixed value (bitbucket `auth_type: "oauth"`).
    Const(&'static str),
    /// `now + expires_in` in epoch seconds, when the answer has `expires_in`.
    ExpiresAt,
    /// The time of the connection, in epoch seconds (Slack's `connected_at`).
    Now,
}

/// A revocation endpoint: `DELETE` posts the credential's token there, best effort.
#[derive(Debug, Serialize)]
pub struct Revocation {
    /// The endpoint (override: `TOKENKEEPER_<P>_REVOKE_URL`).
    pub url: &'static str,
    /// The token fields tried in order; the first present is revoked (a refresh token takes the grant down).
    pub token_fields: &'static [&'static str],
    /// The credential shapes (variants) whose tokens the endpoint revokes; empty: every shape. A gcp
    /// service-account key is not a grant Google's endpoint can take back.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub variants: &'static [&'static str],
}

/// RFC 7009 at an endpoint only configuration names (`TOKENKEEPER_<P>_REVOKE_URL` for an OAuth provider
/// whose catalog entry declares none): the refresh token, else the access token, of credentials the
/// platform's OAuth client was granted.
pub const RFC7009: Revocation = Revocation {
    url: "",
    token_fields: &["refresh_token", "access_token"],
    variants: &[],
};

/// Where and what a deleted credential revokes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RevokeAt<'a> {
    pub url: &'a str,
    pub token_fields: &'static [&'static str],
}

impl ProviderSpec {
    /// The revocation a deleted credential gets: the catalog's (at `url_override` when configured) when
    /// it covers the credential's shape; else RFC 7009 at `url_override` for an OAuth provider's
    /// credential kept fresh by the platform's OAuth client; else none (`revoked: null`).
    pub fn revocation_for<'a>(
        &'static self,
        token_data: &Map<String, Value>,
        url_override: Option<&'a str>,
    ) -> Option<RevokeAt<'a>> {
        let variant = self.variant_of(token_data).map(|v| v.name);
        match self.revocation {
            Some(r) => {
                let covered = r.variants.is_empty() || variant.is_some_and(|v| r.variants.contains(&v));
                covered.then_some(RevokeAt {
                    url: url_override.unwrap_or(r.url),
                    token_fields: r.token_fields,
                })
            }
            None => {
                let oauth = matches!(self.connect, Connect::OAuth(_))
                    && matches!(self.refresh_kind_for(token_data), RefreshKind::OAuthRefreshToken { .. });
                url_override.filter(|_| oauth).map(|url| RevokeAt {
                    url,
                    token_fields: RFC7009.token_fields,
                })
            }
        }
    }
}
