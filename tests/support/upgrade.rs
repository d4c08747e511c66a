//! A database as an earlier release left it: migrated up to a given migration, with rows that release
//! wrote, for the tests that upgrade it in place.

use super::app::Db;

/// A fresh database (a SQLite file, or a new PostgreSQL database) migrated up to `version`, then `rows`
/// run against it; its URL, and what keeps it alive (the SQLite file's directory). `None` when
/// PostgreSQL is not available and skipping is allowed.
pub async fn database_at(db: Db, version: i64, rows: String) -> Option<(String, tempfile::TempDir)> {
    let dir = tempfile::tempdir().unwrap();
    let (url, path) = match db {
        Db::Sqlite => (
            format!("sqlite://{}?mode=rwc", dir.path().join("old.db").display()),
            "migrations/sqlite",
        ),
        Db::Postgres => {
            let admin = super::postgres::admin_url()?;
            (super::postgres::fresh_database(&admin).await, "migrations/postgres")
        }
    };
    let migrator = sqlx::migrate::Migrator::new(std::path::Path::new(path)).await.unwrap();
    let rows = sqlx::AssertSqlSafe(rows);
    match db {
        Db::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
            migrator.run_to(version, &pool).await.unwrap();
            sqlx::raw_sql(rows).execute(&pool).await.unwrap();
            pool.close().await;
        }
        Db::Postgres => {
            let pool = sqlx::PgPool::connect(&url).await.unwrap();
            migrator.run_to(version, &pool).await.unwrap();
            sqlx::raw_sql(rows).execute(&pool).await.unwrap();
            pool.close().await;
        }
    }
    Some((url, dir))
}
