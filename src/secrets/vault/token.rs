//! The Vault token's upkeep: login (AppRole, token file), lookup, renewal, re-login on refusal, and the
//! background task that renews the token before it expires.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;
use tokio::time::Instant;

use super::VaultAuth;
use super::client::Client;
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

pub(super) struct TokenState {
    token: Option<SecretString>,
    /// Bumped whenever the token changes, so that concurrent re-logins collapse into one.
    generation: u64,
    /// `None`: not yet known (look it up).
    lease: Option<Lease>,
}

impl TokenState {
    /// A given token (`VAULT_TOKEN`), or none yet (token file, AppRole: the first login gets one).
    pub(super) fn new(token: Option<SecretString>) -> Self {
        Self {
            token,
            generation: 0,
            lease: None,
        }
    }
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
impl Client {
    /// The current token and its generation, logging in first if there is none yet.
    pub(super) async fn token(&self) -> Result<(SecretString, u64), SecretError> {
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

    /// Logs in again unless the token changed since `seen_generation` (someone else already did).
    pub(super) async fn relogin(&self, seen_generation: u64) -> Result<(), SecretError> {
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
                let auth = resp.json::<AuthResponse>("AppRole login")?.auth;
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
        let data = resp.json::<LookupResponse>("token lookup")?.data;
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
        let auth = resp.json::<AuthResponse>("token renewal")?.auth;
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
