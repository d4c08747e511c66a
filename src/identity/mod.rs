//! Who is calling (`docs/IDENTITY.md`). Accepted, in this order:
//! 1. `Authorization: Bearer tks_...`: a Tokenkeeper session ([`sessions`]);
//! 2. an Auth.js session: its cookie (possibly chunked), or the same JWE as a Bearer token ([`authjs`]);
//! 3. `X-User-ID` with `X-Internal-Secret` equal to the configured internal secret ([`internal`]).
//!
//! The first method whose credential is present decides: a bad credential is refused, it does not
//! fall through to a weaker method.
//!
//! A user whose password was handed to them (`must_change_password`, kept from Aurora) is held to changing
//! it here, in one place: a Tokenkeeper session of theirs (Bearer or the console's cookie) is admitted only
//! for [`Scope::OwnAccount`] until they do; anything else is [`AuthError::PasswordChangeRequired`]. Auth.js
//! sessions and internal callers are not held to it: the platform signed those users in with its own
//! password store and enforces its own copy of the flag, which Tokenkeeper's copy (taken at the import)
//! cannot follow.

pub mod authjs;
pub mod internal;
pub mod sessions;

use axum::http::HeaderMap;
use axum::http::header::{AUTHORIZATION, COOKIE};
use secrecy::SecretString;

use crate::clock::SharedClock;
use crate::db::DbError;

pub use sessions::Sessions;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMethod {
    /// A Tokenkeeper Bearer session; its hash, so logout can revoke it.
    Session {
        token_hash: String,
    },
    AuthJsCookie,
    AuthJsBearer,
    Internal,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user_id: String,
    pub method: AuthMethod,
}

impl Identity {
    /// Secret token data goes to Bearer and internal callers only, never to a browser cookie session.
    pub fn may_read_secrets(&self) -> bool {
        self.method != AuthMethod::AuthJsCookie
    }

    pub fn session_hash(&self) -> Option<&str> {
        match &self.method {
            AuthMethod::Session { token_hash } => Some(token_hash),
            _ => None,
        }
    }
}

/// What a request does, as far as a pending password change is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Anything: refused while the caller's own session must change its password first.
    Everything,
    /// Changing the password, reading one's own account, ending one's own session: always admitted.
    OwnAccount,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("authentication required")]
    Unauthenticated,
    /// A session of a user who must change their password first, for anything but [`Scope::OwnAccount`].
    #[error("the password must be changed first")]
    PasswordChangeRequired,
    #[error(transparent)]
    Store(#[from] DbError),
}

/// User ids from outside (Auth.js `sub`, `X-User-ID`) must be plain, bounded strings.
pub fn valid_external_user_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 255 && !id.chars().any(char::is_control)
}

#[derive(Clone)]
pub struct Authenticator {
    clock: SharedClock,
    sessions: Sessions,
    auth_secrets: std::sync::Arc<Vec<SecretString>>,
    internal_secret: Option<std::sync::Arc<SecretString>>,
}

impl Authenticator {
    pub fn new(
        clock: SharedClock,
        sessions: Sessions,
        auth_secrets: Vec<SecretString>,
        internal_secret: Option<SecretString>,
    ) -> Self {
        Self {
            clock,
            sessions,
            auth_secrets: std::sync::Arc::new(auth_secrets),
            internal_secret: internal_secret.map(std::sync::Arc::new),
        }
    }

    /// Who is calling, for anything ([`Scope::Everything`]).
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Identity, AuthError> {
        self.authenticate_for(headers, Scope::Everything).await
    }

    /// Who is calling, for `scope`. Its span gets the user id once known (never a token, a cookie or a
    /// header).
    #[tracing::instrument(level = "debug", skip_all, fields(user = tracing::field::Empty))]
    pub async fn authenticate_for(&self, headers: &HeaderMap, scope: Scope) -> Result<Identity, AuthError> {
        let identity = self.identify(headers, scope).await?;
        tracing::Span::current().record("user", identity.user_id.as_str());
        Ok(identity)
    }

    /// The caller of a Tokenkeeper session token carried some other way than a Bearer header (the web
    /// console's cookie): the same checks (expiry, revocation, the password generation, a pending
    /// password change for `scope`) as a Bearer.
    pub async fn session(&self, token: &str, scope: Scope) -> Result<Identity, AuthError> {
        if !token.starts_with(sessions::TOKEN_PREFIX) {
            return Err(AuthError::Unauthenticated);
        }
        let (user_id, token_hash) = self.sessions.resolve(token).await?.ok_or(AuthError::Unauthenticated)?;
        if scope != Scope::OwnAccount && self.sessions.identity().password_state(&user_id).await?.must_change {
            return Err(AuthError::PasswordChangeRequired);
        }
        Ok(Identity {
            user_id,
            method: AuthMethod::Session { token_hash },
        })
    }

    async fn identify(&self, headers: &HeaderMap, scope: Scope) -> Result<Identity, AuthError> {
        if let Some(token) = bearer(headers) {
            if token.starts_with(sessions::TOKEN_PREFIX) {
                return self.session(token, scope).await;
            }
            if authjs::looks_like_jwe(token) && !self.auth_secrets.is_empty() {
                let claims = authjs::decode_bearer(token, &self.auth_secrets, self.clock.now_secs())
                    .map_err(|_| AuthError::Unauthenticated)?;
                return self.accept_authjs(claims, AuthMethod::AuthJsBearer).await;
            }
            return Err(AuthError::Unauthenticated);
        }
        if !self.auth_secrets.is_empty() {
            let cookies: Vec<&str> = headers.get_all(COOKIE).iter().filter_map(|v| v.to_str().ok()).collect();
            if let Some((salt, token)) = authjs::session_token_from_cookies(&cookies.join("; ")) {
                let claims = authjs::decode(&token, salt, &self.auth_secrets, self.clock.now_secs())
                    .map_err(|_| AuthError::Unauthenticated)?;
                return self.accept_authjs(claims, AuthMethod::AuthJsCookie).await;
            }
        }
        if let Some(user_id) = internal::user_from_headers(headers, self.internal_secret.as_deref())? {
            return Ok(Identity {
                user_id,
                method: AuthMethod::Internal,
            });
        }
        Err(AuthError::Unauthenticated)
    }

    /// Refuses Auth.js sessions that began before the user's last password change, or in its second.
    async fn accept_authjs(&self, claims: authjs::AuthJsClaims, method: AuthMethod) -> Result<Identity, AuthError> {
        if !valid_external_user_id(&claims.user_id) {
            return Err(AuthError::Unauthenticated);
        }
        if let Some(changed_ms) = self.sessions.identity().password_changed_at(&claims.user_id).await? {
            // Whole seconds: JWT times have no finer grain, so a token from the second of the change may
            // have signed in with the old password; it is refused too (the user signs in once more).
            let signed_in = claims.signed_in_at().ok_or(AuthError::Unauthenticated)?;
            if signed_in <= changed_ms.div_euclid(1000) {
                return Err(AuthError::Unauthenticated);
            }
        }
        Ok(Identity {
            user_id: claims.user_id,
            method,
        })
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}
