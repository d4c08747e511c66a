//! What the refresh grants need from the environment, typed and checked once at start-up: per provider
//! (the variables are named after the catalog's ids) the token endpoint override, the authority host
//! override and the platform's OAuth client; and Tokenkeeper's own AWS credentials for STS.

use std::collections::HashMap;

use secrecy::SecretString;

use super::{ConfigError, Env, err, secret};
use crate::providers::{self, ProviderSpec};

/// Setting: lifetime of assumed-role sessions, in seconds (clamped to STS's 900..=43200).
pub const SESSION_DURATION_VAR: &str = "TOKENKEEPER_AWS_SESSION_DURATION_SECS";
pub const DEFAULT_SESSION_DURATION_SECS: u32 = 3600;
/// The region STS is called in when `AWS_REGION` is unset.
pub const DEFAULT_REGION: &str = "us-east-1";

/// Every grant's settings.
#[derive(Debug, Clone, Default)]
pub struct GrantSettings {
    /// By provider id; a provider with nothing configured has no entry.
    providers: HashMap<&'static str, ProviderGrantSettings>,
    pub aws: AwsSettings,
}

/// One provider's overrides and OAuth client.
#[derive(Debug, Clone, Default)]
pub struct ProviderGrantSettings {
    /// `TOKENKEEPER_<P>_TOKEN_URL`: replaces the catalog's token endpoint (it may hold `{field}`
    /// placeholders, like the catalog's path templates).
    pub token_url: Option<String>,
    /// The catalog's authority host variable (`AZURE_AUTHORITY_HOST`): replaces the default login host.
    pub authority_host: Option<String>,
    /// `TOKENKEEPER_<P>_CLIENT_ID`: the platform's OAuth client, for refresh tokens it issued.
    pub client_id: Option<String>,
    /// `TOKENKEEPER_<P>_CLIENT_SECRET`.
    pub client_secret: Option<SecretString>,
    /// `TOKENKEEPER_<P>_AUTHORIZE_URL`: replaces the catalog's authorize endpoint (connect flows).
    pub authorize_url: Option<String>,
    /// `TOKENKEEPER_<P>_REVOKE_URL`: replaces the catalog's revocation endpoint, or gives one (RFC 7009).
    pub revoke_url: Option<String>,
}

/// Tokenkeeper's own AWS identity, which signs `AssumeRole` into the users' roles.
#[derive(Debug, Clone)]
pub struct AwsSettings {
    /// `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN`.
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<SecretString>,
    pub session_token: Option<SecretString>,
    /// `AWS_REGION`: lower-case letters, digits and `-`.
    pub region: String,
    /// `AWS_ENDPOINT_URL_STS`, else `AWS_ENDPOINT_URL`; else STS's regional endpoint.
    pub sts_endpoint: Option<String>,
    /// [`SESSION_DURATION_VAR`], clamped to 900..=43200.
    pub session_duration_secs: u32,
}

impl Default for AwsSettings {
    fn default() -> Self {
        Self {
            access_key_id: None,
            secret_access_key: None,
            session_token: None,
            region: DEFAULT_REGION.to_string(),
            sts_endpoint: None,
            session_duration_secs: DEFAULT_SESSION_DURATION_SECS,
        }
    }
}

impl GrantSettings {
    /// The settings of `spec`'s provider (empty when none are configured).
    pub fn provider(&self, spec: &ProviderSpec) -> &ProviderGrantSettings {
        static NONE: ProviderGrantSettings = ProviderGrantSettings {
            token_url: None,
            authority_host: None,
            client_id: None,
            client_secret: None,
            authorize_url: None,
            revoke_url: None,
        };
        self.providers.get(spec.id).unwrap_or(&NONE)
    }

    /// Replaces one provider's settings (tests, library callers).
    pub fn set_provider(&mut self, spec: &'static ProviderSpec, settings: ProviderGrantSettings) {
        self.providers.insert(spec.id, settings);
    }

    pub(super) fn from_lookup(env: Env) -> Result<Self, ConfigError> {
        let mut out = GrantSettings {
            providers: HashMap::new(),
            aws: aws(env)?,
        };
        for spec in providers::catalog() {
            let p = ProviderGrantSettings {
                token_url: endpoint(env, &spec.token_url_env_var())?,
                authority_host: match spec.endpoints.authority_host_env {
                    Some(var) => endpoint(env, var)?,
                    None => None,
                },
                client_id: plain(env, &spec.client_id_env_var())?,
                client_secret: secret(env, &spec.client_secret_env_var())?,
                authorize_url: endpoint(env, &providers::authorize_url_env_var(spec.id))?,
                revoke_url: endpoint(env, &providers::revoke_url_env_var(spec.id))?,
            };
            let configured = p.token_url.is_some()
                || p.authority_host.is_some()
                || p.client_id.is_some()
                || p.client_secret.is_some()
                || p.authorize_url.is_some()
                || p.revoke_url.is_some();
            if configured {
                out.providers.insert(spec.id, p);
            }
        }
        Ok(out)
    }
}

fn aws(env: Env) -> Result<AwsSettings, ConfigError> {
    let region = plain(env, "AWS_REGION")?.unwrap_or_else(|| DEFAULT_REGION.to_string());
    if !region
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(err("AWS_REGION", format!("{region:?} is not a region name")));
    }
    let session_duration_secs = match plain(env, SESSION_DURATION_VAR)? {
        None => DEFAULT_SESSION_DURATION_SECS,
        // Whole seconds; STS accepts 900..=43200, so the value is clamped into that range.
        Some(v) => v
            .parse::<u64>()
            .map_err(|e| err(SESSION_DURATION_VAR, format!("{v:?}: {e} (expected whole seconds)")))?
            .clamp(900, 43200) as u32,
    };
    let sts_endpoint = match endpoint(env, "AWS_ENDPOINT_URL_STS")? {
        Some(url) => Some(url),
        None => endpoint(env, "AWS_ENDPOINT_URL")?,
    };
    Ok(AwsSettings {
        access_key_id: plain(env, "AWS_ACCESS_KEY_ID")?,
        secret_access_key: secret(env, "AWS_SECRET_ACCESS_KEY")?,
        session_token: secret(env, "AWS_SESSION_TOKEN")?,
        region,
        sts_endpoint,
        session_duration_secs,
    })
}

/// A value that is not secret but may come from `VAR_FILE` like the others; trimmed, blank is unset.
pub(super) fn plain(env: Env, var: &str) -> Result<Option<String>, ConfigError> {
    use secrecy::ExposeSecret as _;
    Ok(secret(env, var)?
        .map(|v| v.expose_secret().trim().to_string())
        .filter(|v| !v.is_empty()))
}

/// An endpoint from configuration: an absolute http(s) URL with a host and without credentials (the
/// same rule the grants apply when they use it), checked here so that a typo stops start-up instead of
/// failing every refresh later. The value is not echoed: it might hold credentials.
pub(super) fn endpoint(env: Env, var: &str) -> Result<Option<String>, ConfigError> {
    let Some(url) = plain(env, var)? else {
        return Ok(None);
    };
    let parsed = url::Url::parse(&url).map_err(|e| err(var, format!("not an absolute URL ({e})")))?;
    if !matches!(parsed.scheme(), "https" | "http") {
        return Err(err(
            var,
            format!("scheme {:?}: expected http:// or https://", parsed.scheme()),
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(err(var, "the URL has no host"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(err(var, "the URL must not contain credentials"));
    }
    Ok(Some(url))
}
