//! The HTTP side of [`super::VaultStore`]: requests with the current token, login (AppRole, token file),
//! re-login on refusal, and the background renewal task.

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;
use tokio::sync::{Mutex, Notify, RwLock};
use tokio::time::Instant;

use super::{VaultAuth, VaultConfig};
use crate::secrets::SecretError;

/// What is known of the current token's lifetime.
#[derive(Clone, Copy, Debug)]
struct Lease {
    obtained: Instant,
    /// Remaining TTL when obtained; zero means it never expires (e.g. a root token).
    ttl: Duration,
    renewable: bool,
    /// The TTL the token is normally granted; a renewal granting less means its max TTL is near.
    full_ttl: Duration,
}

impl Lease {
    fn near_max(&self) -> bool {
        self.ttl + Duration::from_secs(1) < self.full_ttl
    }
}

struct TokenState {
    token: Option<SecretString>,
    /// Bumped whenever the token changes, so that concurrent re-logins collapse into one.
    generation: u64,
    /// `None`: not yet known (look it up).
    lease: Option<Lease>,
}

pub(super) struct Response {
    pub status: StatusCode,
    /// As received (no copy): for KV reads it holds the secret, so it is dropped as soon as it is parsed.
    pub body: bytes::Bytes,
}

pub(super) struct Client {
    http: reqwest::Client,
    pub addr: String,
    /// `VAULT_ADDR` parsed once; each request only sets the path (after `api_prefix`) and the query.
    base: url::Url,
    /// `VAULT_ADDR`'s own path (if Vault sits under a prefix) followed by `/v1/`.
    api_prefix: String,
    namespace: Option<String>,
    auth: VaultAuth,
    state: RwLock<TokenState>,
    login_lock: Mutex<()>,
    changed: Notify,
}

#[derive(Deserialize)]
struct AuthResponse {
    auth: AuthInfo,
}
#[derive(Deserialize)]
struct AuthInfo {
    client_token: Option<SecretString>,
    #[serde(default)]
    lease_duration: u64,
    #[serde(default)]
    renewable: bool,
}
#[derive(Deserialize)]
struct LookupResponse {
    data: LookupData,
}
#[derive(Deserialize)]
struct LookupData {
    #[serde(default)]
    ttl: u64,
    #[serde(default)]
    creation_ttl: u64,
    #[serde(default)]
    renewable: bool,
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
            state: RwLock::new(TokenState {
                token,
                generation: 0,
                lease: None,
            }),
            login_lock: Mutex::new(()),
            changed: Notify::new(),
        })
    }

    /// One HTTP exchange. `token`: sent as `X-Vault-Token`; `namespace`: send `X-Vault-Namespace`.
    async fn raw(
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

    /// The current token and its generation, logging in first if there is none yet.
    async fn token(&self) -> Result<(SecretString, u64), SecretError> {
        {
            let st = self.state.read().await;
            if let Some(t) = &st.token {
                return Ok((t.clone(), st.generation));
            }
        }
        self.relogin(0).await?;
        let st = self.state.read().await;
        match &st.token {
            Some(t) => Ok((t.clone(), st.generation)),
            None => Err(SecretError::Unavailable("no Vault token".into())),
        }
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

    /// Logs in again unless the token changed since `seen_generation` (someone else already did).
    async fn relogin(&self, seen_generation: u64) -> Result<(), SecretError> {
        let _guard = self.login_lock.lock().await;
        {
            let st = self.state.read().await;
            if st.token.is_some() && st.generation != seen_generation {
                return Ok(());
            }
        }
        self.login().await
    }

    /// Obtains a token: AppRole login, or (re-)reading the token file, then looking up its lease.
    /// Callers hold `login_lock`.
    async fn login(&self) -> Result<(), SecretError> {
        match &self.auth {
            VaultAuth::Token(_) => self.lookup().await,
            VaultAuth::TokenFile(path) => {
                let text = zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
                    SecretError::Unavailable(format!("cannot read Vault token file {}: {e}", path.display()))
                })?);
                let token = text.trim();
                if token.is_empty() {
                    return Err(SecretError::Unavailable(format!(
                        "Vault token file {} is empty",
                        path.display()
                    )));
                }
                self.set_token(SecretString::from(token), None).await;
                self.lookup().await
            }
            VaultAuth::AppRole { role_id, secret_id } => {
                let body = zeroize::Zeroizing::new(
                    serde_json::to_vec(&serde_json::json!({
                        "role_id": role_id,
                        "secret_id": secret_id.expose_secret(),
                    }))
                    .map_err(|_| SecretError::Unavailable("cannot encode login".into()))?,
                );
                let resp = self
                    .raw(Method::POST, "auth/approle/login", Some(&body), None, true)
                    .await?;
                if !resp.status.is_success() {
                    return Err(status_error("AppRole login", resp.status, Some(&resp.body)));
                }
                let auth = serde_json::from_slice::<AuthResponse>(&resp.body)
                    .map_err(|_| SecretError::Unavailable("unexpected AppRole login response".into()))?
                    .auth;
                let token = auth
                    .client_token
                    .ok_or_else(|| SecretError::Unavailable("AppRole login returned no token".into()))?;
                let ttl = Duration::from_secs(auth.lease_duration);
                let lease = Lease {
                    obtained: Instant::now(),
                    ttl,
                    renewable: auth.renewable,
                    full_ttl: ttl,
                };
                self.set_token(token, Some(lease)).await;
                tracing::info!(ttl_secs = auth.lease_duration, "logged in to Vault with AppRole");
                Ok(())
            }
        }
    }

    async fn set_token(&self, token: SecretString, lease: Option<Lease>) {
        let mut st = self.state.write().await;
        st.token = Some(token);
        st.generation += 1;
        st.lease = lease;
        drop(st);
        self.changed.notify_one();
    }

    async fn set_lease(&self, lease: Lease) {
        self.state.write().await.lease = Some(lease);
    }

    /// `auth/token/lookup-self`: checks the token and records its TTL.
    async fn lookup(&self) -> Result<(), SecretError> {
        let (token, generation) = {
            let st = self.state.read().await;
            match &st.token {
                Some(t) => (t.clone(), st.generation),
                None => return Err(SecretError::Unavailable("no Vault token".into())),
            }
        };
        let resp = self
            .raw(Method::GET, "auth/token/lookup-self", None, Some(&token), true)
            .await?;
        if !resp.status.is_success() {
            return Err(status_error("token lookup", resp.status, Some(&resp.body)));
        }
        let data = serde_json::from_slice::<LookupResponse>(&resp.body)
            .map_err(|_| SecretError::Unavailable("unexpected token lookup response".into()))?
            .data;
        let lease = Lease {
            obtained: Instant::now(),
            ttl: Duration::from_secs(data.ttl),
            renewable: data.renewable,
            full_ttl: Duration::from_secs(data.creation_ttl.max(data.ttl)),
        };
        let mut st = self.state.write().await;
        if st.generation == generation {
            st.lease = Some(lease);
        }
        Ok(())
    }

    /// `auth/token/renew-self`; records the new TTL.
    async fn renew(&self) -> Result<(), SecretError> {
        let (token, _) = self.token().await?;
        let resp = self
            .raw(Method::POST, "auth/token/renew-self", Some(b"{}"), Some(&token), true)
            .await?;
        if !resp.status.is_success() {
            return Err(status_error("token renewal", resp.status, Some(&resp.body)));
        }
        let auth = serde_json::from_slice::<AuthResponse>(&resp.body)
            .map_err(|_| SecretError::Unavailable("unexpected token renewal response".into()))?
            .auth;
        let full_ttl = self.state.read().await.lease.map(|l| l.full_ttl).unwrap_or_default();
        let ttl = Duration::from_secs(auth.lease_duration);
        self.set_lease(Lease {
            obtained: Instant::now(),
            ttl,
            renewable: auth.renewable,
            full_ttl: full_ttl.max(ttl),
        })
        .await;
        tracing::debug!(ttl_secs = auth.lease_duration, "renewed Vault token");
        Ok(())
    }

    /// At start: log in (AppRole, token file) or look the token up. Errors are only reported.
    pub async fn initial_login(&self) -> Result<(), SecretError> {
        let _guard = self.login_lock.lock().await;
        self.login().await
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

enum Action {
    Login,
    Lookup,
    Renew,
    Idle,
}

/// Decides the renewer's next step and when to take it.
async fn plan(client: &Client) -> (Duration, Action) {
    const IDLE: Duration = Duration::from_secs(3600);
    let st = client.state.read().await;
    let approle = matches!(client.auth, VaultAuth::AppRole { .. });
    if st.token.is_none() {
        return (Duration::ZERO, Action::Login);
    }
    let Some(lease) = st.lease else {
        return (Duration::ZERO, Action::Lookup);
    };
    if lease.ttl.is_zero() {
        return (IDLE, Action::Idle);
    }
    let at = lease.obtained + lease.ttl * 2 / 3;
    let wait = at
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(500));
    if approle && (!lease.renewable || lease.near_max()) {
        (wait, Action::Login)
    } else if lease.renewable {
        (wait, Action::Renew)
    } else {
        (IDLE, Action::Idle)
    }
}

/// Keeps the token alive: renews at ~2/3 of its TTL; with AppRole logs in again when renewal fails or
/// the max TTL is near; retries with backoff while Vault is unreachable.
pub(super) async fn renew_loop(client: Arc<Client>) {
    let mut retry: Option<Duration> = None;
    loop {
        let notified = client.changed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let (wait, action) = plan(&client).await;
        let wait = retry.unwrap_or(wait);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = &mut notified => { retry = None; continue; }
        }
        let result = match action {
            Action::Idle => continue,
            Action::Lookup => {
                let _guard = client.login_lock.lock().await;
                client.lookup().await
            }
            Action::Login => {
                let _guard = client.login_lock.lock().await;
                client.login().await
            }
            Action::Renew => match client.renew().await {
                Ok(()) => Ok(()),
                Err(e) if matches!(client.auth, VaultAuth::AppRole { .. }) => {
                    tracing::info!(error = %e, "Vault token renewal failed; logging in again");
                    let _guard = client.login_lock.lock().await;
                    client.login().await
                }
                Err(e) => Err(e),
            },
        };
        match result {
            Ok(()) => retry = None,
            Err(e) => {
                let next = retry.map_or(Duration::from_secs(1), |r| (r * 2).min(Duration::from_secs(30)));
                tracing::warn!(error = %e, retry_in_secs = next.as_secs(), "Vault token upkeep failed");
                retry = Some(next);
            }
        }
    }
}
