//! Organizations and memberships in SQL: the [`OrgStore`] part of every store, one text for both backends
//! (stamped into each backend by [`impl_org_store`]), like `common.rs`.

use async_trait::async_trait;

use super::DbError;

/// An organization's row (`crate::orgs` types it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgRow {
    pub id: String,
    pub name: String,
    pub personal: bool,
    pub created_by: String,
    pub created_at: i64,
}

impl OrgRow {
    /// The personal org of a registered user: their id, their name (else email), they its creator.
    pub fn personal_of(u: &super::User) -> Self {
        Self {
            id: u.id.clone(),
            name: u.name.clone().unwrap_or_else(|| u.email.clone()),
            personal: true,
            created_by: u.id.clone(),
            created_at: u.created_at,
        }
    }
}

/// A member of an org: the membership, and the user's email and name when Tokenkeeper registered them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRow {
    pub user_id: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub role: String,
    pub created_at: i64,
}

/// What [`OrgStore::change_member`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberChange {
    Done,
    NotMember,
    /// Refused: the member is the org's last admin.
    LastAdmin,
    /// Refused: the one making the change is no admin of the org (any more).
    NotAdmin,
}

#[async_trait]
pub trait OrgStore {
    /// Creates `user_id`'s personal org (its id: the user's id) with them as its admin, unless that org
    /// exists. For users Tokenkeeper did not register (Auth.js, internal callers), when first seen.
    async fn ensure_personal_org(&self, user_id: &str, name: &str, now: i64) -> Result<(), DbError>;
    /// Creates an org with its creator (`created_by`) as admin, in one transaction.
    async fn create_org(&self, org: &OrgRow) -> Result<(), DbError>;
    /// The orgs `user_id` belongs to, with their role: personal first, then by name.
    async fn orgs_of(&self, user_id: &str) -> Result<Vec<(OrgRow, String)>, DbError>;
    /// The org and `user_id`'s role in it; `None` when they are not a member (or there is no such org).
    async fn membership(&self, org_id: &str, user_id: &str) -> Result<Option<(OrgRow, String)>, DbError>;
    /// Oldest member first.
    async fn members(&self, org_id: &str) -> Result<Vec<MemberRow>, DbError>;
    /// `Err(Conflict)` when already a member; `false` when there is no such org.
    async fn add_member(&self, org_id: &str, user_id: &str, role: &str, now: i64) -> Result<bool, DbError>;
    /// `by` gives a member a new role (`Some`) or removes them (`None`), in one transaction holding the
    /// org's row locked (an `UPDATE` of it, first: PostgreSQL's row lock, SQLite's write lock), so that
    /// two changes at once are in one order: neither takes away the last admin, and an admin demoted by
    /// the first no longer makes the second.
    async fn change_member(
        &self,
        org_id: &str,
        by: &str,
        user_id: &str,
        role: Option<&str>,
    ) -> Result<MemberChange, DbError>;
}

/// Inserts an org and its creator's admin membership inside the transaction `$tx`.
macro_rules! insert_org {
    ($tx:expr, $org:expr) => {{
        let (tx, org): (_, &$crate::db::OrgRow) = ($tx, $org);
        sqlx::query("INSERT INTO orgs (id, name, personal, created_by, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&org.id)
            .bind(&org.name)
            .bind(org.personal)
            .bind(&org.created_by)
            .bind(org.created_at)
            .execute(&mut **tx)
            .await?;
        sqlx::query("INSERT INTO memberships (org_id, user_id, role, created_at) VALUES ($1, $2, 'admin', $3)")
            .bind(&org.id)
            .bind(&org.created_by)
            .bind(org.created_at)
            .execute(&mut **tx)
            .await?;
    }};
}

macro_rules! org_from_row {
    ($r:expr) => {{
        use sqlx::Row;
        let r = $r;
        $crate::db::OrgRow {
            id: r.try_get("id")?,
            name: r.try_get("name")?,
            personal: r.try_get("personal")?,
            created_by: r.try_get("created_by")?,
            created_at: r.try_get("created_at")?,
        }
    }};
}

/// `impl OrgStore for $ty`; `$ty` has a `pool` field.
macro_rules! impl_org_store {
    ($ty:ty) => {
        #[async_trait::async_trait]
        impl $crate::db::OrgStore for $ty {
            async fn ensure_personal_org(&self, user_id: &str, name: &str, now: i64) -> Result<(), DbError> {
                let mut tx = self.pool.begin().await?;
                let created = sqlx::query(
                    "INSERT INTO orgs (id, name, personal, created_by, created_at) VALUES ($1, $2, $3, $1, $4) \
                     ON CONFLICT (id) DO NOTHING",
                )
                .bind(user_id)
                .bind(name)
                .bind(true)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                // Only with the org it creates: an org of that id that exists already (a shared org whose
                // id someone took as their user id, say) is never joined this way.
                if created == 1 {
                    sqlx::query("INSERT INTO memberships (org_id, user_id, role, created_at) VALUES ($1, $1, 'admin', $2)")
                        .bind(user_id)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn create_org(&self, org: &$crate::db::OrgRow) -> Result<(), DbError> {
                let mut tx = self.pool.begin().await?;
                $crate::db::orgs::insert_org!(&mut tx, org);
                tx.commit().await?;
                Ok(())
            }

            async fn orgs_of(&self, user_id: &str) -> Result<Vec<($crate::db::OrgRow, String)>, DbError> {
                use sqlx::Row;
                let rows = sqlx::query(
                    "SELECT o.id, o.name, o.personal, o.created_by, o.created_at, m.role FROM memberships m \
                     JOIN orgs o ON o.id = m.org_id WHERE m.user_id = $1 \
                     ORDER BY (CASE WHEN o.personal AND o.id = $1 THEN 0 ELSE 1 END), o.name, o.id",
                )
                .bind(user_id)
                .fetch_all(&self.pool)
                .await?;
                let mut out = Vec::with_capacity(rows.len());
                for r in &rows {
                    out.push(($crate::db::orgs::org_from_row!(r), r.try_get("role")?));
                }
                Ok(out)
            }

            async fn membership(&self, org_id: &str, user_id: &str) -> Result<Option<($crate::db::OrgRow, String)>, DbError> {
                use sqlx::Row;
                let row = sqlx::query(
                    "SELECT o.id, o.name, o.personal, o.created_by, o.created_at, m.role FROM memberships m \
                     JOIN orgs o ON o.id = m.org_id WHERE m.org_id = $1 AND m.user_id = $2",
                )
                .bind(org_id)
                .bind(user_id)
                .fetch_optional(&self.pool)
                .await?;
                Ok(match row {
                    Some(r) => Some(($crate::db::orgs::org_from_row!(&r), r.try_get("role")?)),
                    None => None,
                })
            }

            async fn members(&self, org_id: &str) -> Result<Vec<$crate::db::MemberRow>, DbError> {
                use sqlx::Row;
                let rows = sqlx::query(
                    "SELECT m.user_id, u.email, u.name, m.role, m.created_at FROM memberships m \
                     LEFT JOIN users u ON u.id = m.user_id WHERE m.org_id = $1 ORDER BY m.created_at, m.user_id",
                )
                .bind(org_id)
                .fetch_all(&self.pool)
                .await?;
                let mut out = Vec::with_capacity(rows.len());
                for r in &rows {
                    out.push($crate::db::MemberRow {
                        user_id: r.try_get("user_id")?,
                        email: r.try_get("email")?,
                        name: r.try_get("name")?,
                        role: r.try_get("role")?,
                        created_at: r.try_get("created_at")?,
                    });
                }
                Ok(out)
            }

            async fn add_member(&self, org_id: &str, user_id: &str, role: &str, now: i64) -> Result<bool, DbError> {
                let res = sqlx::query("INSERT INTO memberships (org_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)")
                    .bind(org_id)
                    .bind(user_id)
                    .bind(role)
                    .bind(now)
                    .execute(&self.pool)
                    .await;
                match res {
                    Ok(_) => Ok(true),
                    Err(e) if $crate::db::common::is_unique_violation(&e) => Err(DbError::Conflict),
                    Err(e) if e.as_database_error().is_some_and(|d| d.is_foreign_key_violation()) => Ok(false),
                    Err(e) => Err(e.into()),
                }
            }

            async fn change_member(
                &self,
                org_id: &str,
                by: &str,
                user_id: &str,
                role: Option<&str>,
            ) -> Result<$crate::db::MemberChange, DbError> {
                use $crate::db::MemberChange;
                let mut tx = self.pool.begin().await?;
                // The org's row first: every change to this org's members waits here for the one before.
                sqlx::query("UPDATE orgs SET name = name WHERE id = $1").bind(org_id).execute(&mut *tx).await?;
                let role_of = "SELECT role FROM memberships WHERE org_id = $1 AND user_id = $2";
                let theirs: Option<String> = sqlx::query_scalar(role_of).bind(org_id).bind(by).fetch_optional(&mut *tx).await?;
                if theirs.as_deref() != Some("admin") {
                    return Ok(MemberChange::NotAdmin);
                }
                let current: Option<String> =
                    sqlx::query_scalar(role_of).bind(org_id).bind(user_id).fetch_optional(&mut *tx).await?;
                let Some(current) = current else { return Ok(MemberChange::NotMember) };
                if current == "admin" && role != Some("admin") {
                    let admins: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM memberships WHERE org_id = $1 AND role = 'admin'")
                        .bind(org_id)
                        .fetch_one(&mut *tx)
                        .await?;
                    if admins <= 1 {
                        return Ok(MemberChange::LastAdmin);
                    }
                }
                let change = match role {
                    Some(_) => sqlx::query("UPDATE memberships SET role = $3 WHERE org_id = $1 AND user_id = $2"),
                    None => sqlx::query("DELETE FROM memberships WHERE org_id = $1 AND user_id = $2"),
                }
                .bind(org_id)
                .bind(user_id);
                let change = match role { Some(role) => change.bind(role), None => change };
                change.execute(&mut *tx).await?;
                tx.commit().await?;
                Ok(MemberChange::Done)
            }
        }
    };
}

pub(crate) use {impl_org_store, insert_org, org_from_row};
