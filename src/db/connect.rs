//! Connect flows in SQL (`connect_flows`): the server-side half of an OAuth `state`, shared by every
//! instance. One text for both backends, stamped into each by [`impl_connect_store`], like `orgs.rs`.

use async_trait::async_trait;

use super::DbError;

/// A flow started by `POST /api/connect/{provider}`. `state_hash`: SHA-256 (hex) of the state the browser
/// carries; the state itself is never stored.
#[derive(Clone, PartialEq, Eq)]
pub struct FlowRow {
    pub state_hash: String,
    pub user_id: String,
    pub org_id: String,
    pub provider: String,
    pub name: String,
    pub verifier: String,
    pub return_url: String,
    /// Epoch milliseconds.
    pub created_at: i64,
    pub expires_at: i64,
}

impl std::fmt::Debug for FlowRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowRow")
            .field("user_id", &self.user_id)
            .field("org_id", &self.org_id)
            .field("provider", &self.provider)
            .field("name", &self.name)
            .field("verifier", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

#[async_trait]
pub trait ConnectStore {
    /// Records a new flow; rows that expired before `prune_before` go at the same time.
    async fn insert_flow(&self, flow: &FlowRow, prune_before: i64) -> Result<(), DbError>;
    /// Claims the flow of `state_hash` once: `None` when there is none, it expired (at `now`) or it was
    /// claimed before. One statement, so that two callbacks at once get it for one of them only.
    async fn claim_flow(&self, state_hash: &str, now: i64) -> Result<Option<FlowRow>, DbError>;
}

macro_rules! impl_connect_store {
    ($ty:ty) => {
        #[async_trait::async_trait]
        impl $crate::db::ConnectStore for $ty {
            async fn insert_flow(&self, f: &$crate::db::FlowRow, prune_before: i64) -> Result<(), DbError> {
                sqlx::query("DELETE FROM connect_flows WHERE expires_at < $1")
                    .bind(prune_before)
                    .execute(&self.pool)
                    .await?;
                sqlx::query(
                    "INSERT INTO connect_flows (state_hash, user_id, org_id, provider, name, verifier, return_url, \
                     created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(&f.state_hash)
                .bind(&f.user_id)
                .bind(&f.org_id)
                .bind(&f.provider)
                .bind(&f.name)
                .bind(&f.verifier)
                .bind(&f.return_url)
                .bind(f.created_at)
                .bind(f.expires_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn claim_flow(&self, state_hash: &str, now: i64) -> Result<Option<$crate::db::FlowRow>, DbError> {
                use sqlx::Row;
                let row = sqlx::query(
                    "UPDATE connect_flows SET claimed_at = $2 \
                     WHERE state_hash = $1 AND claimed_at IS NULL AND expires_at > $2 \
                     RETURNING state_hash, user_id, org_id, provider, name, verifier, return_url, created_at, \
                     expires_at",
                )
                .bind(state_hash)
                .bind(now)
                .fetch_optional(&self.pool)
                .await?;
                let Some(r) = row else { return Ok(None) };
                Ok(Some($crate::db::FlowRow {
                    state_hash: r.try_get("state_hash")?,
                    user_id: r.try_get("user_id")?,
                    org_id: r.try_get("org_id")?,
                    provider: r.try_get("provider")?,
                    name: r.try_get("name")?,
                    verifier: r.try_get("verifier")?,
                    return_url: r.try_get("return_url")?,
                    created_at: r.try_get("created_at")?,
                    expires_at: r.try_get("expires_at")?,
                }))
            }
        }
    };
}
pub(crate) use impl_connect_store;
