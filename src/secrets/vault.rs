//! HashiCorp Vault / OpenBao KV v2 over plain HTTP (reqwest), the production secret store.
//!
//! Layout (Aurora's, so that both can share a Vault): a secret `name` lives at
//! `{mount}/data/{base_path}/{name}` with the payload `{"value": "<text>"}`, and is referenced in SQL as
//! `vault:kv/data/{mount}/{base_path}/{name}`.
//!
//! Authentication ([`VaultAuth`]): a token, a token file (re-read when Vault refuses the token, e.g. one
//! kept fresh by Vault Agent), or AppRole. [`VaultStore::connect`] never fails because Vault is down: it
//! logs a warning, and the store logs in lazily and recovers by itself. A background task renews
//! renewable tokens at about two thirds of their TTL, and with AppRole logs in again when renewal fails
//! or the token's max TTL is near. Every request has the configured timeout. Tokens and secret values
//! are never logged, and no error message quotes a KV read response.

mod client;
mod token;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::embedded::{normalize_path, valid_name};
use super::{SecretError, SecretStore, SecretVersion, StoreKind};
use client::Client;

/// How Tokenkeeper authenticates to Vault.
#[derive(Clone)]
pub enum VaultAuth {
    /// A fixed token (`VAULT_TOKEN`).
    Token(SecretString),
    /// A file holding the token (`VAULT_TOKEN_FILE`); re-read when Vault refuses the current token.
    TokenFile(PathBuf),
    /// AppRole login (`VAULT_ROLE_ID`, `VAULT_SECRET_ID`), repeated whenever the token runs out.
    AppRole { role_id: String, secret_id: SecretString },
}

impl std::fmt::Debug for VaultAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Token(_) => f.write_str("Token([REDACTED])"),
            Self::TokenFile(p) => f.debug_tuple("TokenFile").field(p).finish(),
            Self::AppRole { role_id, .. } => f
                .debug_struct("AppRole")
                .field("role_id", role_id)
                .field("secret_id", &"[REDACTED]")
                .finish(),
        }
    }
}

/// Connection settings; see [`VaultConfig::new`] for the defaults.
#[derive(Clone)]
pub struct VaultConfig {
    /// `VAULT_ADDR`, e.g. `https://vault.example.com:8200`.
    pub addr: String,
    pub auth: VaultAuth,
    /// `VAULT_KV_MOUNT`, default `aurora`.
    pub mount: String,
    /// `VAULT_KV_BASE_PATH`, default `users`.
    pub base_path: String,
    /// `VAULT_NAMESPACE` (Vault Enterprise / OpenBao namespaces), sent as `X-Vault-Namespace`.
    pub namespace: Option<String>,
    /// `VAULT_CACERT` contents (PEM, one or more certificates): when set, the only trusted roots.
    pub ca_cert_pem: Option<Vec<u8>>,
    /// Timeout of every request to Vault.
    pub timeout: Duration,
}

impl VaultConfig {
    /// Mount `aurora`, base path `users`, no namespace, system roots, 10 s timeout.
    pub fn new(addr: impl Into<String>, auth: VaultAuth) -> Self {
        Self {
            addr: addr.into(),
            auth,
            mount: "aurora".into(),
            base_path: "users".into(),
            namespace: None,
            ca_cert_pem: None,
            timeout: Duration::from_secs(10),
        }
    }
}

impl std::fmt::Debug for VaultConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultConfig")
            .field("addr", &self.addr)
            .field("auth", &self.auth)
            .field("mount", &self.mount)
            .field("base_path", &self.base_path)
            .field("namespace", &self.namespace)
            .field(
                "ca_cert_pem",
                &self.ca_cert_pem.as_ref().map(|p| format!("{} bytes", p.len())),
            )
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Vault KV v2 secret store. Dropping it stops its token-renewal task.
pub struct VaultStore {
    client: Arc<Client>,
    mount: String,
    base_path: String,
    renewer: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for VaultStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultStore")
            .field("addr", &self.client.addr)
            .field("mount", &self.mount)
            .field("base_path", &self.base_path)
            .finish_non_exhaustive()
    }
}

impl Drop for VaultStore {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

#[derive(Serialize)]
struct KvWrite<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    options: Option<CasOption>,
    data: KvValue<'a>,
}
#[derive(Serialize)]
struct CasOption {
    cas: u64,
}
#[derive(Serialize)]
struct KvValue<'a> {
    value: &'a str,
}

#[derive(Deserialize)]
struct KvReadResponse {
    data: KvReadData,
}
#[derive(Deserialize)]
struct KvReadData {
    data: Option<KvPayload>,
    metadata: KvMetadata,
}
#[derive(Deserialize)]
struct KvPayload {
    value: Option<SecretString>,
}
#[derive(Deserialize)]
struct KvMetadata {
    version: u64,
    #[serde(default)]
    deletion_time: String,
    #[serde(default)]
    destroyed: bool,
}
/// `GET {mount}/metadata/{path}`: only what is needed; the answer holds no secret value.
#[derive(Deserialize)]
struct KvMetadataResponse {
    data: KvMetadataData,
}
#[derive(Deserialize)]
struct KvMetadataData {
    current_version: u64,
}
#[derive(Deserialize)]
struct KvWriteResponse {
    data: KvWriteData,
}
#[derive(Deserialize)]
struct KvWriteData {
    version: u64,
}

impl VaultStore {
    /// Builds the client and starts token renewal. Fails only on invalid configuration (address, mount,
    /// base path, CA certificate); if Vault is unreachable or refuses the credentials it logs a warning
    /// and returns a store that logs in when Vault answers again.
    pub async fn connect(cfg: VaultConfig) -> Result<Self, SecretError> {
        let mount = normalize_path("mount", &cfg.mount)?;
        let base_path = normalize_path("base path", &cfg.base_path)?;
        let client = Arc::new(Client::new(&cfg)?);
        if let Err(e) = client.initial_login().await {
            tracing::warn!(
                addr = %client.addr,
                error = %e,
                "Vault is not usable yet; continuing, will retry by itself"
            );
        }
        let renewer = tokio::spawn(token::renew_loop(client.clone()));
        Ok(Self {
            client,
            mount,
            base_path,
            renewer,
        })
    }

    /// The least-privilege policy Tokenkeeper needs for a mount and base path (`deploy/vault-policy.hcl`
    /// holds it for `aurora` / `users`). Token lookup and renewal come from Vault's `default` policy.
    pub fn policy_hcl(mount: &str, base: &str) -> String {
        let mount = mount.trim_matches('/');
        let base = base.trim_matches('/');
        format!(
            r#"# Tokenkeeper: least-privilege policy for KV v2 mount "{mount}", base path "{base}".
# Apply with: vault policy write tokenkeeper vault-policy.hcl
# Token self-lookup and renewal come from Vault's built-in "default" policy: keep it attached.

# Write (with check-and-set) and read every version of a user's secrets.
path "{mount}/data/{base}/*" {{
  capabilities = ["create", "read", "update"]
}}

# Read version metadata; delete destroys a secret with all of its versions.
path "{mount}/metadata/{base}/*" {{
  capabilities = ["read", "delete"]
}}
"#
        )
    }

    fn data_path(&self, name: &str) -> String {
        format!("{}/data/{}/{}", self.mount, self.base_path, name)
    }

    fn metadata_path(&self, name: &str) -> String {
        format!("{}/metadata/{}/{}", self.mount, self.base_path, name)
    }
}

fn invalid_name() -> SecretError {
    SecretError::Corrupt("invalid secret name".into())
}

#[async_trait]
impl SecretStore for VaultStore {
    fn kind(&self) -> StoreKind {
        StoreKind::Vault
    }

    fn reference(&self, name: &str) -> String {
        format!("vault:kv/data/{}/{}/{}", self.mount, self.base_path, name)
    }

    async fn read(&self, name: &str, version: Option<u64>) -> Result<Option<SecretVersion>, SecretError> {
        if !valid_name(name) {
            return Ok(None);
        }
        let mut path = self.data_path(name);
        if let Some(v) = version {
            path.push_str(&format!("?version={v}"));
        }
        let resp = self.client.request(Method::GET, &path, None).await?;
        match resp.status {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Ok(None),
            s => return Err(client::status_error("read", s, None)),
        }
        // The body holds the secret: parse errors must not quote it.
        let parsed: KvReadResponse = serde_json::from_slice(&resp.body)
            .map_err(|_| SecretError::Corrupt("unexpected KV v2 read response".into()))?;
        let meta = parsed.data.metadata;
        if meta.destroyed || !meta.deletion_time.is_empty() {
            return Ok(None);
        }
        match parsed.data.data.and_then(|d| d.value) {
            Some(value) => Ok(Some(SecretVersion {
                value,
                version: meta.version,
            })),
            None => Err(SecretError::Corrupt("KV v2 entry has no string \"value\" field".into())),
        }
    }

    async fn current_version(&self, name: &str) -> Result<u64, SecretError> {
        if !valid_name(name) {
            return Ok(0);
        }
        let resp = self
            .client
            .request(Method::GET, &self.metadata_path(name), None)
            .await?;
        // No metadata: never written, or destroyed (`vault kv metadata delete`); a write then names 0.
        if resp.status == StatusCode::NOT_FOUND {
            return Ok(0);
        }
        Ok(resp
            .json::<KvMetadataResponse>("KV v2 metadata read")?
            .data
            .current_version)
    }

    async fn write(&self, name: &str, value: &SecretString, cas: Option<u64>) -> Result<u64, SecretError> {
        if !valid_name(name) {
            return Err(invalid_name());
        }
        let body = Zeroizing::new(
            serde_json::to_vec(&KvWrite {
                options: cas.map(|cas| CasOption { cas }),
                data: KvValue {
                    value: value.expose_secret(),
                },
            })
            .map_err(|_| SecretError::Corrupt("cannot encode secret".into()))?,
        );
        let resp = self
            .client
            .request(Method::POST, &self.data_path(name), Some(&body))
            .await?;
        if resp.status == StatusCode::BAD_REQUEST && client::errors_mention(&resp.body, "check-and-set") {
            return Err(SecretError::CasMismatch);
        }
        Ok(resp.json::<KvWriteResponse>("KV v2 write")?.data.version)
    }

    async fn delete(&self, name: &str) -> Result<(), SecretError> {
        if !valid_name(name) {
            return Ok(());
        }
        let resp = self
            .client
            .request(Method::DELETE, &self.metadata_path(name), None)
            .await?;
        match resp.status {
            s if s.is_success() || s == StatusCode::NOT_FOUND => Ok(()),
            s => Err(client::status_error("delete", s, Some(&resp.body))),
        }
    }

    async fn check(&self) -> Result<(), SecretError> {
        self.client.check().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_policy_file_matches_policy_hcl() {
        assert_eq!(
            include_str!("../../deploy/vault-policy.hcl"),
            VaultStore::policy_hcl("aurora", "users")
        );
    }

    #[test]
    fn write_body_shape() {
        let body = serde_json::to_value(KvWrite {
            options: Some(CasOption { cas: 3 }),
            data: KvValue { value: "{\"a\":1}" },
        })
        .unwrap();
        assert_eq!(
            body,
            serde_json::json!({"options": {"cas": 3}, "data": {"value": "{\"a\":1}"}})
        );
        let body = serde_json::to_value(KvWrite {
            options: None,
            data: KvValue { value: "x" },
        })
        .unwrap();
        assert_eq!(body, serde_json::json!({"data": {"value": "x"}}));
    }

    #[test]
    fn request_urls_keep_the_address_prefix_and_query() {
        let url = |addr: &str, path: &str| {
            let cfg = VaultConfig::new(addr, VaultAuth::Token("t".into()));
            client::Client::new(&cfg).unwrap().url(path).to_string()
        };
        assert_eq!(
            url("http://127.0.0.1:8200", "aurora/data/users/n?version=3"),
            "http://127.0.0.1:8200/v1/aurora/data/users/n?version=3"
        );
        assert_eq!(
            url("https://vault.example.com:8200/", "sys/health"),
            "https://vault.example.com:8200/v1/sys/health"
        );
        assert_eq!(
            url(" https://proxy.example.com/vault/ ", "auth/approle/login"),
            "https://proxy.example.com/vault/v1/auth/approle/login"
        );
        assert!(client::Client::new(&VaultConfig::new("vault:8200", VaultAuth::Token("t".into()))).is_err());
    }

    #[test]
    fn debug_hides_credentials() {
        let mut cfg = VaultConfig::new(
            "http://127.0.0.1:8200",
            VaultAuth::AppRole {
                role_id: "r".into(),
                secret_id: "s3cr3t-id".into(),
            },
        );
        assert!(!format!("{cfg:?}").contains("s3cr3t-id"));
        cfg.auth = VaultAuth::Token("example-vault-token".into());
        assert!(!format!("{cfg:?}").contains("example-vault-token"));
    }
}
