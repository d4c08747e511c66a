//! The embedded secret store: AES-256-GCM ciphertexts in a SQLite file of their own.
//!
//! Semantics follow Vault KV v2 (see [`super::SecretStore`]): every write makes a new version, the last
//! [`MAX_VERSIONS`] versions are kept, writes may carry a check-and-set version, delete destroys every
//! version. Every version is sealed with a fresh random 96-bit nonce, and its associated data binds the
//! secret's path and version number, so a ciphertext moved to another name or version does not decrypt.

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;
use std::time::Duration;

use aes_gcm::aead::{Aead as _, KeyInit as _, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rand::RngCore as _;
use secrecy::{ExposeSecret as _, SecretBox, SecretString};
use sqlx::Row as _;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use zeroize::Zeroizing;

use super::{SecretError, SecretStore, SecretVersion, StoreKind};

/// How many versions of a secret are kept (KV v2's default `max_versions`).
pub const MAX_VERSIONS: i64 = 10;

const AAD_PREFIX: &[u8] = b"tokenkeeper-embedded-v1\0";
const NONCE_LEN: usize = 12;

/// The 32-byte AES-256 key of the embedded store. Zeroized on drop; never printed.
pub struct EmbeddedKey(SecretBox<[u8; 32]>);

impl std::fmt::Debug for EmbeddedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EmbeddedKey([REDACTED])")
    }
}

impl EmbeddedKey {
    /// A key from its standard base64 text (32 bytes once decoded); surrounding whitespace is ignored.
    pub fn from_base64(s: &str) -> Result<Self, SecretError> {
        let bytes = Zeroizing::new(
            B64.decode(s.trim())
                .map_err(|_| SecretError::Corrupt("embedded key is not valid base64".into()))?,
        );
        if bytes.len() != 32 {
            return Err(SecretError::Corrupt(format!(
                "embedded key must be 32 bytes, got {}",
                bytes.len()
            )));
        }
        Ok(Self::from_bytes(&bytes))
    }

    /// A fresh random key from the operating system's generator.
    pub fn generate() -> Self {
        Self(SecretBox::init_with_mut(|k: &mut [u8; 32]| {
            rand::rngs::OsRng.fill_bytes(k)
        }))
    }

    fn from_bytes(bytes: &[u8]) -> Self {
        Self(SecretBox::init_with_mut(|k: &mut [u8; 32]| k.copy_from_slice(bytes)))
    }

    /// Reads the key file at `path`, or, when there is none, generates a key and writes it there
    /// (base64, mode 0600, never overwriting a file that appeared meanwhile). A key file readable by
    /// group or others is used, with a warning.
    pub fn load_or_generate(path: &Path) -> Result<Self, SecretError> {
        let io_err = |what: &str, e: std::io::Error| {
            SecretError::Unavailable(format!("{what} key file {}: {e}", path.display()))
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| io_err("cannot create directory for", e))?;
        }
        let key = Self::generate();
        let mut text = Zeroizing::new(B64.encode(key.0.expose_secret()));
        text.push('\n');
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            Ok(mut file) => {
                let written = file.write_all(text.as_bytes()).and_then(|_| file.sync_all());
                if let Err(e) = written {
                    drop(file);
                    let _ = std::fs::remove_file(path);
                    return Err(io_err("cannot write", e));
                }
                tracing::info!(path = %path.display(), "generated a new embedded secret-store key");
                Ok(key)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Self::load(path),
            Err(e) => Err(io_err("cannot create", e)),
        }
    }

    fn load(path: &Path) -> Result<Self, SecretError> {
        let meta = std::fs::metadata(path)
            .map_err(|e| SecretError::Unavailable(format!("cannot read key file {}: {e}", path.display())))?;
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(
                path = %path.display(),
                mode = format!("{:o}", meta.permissions().mode() & 0o777),
                "embedded key file is readable by group or others; run chmod 600 on it"
            );
        }
        let text = Zeroizing::new(
            std::fs::read_to_string(path)
                .map_err(|e| SecretError::Unavailable(format!("cannot read key file {}: {e}", path.display())))?,
        );
        Self::from_base64(&text).map_err(|e| match e {
            SecretError::Corrupt(m) => SecretError::Corrupt(format!("{m} (in {})", path.display())),
            other => other,
        })
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(self.0.expose_secret()))
    }
}

/// AES-256-GCM secrets in a SQLite file (`{data_dir}/secrets.sqlite` by convention).
pub struct EmbeddedStore {
    pool: SqlitePool,
    key: EmbeddedKey,
    mount: String,
    base_path: String,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("mount", &self.mount)
            .field("base_path", &self.base_path)
            .field("key", &"[REDACTED]")
            .finish_non_exhaustive()
    }
}

fn db_err(e: sqlx::Error) -> SecretError {
    SecretError::Unavailable(format!("embedded secret store: {e}"))
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(crate::clock::secs_i64)
        .unwrap_or(0)
}

/// A secret name is one path segment of letters, digits, `-`, `_` and `.` (not `.` or `..`).
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 512
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Mount and base path: one or more valid segments separated by `/` (outer slashes are dropped).
pub(crate) fn normalize_path(what: &str, p: &str) -> Result<String, SecretError> {
    let p = p.trim().trim_matches('/');
    if p.split('/').all(valid_name) {
        Ok(p.to_string())
    } else {
        Err(SecretError::Unavailable(format!(
            "invalid secret store {what} {p:?}: use letters, digits, '-', '_', '.' and '/'"
        )))
    }
}

fn invalid_name() -> SecretError {
    SecretError::Corrupt("invalid secret name".into())
}

impl EmbeddedStore {
    /// Opens (creating if needed) the SQLite file at `db_path` and its schema. `mount` and `base_path`
    /// only shape references (`local:kv/data/{mount}/{base}/{name}`) and the stored paths.
    pub async fn open(db_path: &Path, key: EmbeddedKey, mount: &str, base_path: &str) -> Result<Self, SecretError> {
        let mount = normalize_path("mount", mount)?;
        let base_path = normalize_path("base path", base_path)?;
        if let Some(parent) = db_path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| SecretError::Unavailable(format!("cannot create {}: {e}", parent.display())))?;
        }
        // Created 0600 before SQLite opens it: its -wal and -shm files take the database file's mode.
        crate::files::private_sqlite_file(db_path)
            .map_err(|e| SecretError::Unavailable(format!("cannot create {}: {e}", db_path.display())))?;
        let opts = SqliteConnectOptions::new()
            .filename(db_path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(opts)
            .await
            .map_err(db_err)?;
        for stmt in [
            "CREATE TABLE IF NOT EXISTS secret_current (
                path TEXT PRIMARY KEY NOT NULL,
                current_version INTEGER NOT NULL,
                updated_at INTEGER NOT NULL
            )",
            "CREATE TABLE IF NOT EXISTS secret_versions (
                path TEXT NOT NULL REFERENCES secret_current(path) ON DELETE CASCADE,
                version INTEGER NOT NULL,
                nonce BLOB NOT NULL,
                ciphertext BLOB NOT NULL,
                created_at INTEGER NOT NULL,
                PRIMARY KEY (path, version)
            )",
        ] {
            sqlx::query(stmt).execute(&pool).await.map_err(db_err)?;
        }
        Ok(Self {
            pool,
            key,
            mount,
            base_path,
        })
    }

    /// The stored path of a secret, also bound into every ciphertext's associated data.
    fn path(&self, name: &str) -> String {
        format!("{}/{}/{}", self.mount, self.base_path, name)
    }

    fn aad(path: &str, version: u64) -> Vec<u8> {
        let mut aad = AAD_PREFIX.to_vec();
        aad.extend_from_slice(path.as_bytes());
        aad.push(0);
        aad.extend_from_slice(version.to_string().as_bytes());
        aad
    }

    fn seal(&self, path: &str, version: u64, value: &str) -> Result<(Vec<u8>, Vec<u8>), SecretError> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let aad = Self::aad(path, version);
        let ct = self
            .key
            .cipher()
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: value.as_bytes(),
                    aad: &aad,
                },
            )
            .map_err(|_| SecretError::Corrupt("encryption failed".into()))?;
        Ok((nonce.to_vec(), ct))
    }

    fn open_sealed(&self, path: &str, version: u64, nonce: &[u8], ct: &[u8]) -> Result<SecretString, SecretError> {
        if nonce.len() != NONCE_LEN {
            return Err(SecretError::Corrupt("stored nonce has the wrong length".into()));
        }
        let aad = Self::aad(path, version);
        let plain = Zeroizing::new(
            self.key
                .cipher()
                .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad: &aad })
                .map_err(|_| {
                    SecretError::Corrupt("decryption failed (tampered data, wrong key, or moved ciphertext)".into())
                })?,
        );
        let text =
            std::str::from_utf8(&plain).map_err(|_| SecretError::Corrupt("decrypted secret is not UTF-8".into()))?;
        Ok(SecretString::from(text))
    }
}

#[async_trait]
impl SecretStore for EmbeddedStore {
    fn kind(&self) -> StoreKind {
        StoreKind::Embedded
    }

    fn reference(&self, name: &str) -> String {
        format!("local:kv/data/{}/{}/{}", self.mount, self.base_path, name)
    }

    async fn read(&self, name: &str, version: Option<u64>) -> Result<Option<SecretVersion>, SecretError> {
        if !valid_name(name) {
            return Ok(None);
        }
        let path = self.path(name);
        // Version 0 means the current one, as in KV v2.
        let row = match version.filter(|v| *v != 0) {
            None => {
                sqlx::query(
                    "SELECT v.version, v.nonce, v.ciphertext FROM secret_current c
                     JOIN secret_versions v ON v.path = c.path AND v.version = c.current_version
                     WHERE c.path = ?",
                )
                .bind(&path)
                .fetch_optional(&self.pool)
                .await
            }
            Some(v) => {
                let Ok(v) = i64::try_from(v) else {
                    return Ok(None);
                };
                sqlx::query(
                    "SELECT version, nonce, ciphertext FROM secret_versions
                     WHERE path = ? AND version = ?",
                )
                .bind(&path)
                .bind(v)
                .fetch_optional(&self.pool)
                .await
            }
        }
        .map_err(db_err)?;
        let Some(row) = row else { return Ok(None) };
        let version: i64 = row.try_get("version").map_err(db_err)?;
        let nonce: Vec<u8> = row.try_get("nonce").map_err(db_err)?;
        let ct: Vec<u8> = row.try_get("ciphertext").map_err(db_err)?;
        let version = u64::try_from(version).map_err(|_| SecretError::Corrupt("stored version is negative".into()))?;
        let value = self.open_sealed(&path, version, &nonce, &ct)?;
        Ok(Some(SecretVersion { value, version }))
    }

    /// No soft delete here: the current version is the newest one kept, the one a write's cas is checked against.
    async fn current_version(&self, name: &str) -> Result<u64, SecretError> {
        if !valid_name(name) {
            return Ok(0);
        }
        let current: Option<i64> = sqlx::query_scalar("SELECT current_version FROM secret_current WHERE path = ?")
            .bind(self.path(name))
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        u64::try_from(current.unwrap_or(0)).map_err(|_| SecretError::Corrupt("stored version is negative".into()))
    }

    async fn write(&self, name: &str, value: &SecretString, cas: Option<u64>) -> Result<u64, SecretError> {
        if !valid_name(name) {
            return Err(invalid_name());
        }
        let path = self.path(name);
        // BEGIN IMMEDIATE takes the write lock up front: two writers with the same cas serialize here,
        // and the second sees the first one's version.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(db_err)?;
        let current: Option<i64> = sqlx::query_scalar("SELECT current_version FROM secret_current WHERE path = ?")
            .bind(&path)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
        let current = current.unwrap_or(0);
        let current_u =
            u64::try_from(current).map_err(|_| SecretError::Corrupt("stored version is negative".into()))?;
        if let Some(expected) = cas
            && expected != current_u
        {
            return Err(SecretError::CasMismatch); // dropping `tx` rolls back
        }
        let (new_version, written) = (current + 1, current_u + 1);
        let (nonce, ct) = self.seal(&path, written, value.expose_secret())?;
        let now = now_secs();
        sqlx::query(
            "INSERT INTO secret_current (path, current_version, updated_at) VALUES (?, ?, ?)
             ON CONFLICT(path) DO UPDATE SET current_version = excluded.current_version,
                                             updated_at = excluded.updated_at",
        )
        .bind(&path)
        .bind(new_version)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        sqlx::query(
            "INSERT INTO secret_versions (path, version, nonce, ciphertext, created_at)
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&path)
        .bind(new_version)
        .bind(nonce)
        .bind(ct)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        sqlx::query("DELETE FROM secret_versions WHERE path = ? AND version <= ?")
            .bind(&path)
            .bind(new_version - MAX_VERSIONS)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(written)
    }

    async fn delete(&self, name: &str) -> Result<(), SecretError> {
        if !valid_name(name) {
            return Ok(());
        }
        let path = self.path(name);
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(db_err)?;
        sqlx::query("DELETE FROM secret_versions WHERE path = ?")
            .bind(&path)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        sqlx::query("DELETE FROM secret_current WHERE path = ?")
            .bind(&path)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }

    async fn check(&self) -> Result<(), SecretError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(db_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_from_base64_checks_length_and_debug_hides_it() {
        assert!(EmbeddedKey::from_base64("AAAA").is_err());
        assert!(EmbeddedKey::from_base64("not base64!").is_err());
        let k = EmbeddedKey::from_base64(&B64.encode([7u8; 32])).unwrap();
        assert_eq!(format!("{k:?}"), "EmbeddedKey([REDACTED])");
    }

    #[test]
    fn names_and_paths() {
        assert!(valid_name("aurora-dev-user123-gcp-token"));
        for bad in ["", ".", "..", "a/b", "a b", "a%2f"] {
            assert!(!valid_name(bad), "{bad}");
        }
        assert_eq!(normalize_path("base", "/users/").unwrap(), "users");
        assert_eq!(normalize_path("base", "team/users").unwrap(), "team/users");
        assert!(normalize_path("base", "team/../x").is_err());
        assert!(normalize_path("base", "").is_err());
    }
}
