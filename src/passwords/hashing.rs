//! Password hashing on the blocking pool, bounded so that a burst of logins cannot starve the
//! executor (health checks stay fast) nor queue unbounded CPU work: at most `max_concurrent_hashes` run,
//! at most `hash_queue` more wait for a turn, and work beyond that is refused at once ([`HashError::Busy`],
//! 503 with `Retry-After`) rather than queued behind minutes of hashing.
//!
//! New hashes use bcrypt (default, cost >= 10) or Argon2id; verification accepts both formats whatever
//! the setting, so switching the setting never locks anyone out.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _, SaltString, rand_core::OsRng};
use argon2::{Argon2, PasswordHash};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;

use crate::config::{PasswordHashKind, PasswordSettings};

/// bcrypt reads only this many bytes; longer passwords are refused rather than truncated.
pub const BCRYPT_MAX_BYTES: usize = 72;
/// Upper bound for any password (Argon2id has no practical limit; this bounds the work per request).
pub const MAX_PASSWORD_BYTES: usize = 1024;
pub const MIN_PASSWORD_CHARS: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("password hashing failed: {0}")]
    Failed(String),
    /// Every hashing slot is taken and the queue is full.
    #[error("too much password work at the moment")]
    Busy,
}

#[derive(Clone)]
pub struct Hasher {
    kind: PasswordHashKind,
    bcrypt_cost: u32,
    permits: Arc<Semaphore>,
    /// Running plus waiting jobs: `max_concurrent_hashes + hash_queue` permits, taken without waiting.
    admission: Arc<Semaphore>,
    /// Hashes and verifications started, for tests and for the curious.
    jobs: Arc<AtomicU64>,
    /// A real hash of a random password, checked for unknown emails so they take as long as a wrong password.
    dummy: Arc<SecretString>,
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hasher")
            .field("kind", &self.kind)
            .field("bcrypt_cost", &self.bcrypt_cost)
            .finish()
    }
}

impl Hasher {
    pub async fn new(settings: &PasswordSettings) -> Result<Self, HashError> {
        let mut h = Self {
            kind: settings.hash,
            bcrypt_cost: settings.bcrypt_cost,
            permits: Arc::new(Semaphore::new(settings.max_concurrent_hashes)),
            admission: Arc::new(Semaphore::new(settings.max_concurrent_hashes + settings.hash_queue)),
            jobs: Arc::new(AtomicU64::new(0)),
            dummy: Arc::new(SecretString::from(String::new())),
        };
        let random = SecretString::from(uuid::Uuid::new_v4().to_string());
        h.dummy = Arc::new(h.hash(random).await?);
        Ok(h)
    }

    /// How many hashes and verifications this hasher (and its clones) started.
    pub fn jobs(&self) -> u64 {
        self.jobs.load(Ordering::Relaxed)
    }

    pub fn kind(&self) -> PasswordHashKind {
        self.kind
    }

    /// The longest password the configured algorithm takes without truncation.
    pub fn max_password_bytes(&self) -> usize {
        match self.kind {
            PasswordHashKind::Bcrypt => BCRYPT_MAX_BYTES,
            PasswordHashKind::Argon2id => MAX_PASSWORD_BYTES,
        }
    }

    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn hash(&self, password: SecretString) -> Result<SecretString, HashError> {
        let (kind, cost) = (self.kind, self.bcrypt_cost);
        self.run(move || hash_blocking(kind, cost, &password)).await?
    }

    /// True when `password` matches `hash` (bcrypt `$2*$` or `$argon2id$`).
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn verify(&self, password: SecretString, hash: SecretString) -> Result<bool, HashError> {
        self.run(move || Ok(verify_blocking(&password, &hash))).await?
    }

    /// Same work as a real verification, for unknown accounts. Always false.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn verify_dummy(&self, password: SecretString) -> Result<bool, HashError> {
        let dummy = SecretString::from(self.dummy.expose_secret().to_string());
        self.verify(password, dummy).await.map(|_| false)
    }

    async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T, HashError> {
        let _admitted = self.admission.try_acquire().map_err(|_| HashError::Busy)?;
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| HashError::Failed(e.to_string()))?;
        self.jobs.fetch_add(1, Ordering::Relaxed);
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || span.in_scope(f))
            .await
            .map_err(|e| HashError::Failed(e.to_string()))
    }
}

fn hash_blocking(kind: PasswordHashKind, cost: u32, password: &SecretString) -> Result<SecretString, HashError> {
    let pw = password.expose_secret().as_bytes();
    let hash = match kind {
        PasswordHashKind::Bcrypt => {
            // Longer passwords are refused by policy before this point; the crate's non-truncating
            // variant also counts the C terminator, so it would refuse exactly 72 bytes, which the
            // bcrypt algorithm fully uses. Up to 72 bytes nothing is lost; beyond, refuse.
            if pw.len() > BCRYPT_MAX_BYTES {
                return Err(HashError::Failed(format!(
                    "bcrypt takes at most {BCRYPT_MAX_BYTES} bytes"
                )));
            }
            bcrypt::hash(pw, cost).map_err(|e| HashError::Failed(e.to_string()))?
        }
        PasswordHashKind::Argon2id => {
            let salt = SaltString::generate(&mut OsRng);
            Argon2::default()
                .hash_password(pw, &salt)
                .map_err(|e| HashError::Failed(e.to_string()))?
                .to_string()
        }
    };
    Ok(SecretString::from(hash))
}

fn verify_blocking(password: &SecretString, hash: &SecretString) -> bool {
    let pw = password.expose_secret().as_bytes();
    let hash = hash.expose_secret();
    if hash.starts_with("$2") {
        // A password over 72 bytes cannot match a bcrypt hash without truncation: a mismatch, not an error.
        pw.len() <= BCRYPT_MAX_BYTES && bcrypt::verify(pw, hash).unwrap_or(false)
    } else if hash.starts_with("$argon2") {
        PasswordHash::new(hash).is_ok_and(|parsed| Argon2::default().verify_password(pw, &parsed).is_ok())
    } else {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(kind: PasswordHashKind) -> PasswordSettings {
        PasswordSettings {
            hash: kind,
            bcrypt_cost: 10,
            max_concurrent_hashes: 2,
            hash_queue: 8,
            register_limit: 10,
            session_ttl: std::time::Duration::from_secs(60),
            max_failures: 5,
            failure_window: std::time::Duration::from_secs(900),
        }
    }

    fn s(v: &str) -> SecretString {
        SecretString::from(v.to_string())
    }

    #[tokio::test]
    async fn bcrypt_round_trip_and_cross_format_verify() {
        let b = Hasher::new(&settings(PasswordHashKind::Bcrypt)).await.unwrap();
        let a = Hasher::new(&settings(PasswordHashKind::Argon2id)).await.unwrap();
        let hb = b.hash(s("correct horse")).await.unwrap();
        let ha = a.hash(s("correct horse")).await.unwrap();
        assert!(hb.expose_secret().starts_with("$2b$10$"));
        assert!(ha.expose_secret().starts_with("$argon2id$"));
        // Each verifies both formats.
        for h in [&a, &b] {
            assert!(h.verify(s("correct horse"), hb.clone()).await.unwrap());
            assert!(h.verify(s("correct horse"), ha.clone()).await.unwrap());
            assert!(!h.verify(s("wrong horse"), hb.clone()).await.unwrap());
            assert!(!h.verify(s("wrong horse"), ha.clone()).await.unwrap());
        }
    }

    #[tokio::test]
    async fn bcrypt_refuses_to_truncate() {
        let b = Hasher::new(&settings(PasswordHashKind::Bcrypt)).await.unwrap();
        assert!(b.hash(s(&"x".repeat(73))).await.is_err());
        let h = b.hash(s(&"x".repeat(72))).await.unwrap();
        // A 73-byte password sharing the first 72 bytes must not match.
        assert!(!b.verify(s(&"x".repeat(73)), h).await.unwrap());
        // Bytes, not characters: 37 two-byte characters (74 bytes) are refused, 36 (72 bytes) taken whole,
        // and 36 plus one more byte does not match them.
        assert!(b.hash(s(&"é".repeat(37))).await.is_err());
        let h = b.hash(s(&"é".repeat(36))).await.unwrap();
        assert!(b.verify(s(&"é".repeat(36)), h.clone()).await.unwrap());
        assert!(!b.verify(s(&format!("{}x", "é".repeat(36))), h).await.unwrap());
    }

    #[tokio::test]
    async fn python_bcrypt_fixture_verifies() {
        // Made by Python's `bcrypt` 4.x: bcrypt.hashpw(b"tokenkeeper-fixture", bcrypt.gensalt(10)).
        let fixture = include_str!("../../tests/fixtures/python-bcrypt.txt").trim();
        let b = Hasher::new(&settings(PasswordHashKind::Argon2id)).await.unwrap();
        assert!(b.verify(s("tokenkeeper-fixture"), s(fixture)).await.unwrap());
        assert!(!b.verify(s("tokenkeeper-fixtur"), s(fixture)).await.unwrap());
    }

    /// One slot, a queue of one: a job runs (held here), a second waits, a third is refused at once;
    /// once the first ends the second runs.
    #[tokio::test]
    async fn work_beyond_the_queue_is_refused() {
        let mut cfg = settings(PasswordHashKind::Bcrypt);
        (cfg.max_concurrent_hashes, cfg.hash_queue) = (1, 1);
        let h = Hasher::new(&cfg).await.unwrap();
        let (release, held) = std::sync::mpsc::channel::<()>();
        let (started, running) = tokio::sync::oneshot::channel::<()>();
        let first = tokio::spawn({
            let h = h.clone();
            async move {
                h.run(move || {
                    let _ = started.send(());
                    held.recv().is_ok()
                })
                .await
            }
        });
        running.await.unwrap();
        let second = tokio::spawn({
            let h = h.clone();
            async move { h.verify_dummy(s("queued password")).await }
        });
        while h.admission.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        // Refused at the first poll, without waiting for anything.
        use futures::FutureExt as _;
        let third = h.verify_dummy(s("one too many")).now_or_never();
        assert!(matches!(third, Some(Err(HashError::Busy))), "{third:?}");
        let third = h.hash(s("one too many")).now_or_never();
        assert!(matches!(third, Some(Err(HashError::Busy))));
        release.send(()).unwrap();
        assert!(first.await.unwrap().unwrap());
        assert!(!second.await.unwrap().unwrap());
        assert!(!h.verify_dummy(s("room again")).await.unwrap());
    }

    #[tokio::test]
    async fn dummy_never_matches() {
        let b = Hasher::new(&settings(PasswordHashKind::Bcrypt)).await.unwrap();
        assert!(!b.verify_dummy(s("anything at all")).await.unwrap());
    }
}
