//! A fresh PostgreSQL database per test, found through `TOKENKEEPER_TEST_DATABASE_URL`
//! (e.g. `postgres://postgres@127.0.0.1:5432/postgres`). Without it the PostgreSQL variants are
//! skipped with a loud message, unless `TOKENKEEPER_REQUIRE_ALL=1` (CI), where that is a failure.

use sqlx::Connection as _;
use sqlx::postgres::PgConnection;

pub const ENV: &str = "TOKENKEEPER_TEST_DATABASE_URL";

pub fn require_all() -> bool {
    std::env::var("TOKENKEEPER_REQUIRE_ALL").is_ok_and(|v| v == "1")
}

/// The admin URL, or `None` (after printing why) when PostgreSQL tests are skipped.
pub fn admin_url(test: &str) -> Option<String> {
    match std::env::var(ENV) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(!require_all(), "{ENV} is unset but TOKENKEEPER_REQUIRE_ALL=1");
            eprintln!("SKIPPED (PostgreSQL) {test}: {ENV} is not set");
            None
        }
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
