//! What the importer (`crate::import`) needs of SQL: a few look-ups to compare with, and one transaction
//! that writes every row it decided to add (all or nothing). One text for both backends, stamped into each
//! by [`impl_import_store`], like `orgs.rs`.

use async_trait::async_trait;

use super::{Connection, DbError, OrgRow, User};

/// A membership to add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedMember {
    pub org_id: String,
    pub user_id: String,
    pub role: String,
    pub created_at: i64,
}

/// Every row one import adds. Users come with their personal org (as registration makes it); orgs come
/// without members (their memberships are in `members`, the creator's too).
#[derive(Debug, Clone, Default)]
pub struct ImportWrite {
    /// Adopted accounts, as they were elsewhere (their hash and `must_change_password` included).
    pub users: Vec<User>,
    pub orgs: Vec<OrgRow>,
    pub members: Vec<ImportedMember>,
    pub connections: Vec<Connection>,
}

impl ImportWrite {
    pub fn is_empty(&self) -> bool {
        self.users.is_empty() && self.orgs.is_empty() && self.members.is_empty() && self.connections.is_empty()
    }
}

#[async_trait]
pub trait ImportStore {
    async fn org_by_id(&self, id: &str) -> Result<Option<OrgRow>, DbError>;
    /// Inserts every row of `w` in one transaction: nothing is written when one insert fails
    /// (`Err(Conflict)` when a row was taken meanwhile).
    async fn apply_import(&self, w: &ImportWrite) -> Result<(), DbError>;
}

/// `impl ImportStore for $ty`; `$ty` has a `pool` field.
macro_rules! impl_import_store {
    ($ty:ty) => {
        #[async_trait::async_trait]
        impl $crate::db::ImportStore for $ty {
            async fn org_by_id(&self, id: &str) -> Result<Option<$crate::db::OrgRow>, DbError> {
                let row = sqlx::query("SELECT id, name, personal, created_by, created_at FROM orgs WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(match row {
                    Some(r) => Some($crate::db::orgs::org_from_row!(r)),
                    None => None,
                })
            }

            async fn apply_import(&self, w: &$crate::db::ImportWrite) -> Result<(), DbError> {
                let res: Result<(), sqlx::Error> = async {
                    let mut tx = self.pool.begin().await?;
                    for u in &w.users {
                        $crate::db::common::insert_user!(&mut tx, u)?;
                        $crate::db::orgs::insert_org!(&mut tx, &$crate::db::OrgRow::personal_of(u));
                    }
                    for o in &w.orgs {
                        sqlx::query(
                            "INSERT INTO orgs (id, name, personal, created_by, created_at) VALUES ($1, $2, $3, $4, $5)",
                        )
                        .bind(&o.id)
                        .bind(&o.name)
                        .bind(o.personal)
                        .bind(&o.created_by)
                        .bind(o.created_at)
                        .execute(&mut *tx)
                        .await?;
                    }
                    for m in &w.members {
                        sqlx::query(
                            "INSERT INTO memberships (org_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)",
                        )
                        .bind(&m.org_id)
                        .bind(&m.user_id)
                        .bind(&m.role)
                        .bind(m.created_at)
                        .execute(&mut *tx)
                        .await?;
                    }
                    for c in &w.connections {
                        let col = c.columns()?;
                        let insert = sqlx::query(
                            "INSERT INTO connections (org_id, provider, secret_ref, secret_version, metadata, status, \
                             status_reason, expires_at, next_refresh_at, refresh_failures, updated_at, name, created_at, \
                             user_id, id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
                        );
                        $crate::db::common::bind_connection!(insert, c, col)
                            .bind(&c.name)
                            .bind(col.created_at)
                            .bind(&c.user_id)
                            .bind(&c.id)
                            .execute(&mut *tx)
                            .await?;
                    }
                    tx.commit().await
                }
                .await;
                match res {
                    Ok(()) => Ok(()),
                    Err(e) if $crate::db::common::is_unique_violation(&e) => Err(DbError::Conflict),
                    Err(e) => Err(e.into()),
                }
            }
        }
    };
}
pub(crate) use impl_import_store;
