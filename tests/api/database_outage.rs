//! The database dropping connections under the service (a restart, a failover, `pg_terminate_backend`):
//! a request whose statement was cut gets 503, not 500, and the next one is served on a new connection.
//! Found by scripts/chaos.sh (three 500s when it terminated every backend of its database).

use sqlx::Connection as _;

use crate::support::app::{Db, error_of, spawn_app};
use crate::support::wait;

/// A listing waits on a table lock the test holds; the test terminates the backend that waits (the event:
/// `pg_stat_activity` shows it waiting on the lock), then lets go of the lock.
async fn a_statement_cut_by_the_database_gets_503(db: Db) {
    cut_while_waiting_on(db, "BEGIN; LOCK TABLE connections IN ACCESS EXCLUSIVE MODE").await;
}

/// The same cut in the statement that finds the caller's role in the acting org, which every request on
/// `/api/tokens` makes before its own work (chaos.sh found it answering 500 after the orgs landed).
async fn a_cut_membership_lookup_gets_503(db: Db) {
    cut_while_waiting_on(db, "BEGIN; LOCK TABLE memberships IN ACCESS EXCLUSIVE MODE").await;
}

/// A listing of `/api/tokens` blocked on the table `lock` locks, its backend terminated: 503, then
/// served again.
async fn cut_while_waiting_on(db: Db, lock: &'static str) {
    let Some(app) = spawn_app(db, Default::default()).await else {
        return;
    };
    let (_, token) = app.user("outage@example.com").await;
    let mut holder = sqlx::PgConnection::connect(&app.database_url).await.unwrap();
    sqlx::raw_sql(lock).execute(&mut holder).await.unwrap();
    let listing = tokio::spawn({
        let (client, url, token) = (app.client.clone(), app.at("/api/tokens"), token.clone());
        async move { client.get(url).bearer_auth(token).send().await.unwrap() }
    });
    let admin = sqlx::PgPool::connect(&app.database_url).await.unwrap();
    let waiting = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                   AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()";
    wait::until("the listing to wait on the table lock", || {
        let admin = admin.clone();
        async move { sqlx::query_scalar::<_, i64>(waiting).fetch_one(&admin).await.unwrap() == 1 }
    })
    .await;
    let terminate = "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = \
                     current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()";
    let terminated: i64 = sqlx::query_scalar(terminate).fetch_one(&admin).await.unwrap();
    assert_eq!(terminated, 1);
    let r = wait::bounded("the cut listing's answer", listing).await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(error_of(r).await, "Database unavailable; try again");
    sqlx::raw_sql("COMMIT").execute(&mut holder).await.unwrap();
    let r = app.get_auth("/api/tokens", &token).await;
    assert_eq!(r.status(), 200, "served again on a new connection");
}

crate::on_postgres!(
    a_statement_cut_by_the_database_gets_503,
    a_cut_membership_lookup_gets_503
);
