//! PostgreSQL: the production backend, shared by several instances.

use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};

use super::common::{
    audit_columns, audit_from_row, connection_columns, connection_from_row, impl_store,
    user_columns, user_from_row,
};
use super::{AuditRecord, Backend, Connection, DbError, NewSession, User};

pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    pub async fn connect(url: &str) -> Result<Self, DbError> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(5))
            .connect(url)
            .await?;
        Ok(Self { pool })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

impl_store!(PgStore, {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    async fn migrate(&self) -> Result<(), DbError> {
        sqlx::migrate!("./migrations/postgres")
            .run(&self.pool)
            .await?;
        Ok(())
    }
});
