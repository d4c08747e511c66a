//! A fresh PostgreSQL database per test, found through `TOKENKEEPER_TEST_DATABASE_URL`
//! (e.g. `postgres://postgres@127.0.0.1:5432/postgres`). Without it the PostgreSQL variants are skipped
//! (`support::skip`: a failure under `TOKENKEEPER_REQUIRE_ALL=1`). This is the one place that decides
//! whether PostgreSQL runs: the `on_*` macros, `spawn_app` and every other caller ask [`admin_url`].

use sqlx::Connection as _;
use sqlx::postgres::PgConnection;

use super::skip::{Dependency, skip};

pub const ENV: &str = "TOKENKEEPER_TEST_DATABASE_URL";

/// The admin URL, or `None` (after the skip notice) when PostgreSQL tests are skipped.
pub fn admin_url() -> Option<String> {
    match std::env::var(ENV) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => skip(Dependency::Postgres, &format!("{ENV} is not set")),
    }
}

/// Creates an empty database and returns its URL.
pub async fn fresh_database(admin: &str) -> String {
    let name = format!("tk_test_{}", uuid::Uuid::new_v4().simple());
    let mut conn = PgConnection::connect(admin).await.expect("connect to PostgreSQL");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("create database");
    let mut url = url::Url::parse(admin).expect("database URL");
    url.set_path(&name);
    url.to_string()
}
