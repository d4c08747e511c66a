//! The declarative provider catalog (`docs/API.md` lists what each provider takes, `docs/REFRESH.md` how
//! each is kept fresh).
//!
//! Each of the 13 providers is *data*: a [`ProviderSpec`] in a static table ([`catalog()`]) that lists its
//! fields (Aurora's names), which are secret, required, their [`FieldFormat`], which non-secret fields are kept
//! in SQL as display metadata, how the credential is kept fresh ([`RefreshKind`]) and its default
//! [`Endpoints`]. One generic routine ([`ProviderSpec::validate`]) checks and normalizes a user's credential for
//! any provider; nothing here branches on the provider id.
//!
//! Providers that accept alternative credential shapes (gcp: OAuth tokens *or* a service-account key) list
//! them as [`Variant`]s; the body's fields select the variant, and the variant decides the refresh kind.
//!
//! User-supplied base URLs go through [`url_policy`] (https only, no private/loopback hosts unless allowed).

mod catalog;
pub mod check;
pub mod connect;
pub mod rsa_key;
mod token_data;
pub mod url_policy;
mod validate;

use serde::Serialize;
use serde::ser::{SerializeStruct, Serializer};
use serde_json::{Map, Value};

pub use check::{CheckAuth, CheckBase, CheckMethod, CheckSpec, RejectedWhen, api_url_env_var};
pub use connect::{AnswerValue, Connect, OAuthConnect, Revocation, RevokeAt};
pub use token_data::{NotAnObject, TokenData};
pub use url_policy::{UrlPolicy, UrlPolicyError, check_resolved_ip, check_url, normalize_base_url};
/// `{field}` placeholders of a URL template filled with the percent-encoded token-data values.
pub use validate::substitute as fill_template;
/// Limits the validator checks, for the OpenAPI body schemas (`http::openapi`) that state them.
pub use validate::{EPOCH_MAX, SERVICE_ACCOUNT_MAX};

/// The whole catalog, in a stable order.
pub fn catalog() -> &'static [ProviderSpec] {
    catalog::CATALOG
}

/// Look a provider up by id (`"gcp"`, `"aws"`, ...). Ids are lower case; lookup is exact.
pub fn find(id: &str) -> Option<&'static ProviderSpec> {
    catalog::CATALOG.iter().find(|p| p.id == id)
}

/// `TOKENKEEPER_<PROVIDER>_TOKEN_URL`: override of the provider's token endpoint.
pub fn token_url_env_var(provider: &str) -> String {
    format!("TOKENKEEPER_{}_TOKEN_URL", env_part(provider))
}

/// `TOKENKEEPER_<PROVIDER>_AUTHORIZE_URL`: override of the provider's authorize endpoint (connect flows).
pub fn authorize_url_env_var(provider: &str) -> String {
    format!("TOKENKEEPER_{}_AUTHORIZE_URL", env_part(provider))
}

/// `TOKENKEEPER_<PROVIDER>_REVOKE_URL`: the provider's (RFC 7009) revocation endpoint, or its override.
pub fn revoke_url_env_var(provider: &str) -> String {
    format!("TOKENKEEPER_{}_REVOKE_URL", env_part(provider))
}

/// `TOKENKEEPER_<PROVIDER>_CLIENT_ID`: the platform's OAuth client id for that provider.
pub fn client_id_env_var(provider: &str) -> String {
    format!("TOKENKEEPER_{}_CLIENT_ID", env_part(provider))
}

/// `TOKENKEEPER_<PROVIDER>_CLIENT_SECRET`: the platform's OAuth client secret for that provider.
pub fn client_secret_env_var(provider: &str) -> String {
    format!("TOKENKEEPER_{}_CLIENT_SECRET", env_part(provider))
}

fn env_part(provider: &str) -> String {
    provider
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// A validation failure on one field; `message` names the field (`"api_key is required"`). Maps to HTTP 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FieldError {
    /// The offending field (`"body"` when the body itself is not a JSON object).
    pub field: String,
    pub message: String,
}

impl FieldError {
    /// `"<field> <what>"`, e.g. `FieldError::new("site", "must be one of ...")`.
    pub fn new(field: &str, what: impl std::fmt::Display) -> Self {
        FieldError {
            field: field.to_string(),
            message: format!("{field} {what}"),
        }
    }
}

/// A credential that passed [`ProviderSpec::validate`].
#[derive(Clone, PartialEq)]
pub struct ValidatedCredential {
    /// Every field, normalized, under Aurora's names (defaults filled in): what goes to the secret store.
    pub token_data: Map<String, Value>,
    /// Non-secret display fields only: what goes to SQL.
    pub metadata: Map<String, Value>,
    /// The access token's expiry (epoch seconds), when the provider has one and it was given.
    pub expires_at: Option<i64>,
    /// The variant the body matched (`Some("oauth")`/`Some("service_account")` for gcp), `None` for
    /// single-shape providers.
    pub variant: Option<&'static str>,
    /// How this credential is kept fresh (the variant's, else the provider's).
    pub refresh: RefreshKind,
}

impl std::fmt::Debug for ValidatedCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: Vec<&str> = self.token_data.keys().map(String::as_str).collect();
        f.debug_struct("ValidatedCredential")
            .field("token_data", &format_args!("<redacted: {keys:?}>"))
            .field("metadata", &self.metadata)
            .field("expires_at", &self.expires_at)
            .field("variant", &self.variant)
            .field("refresh", &self.refresh)
            .finish()
    }
}

/// How client credentials are sent to an OAuth2 token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// `client_id` and `client_secret` in the form body.
    Body,
    /// HTTP Basic (`client_secret_basic`).
    Basic,
}

/// How a provider's credential is kept fresh (`docs/REFRESH.md`). Serialized as its [`RefreshKind::as_str`] name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshKind {
    /// OAuth2 `refresh_token` grant at the token endpoint with the *platform's* OAuth client
    /// (`TOKENKEEPER_<P>_CLIENT_ID`/`_CLIENT_SECRET`). `rotates`: the provider returns a new single-use refresh
    /// token on each refresh, which must be stored before it is used again.
    OAuthRefreshToken { client_auth: ClientAuth, rotates: bool },
    /// OAuth2 `client_credentials` grant with the *user's* `client_id`/`client_secret` fields.
    ClientCredentials { scope: Option<&'static str> },
    /// JWT-bearer grant (RFC 7523) signed with a service-account key (gcp `service_account_json`).
    JwtBearer { scope: &'static str },
    /// STS `AssumeRole` (SigV4) with `role_arn` and `external_id`.
    AwsAssumeRole,
    /// Static keys: nothing to refresh.
    None,
}

impl RefreshKind {
    /// The public name: `oauth2_refresh_token`, `client_credentials`, `jwt_bearer`, `aws_sts_assume_role`,
    /// `static`.
    pub fn as_str(&self) -> &'static str {
        match self {
            RefreshKind::OAuthRefreshToken { .. } => "oauth2_refresh_token",
            RefreshKind::ClientCredentials { .. } => "client_credentials",
            RefreshKind::JwtBearer { .. } => "jwt_bearer",
            RefreshKind::AwsAssumeRole => "aws_sts_assume_role",
            RefreshKind::None => "static",
        }
    }

    /// Whether credentials of this kind are ever refreshed.
    pub fn refreshes(&self) -> bool {
        !matches!(self, RefreshKind::None)
    }
}

impl Serialize for RefreshKind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// The format of a field's value. Strings are trimmed before checking (except [`FieldFormat::Password`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FieldFormat {
    /// Free text without control characters, 1..=`max_len` bytes.
    Text { max_len: usize },
    /// Opaque token: visible ASCII only (no spaces), 1..=`max_len` bytes, starting with one of `prefixes`
    /// when that list is non-empty.
    Token {
        max_len: usize,
        #[serde(skip_serializing_if = "<[_]>::is_empty")]
        prefixes: &'static [&'static str],
    },
    /// A password: kept exactly as given (not trimmed), 1..=`max_len` bytes, no NUL.
    Password { max_len: usize },
    /// ASCII letters and digits plus the characters in `extra`, 1..=`max_len` bytes.
    Identifier { max_len: usize, extra: &'static str },
    /// Epoch seconds: an integer (a JSON number, integral or not, or a numeric string); stored as an integer.
    EpochSeconds,
    /// An e-mail address.
    Email,
    /// A UUID (`8-4-4-4-12` hex); stored lower case.
    Uuid,
    /// A user-supplied base URL checked by the [`UrlPolicy`]; stored normalized, without trailing slash.
    HttpsUrl,
    /// One of a fixed list of values (compared case-insensitively, stored lower case).
    OneOf { values: &'static [&'static str] },
    /// An IAM role ARN: `arn:<partition>:iam::<12 digits>:role/<path/name>`.
    AwsRoleArn,
    /// An STS external id: 2..=1224 characters of `[A-Za-z0-9_+=,.@:/-]`.
    AwsExternalId,
    /// A Scaleway access key: `SCW` followed by 17 letters or digits.
    ScalewayAccessKey,
    /// An Azure tenant: a UUID or a domain such as `contoso.onmicrosoft.com`.
    AzureTenant,
    /// A GCP service-account key (JSON text or object) with `type: "service_account"`, `client_email`,
    /// `private_key` (PEM; an RSA key over 4096 bits is refused, see [`rsa_key`]) and `token_uri`; stored as JSON
    /// text, at most 16 KiB.
    GcpServiceAccountJson,
}

/// One field of a provider's credential.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct FieldSpec {
    /// Aurora's name for the field.
    pub name: &'static str,
    /// Secret: never in SQL, logs or listings.
    pub secret: bool,
    /// Required (within every [`Variant`] that lists it).
    pub required: bool,
    pub format: FieldFormat,
    /// Kept in SQL as display metadata (only ever for non-secret fields).
    pub metadata: bool,
    /// For JSON-valued fields: keys copied from inside the value into the metadata (gcp service account:
    /// `client_email`, `project_id`).
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub metadata_keys: &'static [&'static str],
    /// Value stored when the field is absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<&'static str>,
    /// Generated by Tokenkeeper's credential service when absent (aws `external_id`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub generated_if_absent: bool,
    pub description: &'static str,
}

/// An alternative credential shape of a provider (gcp: `oauth` or `service_account`).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Variant {
    pub name: &'static str,
    /// The fields this shape accepts (each field's `required` applies within the shape).
    pub fields: &'static [&'static str],
    /// Fields required in this shape although optional in others (Bitbucket's API token needs `email`).
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub required: &'static [&'static str],
    /// The field and value naming this shape (Bitbucket's `auth_type`: `oauth` or `api_token`): a body or
    /// stored credential with that field is of the shape its value names; without it, of the shape its
    /// default names. `None`: the shape is told by the fields present.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<VariantTag>,
    pub refresh: RefreshKind,
    pub description: &'static str,
}

/// The field and value naming a [`Variant`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct VariantTag {
    pub field: &'static str,
    pub value: &'static str,
}

/// Default endpoints of a provider; each is overridable by configuration.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Endpoints {
    /// Token endpoint (override: `TOKENKEEPER_<P>_TOKEN_URL`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_url: Option<&'static str>,
    /// Login authority host when the token URL is host + path template (azure; override:
    /// `authority_host_env`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authority_host: Option<&'static str>,
    /// Environment variable overriding `authority_host` (`AZURE_AUTHORITY_HOST`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authority_host_env: Option<&'static str>,
    /// Token path template appended to the authority host; `{field}` is replaced by that token-data field,
    /// percent-encoded (azure: `/{tenant_id}/oauth2/v2.0/token`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_path: Option<&'static str>,
    /// AWS STS endpoint (override: `AWS_ENDPOINT_URL_STS`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sts_url: Option<&'static str>,
    /// Default API base URL of the provider's own API, where it has a fixed one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_base_url: Option<&'static str>,
}

/// A provider of the catalog: pure data.
#[derive(Debug)]
pub struct ProviderSpec {
    pub id: &'static str,
    pub name: &'static str,
    /// Short documentation for users and operators.
    pub docs: &'static str,
    /// All fields the provider accepts (union over variants), in display order.
    pub fields: &'static [FieldSpec],
    /// Alternative shapes; empty means one shape made of all `fields`.
    pub variants: &'static [Variant],
    /// How the credential is kept fresh (for single-shape providers; variants carry their own).
    pub refresh: RefreshKind,
    pub endpoints: Endpoints,
    /// The request that proves a credential works (`docs/CHECKS.md`).
    pub check: CheckSpec,
    /// The field holding the access token's expiry (epoch seconds), if any.
    pub expires_at_field: Option<&'static str>,
    /// How `POST /api/connect/{provider}` obtains a credential ([`Connect::None`]: only by `PUT`).
    pub connect: Connect,
    /// Where a deleted credential's grant is revoked, when the provider has such an endpoint.
    pub revocation: Option<&'static Revocation>,
    /// Valid example credentials (JSON text), one per variant; the first is the primary one. Used by tests
    /// (also the HTTP layer's) and documentation. Values are fake.
    pub examples: &'static [&'static str],
}

impl ProviderSpec {
    /// Look a field up by name.
    pub fn field(&self, name: &str) -> Option<&'static FieldSpec> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// The primary valid example credential (parsed from [`ProviderSpec::examples`]).
    pub fn example_credential(&self) -> Value {
        self.example_credentials().into_iter().next().unwrap_or(Value::Null)
    }

    /// All valid example credentials, one per variant.
    pub fn example_credentials(&self) -> Vec<Value> {
        self.examples
            .iter()
            .map(|s| serde_json::from_str(s).expect("catalog example is valid JSON"))
            .collect()
    }

    /// `TOKENKEEPER_<ID>_TOKEN_URL`.
    pub fn token_url_env_var(&self) -> String {
        token_url_env_var(self.id)
    }

    /// `TOKENKEEPER_<ID>_API_URL`: replaces the hosted base URL of the provider's check.
    pub fn api_url_env_var(&self) -> String {
        api_url_env_var(self.id)
    }

    /// `TOKENKEEPER_<ID>_CLIENT_ID`.
    pub fn client_id_env_var(&self) -> String {
        client_id_env_var(self.id)
    }

    /// `TOKENKEEPER_<ID>_CLIENT_SECRET`.
    pub fn client_secret_env_var(&self) -> String {
        client_secret_env_var(self.id)
    }

    /// Whether the provider's credentials are refreshed at all (in any variant).
    pub fn refreshes(&self) -> bool {
        self.refresh.refreshes() || self.variants.iter().any(|v| v.refresh.refreshes())
    }

    /// The variant stored token data belongs to: the first variant that accepts every (known) key present and
    /// has all its required fields, else the accepting variant missing the fewest. `None` for single-shape
    /// providers or when the keys mix variants.
    pub fn variant_of(&self, token_data: &Map<String, Value>) -> Option<&'static Variant> {
        validate::variant_of(self, token_data)
    }

    /// How stored token data is kept fresh: its variant's refresh kind, else the provider's.
    pub fn refresh_kind_for(&self, token_data: &Map<String, Value>) -> RefreshKind {
        self.variant_of(token_data).map_or(self.refresh, |v| v.refresh)
    }

    /// The token endpoint for this credential. Precedence: `token_url_override`
    /// (`TOKENKEEPER_<ID>_TOKEN_URL`), else `authority_host_override` (or the default authority host) +
    /// `token_path`, else the default `token_url`. `{field}` placeholders in the result are replaced with the
    /// percent-encoded token-data field (azure's `{tenant_id}`). `None` when the provider has no token
    /// endpoint or a placeholder's field is missing.
    pub fn token_url(
        &self,
        token_data: &Map<String, Value>,
        token_url_override: Option<&str>,
        authority_host_override: Option<&str>,
    ) -> Option<String> {
        validate::token_url(self, token_data, token_url_override, authority_host_override)
    }

    /// Check and normalize a credential body (must be a JSON object of the provider's fields). Unknown fields,
    /// missing required fields and malformed values are refused with a [`FieldError`] naming the field.
    pub fn validate(&self, body: &Value, policy: &UrlPolicy) -> Result<ValidatedCredential, FieldError> {
        validate::validate(self, body, policy)
    }

    /// The non-secret display metadata of (validated or stored) token data: the `metadata` fields present,
    /// plus `metadata_keys` read from inside JSON-valued fields. Never a secret field.
    pub fn metadata_of(&self, token_data: &Map<String, Value>) -> Map<String, Value> {
        validate::metadata_of(self, token_data)
    }

    /// The expiry (epoch seconds) recorded in token data, if the provider has an expiry field and it is set.
    pub fn expires_at_of(&self, token_data: &Map<String, Value>) -> Option<i64> {
        let v = token_data.get(self.expires_at_field?)?;
        validate::epoch_seconds(v).ok()
    }
}

/// The public catalog JSON (`GET /api/providers`): `id`, `name`, `description`, `refresh`, `fields`,
/// `variants` (when any), `endpoints`, plus the environment variable names overriding them.
impl Serialize for ProviderSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("ProviderSpec", 11)?;
        st.serialize_field("id", self.id)?;
        st.serialize_field("name", self.name)?;
        st.serialize_field("description", self.docs)?;
        st.serialize_field("refresh", &self.refresh)?;
        match self.refresh {
            RefreshKind::OAuthRefreshToken { client_auth, rotates } => {
                st.serialize_field("client_auth", &client_auth)?;
                st.serialize_field("rotates_refresh_token", &rotates)?;
            }
            RefreshKind::ClientCredentials { scope: Some(scope) } | RefreshKind::JwtBearer { scope } => {
                st.serialize_field("scope", scope)?;
            }
            _ => {}
        }
        st.serialize_field("fields", self.fields)?;
        if !self.variants.is_empty() {
            st.serialize_field("variants", self.variants)?;
        }
        st.serialize_field("endpoints", &self.endpoints)?;
        st.serialize_field("connect", &self.connect)?;
        st.serialize_field("check", &self.check)?;
        if self.endpoints.token_url.is_some() || self.endpoints.token_path.is_some() {
            st.serialize_field("token_url_env", &self.token_url_env_var())?;
        }
        st.end()
    }
}

#[cfg(test)]
mod tests;
