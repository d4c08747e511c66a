//! Where provider secrets live. One trait, two implementations that pass one contract suite
//! (`tests/secret_store_contract.rs`):
//! - [`vault::VaultStore`]: HashiCorp Vault / OpenBao KV v2 over HTTP (production);
//! - [`embedded::EmbeddedStore`]: AES-256-GCM in a SQLite file in the data dir (the default).
//!
//! Semantics follow KV v2 so that both behave alike: every write makes a new version, old versions are
//! kept (rotation), writes may carry a check-and-set version, delete destroys every version.

pub mod embedded;
pub mod vault;

use async_trait::async_trait;
use secrecy::SecretString;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// Unreachable, sealed, refusing (403), or timing out. Maps to 503 "Secret store unavailable".
    #[error("secret store unavailable: {0}")]
    Unavailable(String),
    /// The check-and-set version did not match the current version.
    #[error("check-and-set version mismatch")]
    CasMismatch,
    /// Stored data could not be decrypted or parsed (tampered, wrong key, moved ciphertext).
    #[error("secret could not be decoded: {0}")]
    Corrupt(String),
}

/// One version of a secret: the `value` field of the KV v2 payload `{"value": "<json text>"}`.
pub struct SecretVersion {
    pub value: SecretString,
    pub version: u64,
}

impl std::fmt::Debug for SecretVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretVersion")
            .field("value", &"[REDACTED]")
            .field("version", &self.version)
            .finish()
    }
}

/// Which kind of store holds the secrets: what another deployment's secrets may already be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// Vault or OpenBao (KV v2 over HTTP): shared with Aurora when it names the same mount and base path.
    Vault,
    /// The embedded store (or a test's): Tokenkeeper's own, nobody else's secrets in it.
    Embedded,
}

#[async_trait]
pub trait SecretStore: Send + Sync + 'static {
    /// Which kind of store this is.
    fn kind(&self) -> StoreKind;

    /// The reference kept in SQL for a secret name: `vault:kv/data/{mount}/{base}/{name}` or
    /// `local:kv/data/{mount}/{base}/{name}`.
    fn reference(&self, name: &str) -> String;

    /// The secret name a reference of this store names (the inverse of [`SecretStore::reference`]);
    /// `None` for a reference to another store, mount or base path, or one that names no plain name.
    fn name_of(&self, reference: &str) -> Option<String> {
        let name = reference.strip_prefix(&self.reference(""))?;
        let plain = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        plain.then(|| name.to_string())
    }

    /// Reads a version (`None`: the current one). `Ok(None)` when there is no such secret or version.
    async fn read(&self, name: &str, version: Option<u64>) -> Result<Option<SecretVersion>, SecretError>;

    /// The current version's number, 0 when there is no secret: what a check-and-set write must name.
    /// Taken from the version metadata, not from the data: in KV v2 a soft-deleted current version
    /// (`vault kv delete`: data gone, metadata kept) reads as missing, yet a write must still name it.
    async fn current_version(&self, name: &str) -> Result<u64, SecretError>;

    /// Writes a new version and returns its number. `cas`: `None` writes unconditionally,
    /// `Some(0)` only if the secret does not exist, `Some(v)` only if the current version is `v`.
    async fn write(&self, name: &str, value: &SecretString, cas: Option<u64>) -> Result<u64, SecretError>;

    /// Destroys every version and the metadata. Deleting a missing secret is not an error.
    async fn delete(&self, name: &str) -> Result<(), SecretError>;

    /// Cheap reachability check for `/readyz`.
    async fn check(&self) -> Result<(), SecretError>;
}
