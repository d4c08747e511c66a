//! SQL storage: one [`Store`] trait, one implementation per database, chosen once from the URL scheme.
//! Both implementations share the portable queries ([`common`]) and keep their own migrations
//! (`migrations/sqlite`, `migrations/postgres`) and backend-specific parts.
//!
//! Only references and non-secret metadata live here; secret values never do.

mod common;
mod connect;
mod connection;
pub mod generation;
pub mod identity_cache;
mod import;
mod lease;
mod onboarding;
mod orgs;
pub mod outbox;
pub mod postgres;
pub mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use secrecy::SecretString;

use crate::clock::Timestamp;
pub use connect::{ConnectStore, FlowRow};
pub use connection::{Connection, ConnectionStatus, UnknownStatus};
pub use identity_cache::IdentityCache;
pub use import::{ImportStore, ImportWrite, ImportedMember};
pub use onboarding::{Onboarding, OnboardingStore};
pub use orgs::{MemberChange, MemberRow, OrgRow, OrgStore};
pub use outbox::{NewEvent, OutboxStore, PendingEvent};

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("unique constraint violated")]
    Conflict,
    #[error("unsupported database URL: {0}")]
    BadUrl(String),
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl DbError {
    /// The database could not be reached, or dropped the connection under a statement (a restart, a
    /// terminated backend, a failover, a full pool): worth retrying later, unlike a wrong statement.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Sql(
                sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed,
            ) => true,
            // SQLSTATE class 08 (connection exception), 57P0x (admin or crash shutdown, cannot connect
            // now), 53300 (too many connections).
            Self::Sql(sqlx::Error::Database(e)) => e
                .code()
                .is_some_and(|c| c.starts_with("08") || c.starts_with("57P") || c == "53300"),
            _ => false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn from_url(url: &str) -> Result<Self, DbError> {
        let scheme = url.split(':').next().unwrap_or_default();
        match scheme {
            "sqlite" => Ok(Self::Sqlite),
            "postgres" | "postgresql" => Ok(Self::Postgres),
            other => Err(DbError::BadUrl(format!(
                "scheme {other:?}: expected sqlite:// or postgres://"
            ))),
        }
    }
}

#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub email: String,
    pub name: Option<String>,
    pub password_hash: Option<SecretString>,
    /// Milliseconds since the epoch.
    pub password_changed_at: Option<i64>,
    /// Moves on with every password change; a session of another generation is refused (0 for a new user).
    pub password_generation: i64,
    pub created_at: i64,
    /// The password was handed to them (an account adopted from Aurora with its flag set): until they
    /// change it, their own sessions may do nothing else (`identity`). A password change clears it.
    pub must_change_password: bool,
}

#[derive(Debug, Clone)]
pub struct NewSession {
    pub token_hash: String,
    pub user_id: String,
    pub created_at: i64,
    pub expires_at: i64,
    /// The user's password generation read before the password was checked.
    pub password_generation: i64,
}

/// Whose audit events: a user's own, or those acted in an org.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditOwner<'a> {
    User(&'a str),
    Org(&'a str),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub id: i64,
    pub user_id: Option<String>,
    pub org_id: Option<String>,
    pub kind: String,
    pub provider: Option<String>,
    /// The connection's name, for events about one.
    pub connection: Option<String>,
    pub outcome: String,
    pub client_addr: Option<String>,
    pub detail: Option<String>,
    pub at: i64,
    /// How many events the row stands for: 1, or the credential reads of one group and minute.
    pub count: i64,
    /// A group of aggregated credential reads (one per connection, caller, outcome and minute): rows
    /// written with the same key add their counts up (an upsert), across instances. `None` for every other
    /// event. Written only, never read back.
    pub read_key: Option<String>,
}

/// A connection [`Store::claim_due`] claimed for the background refresher.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DueConnection {
    pub org_id: String,
    pub provider: String,
    pub name: String,
}

/// What one pass of [`Store::prune_audit`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PruneReport {
    pub deleted: u64,
    /// Statements run (each deletes at most the batch size).
    pub batches: u64,
}

#[async_trait]
/// Everything SQL keeps; the orgs part is [`OrgStore`], the importer's [`ImportStore`], the change events'
/// [`OutboxStore`], the connect flows' [`ConnectStore`], the role onboardings' [`OnboardingStore`].
pub trait Store: OrgStore + ImportStore + OutboxStore + ConnectStore + OnboardingStore + Send + Sync + 'static {
    fn backend(&self) -> Backend;
    async fn migrate(&self) -> Result<(), DbError>;
    async fn ping(&self) -> Result<(), DbError>;

    // Users and sessions.
    /// `Err(Conflict)` when the email is taken.
    async fn create_user(&self, user: &User) -> Result<(), DbError>;
    async fn user_by_email(&self, email: &str) -> Result<Option<User>, DbError>;
    async fn user_by_id(&self, id: &str) -> Result<Option<User>, DbError>;
    /// Sets a new hash and `password_changed_at`, moves the password generation on (`keep_session` with
    /// it), and revokes every session of the user except `keep_session`, in one transaction. Returns false
    /// when the user does not exist.
    async fn set_password(
        &self,
        user_id: &str,
        hash: &SecretString,
        changed_at: i64,
        keep_session: Option<&str>,
    ) -> Result<bool, DbError>;
    /// Writes the session if its password generation is still the user's; false (nothing written) if not.
    async fn create_session(&self, session: &NewSession) -> Result<bool, DbError>;
    /// The user of a live session (unexpired, unrevoked, and of the user's current password generation),
    /// and when it expires.
    async fn session_user(&self, token_hash: &str, now: i64) -> Result<Option<(String, i64)>, DbError>;
    async fn revoke_session(&self, token_hash: &str, now: i64) -> Result<(), DbError>;
    /// Deletes the user's dead sessions: expired at `now`, or revoked at or before `revoked_before`.
    /// One user's rows only (through the `user_id` index), so it stays cheap. Returns how many went.
    async fn prune_sessions(&self, user_id: &str, now: i64, revoked_before: i64) -> Result<u64, DbError>;

    // Rate limiting.
    /// Records an attempt whose password is not checked yet, as a pending failure under each key, in one
    /// transaction; returns the ids in the order of `keys`. Attempts that share keys get their ids in one
    /// order on every key they share (the limiter's "ahead of me" must not differ between keys, or two
    /// attempts could each wait for the other), and in commit order (never counted before visible).
    async fn reserve_attempts(&self, keys: &[String], at: i64) -> Result<Vec<i64>, DbError>;
    /// The password was wrong: the reserved attempts become failures.
    async fn confirm_failures(&self, ids: &[i64]) -> Result<(), DbError>;
    /// Removes reserved attempts by id (the password was right, or the attempt ended in an error).
    async fn delete_failures(&self, ids: &[i64]) -> Result<(), DbError>;
    /// For `key`, from `since` on, see [`AttemptCounts`].
    async fn failures_since(
        &self,
        key: &str,
        since: i64,
        pending_since: i64,
        attempt_id: i64,
    ) -> Result<AttemptCounts, DbError>;
    async fn clear_failures(&self, key: &str) -> Result<(), DbError>;
    async fn prune_failures(&self, before: i64) -> Result<u64, DbError>;

    // Audit.
    async fn insert_audit(&self, event: &AuditRecord) -> Result<(), DbError>;
    /// Several events in one transaction. Rows with a `read_key` already present add their `count` to
    /// that row's (the keys within one batch must differ).
    async fn insert_audit_batch(&self, events: &[AuditRecord]) -> Result<(), DbError>;
    /// Deletes the events recorded before `before`, at most `batch` rows a statement (oldest first,
    /// through the index on `at`), statement after statement (paced: [`PRUNE_IDLE_FACTOR`]) until none is
    /// left. One instance at a time:
    /// `None`, nothing deleted, while another holds the prune lock (PostgreSQL: a session advisory lock;
    /// SQLite has one writer and runs it always).
    async fn prune_audit(&self, before: i64, batch: i64) -> Result<Option<PruneReport>, DbError>;
    /// Newest first; `before`: only ids below it.
    async fn list_audit(
        &self,
        owner: AuditOwner<'_>,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<AuditRecord>, DbError>;

    // Connections.
    /// Writes the reference of a credential being stored, as a check-and-set on the row read before it
    /// (under the credential's lock): `expected` is the secret version that row named, `None` when there
    /// was no row. Updates only a row that still names `expected`, inserts only where there still is no
    /// row; `false`, nothing written, when the row changed meanwhile. The version may go down: a secret
    /// destroyed outside Tokenkeeper starts over at version 1, and the reference must follow it.
    /// `events` are written in the same transaction, only when the row was.
    async fn put_connection_emitting(
        &self,
        c: &Connection,
        expected: Option<u64>,
        events: &[NewEvent],
    ) -> Result<bool, DbError>;
    /// [`Store::put_connection_emitting`] without events.
    async fn put_connection(&self, c: &Connection, expected: Option<u64>) -> Result<bool, DbError> {
        self.put_connection_emitting(c, expected, &[]).await
    }
    /// Updates an existing row only (a refresh landing): `false` when the row is gone (deleted meanwhile)
    /// or names a newer secret version (the user stored a new credential meanwhile). `events` are written
    /// in the same transaction, only when the row was.
    async fn update_connection_emitting(&self, c: &Connection, events: &[NewEvent]) -> Result<bool, DbError>;
    /// [`Store::update_connection_emitting`] without events.
    async fn update_connection(&self, c: &Connection) -> Result<bool, DbError> {
        self.update_connection_emitting(c, &[]).await
    }
    async fn get_connection(&self, org_id: &str, provider: &str, name: &str) -> Result<Option<Connection>, DbError>;
    /// The connection whose reference is `secret_ref`, if any (a new connection's secret must be its own).
    async fn connection_by_secret_ref(&self, secret_ref: &str) -> Result<Option<Connection>, DbError>;
    async fn list_connections(&self, org_id: &str) -> Result<Vec<Connection>, DbError>;
    /// Connections per status, for metrics.
    async fn count_connections_by_status(&self) -> Result<Vec<(String, i64)>, DbError>;
    /// Returns whether a row was deleted; `events` are written in the same transaction, only when it was.
    async fn delete_connection_emitting(
        &self,
        org_id: &str,
        provider: &str,
        name: &str,
        events: &[NewEvent],
    ) -> Result<bool, DbError>;
    /// [`Store::delete_connection_emitting`] without events.
    async fn delete_connection(&self, org_id: &str, provider: &str, name: &str) -> Result<bool, DbError> {
        self.delete_connection_emitting(org_id, provider, name, &[]).await
    }

    // Refresh coordination across instances.
    /// Holds the cross-process refresh lock of one credential until the guard is dropped, waiting while
    /// another process or instance holds it. Not reentrant: the same caller must not take it twice.
    /// Both backends (several instances share PostgreSQL; several processes may share a SQLite file:
    /// `serve`, a second `serve`, `tokenkeeper tokens get`): a lease row in `refresh_locks`, renewed
    /// while held and deleted just after the guard drops; if its holder vanished, it is taken over once
    /// the lease runs out (PostgreSQL 10 s by the server's clock, SQLite 30 s). Waiting gives up with an
    /// error after 45 s.
    async fn refresh_lock(&self, key: &str) -> Result<RefreshLock, DbError>;
    /// Claims up to `limit` connections due at `now` (`next_refresh_at <= now`), moving their
    /// `next_refresh_at` to `lease_until` so that no other instance claims them meanwhile; if this one
    /// dies, the lease runs out and another picks them up. Oldest due first.
    async fn claim_due(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: i64,
    ) -> Result<Vec<DueConnection>, DbError>;

    /// Claims up to `limit` connections whose check is due at `now` (`next_check_at <= now`), moving their
    /// `next_check_at` to `lease_until` like [`Store::claim_due`]; the check's result then plans the next.
    async fn claim_due_checks(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: i64,
    ) -> Result<Vec<DueConnection>, DbError>;

    // Cross-process cache invalidation.
    /// Tells every other process that a credential changed; call it after the change is committed.
    /// PostgreSQL: nothing to do, returns `None` (a trigger on `connections` sends the `NOTIFY` in the
    /// transaction of the change). SQLite: bumps the shared change counter and returns its new value (so
    /// that this process's cache can tell its own change from another process's).
    async fn notify_changed(&self, key: &str) -> Result<Option<u64>, DbError>;
    /// How this process learns of changes made by the others.
    async fn subscribe_changes(&self) -> Result<ChangeFeed, DbError>;
    /// Tells every other process that a session, a user's password or a membership changed (call it after
    /// the change is committed), like [`Store::notify_changed`]: PostgreSQL's triggers on those tables
    /// announce it themselves (`None`); SQLite bumps the identity change counter.
    async fn notify_identity_changed(&self) -> Result<Option<u64>, DbError>;
    /// How this process learns of the others' identity changes: announced user ids (`u:{id}`) on
    /// PostgreSQL, the identity change counter on SQLite.
    async fn subscribe_identity_changes(&self) -> Result<ChangeFeed, DbError>;
}

/// How a process learns that other processes changed credentials.
pub enum ChangeFeed {
    /// PostgreSQL: the changed keys, announced with `NOTIFY`; [`CHANGED_ALL`] when some may have been missed.
    Announced(tokio::sync::mpsc::Receiver<String>),
    /// SQLite: a counter that every process opening the database bumps after each change.
    Counted(Arc<generation::ChangeGeneration>),
}

/// What the rate limiter sees of one key's recorded attempts inside its window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptCounts {
    /// Every recorded attempt: failures and attempts still being checked.
    pub all: i64,
    /// When the oldest of them was recorded.
    pub oldest: Option<i64>,
    /// Those still being checked, recorded at or after `pending_since` (older ones were left by a
    /// process that died mid-check, and count as failures).
    pub pending: i64,
    /// Those recorded before the attempt `attempt_id` (by id: arrival order).
    pub ahead: i64,
}

/// Sent by [`Store::subscribe_changes`] after a reconnect: anything may have changed.
pub const CHANGED_ALL: &str = "*";

/// A held refresh lock; dropping it releases the lock.
pub struct RefreshLock(#[allow(dead_code)] Option<Box<dyn Send + Sync>>);

impl RefreshLock {
    pub fn none() -> Self {
        Self(None)
    }

    pub fn holding(guard: impl Send + Sync + 'static) -> Self {
        Self(Some(Box::new(guard)))
    }
}

/// After each prune statement, the prune idles this many times as long as the statement took.
pub const PRUNE_IDLE_FACTOR: u32 = 4;

/// The advisory lock of the audit prune (PostgreSQL).
pub const AUDIT_PRUNE_LOCK: &str = "tokenkeeper:audit-prune";

/// A stable 64-bit lock key for a credential.
pub fn lock_key(key: &str) -> i64 {
    use sha2::Digest as _;
    let d = sha2::Sha256::digest(key.as_bytes());
    i64::from_be_bytes(d[..8].try_into().expect("8 bytes"))
}

pub type SharedStore = Arc<dyn Store>;

/// Opens the database named by `url` (its scheme picks the backend) and runs the migrations.
pub async fn connect(url: &str) -> Result<SharedStore, DbError> {
    let store: SharedStore = match Backend::from_url(url)? {
        Backend::Sqlite => Arc::new(sqlite::SqliteStore::connect(url).await?),
        Backend::Postgres => Arc::new(postgres::PgStore::connect(url).await?),
    };
    store.migrate().await?;
    Ok(store)
}
