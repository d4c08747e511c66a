//! SQLite: the embedded default (a file in the data dir), and the backend of single-node installs.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use tokio::sync::Notify;

use super::common::{
    audit_columns, audit_from_row, connection_columns, connection_from_row, impl_store, user_columns, user_from_row,
    written_with_events,
};
use super::connect::impl_connect_store;
use super::generation::ChangeGeneration;
use super::import::impl_import_store;
use super::orgs::impl_org_store;
use super::{AuditRecord, Backend, Connection, DbError, NewSession, RefreshLock, User};

pub struct SqliteStore {
    pool: SqlitePool,
    /// Bumped after every credential change, by this and every other process on the same file.
    changes: Arc<ChangeGeneration>,
    /// Bumped after every change to a session, a user or a membership (the identity cache's counter).
    identity_changes: Arc<ChangeGeneration>,
    /// Signalled after this store releases a refresh lock, so that its own waiters retry at once
    /// instead of at their next poll.
    released: Arc<Notify>,
}

impl SqliteStore {
    pub async fn connect(url: &str) -> Result<Self, DbError> {
        let opts = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let file = opts.get_filename().to_owned();
        // Created 0600 before SQLite opens it: its -wal and -shm files take the database file's mode.
        crate::files::private_sqlite_file(&file).map_err(|e| DbError::Sql(sqlx::Error::Io(e)))?;
        let pool = SqlitePoolOptions::new().max_connections(8).connect_with(opts).await?;
        // Connecting created the file, unless the database lives in memory (private to this process).
        // The real path: every process must map the same counter, however it names the database.
        let (changes, identity_changes) = if let Ok(file) = std::fs::canonicalize(&file)
            && file.is_file()
        {
            let open = |path: std::path::PathBuf| {
                ChangeGeneration::open(&path).map_err(|e| {
                    DbError::Sql(sqlx::Error::Configuration(
                        format!("cannot open the change counter {}: {e}", path.display()).into(),
                    ))
                })
            };
            (
                open(super::generation::path_beside(&file))?,
                open(super::generation::identity_path_beside(&file))?,
            )
        } else {
            (ChangeGeneration::private(), ChangeGeneration::private())
        };
        Ok(Self {
            pool,
            changes: Arc::new(changes),
            identity_changes: Arc::new(identity_changes),
            released: Arc::new(Notify::new()),
        })
    }

    /// SQLite has one writer at a time: the prune needs no lock of its own.
    async fn try_prune_lock(&self, _conn: &mut sqlx::pool::PoolConnection<sqlx::Sqlite>) -> Result<bool, DbError> {
        Ok(true)
    }

    async fn prune_unlock(&self, _conn: &mut sqlx::pool::PoolConnection<sqlx::Sqlite>) {}

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// The transaction in which rate-limit attempts are reserved (`Store::reserve_attempts`). SQLite has
    /// one writer at a time: ids are handed out in commit order, and in one order across the keys of one
    /// transaction, with nothing to lock.
    async fn begin_reservation(
        &self,
        _keys: &[String],
    ) -> Result<((), sqlx::Transaction<'static, sqlx::Sqlite>), DbError> {
        Ok(((), self.pool.begin().await?))
    }
}

impl_store!(SqliteStore, {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    async fn migrate(&self) -> Result<(), DbError> {
        sqlx::migrate!("./migrations/sqlite").run(&self.pool).await?;
        Ok(())
    }

    async fn insert_audit_batch(&self, events: &[AuditRecord]) -> Result<(), DbError> {
        if events.is_empty() {
            return Ok(());
        }
        // The batch travels as one JSON array of rows: the statement text is the same for any batch size,
        // so it is prepared once per connection. (A multi-row VALUES list is a new statement for every
        // size, and the statement cache kept up to 100 of them, megabytes each, per connection.)
        let rows: Vec<_> = events
            .iter()
            .map(|e| {
                (
                    &e.user_id,
                    &e.kind,
                    &e.provider,
                    &e.outcome,
                    &e.client_addr,
                    &e.detail,
                    e.at,
                    e.count,
                    &e.read_key,
                    &e.org_id,
                    &e.connection,
                )
            })
            .collect();
        let rows = serde_json::to_string(&rows).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        sqlx::query(
            "INSERT INTO audit_events (user_id, kind, provider, outcome, client_addr, detail, at, count, read_key, org_id, \
             connection_name) SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'), \
             json_extract(value, '$[3]'), json_extract(value, '$[4]'), json_extract(value, '$[5]'), \
             json_extract(value, '$[6]'), json_extract(value, '$[7]'), json_extract(value, '$[8]'), \
             json_extract(value, '$[9]'), json_extract(value, '$[10]') \
             FROM json_each($1) WHERE true ORDER BY key \
             ON CONFLICT (read_key) WHERE read_key IS NOT NULL DO UPDATE SET count = count + excluded.count",
        )
        .bind(rows)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn notify_changed(&self, _key: &str) -> Result<Option<u64>, DbError> {
        let counted = self.changes.bump().map_err(|e| DbError::Sql(sqlx::Error::Io(e)))?;
        Ok(Some(counted))
    }

    async fn subscribe_changes(&self) -> Result<super::ChangeFeed, DbError> {
        Ok(super::ChangeFeed::Counted(self.changes.clone()))
    }

    async fn notify_identity_changed(&self) -> Result<Option<u64>, DbError> {
        let counted = self
            .identity_changes
            .bump()
            .map_err(|e| DbError::Sql(sqlx::Error::Io(e)))?;
        Ok(Some(counted))
    }

    async fn subscribe_identity_changes(&self) -> Result<super::ChangeFeed, DbError> {
        Ok(super::ChangeFeed::Counted(self.identity_changes.clone()))
    }

    async fn refresh_lock(&self, key: &str) -> Result<RefreshLock, DbError> {
        // Not a no-op even though SQLite means a single node: a node may run several processes on the
        // same file (`tokenkeeper tokens get` refreshes through the same engine as `serve`, and so does
        // a second `serve`), and the engine's in-process mutex does not reach across them. Two
        // processes refreshing one credential at once send its single-use refresh token twice, and
        // the provider revokes the grant. The `lease` module says how, and why a lease row.
        super::lease::acquire(&self.pool, &self.released, key, ()).await
    }

    async fn claim_due(
        &self,
        now: crate::clock::Timestamp,
        lease_until: crate::clock::Timestamp,
        limit: i64,
    ) -> Result<Vec<super::DueConnection>, DbError> {
        // next_refresh_at is kept in whole seconds. SQLite has one writer at a time, so the UPDATE itself is
        // the claim. Never a credential that needs re-authorization (as on PostgreSQL, `CLAIM_DUE_SQL`).
        let rows: Vec<super::DueConnection> = sqlx::query_as(
            "UPDATE connections SET next_refresh_at = $1 WHERE rowid IN (SELECT rowid FROM connections \
             WHERE next_refresh_at <= $2 AND status <> 'needs_reauth' ORDER BY next_refresh_at LIMIT $3) \
             RETURNING org_id, provider, name",
        )
        .bind(lease_until.as_secs())
        .bind(now.as_secs())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }

    async fn claim_due_checks(
        &self,
        now: crate::clock::Timestamp,
        lease_until: crate::clock::Timestamp,
        limit: i64,
    ) -> Result<Vec<super::DueConnection>, DbError> {
        // As `claim_due`, on next_check_at.
        let rows: Vec<super::DueConnection> = sqlx::query_as(
            "UPDATE connections SET next_check_at = $1 WHERE rowid IN (SELECT rowid FROM connections \
             WHERE next_check_at <= $2 AND status <> 'needs_reauth' ORDER BY next_check_at LIMIT $3) \
             RETURNING org_id, provider, name",
        )
        .bind(lease_until.as_secs())
        .bind(now.as_secs())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }
});

impl_org_store!(SqliteStore);
impl_import_store!(SqliteStore);
super::outbox::impl_outbox_store!(SqliteStore);
impl_connect_store!(SqliteStore);
super::onboarding::impl_onboarding_store!(SqliteStore);
