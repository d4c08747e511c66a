//! What proves a credential works: one request per provider, declared as data in the catalog and run by
//! [`crate::check`]. Nothing here sends anything.

use serde::Serialize;

/// The HTTP method of a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum CheckMethod {
    Get,
    Post,
}

/// Where the check's request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum CheckBase {
    /// The provider's hosted API at this URL (`{field}` placeholders are filled from the credential, e.g.
    /// Datadog's `https://api.{site}`), replaced as a whole by `TOKENKEEPER_<PROVIDER>_API_URL`.
    Hosted(&'static str),
    /// A URL the user gave in this field (Grafana's `base_url`): fetched only through the safe fetcher.
    Field(&'static str),
    /// The AWS STS endpoint Tokenkeeper itself uses (`AWS_ENDPOINT_URL_STS`, else the region's).
    AwsSts,
}

/// One way the credential (or part of it) travels with the request; all fields named must be present.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CheckAuth {
    /// `Authorization: Bearer <field>`.
    Bearer { field: &'static str },
    /// `<name>: <field>`.
    Header { name: &'static str, field: &'static str },
    /// HTTP Basic with `user:password` from two fields.
    Basic { user: &'static str, password: &'static str },
    /// A form field of the (POST) body.
    Form { param: &'static str, field: &'static str },
    /// A JSON member of the (POST) body (a log-in form).
    Json { member: &'static str, field: &'static str },
    /// SigV4-signed with the temporary keys an AWS role assumption left in the credential.
    SigV4 { service: &'static str },
    /// Sends nothing: the alternative applies only when `field` holds `equals` (a form named by a tag,
    /// such as Bitbucket's `auth_type`).
    When { field: &'static str, equals: &'static str },
}

impl CheckAuth {
    /// The credential fields this part reads (the temporary AWS keys for [`CheckAuth::SigV4`]).
    pub fn fields(&self) -> Vec<&'static str> {
        match *self {
            CheckAuth::Bearer { field }
            | CheckAuth::Header { field, .. }
            | CheckAuth::Form { field, .. }
            | CheckAuth::Json { field, .. } => vec![field],
            CheckAuth::Basic { user, password } => vec![user, password],
            CheckAuth::SigV4 { .. } => vec!["access_key_id", "secret_access_key", "session_token"],
            CheckAuth::When { field, .. } => vec![field],
        }
    }
}

/// A provider's own way of saying "invalid" in a successful HTTP answer: the JSON value at `pointer`
/// equals `equals` (Slack `/ok` false, Datadog `/valid` false); `detail` points at its reason code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RejectedWhen {
    pub pointer: &'static str,
    pub equals: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<&'static str>,
}

/// The request that proves a credential works, and how its answer is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CheckSpec {
    pub method: CheckMethod,
    pub base: CheckBase,
    /// Appended to the base; `{field}` placeholders are filled (percent-encoded) from the credential.
    pub path: &'static str,
    /// Fixed query parameters (never a secret).
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub query: &'static [(&'static str, &'static str)],
    /// Fixed form fields of a POST body (AWS's `Action`).
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub form: &'static [(&'static str, &'static str)],
    /// Alternatives, tried in order: the first whose fields the credential has (and whose `When` parts
    /// hold) is used (Bitbucket: the API-token form with Basic, else the OAuth access token as Bearer).
    pub auth: &'static [&'static [CheckAuth]],
    /// Statuses that mean "rejected" (`needs_reauth`).
    pub rejected_statuses: &'static [u16],
    /// Statuses that mean "works" besides 2xx (Tailscale: 403, a scope the client lacks after it minted).
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub accepted_statuses: &'static [u16],
    /// The provider's own "invalid" answers with a 2xx status.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub rejected_when: &'static [RejectedWhen],
}

/// 401 and 403: what most APIs answer a credential they refuse.
pub const UNAUTHORIZED: &[u16] = &[401, 403];

/// A GET of `path` on `base` with a Bearer token from `field`; rejected by 401/403.
pub const fn bearer_get(base: CheckBase, path: &'static str, auth: &'static [&'static [CheckAuth]]) -> CheckSpec {
    CheckSpec {
        method: CheckMethod::Get,
        base,
        path,
        query: &[],
        form: &[],
        auth,
        rejected_statuses: UNAUTHORIZED,
        accepted_statuses: &[],
        rejected_when: &[],
    }
}

/// `TOKENKEEPER_<PROVIDER>_API_URL`: replaces the hosted API base URL of a provider's check.
pub fn api_url_env_var(provider: &str) -> String {
    format!("TOKENKEEPER_{}_API_URL", super::env_part(provider))
}
