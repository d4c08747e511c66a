//! User accounts and passwords: register, login, change-password (`docs/API.md`).

pub mod hashing;
pub mod rate_limit;

use secrecy::{ExposeSecret, SecretString};

use crate::audit::{Auditor, Event, EventKind, Outcome};
use crate::clock::SharedClock;
use crate::db::{DbError, SharedStore, User};
use crate::identity::Sessions;
use crate::identity::sessions::IssuedSession;
pub use hashing::Hasher;
use hashing::{MAX_PASSWORD_BYTES, MIN_PASSWORD_CHARS};
pub use rate_limit::{Admission, Attempt, RateLimiter, RetryAfter};

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("{0}")]
    Invalid(String),
    #[error("An account with this email already exists")]
    EmailTaken,
    #[error("Invalid email or password")]
    InvalidCredentials,
    #[error("Current password is incorrect")]
    WrongCurrentPassword,
    #[error("User not found")]
    UserNotFound,
    #[error("Too many attempts")]
    TooManyAttempts(RetryAfter),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Hash(#[from] hashing::HashError),
    /// The event could not be written to the audit log (which fails closed).
    #[error(transparent)]
    AuditUnavailable(#[from] crate::audit::AuditError),
}

/// Who is asking, for rate limits and the audit trail.
#[derive(Debug, Clone)]
pub struct Caller<'a> {
    pub client_addr: &'a str,
}

#[derive(Clone)]
pub struct PasswordService {
    store: SharedStore,
    clock: SharedClock,
    hasher: Hasher,
    limiter: RateLimiter,
    /// Registrations per address ([`REGISTER_WINDOW`]).
    registrations: RateLimiter,
    sessions: Sessions,
    audit: Auditor,
}

/// The window of the registration limit (`TOKENKEEPER_REGISTER_LIMIT` per address within it).
pub const REGISTER_WINDOW: std::time::Duration = std::time::Duration::from_secs(3600);

pub struct LoggedIn {
    pub user: User,
    pub session: IssuedSession,
}

pub fn normalize_email(email: &str) -> Result<String, PasswordError> {
    let e = email.trim().to_lowercase();
    let ok = e.len() <= 254
        && e.split_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !d.starts_with('.'))
        && !e.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(e)
    } else {
        Err(PasswordError::Invalid("email is not a valid address".into()))
    }
}

impl PasswordService {
    pub fn new(
        store: SharedStore,
        clock: SharedClock,
        hasher: Hasher,
        limiter: RateLimiter,
        registrations: RateLimiter,
        sessions: Sessions,
        audit: Auditor,
    ) -> Self {
        Self {
            store,
            clock,
            hasher,
            limiter,
            registrations,
            sessions,
            audit,
        }
    }

    /// Checks a new password against the policy: at least 8 characters, and no longer than the
    /// configured algorithm takes without truncating (72 bytes for bcrypt).
    pub fn check_new_password(&self, field: &str, pw: &SecretString) -> Result<(), PasswordError> {
        let pw = pw.expose_secret();
        if pw.chars().count() < MIN_PASSWORD_CHARS {
            return Err(PasswordError::Invalid(format!(
                "{field} must be at least {MIN_PASSWORD_CHARS} characters"
            )));
        }
        let max = self.hasher.max_password_bytes();
        if pw.len() > max {
            return Err(PasswordError::Invalid(format!(
                "{field} must be at most {max} bytes (bcrypt would silently ignore the rest)"
            )));
        }
        Ok(())
    }

    /// Refused, in this order and before any hashing: invalid input (400), the address over its limit
    /// (429), a taken email (409). Every registration that gets past the limit counts against it.
    #[tracing::instrument(skip_all, fields(user = tracing::field::Empty))]
    pub async fn register(
        &self,
        email: &str,
        password: SecretString,
        name: Option<String>,
        caller: &Caller<'_>,
    ) -> Result<User, PasswordError> {
        let email = normalize_email(email)?;
        self.check_new_password("password", &password)?;
        let name = name.map(|n| n.trim().to_string()).filter(|n| !n.is_empty());
        if name.as_ref().is_some_and(|n| n.chars().count() > 200) {
            return Err(PasswordError::Invalid("name must be at most 200 characters".into()));
        }
        let keys = [rate_limit::address_key("register", caller.client_addr)];
        let attempt = match self.registrations.begin(&keys).await? {
            Admission::Go(attempt) => attempt,
            Admission::Refused(wait) => {
                self.audit_failed(None, EventKind::Register, caller, "too many registrations")
                    .await?;
                return Err(PasswordError::TooManyAttempts(wait));
            }
        };
        let res = self.create_user(email, password, name).await;
        match &res {
            // A server error or a full hashing queue is not the caller's registration.
            Err(PasswordError::Db(_) | PasswordError::Hash(_)) => self.registrations.abandon(attempt).await,
            _ => self.registrations.failed(attempt).await?,
        }
        if let Ok(user) = &res {
            tracing::Span::current().record("user", user.id.as_str());
        }
        let outcome = if res.is_ok() { Outcome::Ok } else { Outcome::Failed };
        let uid = res.as_ref().ok().map(|u| u.id.as_str());
        self.audit
            .record(self.event(uid, EventKind::Register, outcome, caller, None))
            .await?;
        res
    }

    /// A taken email is refused before the (slow, on purpose) hash; two registrations of one new email
    /// at once both hash, and the database's unique email refuses the second.
    async fn create_user(
        &self,
        email: String,
        password: SecretString,
        name: Option<String>,
    ) -> Result<User, PasswordError> {
        if self.store.user_by_email(&email).await?.is_some() {
            return Err(PasswordError::EmailTaken);
        }
        let hash = self.hasher.hash(password).await?;
        let user = User {
            id: uuid::Uuid::new_v4().to_string(),
            email,
            name,
            password_hash: Some(hash),
            password_changed_at: None,
            password_generation: 0,
            created_at: self.clock.now_ms(),
            must_change_password: false,
        };
        match self.store.create_user(&user).await {
            Ok(()) => {
                // Other processes may hold "no such user" for its id (Auth.js users have no row).
                self.sessions.user_changed(&user.id).await;
                Ok(user)
            }
            Err(DbError::Conflict) => Err(PasswordError::EmailTaken),
            Err(e) => Err(e.into()),
        }
    }

    /// Unknown email and wrong password answer alike, after alike work (a dummy hash is checked).
    #[tracing::instrument(skip_all, fields(user = tracing::field::Empty))]
    pub async fn login(
        &self,
        email: &str,
        password: SecretString,
        caller: &Caller<'_>,
    ) -> Result<LoggedIn, PasswordError> {
        if password.expose_secret().len() > MAX_PASSWORD_BYTES {
            return Err(PasswordError::Invalid(format!(
                "password must be at most {MAX_PASSWORD_BYTES} bytes"
            )));
        }
        let email = email.trim().to_lowercase();
        let account = rate_limit::account_key("login", &email);
        let keys = [account.clone(), rate_limit::address_key("login", caller.client_addr)];
        let attempt = match self.limiter.begin(&keys).await? {
            Admission::Go(attempt) => attempt,
            Admission::Refused(wait) => {
                // The targeted account, if there is one, sees the refused attempt in its own trail.
                let uid = self.store.user_by_email(&email).await.ok().flatten().map(|u| u.id);
                self.audit_failed(uid.as_deref(), EventKind::Login, caller, "too many attempts")
                    .await?;
                return Err(PasswordError::TooManyAttempts(wait));
            }
        };
        let checked = async {
            let user = self.store.user_by_email(&email).await?;
            let matched = match user.as_ref().and_then(|u| u.password_hash.clone()) {
                Some(hash) => self.hasher.verify(password, hash).await?,
                None => self.hasher.verify_dummy(password).await?,
            };
            Ok::<_, PasswordError>((matched, user))
        };
        let user = match checked.await {
            Ok((true, Some(user))) => user,
            Ok((_, user)) => {
                self.limiter.failed(attempt).await?;
                let uid = user.as_ref().map(|u| u.id.as_str());
                self.audit_failed(uid, EventKind::Login, caller, "invalid credentials")
                    .await?;
                return Err(PasswordError::InvalidCredentials);
            }
            Err(e) => {
                self.limiter.abandon(attempt).await;
                return Err(e);
            }
        };
        tracing::Span::current().record("user", user.id.as_str());
        self.limiter.succeeded(attempt, &account).await?;
        let Some(session) = self.sessions.issue(&user.id, user.password_generation).await? else {
            // The password changed while this login checked the old one.
            self.audit_failed(
                Some(&user.id),
                EventKind::Login,
                caller,
                "password changed during login",
            )
            .await?;
            return Err(PasswordError::InvalidCredentials);
        };
        self.audit
            .record(self.event(Some(&user.id), EventKind::Login, Outcome::Ok, caller, None))
            .await?;
        Ok(LoggedIn { user, session })
    }

    /// Verifies the current password, stores the new hash, revokes every other session of the user.
    #[tracing::instrument(skip_all, fields(user = %user_id))]
    pub async fn change_password(
        &self,
        user_id: &str,
        current: SecretString,
        new: SecretString,
        keep_session: Option<&str>,
        caller: &Caller<'_>,
    ) -> Result<(), PasswordError> {
        self.check_new_password("newPassword", &new)?;
        if current.expose_secret().len() > MAX_PASSWORD_BYTES {
            return Err(PasswordError::Invalid(format!(
                "currentPassword must be at most {MAX_PASSWORD_BYTES} bytes"
            )));
        }
        let account = rate_limit::account_key("change-password", user_id);
        let keys = [
            account.clone(),
            rate_limit::address_key("change-password", caller.client_addr),
        ];
        let attempt = match self.limiter.begin(&keys).await? {
            Admission::Go(attempt) => attempt,
            Admission::Refused(wait) => {
                self.audit_failed(Some(user_id), EventKind::ChangePassword, caller, "too many attempts")
                    .await?;
                return Err(PasswordError::TooManyAttempts(wait));
            }
        };
        let checked = async {
            let user = self
                .store
                .user_by_id(user_id)
                .await?
                .ok_or(PasswordError::UserNotFound)?;
            let matched = match user.password_hash.clone() {
                Some(hash) => self.hasher.verify(current, hash).await?,
                None => self.hasher.verify_dummy(current).await?,
            };
            Ok::<_, PasswordError>(matched)
        };
        match checked.await {
            Ok(true) => self.limiter.succeeded(attempt, &account).await?,
            Ok(false) => {
                self.limiter.failed(attempt).await?;
                self.audit_failed(
                    Some(user_id),
                    EventKind::ChangePassword,
                    caller,
                    "wrong current password",
                )
                .await?;
                return Err(PasswordError::WrongCurrentPassword);
            }
            Err(e) => {
                self.limiter.abandon(attempt).await;
                return Err(e);
            }
        }
        let hash = self.hasher.hash(new).await?;
        if !self
            .store
            .set_password(user_id, &hash, self.clock.now_ms(), keep_session)
            .await?
        {
            return Err(PasswordError::UserNotFound);
        }
        self.sessions.user_changed(user_id).await;
        self.audit
            .record(self.event(Some(user_id), EventKind::ChangePassword, Outcome::Ok, caller, None))
            .await?;
        Ok(())
    }

    /// Operator reset from the CLI: no current password, every session revoked.
    #[tracing::instrument(skip_all, fields(user = tracing::field::Empty))]
    pub async fn reset_password(&self, email: &str, new: SecretString) -> Result<(), PasswordError> {
        self.check_new_password("password", &new)?;
        let user = self
            .store
            .user_by_email(&normalize_email(email)?)
            .await?
            .ok_or(PasswordError::UserNotFound)?;
        tracing::Span::current().record("user", user.id.as_str());
        let hash = self.hasher.hash(new).await?;
        self.store
            .set_password(&user.id, &hash, self.clock.now_ms(), None)
            .await?;
        self.sessions.user_changed(&user.id).await;
        let caller = Caller { client_addr: "cli" };
        let e = self.event(
            Some(&user.id),
            EventKind::ChangePassword,
            Outcome::Ok,
            &caller,
            Some("operator reset"),
        );
        self.audit.record(e).await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user = %user_id))]
    pub async fn me(&self, user_id: &str) -> Result<User, PasswordError> {
        self.store.user_by_id(user_id).await?.ok_or(PasswordError::UserNotFound)
    }

    #[tracing::instrument(skip_all)]
    pub async fn logout(&self, session_hash: Option<&str>) -> Result<(), PasswordError> {
        if let Some(h) = session_hash {
            self.sessions.revoke(h).await?;
        }
        Ok(())
    }

    /// Records a failed attempt; a failed database write is logged and counted by the auditor, never the
    /// caller's; an audit log that cannot be written (and fails closed) is.
    async fn audit_failed(
        &self,
        user_id: Option<&str>,
        kind: EventKind,
        caller: &Caller<'_>,
        detail: &str,
    ) -> Result<(), PasswordError> {
        let e = self.event(user_id, kind, Outcome::Failed, caller, Some(detail));
        Ok(self.audit.record(e).await?)
    }

    fn event<'a>(
        &self,
        user_id: Option<&'a str>,
        kind: EventKind,
        outcome: Outcome,
        caller: &Caller<'a>,
        detail: Option<&'a str>,
    ) -> Event<'a> {
        Event {
            user_id,
            org_id: None,
            kind,
            provider: None,
            connection: None,
            outcome,
            client_addr: Some(caller.client_addr),
            detail,
        }
    }
}
