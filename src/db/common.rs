//! The queries both backends share. SQLite and PostgreSQL both accept `$N` placeholders,
//! `ON CONFLICT` and `RETURNING`, so one text serves both; the macro stamps these methods into each
//! backend's `impl Store` beside its backend-specific ones.

pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error().is_some_and(|d| d.is_unique_violation())
}

// Column lists as macros so that queries stay `&'static str` literals (sqlx refuses built strings).
macro_rules! user_columns {
    () => {
        "id, email, name, password_hash, password_changed_at, password_generation, created_at, must_change_password"
    };
}
macro_rules! connection_columns {
    () => {
        "org_id, user_id, provider, name, id, secret_ref, secret_version, metadata, status, status_reason, expires_at, \
         next_refresh_at, refresh_failures, created_at, updated_at, last_checked_at, last_check_error, next_check_at"
    };
}
macro_rules! audit_columns {
    () => {
        "id, user_id, org_id, kind, provider, connection_name, outcome, client_addr, detail, at, count"
    };
}

macro_rules! user_from_row {
    ($r:expr) => {{
        use sqlx::Row;
        let r = $r;
        $crate::db::User {
            id: r.try_get("id")?,
            email: r.try_get("email")?,
            name: r.try_get("name")?,
            password_hash: r
                .try_get::<Option<String>, _>("password_hash")?
                .map(secrecy::SecretString::from),
            password_changed_at: r.try_get("password_changed_at")?,
            password_generation: r.try_get("password_generation")?,
            created_at: r.try_get("created_at")?,
            must_change_password: r.try_get("must_change_password")?,
        }
    }};
}

/// Binds a connection's `$1` to `$11`: org, provider, reference, version, metadata, status, reason, expiry,
/// next refresh, failures, `updated_at` (`$col`: its [`crate::db::connection::ColumnValues`]).
/// Inserts a user's row inside the transaction `$tx` (the hash exposed only to bind it); the statement's
/// result, so that callers can tell a taken email.
macro_rules! insert_user {
    ($tx:expr, $user:expr) => {{
        use secrecy::ExposeSecret as _;
        let (tx, u): (_, &$crate::db::User) = ($tx, $user);
        sqlx::query(
            "INSERT INTO users (id, email, name, password_hash, password_changed_at, password_generation, \
             created_at, must_change_password) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&u.id)
        .bind(&u.email)
        .bind(&u.name)
        .bind(u.password_hash.as_ref().map(|h| h.expose_secret().to_string()))
        .bind(u.password_changed_at)
        .bind(u.password_generation)
        .bind(u.created_at)
        .bind(u.must_change_password)
        .execute(&mut **tx)
        .await
    }};
}

macro_rules! bind_connection {
    ($query:expr, $c:expr, $col:expr) => {{
        let (c, col) = (&$c, &$col);
        $query
            .bind(&c.org_id)
            .bind(&c.provider)
            .bind(&c.secret_ref)
            .bind(col.secret_version)
            .bind(&col.metadata)
            .bind(col.status)
            .bind(col.status_reason)
            .bind(col.expires_at)
            .bind(col.next_refresh_at)
            .bind(c.refresh_failures)
            .bind(col.updated_at)
    }};
}

macro_rules! connection_from_row {
    ($r:expr) => {{
        use sqlx::Row;
        let r = $r;
        $crate::db::Connection::from_columns(
            r.try_get("org_id")?,
            r.try_get("user_id")?,
            r.try_get("provider")?,
            r.try_get("name")?,
            r.try_get("id")?,
            r.try_get("secret_ref")?,
            r.try_get("secret_version")?,
            r.try_get("metadata")?,
            r.try_get("status")?,
            r.try_get("status_reason")?,
            r.try_get("expires_at")?,
            r.try_get("next_refresh_at")?,
            r.try_get("refresh_failures")?,
            r.try_get("created_at")?,
            r.try_get("updated_at")?,
        )?
        .with_check_columns(
            r.try_get("last_checked_at")?,
            r.try_get("last_check_error")?,
            r.try_get("next_check_at")?,
        )
    }};
}

macro_rules! audit_from_row {
    ($r:expr) => {{
        use sqlx::Row;
        let r = $r;
        $crate::db::AuditRecord {
            id: r.try_get("id")?,
            user_id: r.try_get("user_id")?,
            org_id: r.try_get("org_id")?,
            kind: r.try_get("kind")?,
            provider: r.try_get("provider")?,
            connection: r.try_get("connection_name")?,
            outcome: r.try_get("outcome")?,
            client_addr: r.try_get("client_addr")?,
            detail: r.try_get("detail")?,
            at: r.try_get("at")?,
            count: r.try_get("count")?,
            read_key: None,
        }
    }};
}

/// `impl Store for $ty` with the shared queries plus `$specific` items. `$ty` has a `pool` field.
/// Ends a connection write's transaction: when it changed a row, its events go in with it; a write that
/// changed nothing commits nothing.
macro_rules! written_with_events {
    ($tx:ident, $changed:expr, $events:expr) => {{
        let changed = $changed;
        if changed {
            $crate::db::outbox::insert_events!($tx, $events);
            $tx.commit().await?;
        }
        Ok(changed)
    }};
}

macro_rules! impl_store {
    ($ty:ty, { $($specific:tt)* }) => {
        #[async_trait::async_trait]
        impl $crate::db::Store for $ty {
            $($specific)*

            async fn ping(&self) -> Result<(), DbError> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            async fn create_user(&self, u: &User) -> Result<(), DbError> {
                // The user and their personal org (its id: theirs; they its admin), in one transaction.
                let mut tx = self.pool.begin().await?;
                match $crate::db::common::insert_user!(&mut tx, u) {
                    Ok(_) => {}
                    Err(e) if $crate::db::common::is_unique_violation(&e) => return Err(DbError::Conflict),
                    Err(e) => return Err(e.into()),
                }
                $crate::db::orgs::insert_org!(&mut tx, &$crate::db::OrgRow::personal_of(u));
                tx.commit().await?;
                Ok(())
            }

            async fn user_by_email(&self, email: &str) -> Result<Option<User>, DbError> {
                let sql = concat!("SELECT ", user_columns!(), " FROM users WHERE email = $1");
                let row = sqlx::query(sql).bind(email).fetch_optional(&self.pool).await?;
                Ok(match row { Some(r) => Some(user_from_row!(&r)), None => None })
            }

            async fn user_by_id(&self, id: &str) -> Result<Option<User>, DbError> {
                let sql = concat!("SELECT ", user_columns!(), " FROM users WHERE id = $1");
                let row = sqlx::query(sql).bind(id).fetch_optional(&self.pool).await?;
                Ok(match row { Some(r) => Some(user_from_row!(&r)), None => None })
            }

            async fn set_password(
                &self,
                user_id: &str,
                hash: &secrecy::SecretString,
                changed_at: i64,
                keep_session: Option<&str>,
            ) -> Result<bool, DbError> {
                use secrecy::ExposeSecret;
                let mut tx = self.pool.begin().await?;
                let updated = sqlx::query(
                    "UPDATE users SET password_hash = $1, password_changed_at = $2, \
                     password_generation = password_generation + 1, must_change_password = FALSE WHERE id = $3",
                )
                .bind(hash.expose_secret())
                .bind(changed_at)
                .bind(user_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if updated == 0 {
                    return Ok(false);
                }
                let keep = keep_session.unwrap_or("");
                sqlx::query(
                    "UPDATE sessions SET revoked_at = $1 \
                     WHERE user_id = $2 AND revoked_at IS NULL AND token_hash <> $3",
                )
                .bind(changed_at)
                .bind(user_id)
                .bind(keep)
                .execute(&mut *tx)
                .await?;
                // The session that made the change goes on, under the new generation.
                sqlx::query(
                    "UPDATE sessions SET password_generation = \
                     (SELECT password_generation FROM users WHERE id = $1) \
                     WHERE user_id = $1 AND token_hash = $2",
                )
                .bind(user_id)
                .bind(keep)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn create_session(&self, s: &NewSession) -> Result<bool, DbError> {
                let r = sqlx::query(
                    "INSERT INTO sessions (token_hash, user_id, created_at, expires_at, password_generation) \
                     SELECT $1, id, $3, $4, $5 FROM users \
                     WHERE id = $2 AND password_generation = $5",
                )
                .bind(&s.token_hash)
                .bind(&s.user_id)
                .bind(s.created_at)
                .bind(s.expires_at)
                .bind(s.password_generation)
                .execute(&self.pool)
                .await?;
                Ok(r.rows_affected() == 1)
            }

            async fn session_user(&self, token_hash: &str, now: i64) -> Result<Option<(String, i64)>, DbError> {
                use sqlx::Row;
                // A login that checked the old password while a change committed wrote its session with the
                // old generation (the check above and the change can interleave): refused here.
                let row = sqlx::query(
                    "SELECT s.user_id, s.expires_at FROM sessions s JOIN users u ON u.id = s.user_id \
                     WHERE s.token_hash = $1 AND s.revoked_at IS NULL AND s.expires_at > $2 \
                     AND s.password_generation = u.password_generation",
                )
                .bind(token_hash)
                .bind(now)
                .fetch_optional(&self.pool)
                .await?;
                Ok(match row { Some(r) => Some((r.try_get("user_id")?, r.try_get("expires_at")?)), None => None })
            }

            async fn revoke_session(&self, token_hash: &str, now: i64) -> Result<(), DbError> {
                sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE token_hash = $2 AND revoked_at IS NULL")
                    .bind(now)
                    .bind(token_hash)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn prune_sessions(&self, user_id: &str, now: i64, revoked_before: i64) -> Result<u64, DbError> {
                let r = sqlx::query(
                    "DELETE FROM sessions WHERE user_id = $1 AND (expires_at <= $2 OR revoked_at <= $3)",
                )
                .bind(user_id)
                .bind(now)
                .bind(revoked_before)
                .execute(&self.pool)
                .await?;
                Ok(r.rows_affected())
            }

            async fn reserve_attempts(&self, keys: &[String], at: i64) -> Result<Vec<i64>, DbError> {
                // One transaction for all the keys; what orders the ids is each backend's `begin_reservation`.
                let (_held, mut tx) = self.begin_reservation(keys).await?;
                let mut ids = Vec::with_capacity(keys.len());
                for key in keys {
                    let id: i64 = sqlx::query_scalar("INSERT INTO auth_failures (key, at, pending) VALUES ($1, $2, 1) RETURNING id")
                        .bind(key)
                        .bind(at)
                        .fetch_one(&mut *tx)
                        .await?;
                    ids.push(id);
                }
                tx.commit().await?;
                Ok(ids)
            }

            async fn confirm_failures(&self, ids: &[i64]) -> Result<(), DbError> {
                for id in ids {
                    sqlx::query("UPDATE auth_failures SET pending = 0 WHERE id = $1").bind(id).execute(&self.pool).await?;
                }
                Ok(())
            }

            async fn delete_failures(&self, ids: &[i64]) -> Result<(), DbError> {
                for id in ids {
                    sqlx::query("DELETE FROM auth_failures WHERE id = $1").bind(id).execute(&self.pool).await?;
                }
                Ok(())
            }

            async fn failures_since(&self, key: &str, since: i64, pending_since: i64, attempt_id: i64) -> Result<$crate::db::AttemptCounts, DbError> {
                use sqlx::Row;
                let row = sqlx::query(
                    "SELECT COUNT(*) AS n, MIN(at) AS oldest, \
                     COALESCE(SUM(CASE WHEN pending = 1 AND at >= $3 THEN 1 ELSE 0 END), 0) AS pending, \
                     COALESCE(SUM(CASE WHEN id < $4 THEN 1 ELSE 0 END), 0) AS ahead \
                     FROM auth_failures WHERE key = $1 AND at >= $2",
                )
                .bind(key)
                .bind(since)
                .bind(pending_since)
                .bind(attempt_id)
                .fetch_one(&self.pool)
                .await?;
                Ok($crate::db::AttemptCounts {
                    all: row.try_get("n")?,
                    oldest: row.try_get("oldest")?,
                    pending: row.try_get("pending")?,
                    ahead: row.try_get("ahead")?,
                })
            }

            async fn clear_failures(&self, key: &str) -> Result<(), DbError> {
                // Only settled failures: attempts still being checked (pending) keep counting.
                sqlx::query("DELETE FROM auth_failures WHERE key = $1 AND pending = 0").bind(key).execute(&self.pool).await?;
                Ok(())
            }

            async fn prune_failures(&self, before: i64) -> Result<u64, DbError> {
                let r = sqlx::query("DELETE FROM auth_failures WHERE at < $1").bind(before).execute(&self.pool).await?;
                Ok(r.rows_affected())
            }

            async fn insert_audit(&self, e: &AuditRecord) -> Result<(), DbError> {
                self.insert_audit_batch(std::slice::from_ref(e)).await
            }

            async fn prune_audit(&self, before: i64, batch: i64) -> Result<Option<$crate::db::PruneReport>, DbError> {
                let mut conn = self.pool.acquire().await?;
                if !self.try_prune_lock(&mut conn).await? {
                    return Ok(None);
                }
                let mut report = $crate::db::PruneReport::default();
                let res = async {
                    loop {
                        let started = std::time::Instant::now();
                        let gone = sqlx::query(
                            "DELETE FROM audit_events WHERE id IN \
                             (SELECT id FROM audit_events WHERE at < $1 ORDER BY at LIMIT $2)",
                        )
                        .bind(before)
                        .bind(batch)
                        .execute(&mut *conn)
                        .await?
                        .rows_affected();
                        report.batches += 1;
                        report.deleted += gone;
                        if u64::try_from(batch).map_or(true, |batch| gone < batch) {
                            return Ok::<_, DbError>(report);
                        }
                        // Paced: idle four times as long as the statement took, so that the prune takes at
                        // most a fifth of the database's time (and of the cores it shares with requests).
                        tokio::time::sleep(started.elapsed() * $crate::db::PRUNE_IDLE_FACTOR).await;
                    }
                }
                .await;
                self.prune_unlock(&mut conn).await;
                res.map(Some)
            }

            async fn list_audit(&self, owner: $crate::db::AuditOwner<'_>, before: Option<i64>, limit: i64) -> Result<Vec<AuditRecord>, DbError> {
                use $crate::db::AuditOwner;
                let (sql, id) = match owner {
                    AuditOwner::User(id) => (concat!("SELECT ", audit_columns!(), " FROM audit_events WHERE user_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3"), id),
                    AuditOwner::Org(id) => (concat!("SELECT ", audit_columns!(), " FROM audit_events WHERE org_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3"), id),
                };
                let rows = sqlx::query(sql)
                    .bind(id)
                    .bind(before.unwrap_or(i64::MAX))
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?;
                let mut out = Vec::with_capacity(rows.len());
                for r in &rows {
                    out.push(audit_from_row!(r));
                }
                Ok(out)
            }

            async fn update_connection_emitting(&self, c: &Connection, events: &[$crate::db::NewEvent]) -> Result<bool, DbError> {
                let col = c.columns()?;
                let mut tx = self.pool.begin().await?;
                let r = $crate::db::common::bind_connection!(sqlx::query(
                    "UPDATE connections SET secret_ref = $3, secret_version = $4, metadata = $5, status = $6, \
                     status_reason = $7, expires_at = $8, next_refresh_at = $9, refresh_failures = $10, \
                     updated_at = $11, last_checked_at = $13, last_check_error = $14, next_check_at = $15 \
                     WHERE org_id = $1 AND provider = $2 AND name = $12 AND secret_version <= $4",
                ), c, col)
                .bind(&c.name)
                .bind(col.last_checked_at)
                .bind(col.last_check_error)
                .bind(col.next_check_at)
                .execute(&mut *tx)
                .await?;
                written_with_events!(tx, r.rows_affected() == 1, events)
            }

            async fn put_connection_emitting(
                &self,
                c: &Connection,
                expected: Option<u64>,
                events: &[$crate::db::NewEvent],
            ) -> Result<bool, DbError> {
                let col = c.columns()?;
                // $1 to $11 as in update_connection ($1: the org); $12: the connection's name; $13: the version the
                // row must still name (update), or the new row's created_at (insert); $14 to $16 the check columns.
                let (sql, last) = match expected {
                    Some(version) => (
                        "UPDATE connections SET secret_ref = $3, secret_version = $4, metadata = $5, status = $6, \
                         status_reason = $7, expires_at = $8, next_refresh_at = $9, refresh_failures = $10, \
                         updated_at = $11, last_checked_at = $14, last_check_error = $15, next_check_at = $16 \
                         WHERE org_id = $1 AND provider = $2 AND name = $12 AND secret_version = $13",
                        $crate::db::connection::version_column(version)?,
                    ),
                    None => (
                        "INSERT INTO connections (org_id, provider, secret_ref, secret_version, metadata, status, \
                         status_reason, expires_at, next_refresh_at, refresh_failures, updated_at, name, created_at, \
                         last_checked_at, last_check_error, next_check_at, user_id, id) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18) \
                         ON CONFLICT (org_id, provider, name) DO NOTHING",
                        col.created_at,
                    ),
                };
                let query = $crate::db::common::bind_connection!(sqlx::query(sql), c, col)
                    .bind(&c.name)
                    .bind(last)
                    .bind(col.last_checked_at)
                    .bind(col.last_check_error)
                    .bind(col.next_check_at);
                // $17 and $18, the creator and the id, only for an insert.
                let query = if expected.is_none() { query.bind(&c.user_id).bind(&c.id) } else { query };
                let mut tx = self.pool.begin().await?;
                let r = query.execute(&mut *tx).await?;
                written_with_events!(tx, r.rows_affected() == 1, events)
            }

            async fn get_connection(&self, org_id: &str, provider: &str, name: &str) -> Result<Option<Connection>, DbError> {
                let sql = concat!("SELECT ", connection_columns!(), " FROM connections WHERE org_id = $1 AND provider = $2 AND name = $3");
                let row = sqlx::query(sql).bind(org_id).bind(provider).bind(name).fetch_optional(&self.pool).await?;
                Ok(match row { Some(r) => Some(connection_from_row!(&r)), None => None })
            }

            async fn connection_by_secret_ref(&self, secret_ref: &str) -> Result<Option<Connection>, DbError> {
                let sql = concat!("SELECT ", connection_columns!(), " FROM connections WHERE secret_ref = $1 LIMIT 1");
                let row = sqlx::query(sql).bind(secret_ref).fetch_optional(&self.pool).await?;
                Ok(match row { Some(r) => Some(connection_from_row!(&r)), None => None })
            }

            async fn list_connections(&self, org_id: &str) -> Result<Vec<Connection>, DbError> {
                let sql = concat!("SELECT ", connection_columns!(), " FROM connections WHERE org_id = $1 ORDER BY provider, name");
                let rows = sqlx::query(sql).bind(org_id).fetch_all(&self.pool).await?;
                let mut out = Vec::with_capacity(rows.len());
                for r in &rows {
                    out.push(connection_from_row!(r));
                }
                Ok(out)
            }

            async fn count_connections_by_status(&self) -> Result<Vec<(String, i64)>, DbError> {
                let rows: Vec<(String, i64)> =
                    sqlx::query_as("SELECT status, COUNT(*) FROM connections GROUP BY status ORDER BY status")
                        .fetch_all(&self.pool)
                        .await?;
                Ok(rows)
            }

            async fn delete_connection_emitting(
                &self,
                org_id: &str,
                provider: &str,
                name: &str,
                events: &[$crate::db::NewEvent],
            ) -> Result<bool, DbError> {
                let mut tx = self.pool.begin().await?;
                let r = sqlx::query("DELETE FROM connections WHERE org_id = $1 AND provider = $2 AND name = $3")
                    .bind(org_id)
                    .bind(provider)
                    .bind(name)
                    .execute(&mut *tx)
                    .await?;
                written_with_events!(tx, r.rows_affected() > 0, events)
            }
        }
    };
}

pub(crate) use {
    audit_columns, audit_from_row, bind_connection, connection_columns, connection_from_row, impl_store, insert_user,
    user_columns, user_from_row, written_with_events,
};
