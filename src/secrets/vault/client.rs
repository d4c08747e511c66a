//! The HTTP side of [`super::VaultStore`]: one exchange with Vault, and requests with the current token
//! (logging in again once when Vault refuses it). The token itself is kept by `token.rs`.

use reqwest::{Method, StatusCode};
use secrecy::ExposeSecret as _;
use secrecy::SecretString;
use serde::Deserialize;
use tokio::sync::{Mutex, Notify, RwLock};

use super::token::TokenState;
use super::{VaultAuth, VaultConfig};
use crate::secrets::SecretError;

pub(super) struct Response {
    pub status: StatusCode,
    /// As received (no copy): for KV reads it holds the secret, so it is dropped as soon as it is parsed.
    pub body: bytes::Bytes,
}

impl Response {
    /// The JSON body of a successful answer to a request whose answer holds no KV secret (login, token
    /// lookup and renewal, KV metadata); an error naming `op` otherwise.
    pub(super) fn json<T: serde::de::DeserializeOwned>(&self, op: &str) -> Result<T, SecretError> {
        if !self.status.is_success() {
            return Err(status_error(op, self.status, Some(&self.body)));
        }
        serde_json::from_slice(&self.body).map_err(|_| SecretError::Unavailable(format!("unexpected {op} response")))
    }
}

pub(super) struct Client {
    http: reqwest::Client,
    pub addr: String,
    /// `VAULT_ADDR` parsed once; each request only sets the path (after `api_prefix`) and the query.
    base: url::Url,
    /// `VAULT_ADDR`'s own path (if Vault sits under a prefix) followed by `/v1/`.
    api_prefix: String,
    namespace: Option<String>,
    pub(super) auth: VaultAuth,
    pub(super) state: RwLock<TokenState>,
    /// Held while logging in or looking the token up, so that concurrent re-logins collapse into one.
    pub(super) login_lock: Mutex<()>,
    /// Wakes the renewal task when the token changes.
    pub(super) changed: Notify,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    errors: Vec<String>,
}

/// Whether a Vault error body's `errors` mention `needle`.
pub(super) fn errors_mention(body: &[u8], needle: &str) -> bool {
    serde_json::from_slice::<ErrorBody>(body)
        .map(|b| b.errors.iter().any(|e| e.contains(needle)))
        .unwrap_or(false)
}

/// An error for an unexpected status. `body` (Vault's `errors`, shortened) is only given for requests
/// whose responses cannot carry secrets; KV reads pass `None`.
pub(super) fn status_error(op: &str, status: StatusCode, body: Option<&[u8]>) -> SecretError {
    let what = match status.as_u16() {
        401 | 403 => "refused the request",
        404 => "has no such path (is the KV v2 mount enabled?)",
        429 => "is rate limiting or in standby",
        503 => "is sealed or unavailable",
        500..=599 => "failed",
        _ => "rejected the request",
    };
    let mut msg = format!("vault {op}: Vault {what} ({status})");
    if let Some(errors) = body
        .and_then(|b| serde_json::from_slice::<ErrorBody>(b).ok())
        .map(|b| b.errors.join("; "))
        .filter(|e| !e.is_empty())
    {
        let errors: String = errors.chars().filter(|c| !c.is_control()).take(200).collect();
        msg.push_str(": ");
        msg.push_str(&errors);
    }
    SecretError::Unavailable(msg)
}

fn transport_error(path: &str, e: &reqwest::Error) -> SecretError {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "failed"
    };
    let path = path.split('?').next().unwrap_or(path);
    SecretError::Unavailable(format!("vault request {path} {kind}"))
}

impl Client {
    pub fn new(cfg: &VaultConfig) -> Result<Self, SecretError> {
        let addr = cfg.addr.trim().trim_end_matches('/').to_string();
        let parsed = url::Url::parse(&addr)
            .map_err(|e| SecretError::Unavailable(format!("invalid VAULT_ADDR {addr:?}: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(SecretError::Unavailable(format!(
                "invalid VAULT_ADDR {addr:?}: use http:// or https://"
            )));
        }
        let mut builder = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout)
            .redirect(reqwest::redirect::Policy::none());
        if let Some(pem) = &cfg.ca_cert_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| SecretError::Unavailable(format!("invalid VAULT_CACERT: {e}")))?;
            if certs.is_empty() {
                return Err(SecretError::Unavailable(
                    "invalid VAULT_CACERT: no certificate found".into(),
                ));
            }
            builder = builder.tls_certs_only(certs);
        }
        let http = builder
            .build()
            .map_err(|e| SecretError::Unavailable(format!("cannot build HTTP client: {e}")))?;
        let token = match &cfg.auth {
            VaultAuth::Token(t) => Some(t.clone()),
            _ => None,
        };
        let api_prefix = format!("{}/v1/", parsed.path().trim_end_matches('/'));
        Ok(Self {
            http,
            addr,
            base: parsed,
            api_prefix,
            namespace: cfg.namespace.clone().filter(|n| !n.trim().is_empty()),
            auth: cfg.auth.clone(),
            state: RwLock::new(TokenState::new(token)),
            login_lock: Mutex::new(()),
            changed: Notify::new(),
        })
    }

    /// One HTTP exchange. `token`: sent as `X-Vault-Token`; `namespace`: send `X-Vault-Namespace`.
    pub(super) async fn raw(
        &self,
        method: Method,
        path: &str,
        body: Option<&[u8]>,
        token: Option<&SecretString>,
        namespace: bool,
    ) -> Result<Response, SecretError> {
        let mut req = self.http.request(method, self.url(path));
        if let Some(t) = token {
            let mut value = reqwest::header::HeaderValue::from_str(t.expose_secret())
                .map_err(|_| SecretError::Unavailable("vault token is not a valid header".into()))?;
            value.set_sensitive(true);
            req = req.header("X-Vault-Token", value);
        }
        if namespace && let Some(ns) = &self.namespace {
            req = req.header("X-Vault-Namespace", ns);
        }
        if let Some(b) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(b.to_vec());
        }
        let resp = req.send().await.map_err(|e| transport_error(path, &e))?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| transport_error(path, &e))?;
        Ok(Response { status, body })
    }

    /// `{VAULT_ADDR}/v1/{path}`, `path` possibly with a query. Cheaper than parsing the whole URL again
    /// (scheme, host, IDNA) on every request.
    pub(super) fn url(&self, path: &str) -> url::Url {
        let (path, query) = match path.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path, None),
        };
        let mut url = self.base.clone();
        url.set_path(&format!("{}{path}", self.api_prefix));
        url.set_query(query);
        url
    }

    /// An authenticated request. When Vault refuses the token (401/403) and a new one can be had
    /// (AppRole, token file), logs in again once and retries.
    pub async fn request(&self, method: Method, path: &str, body: Option<&[u8]>) -> Result<Response, SecretError> {
        let (token, generation) = self.token().await?;
        let resp = self.raw(method.clone(), path, body, Some(&token), true).await?;
        let refused = matches!(resp.status.as_u16(), 401 | 403);
        if !refused || matches!(self.auth, VaultAuth::Token(_)) {
            return Ok(resp);
        }
        tracing::info!("Vault refused the token; logging in again");
        if let Err(e) = self.relogin(generation).await {
            tracing::warn!(error = %e, "Vault re-login failed");
            return Ok(resp);
        }
        let (token, _) = self.token().await?;
        self.raw(method, path, body, Some(&token), true).await
    }

    /// Readiness: Vault unsealed and active (or a standby that forwards), and our token accepted.
    pub async fn check(&self) -> Result<(), SecretError> {
        let resp = self
            .raw(
                Method::GET,
                "sys/health?standbyok=true&perfstandbyok=true",
                None,
                None,
                false,
            )
            .await?;
        match resp.status.as_u16() {
            200 => {}
            503 => return Err(SecretError::Unavailable("Vault is sealed".into())),
            501 => return Err(SecretError::Unavailable("Vault is not initialized".into())),
            _ => return Err(status_error("health", resp.status, None)),
        }
        let resp = self.request(Method::GET, "auth/token/lookup-self", None).await?;
        if resp.status.is_success() {
            Ok(())
        } else {
            Err(status_error("token lookup", resp.status, Some(&resp.body)))
        }
    }
}
