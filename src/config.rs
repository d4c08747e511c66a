//! Settings, read once from the environment at start-up (never from files other than `*_FILE` secrets).
//!
//! Every variable is listed, with its default, in `.env.example`. Secrets also accept `<NAME>_FILE`
//! (the file's contents, trimmed). An invalid value stops start-up with an error naming the variable.

pub mod audit;
mod checks;
pub mod connect;
mod console;
mod grants;
mod http;
pub mod webhooks;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;

pub use audit::{AuditLogTarget, AuditSettings, ReadAudit};
pub use checks::{CHECK_INTERVAL_VAR, CHECK_ON_STORE_VAR, CheckSettings};
pub use connect::ConnectSettings;
pub use console::ConsoleSettings;
pub use grants::{
    AwsSettings, DEFAULT_REGION, DEFAULT_SESSION_DURATION_SECS, GrantSettings, ProviderGrantSettings,
    SESSION_DURATION_VAR,
};
pub use http::{HEADER_TIMEOUT_VAR, HttpLimits, MAX_CONNECTIONS_VAR, REQUEST_TIMEOUT_VAR};
pub use webhooks::WebhookSettings;

#[derive(Debug, thiserror::Error)]
#[error("invalid setting {var}: {reason}")]
pub struct ConfigError {
    pub var: String,
    pub reason: String,
}

/// Which algorithm new password hashes use; both formats always verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordHashKind {
    Bcrypt,
    Argon2id,
}

#[derive(Debug, Clone)]
pub struct PasswordSettings {
    pub hash: PasswordHashKind,
    /// bcrypt cost, 10..=31 (default 12).
    pub bcrypt_cost: u32,
    /// Concurrent hashes allowed on the blocking pool (default: number of CPUs).
    pub max_concurrent_hashes: usize,
    /// Password work that may wait for a hashing slot; beyond, 503 (`TOKENKEEPER_HASH_QUEUE`, default 64).
    pub hash_queue: usize,
    /// Registrations per client address and hour (`TOKENKEEPER_REGISTER_LIMIT`, default 10).
    pub register_limit: u32,
    pub session_ttl: Duration,
    pub max_failures: u32,
    pub failure_window: Duration,
}

#[derive(Debug, Clone)]
pub enum SecretBackend {
    /// `VAULT_ADDR` unset: AES-256-GCM store in the data dir.
    Embedded {
        key: Option<SecretString>,
    },
    Vault(VaultSettings),
}

#[derive(Debug, Clone)]
pub struct VaultSettings {
    pub addr: String,
    pub token: Option<SecretString>,
    pub token_file: Option<PathBuf>,
    pub role_id: Option<String>,
    pub secret_id: Option<SecretString>,
    pub namespace: Option<String>,
    pub ca_cert: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// `None`: `sqlite://{data_dir}/tokenkeeper.db`.
    pub database_url: Option<SecretString>,
    pub secret_backend: SecretBackend,
    pub kv_mount: String,
    pub kv_base_path: String,
    pub secret_prefix: String,
    pub env_name: String,
    pub auth_secrets: Vec<SecretString>,
    pub internal_secret: Option<SecretString>,
    pub passwords: PasswordSettings,
    /// Reverse proxies whose `X-Forwarded-For` entries are believed (`TOKENKEEPER_TRUSTED_PROXIES`).
    pub trusted_proxies: crate::net::TrustedProxies,
    pub outbound_timeout: Duration,
    /// Refresh credentials this long before they expire (default 5 minutes).
    pub refresh_margin: Duration,
    /// How often the background refresher looks for due credentials (default 15 s).
    pub refresh_interval: Duration,
    /// Keep recently read secrets in process memory (default true; `TOKENKEEPER_READ_CACHE=false`).
    pub read_cache: bool,
    /// Run the background refresher in this instance (default true).
    pub refresher_enabled: bool,
    pub max_body_bytes: usize,
    /// The HTTP server's header and request timeouts and its connection cap.
    pub http: HttpLimits,
    /// User-given provider base URLs may be http / private addresses (tests only).
    pub allow_private_urls: bool,
    /// Special-purpose networks that requests to user-given URLs may reach anyway
    /// (`TOKENKEEPER_ALLOWED_PRIVATE_NETWORKS`, comma-separated CIDRs).
    pub allowed_private_networks: Vec<ipnet::IpNet>,
    /// The refresh grants': provider endpoint overrides and OAuth clients, AWS credentials.
    pub grants: GrantSettings,
    /// The audit trail: read aggregation, retention, the JSON-lines sink.
    pub audit: AuditSettings,
    /// The web console (`TOKENKEEPER_CONSOLE`, `TOKENKEEPER_PUBLIC_URL`).
    pub console: ConsoleSettings,
    /// Change events to a webhook receiver (`None`: no events are written).
    pub webhooks: Option<WebhookSettings>,
    /// Connect flows: the public URL, the allowed return URLs, AWS onboarding.
    pub connect: ConnectSettings,
    /// Credential checks: on store, the background interval, the providers' API base URLs.
    pub checks: CheckSettings,
}

type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

fn raw(env: Env, var: &str) -> Option<String> {
    env(var).filter(|v| !v.trim().is_empty())
}

/// A secret from `VAR`, or from the file named by `VAR_FILE`. Empty (or blank) counts as unset, from
/// the file as from the variable.
fn secret(env: Env, var: &str) -> Result<Option<SecretString>, ConfigError> {
    if let Some(v) = raw(env, var) {
        return Ok(Some(SecretString::from(v)));
    }
    let file_var = format!("{var}_FILE");
    match raw(env, &file_var) {
        None => Ok(None),
        Some(path) => std::fs::read_to_string(&path)
            .map(|s| {
                Some(s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .map(SecretString::from)
            })
            .map_err(|e| ConfigError {
                var: file_var,
                reason: format!("cannot read {path}: {e}"),
            }),
    }
}

fn parsed<T: std::str::FromStr>(env: Env, var: &str, default: T) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match raw(env, var) {
        None => Ok(default),
        Some(v) => v.trim().parse().map_err(|e| ConfigError {
            var: var.into(),
            reason: format!("{v:?}: {e}"),
        }),
    }
}

/// A boolean setting; unset (or empty): `default`. Anything but the listed spellings is an error.
fn flag_or(env: Env, var: &str, default: bool) -> Result<bool, ConfigError> {
    match raw(env, var).as_deref().map(str::trim) {
        None => Ok(default),
        Some("0" | "false" | "no" | "off") => Ok(false),
        Some("1" | "true" | "yes" | "on") => Ok(true),
        Some(v) => Err(ConfigError {
            var: var.into(),
            reason: format!("{v:?} is not a boolean (true/false)"),
        }),
    }
}

/// A boolean setting that is off unless set.
fn flag(env: Env, var: &str) -> Result<bool, ConfigError> {
    flag_or(env, var, false)
}

/// A whole number of seconds within `min..=max` (`max` keeps millisecond arithmetic from overflowing).
fn secs(env: Env, var: &str, default: u64, min: u64, max: u64) -> Result<Duration, ConfigError> {
    let v = parsed(env, var, default)?;
    if !(min..=max).contains(&v) {
        return Err(err(var, format!("{v} is outside {min}..={max}")));
    }
    Ok(Duration::from_secs(v))
}

/// Ten years: the upper bound of durations kept as epoch-millisecond arithmetic.
const MAX_SECS: u64 = 10 * 365 * 24 * 3600;

fn err(var: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        var: var.into(),
        reason: reason.into(),
    }
}

impl Settings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(&|k| std::env::var(k).ok())
    }

    /// Builds settings from any variable lookup (tests pass a map).
    pub fn from_lookup(env: Env) -> Result<Self, ConfigError> {
        let passwords = password_settings(env)?;
        let secret_backend = match raw(env, "VAULT_ADDR") {
            None => SecretBackend::Embedded {
                key: secret(env, "TOKENKEEPER_SECRET_KEY")?,
            },
            Some(addr) => {
                url::Url::parse(&addr).map_err(|e| err("VAULT_ADDR", e.to_string()))?;
                let vs = VaultSettings {
                    addr,
                    token: secret(env, "VAULT_TOKEN")?,
                    // Kept as a path too: the file is read again when Vault refuses the token
                    // (a Vault Agent sink rotates it).
                    token_file: raw(env, "VAULT_TOKEN")
                        .is_none()
                        .then(|| raw(env, "VAULT_TOKEN_FILE"))
                        .flatten()
                        .map(PathBuf::from),
                    role_id: raw(env, "VAULT_ROLE_ID"),
                    secret_id: secret(env, "VAULT_SECRET_ID")?,
                    namespace: raw(env, "VAULT_NAMESPACE"),
                    ca_cert: raw(env, "VAULT_CACERT").map(PathBuf::from),
                };
                if vs.token.is_none() && (vs.role_id.is_none() || vs.secret_id.is_none()) {
                    return Err(err(
                        "VAULT_TOKEN",
                        "VAULT_ADDR is set: give VAULT_TOKEN(_FILE) or VAULT_ROLE_ID and VAULT_SECRET_ID(_FILE)",
                    ));
                }
                SecretBackend::Vault(vs)
            }
        };
        let auth_secrets = match secret(env, "AUTH_SECRET")? {
            None => Vec::new(),
            Some(s) => {
                use secrecy::ExposeSecret;
                s.expose_secret()
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| SecretString::from(s.to_string()))
                    .collect()
            }
        };
        let database_url = secret(env, "DATABASE_URL")?;
        if let Some(url) = &database_url {
            use secrecy::ExposeSecret;
            crate::db::Backend::from_url(url.expose_secret()).map_err(|e| err("DATABASE_URL", e.to_string()))?;
        }
        let name_part = |var: &str, default: &str| -> Result<String, ConfigError> {
            let v = raw(env, var).unwrap_or_else(|| default.to_string());
            if v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
                Ok(v)
            } else {
                Err(err(var, "only letters, digits, '-' and '_' are allowed"))
            }
        };
        let listen = parsed(env, "TOKENKEEPER_LISTEN", SocketAddr::from(([127, 0, 0, 1], 8080)))?;
        Ok(Settings {
            listen,
            data_dir: raw(env, "TOKENKEEPER_DATA_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| "./tokenkeeper-data".into()),
            database_url,
            secret_backend,
            kv_mount: name_part("VAULT_KV_MOUNT", "aurora")?,
            kv_base_path: name_part("VAULT_KV_BASE_PATH", "users")?,
            secret_prefix: name_part("TOKENKEEPER_SECRET_PREFIX", "aurora")?,
            env_name: name_part("TOKENKEEPER_ENV", "dev")?,
            auth_secrets,
            internal_secret: secret(env, "TOKENKEEPER_INTERNAL_SECRET")?,
            passwords,
            trusted_proxies: trusted_proxies(env)?,
            outbound_timeout: secs(env, "TOKENKEEPER_OUTBOUND_TIMEOUT_SECS", 10, 1, MAX_SECS)?,
            refresh_margin: Duration::from_secs(parsed(env, "TOKENKEEPER_REFRESH_MARGIN_SECS", 300u64)?),
            refresh_interval: Duration::from_secs(parsed(env, "TOKENKEEPER_REFRESH_INTERVAL_SECS", 15u64)?.max(1)),
            read_cache: flag_or(env, "TOKENKEEPER_READ_CACHE", true)?,
            refresher_enabled: !flag(env, "TOKENKEEPER_REFRESHER_DISABLED")?,
            max_body_bytes: match parsed(env, "TOKENKEEPER_MAX_BODY_BYTES", 64 * 1024usize)? {
                0 => return Err(err("TOKENKEEPER_MAX_BODY_BYTES", "must be at least 1")),
                n => n,
            },
            http: HttpLimits::from_lookup(env)?,
            allow_private_urls: flag(env, "TOKENKEEPER_ALLOW_PRIVATE_URLS")?,
            allowed_private_networks: crate::net::parse_networks(
                &raw(env, "TOKENKEEPER_ALLOWED_PRIVATE_NETWORKS").unwrap_or_default(),
            )
            .map_err(|reason| err("TOKENKEEPER_ALLOWED_PRIVATE_NETWORKS", reason))?,
            grants: GrantSettings::from_lookup(env)?,
            audit: AuditSettings::from_lookup(env)?,
            console: ConsoleSettings::from_lookup(env)?,
            webhooks: WebhookSettings::from_lookup(env)?,
            connect: ConnectSettings::from_lookup(env, listen)?,
            checks: CheckSettings::from_lookup(env)?,
        })
    }

    /// The addresses requests to user-given URLs may reach: any with `TOKENKEEPER_ALLOW_PRIVATE_URLS`
    /// (tests), else public ones and `TOKENKEEPER_ALLOWED_PRIVATE_NETWORKS`.
    pub fn address_policy(&self) -> crate::net::AddressPolicy {
        if self.allow_private_urls {
            crate::net::AddressPolicy::any()
        } else {
            crate::net::AddressPolicy::allowing(self.allowed_private_networks.clone())
        }
    }
}

/// `TOKENKEEPER_TRUSTED_PROXIES`. The former `TOKENKEEPER_TRUST_FORWARDED_FOR=true` trusted the first
/// entry, which the client writes: refused at start-up rather than silently dropped.
fn trusted_proxies(env: Env) -> Result<crate::net::TrustedProxies, ConfigError> {
    if flag(env, "TOKENKEEPER_TRUST_FORWARDED_FOR")? {
        return Err(err(
            "TOKENKEEPER_TRUST_FORWARDED_FOR",
            "no longer supported: list your reverse proxies in TOKENKEEPER_TRUSTED_PROXIES (comma-separated CIDRs)",
        ));
    }
    let list = raw(env, "TOKENKEEPER_TRUSTED_PROXIES").unwrap_or_default();
    crate::net::TrustedProxies::parse(&list).map_err(|reason| err("TOKENKEEPER_TRUSTED_PROXIES", reason))
}

fn password_settings(env: Env) -> Result<PasswordSettings, ConfigError> {
    let hash = match raw(env, "TOKENKEEPER_PASSWORD_HASH").as_deref() {
        None | Some("bcrypt") => PasswordHashKind::Bcrypt,
        Some("argon2id") => PasswordHashKind::Argon2id,
        Some(v) => {
            return Err(err(
                "TOKENKEEPER_PASSWORD_HASH",
                format!("{v:?}: expected bcrypt or argon2id"),
            ));
        }
    };
    let bcrypt_cost = parsed(env, "TOKENKEEPER_BCRYPT_COST", 12u32)?;
    if !(10..=31).contains(&bcrypt_cost) {
        return Err(err(
            "TOKENKEEPER_BCRYPT_COST",
            format!("{bcrypt_cost} is outside 10..=31"),
        ));
    }
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let max_concurrent_hashes = parsed(env, "TOKENKEEPER_MAX_CONCURRENT_HASHES", cpus)?;
    if max_concurrent_hashes == 0 {
        return Err(err("TOKENKEEPER_MAX_CONCURRENT_HASHES", "must be at least 1"));
    }
    // 0 would refuse every login and change-password before the first try.
    let max_failures = parsed(env, "TOKENKEEPER_RATE_LIMIT_MAX_FAILURES", 5u32)?;
    if max_failures == 0 {
        return Err(err("TOKENKEEPER_RATE_LIMIT_MAX_FAILURES", "must be at least 1"));
    }
    let register_limit = parsed(env, "TOKENKEEPER_REGISTER_LIMIT", 10u32)?;
    if register_limit == 0 {
        return Err(err("TOKENKEEPER_REGISTER_LIMIT", "must be at least 1"));
    }
    Ok(PasswordSettings {
        hash,
        bcrypt_cost,
        max_concurrent_hashes,
        hash_queue: parsed(env, "TOKENKEEPER_HASH_QUEUE", 64usize)?,
        register_limit,
        session_ttl: secs(env, "TOKENKEEPER_SESSION_TTL_SECS", 7 * 24 * 3600, 1, MAX_SECS)?,
        max_failures,
        failure_window: secs(env, "TOKENKEEPER_RATE_LIMIT_WINDOW_SECS", 15 * 60, 1, MAX_SECS)?,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Settings::from_lookup(&|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_are_the_embedded_service() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.data_dir, PathBuf::from("./tokenkeeper-data"));
        assert!(s.database_url.is_none());
        assert!(matches!(s.secret_backend, SecretBackend::Embedded { key: None }));
        assert_eq!((s.kv_mount.as_str(), s.kv_base_path.as_str()), ("aurora", "users"));
        assert_eq!((s.secret_prefix.as_str(), s.env_name.as_str()), ("aurora", "dev"));
        assert_eq!(s.passwords.bcrypt_cost, 12);
        assert_eq!(s.passwords.hash, PasswordHashKind::Bcrypt);
        assert!(s.auth_secrets.is_empty() && s.internal_secret.is_none());
        assert_eq!(s.refresh_margin, Duration::from_secs(300));
        let http = (s.http.header_timeout, s.http.request_timeout, s.http.max_connections);
        assert_eq!(http, (Duration::from_secs(10), Duration::from_secs(30), 10_000));
    }

    #[test]
    fn invalid_values_name_their_variable() {
        for (var, value) in [
            ("TOKENKEEPER_LISTEN", "not-an-address"),
            ("TOKENKEEPER_BCRYPT_COST", "9"),
            ("TOKENKEEPER_BCRYPT_COST", "twelve"),
            ("TOKENKEEPER_PASSWORD_HASH", "md5"),
            ("DATABASE_URL", "mysql://localhost/x"),
            ("TOKENKEEPER_ENV", "prod/../x"),
            ("TOKENKEEPER_TRUST_FORWARDED_FOR", "maybe"),
            ("TOKENKEEPER_TRUST_FORWARDED_FOR", "true"),
            ("TOKENKEEPER_TRUSTED_PROXIES", "10.0.0.0/8, proxy.internal"),
            ("TOKENKEEPER_REGISTER_LIMIT", "0"),
            ("TOKENKEEPER_HASH_QUEUE", "many"),
            ("VAULT_ADDR", "not a url"),
            ("TOKENKEEPER_ALLOWED_PRIVATE_NETWORKS", "10.0.0.0/8,intranet"),
        ] {
            let err = settings(&[(var, value)]).unwrap_err();
            assert_eq!(err.var, var, "{var}={value}: {err}");
            assert!(err.to_string().contains(var));
        }
        // Vault without credentials: the error says what to set.
        let err = settings(&[("VAULT_ADDR", "https://vault.example.com")]).unwrap_err();
        assert!(err.to_string().contains("VAULT_TOKEN"));
    }

    #[test]
    fn read_cache_uses_the_boolean_parser() {
        assert!(settings(&[]).unwrap().read_cache, "on by default");
        for (value, expected) in [
            ("false", false),
            ("0", false),
            ("off", false),
            ("true", true),
            ("yes", true),
        ] {
            let s = settings(&[("TOKENKEEPER_READ_CACHE", value)]).unwrap();
            assert_eq!(s.read_cache, expected, "{value}");
        }
        let err = settings(&[("TOKENKEEPER_READ_CACHE", "garbage")]).unwrap_err();
        assert_eq!(err.var, "TOKENKEEPER_READ_CACHE");
        assert!(err.to_string().contains("not a boolean"), "{err}");
    }

    #[test]
    fn limits_that_would_lock_everyone_out_are_refused() {
        for (var, value) in [
            ("TOKENKEEPER_RATE_LIMIT_MAX_FAILURES", "0"),
            ("TOKENKEEPER_RATE_LIMIT_MAX_FAILURES", "-1"),
            ("TOKENKEEPER_RATE_LIMIT_WINDOW_SECS", "0"),
            ("TOKENKEEPER_SESSION_TTL_SECS", "0"),
            ("TOKENKEEPER_SESSION_TTL_SECS", "18446744073709551615"),
            ("TOKENKEEPER_OUTBOUND_TIMEOUT_SECS", "0"),
            ("TOKENKEEPER_MAX_BODY_BYTES", "0"),
            ("TOKENKEEPER_MAX_CONCURRENT_HASHES", "0"),
            ("TOKENKEEPER_HTTP_HEADER_TIMEOUT_SECS", "0"),
            ("TOKENKEEPER_HTTP_HEADER_TIMEOUT_SECS", "ten"),
            ("TOKENKEEPER_HTTP_REQUEST_TIMEOUT_SECS", "0"),
            ("TOKENKEEPER_HTTP_REQUEST_TIMEOUT_SECS", "-30"),
            ("TOKENKEEPER_MAX_CONNECTIONS", "0"),
            ("TOKENKEEPER_MAX_CONNECTIONS", "lots"),
            ("TOKENKEEPER_MAX_CONNECTIONS", "99999999999"),
        ] {
            let err = settings(&[(var, value)]).unwrap_err();
            assert_eq!(err.var, var, "{var}={value}: {err}");
        }
        let s = settings(&[
            ("TOKENKEEPER_RATE_LIMIT_MAX_FAILURES", "1"),
            ("TOKENKEEPER_SESSION_TTL_SECS", "60"),
        ])
        .unwrap();
        assert_eq!(s.passwords.max_failures, 1);
        assert_eq!(s.passwords.session_ttl, Duration::from_secs(60));
    }

    #[test]
    fn aws_session_duration_must_be_whole_seconds() {
        for value in ["abc", "-5", "1.5", "3600s"] {
            let err = settings(&[("TOKENKEEPER_AWS_SESSION_DURATION_SECS", value)]).unwrap_err();
            assert_eq!(err.var, "TOKENKEEPER_AWS_SESSION_DURATION_SECS", "{value}: {err}");
        }
        // In range or not: clamped to STS's 900..=43200.
        for (value, secs) in [("3600", 3600), ("60", 900), ("999999", 43200), (" 7200 ", 7200)] {
            let s = settings(&[("TOKENKEEPER_AWS_SESSION_DURATION_SECS", value)]).unwrap();
            assert_eq!(s.grants.aws.session_duration_secs, secs, "{value}");
        }
        assert_eq!(settings(&[]).unwrap().grants.aws.session_duration_secs, 3600);
        let err = settings(&[("AWS_REGION", "US East 1")]).unwrap_err();
        assert_eq!(err.var, "AWS_REGION");
        assert_eq!(
            settings(&[("AWS_REGION", "eu-west-3")]).unwrap().grants.aws.region,
            "eu-west-3"
        );
        assert_eq!(settings(&[]).unwrap().grants.aws.region, "us-east-1");
    }

    #[test]
    fn endpoint_overrides_must_be_absolute_http_urls() {
        let mut vars: Vec<String> = vec![
            "AZURE_AUTHORITY_HOST".into(),
            "AWS_ENDPOINT_URL_STS".into(),
            "AWS_ENDPOINT_URL".into(),
        ];
        vars.extend(crate::providers::catalog().iter().map(|p| p.token_url_env_var()));
        for var in &vars {
            for bad in [
                "not a url",
                "/relative/token",
                "oauth2.googleapis.com/token",
                "ftp://example.com/token",
                "file:///etc/passwd",
                "https://user:hunter2@example.com/token",
            ] {
                let err = settings(&[(var.as_str(), bad)]).unwrap_err();
                assert_eq!(&err.var, var, "{var}={bad}: {err}");
                assert!(!err.to_string().contains("hunter2"), "the value is not echoed: {err}");
            }
            for good in [
                "https://login.example.com",
                "http://127.0.0.1:9/token",
                "https://example.com/base/",
            ] {
                let s = settings(&[(var.as_str(), good)]).unwrap_or_else(|e| panic!("{var}={good}: {e}"));
                assert_eq!(endpoint_setting(&s, var), Some(good), "{var}");
            }
        }
        // Azure's override may carry the catalog's `{tenant_id}` placeholder.
        let s = settings(&[(
            "TOKENKEEPER_AZURE_TOKEN_URL",
            "https://login.example.com/{tenant_id}/oauth2/v2.0/token",
        )]);
        assert!(s.is_ok(), "{:?}", s.err());
        // Read from a *_FILE like the other variables, and checked the same way.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("url");
        std::fs::write(&file, "nonsense\n").unwrap();
        let err = settings(&[("TOKENKEEPER_GCP_TOKEN_URL_FILE", file.to_str().unwrap())]).unwrap_err();
        assert_eq!(err.var, "TOKENKEEPER_GCP_TOKEN_URL");
    }

    /// The typed field an endpoint variable lands in.
    fn endpoint_setting<'a>(s: &'a Settings, var: &str) -> Option<&'a str> {
        let g = &s.grants;
        match var {
            "AWS_ENDPOINT_URL_STS" | "AWS_ENDPOINT_URL" => g.aws.sts_endpoint.as_deref(),
            _ => crate::providers::catalog().iter().find_map(|p| {
                let p_settings = g.provider(p);
                if p.token_url_env_var() == var {
                    Some(p_settings.token_url.as_deref())
                } else if p.endpoints.authority_host_env == Some(var) {
                    Some(p_settings.authority_host.as_deref())
                } else {
                    None
                }
            })?,
        }
    }

    #[test]
    fn the_sts_endpoint_variable_wins_over_the_generic_one() {
        let s = settings(&[
            ("AWS_ENDPOINT_URL", "https://generic.example.com"),
            ("AWS_ENDPOINT_URL_STS", "https://sts.example.com"),
        ])
        .unwrap();
        assert_eq!(s.grants.aws.sts_endpoint.as_deref(), Some("https://sts.example.com"));
    }

    #[test]
    fn secrets_come_from_files_and_never_show_in_debug() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("auth");
        std::fs::write(&file, "first-auth-secret, second-auth-secret\n").unwrap();
        let s = settings(&[
            ("AUTH_SECRET_FILE", file.to_str().unwrap()),
            ("TOKENKEEPER_INTERNAL_SECRET", "internal-very-secret"),
            ("TOKENKEEPER_GCP_CLIENT_SECRET", "gcp-client-very-secret"),
            ("AWS_SECRET_ACCESS_KEY", "aws-very-secret-key"),
            ("AWS_SESSION_TOKEN", "aws-very-secret-session"),
            ("VAULT_ADDR", "https://vault.example.com"),
            ("VAULT_TOKEN", "hvs-very-secret-token"),
            ("DATABASE_URL", "postgres://u:db-very-secret@localhost/db"),
        ])
        .unwrap();
        assert_eq!(s.auth_secrets.len(), 2, "comma-separated for rotation");
        let gcp = s.grants.provider(crate::providers::find("gcp").unwrap());
        let client_secret = gcp.client_secret.as_ref().map(secrecy::ExposeSecret::expose_secret);
        assert_eq!(client_secret, Some("gcp-client-very-secret"));
        let debug = format!("{s:?}");
        for secret in [
            "first-auth-secret",
            "internal-very-secret",
            "gcp-client-very-secret",
            "aws-very-secret-key",
            "aws-very-secret-session",
            "hvs-very-secret-token",
            "db-very-secret",
        ] {
            assert!(!debug.contains(secret), "{secret} in Debug");
        }
        let missing = settings(&[("AUTH_SECRET_FILE", "/nonexistent/file")]).unwrap_err();
        assert_eq!(missing.var, "AUTH_SECRET_FILE");
    }

    #[test]
    fn empty_internal_secret_means_unset() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty");
        std::fs::write(&empty, " \n").unwrap();
        for vars in [
            vec![("TOKENKEEPER_INTERNAL_SECRET", "")],
            vec![("TOKENKEEPER_INTERNAL_SECRET", "   ")],
            vec![("TOKENKEEPER_INTERNAL_SECRET_FILE", empty.to_str().unwrap())],
        ] {
            let s = settings(&vars).unwrap();
            assert!(s.internal_secret.is_none(), "{vars:?}");
        }
    }
}
