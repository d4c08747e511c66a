//! Role onboardings in SQL (`role_onboardings`): the external id `POST /api/connect/aws` issues for an org's
//! connection before its role exists, shared by every instance. One text for both backends, stamped into
//! each by [`impl_onboarding_store`], like `connect.rs`.

use async_trait::async_trait;

use super::DbError;

/// An external id issued for the connection `(org_id, provider, name)`. Times: epoch milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Onboarding {
    pub org_id: String,
    pub provider: String,
    pub name: String,
    pub external_id: String,
    pub created_by: String,
    pub created_at: i64,
    pub expires_at: i64,
}

#[async_trait]
pub trait OnboardingStore {
    /// The pending onboarding of `(org, provider, name)` at `now` if there is one (not used, not expired),
    /// else `fresh`, written in its place (a used or expired row is replaced). One statement decides, so
    /// that two requests at once get the same external id.
    async fn issue_onboarding(&self, fresh: &Onboarding, now: i64) -> Result<Onboarding, DbError>;
    /// The pending onboarding of `(org, provider, name)` at `now`, if any.
    async fn pending_onboarding(
        &self,
        org_id: &str,
        provider: &str,
        name: &str,
        now: i64,
    ) -> Result<Option<Onboarding>, DbError>;
    /// Marks the onboarding that issued `external_id` used at `now`; false when it was not pending.
    async fn use_onboarding(
        &self,
        org_id: &str,
        provider: &str,
        name: &str,
        external_id: &str,
        now: i64,
    ) -> Result<bool, DbError>;
}

macro_rules! impl_onboarding_store {
    ($ty:ty) => {
        #[async_trait::async_trait]
        impl $crate::db::OnboardingStore for $ty {
            async fn issue_onboarding(
                &self,
                o: &$crate::db::Onboarding,
                now: i64,
            ) -> Result<$crate::db::Onboarding, DbError> {
                // The update happens only over a row that is used or expired; a pending row stands, and the
                // statement then returns nothing: the row is read after it.
                sqlx::query(
                    "INSERT INTO role_onboardings (org_id, provider, name, external_id, created_by, created_at, \
                     expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT (org_id, provider, name) DO UPDATE SET external_id = excluded.external_id, \
                     created_by = excluded.created_by, created_at = excluded.created_at, \
                     expires_at = excluded.expires_at, used_at = NULL \
                     WHERE role_onboardings.used_at IS NOT NULL OR role_onboardings.expires_at <= $8",
                )
                .bind(&o.org_id)
                .bind(&o.provider)
                .bind(&o.name)
                .bind(&o.external_id)
                .bind(&o.created_by)
                .bind(o.created_at)
                .bind(o.expires_at)
                .bind(now)
                .execute(&self.pool)
                .await?;
                self.pending_onboarding(&o.org_id, &o.provider, &o.name, now)
                    .await?
                    // Used by a store in between: as if it had not been found.
                    .ok_or(DbError::Sql(sqlx::Error::RowNotFound))
            }

            async fn pending_onboarding(
                &self,
                org_id: &str,
                provider: &str,
                name: &str,
                now: i64,
            ) -> Result<Option<$crate::db::Onboarding>, DbError> {
                use sqlx::Row;
                let row = sqlx::query(
                    "SELECT org_id, provider, name, external_id, created_by, created_at, expires_at \
                     FROM role_onboardings WHERE org_id = $1 AND provider = $2 AND name = $3 \
                     AND used_at IS NULL AND expires_at > $4",
                )
                .bind(org_id)
                .bind(provider)
                .bind(name)
                .bind(now)
                .fetch_optional(&self.pool)
                .await?;
                let Some(r) = row else { return Ok(None) };
                Ok(Some($crate::db::Onboarding {
                    org_id: r.try_get("org_id")?,
                    provider: r.try_get("provider")?,
                    name: r.try_get("name")?,
                    external_id: r.try_get("external_id")?,
                    created_by: r.try_get("created_by")?,
                    created_at: r.try_get("created_at")?,
                    expires_at: r.try_get("expires_at")?,
                }))
            }

            async fn use_onboarding(
                &self,
                org_id: &str,
                provider: &str,
                name: &str,
                external_id: &str,
                now: i64,
            ) -> Result<bool, DbError> {
                let done = sqlx::query(
                    "UPDATE role_onboardings SET used_at = $5 WHERE org_id = $1 AND provider = $2 \
                     AND name = $3 AND external_id = $4 AND used_at IS NULL",
                )
                .bind(org_id)
                .bind(provider)
                .bind(name)
                .bind(external_id)
                .bind(now)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }
        }
    };
}
pub(crate) use impl_onboarding_store;
