//! Tokenkeeper's own Bearer sessions: 256 random bits, handed out once; only their SHA-256 is stored,
//! with an expiry, and they can be revoked (logout, password change). Dead rows of a user are deleted
//! when that user logs in again.
//!
//! A session carries the user's password generation read *before* the password was checked. A password
//! change moves the generation on in the transaction that revokes the other sessions, so a login whose
//! check raced the change is refused twice over: its session is not written when the generation moved
//! before the insert, and a session written anyway (the change committed between the insert's check
//! and its commit) is refused at every lookup, which compares it with the user's current generation.
//! Live sessions are cached in memory ([`IdentityCache`]); a revocation or a password change drops them
//! in every process (PostgreSQL triggers, SQLite's identity change counter) within a second.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use crate::clock::SharedClock;
use crate::db::identity_cache::Changed;
use crate::db::{DbError, IdentityCache, NewSession, SharedStore};

/// Marks Tokenkeeper's own tokens so they are told apart from Auth.js JWEs without a lookup.
pub const TOKEN_PREFIX: &str = "tks_";

pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[derive(Clone)]
pub struct Sessions {
    store: SharedStore,
    identity: Arc<IdentityCache>,
    clock: SharedClock,
    ttl: Duration,
}

/// A freshly issued session; the token is shown to the client once and never stored.
pub struct IssuedSession {
    pub token: SecretString,
    pub token_hash: String,
    pub expires_at_ms: i64,
}

impl Sessions {
    pub fn new(store: SharedStore, identity: Arc<IdentityCache>, clock: SharedClock, ttl: Duration) -> Self {
        Self {
            store,
            identity,
            clock,
            ttl,
        }
    }

    /// The cache of sessions, users' password changes and memberships these sessions are checked through.
    pub fn identity(&self) -> &Arc<IdentityCache> {
        &self.identity
    }

    /// `user_id`'s row, password or memberships changed (committed): cached copies go, here and elsewhere.
    pub async fn user_changed(&self, user_id: &str) {
        self.identity.changed(Changed::User(user_id)).await
    }

    /// A new session for `user_id`, or `None` when the user's password generation is no longer
    /// `password_generation` (the password changed while the login checked the old one).
    #[tracing::instrument(skip_all, fields(user = %user_id))]
    pub async fn issue(&self, user_id: &str, password_generation: i64) -> Result<Option<IssuedSession>, DbError> {
        let mut raw = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut raw);
        let token = SecretString::from(format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(raw)));
        let token_hash = hash_token(token.expose_secret());
        let now = self.clock.now_ms();
        let expires_at_ms = now.saturating_add(crate::clock::millis_i64(self.ttl));
        let session = NewSession {
            token_hash: token_hash.clone(),
            user_id: user_id.to_string(),
            created_at: now,
            expires_at: expires_at_ms,
            password_generation,
        };
        if !self.store.create_session(&session).await? {
            return Ok(None);
        }
        self.prune(user_id, now).await;
        Ok(Some(IssuedSession {
            token,
            token_hash,
            expires_at_ms,
        }))
    }

    /// The user behind a live session token, with the token's hash.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn resolve(&self, token: &str) -> Result<Option<(String, String)>, DbError> {
        let hash = hash_token(token);
        let user = self.identity.session_user(&hash, self.clock.now_ms()).await?;
        Ok(user.map(|u| (u, hash)))
    }

    #[tracing::instrument(skip_all)]
    pub async fn revoke(&self, token_hash: &str) -> Result<(), DbError> {
        self.store.revoke_session(token_hash, self.clock.now_ms()).await?;
        self.identity.changed(Changed::Session(token_hash)).await;
        Ok(())
    }

    /// Housekeeping at each login: deletes the user's sessions that expired, and those revoked at least
    /// a session lifetime ago (a revoked row is kept that long as a record of when it was ended).
    /// Only this user's rows, through the `user_id` index. A failure here does not fail the login.
    async fn prune(&self, user_id: &str, now: i64) {
        let revoked_before = now.saturating_sub(crate::clock::millis_i64(self.ttl));
        match self.store.prune_sessions(user_id, now, revoked_before).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(deleted = n, "dead sessions pruned"),
            Err(e) => tracing::warn!(error = %e, "pruning dead sessions failed"),
        }
    }
}
