//! PostgreSQL: the cross-instance refresh lock outlives the database connection of its holder. An
//! advisory lock ends with its backend; a holder whose backend is terminated while it is at the provider
//! with a single-use refresh token must still keep every other instance from spending that token.

use sqlx::Connection as _;

use crate::support::app::{Db, TestApp};
use crate::support::token_endpoint::TokenEndpoint;
use crate::support::wait;

/// Counts every attempt to take a lease (each one an `INSERT ... ON CONFLICT` into `refresh_locks`): a
/// taker seen trying twice was refused once and is waiting.
const COUNT_ATTEMPTS: &str = "CREATE TABLE lock_attempts (holder TEXT NOT NULL);
    CREATE FUNCTION count_lock_attempt() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN INSERT INTO lock_attempts (holder) VALUES (NEW.holder); RETURN NEW; END $$;
    CREATE TRIGGER count_lock_attempts BEFORE INSERT ON refresh_locks
    FOR EACH ROW EXECUTE FUNCTION count_lock_attempt();";

/// Terminates the backends holding advisory locks in the test's database; how many.
const TERMINATE_LOCK_HOLDERS: &str = "SELECT count(pg_terminate_backend(l.pid))::bigint FROM pg_locks l \
     JOIN pg_database d ON d.oid = l.database \
     WHERE l.locktype = 'advisory' AND l.granted AND d.datname = current_database()";

/// Takers other than `holder` refused at least once and trying again.
const WAITING_TAKERS: &str = "SELECT count(*) FROM (SELECT holder FROM lock_attempts WHERE holder <> $1 \
     GROUP BY holder HAVING count(*) >= 2) w";

async fn refresh_now(app: &TestApp, token: &str) -> tokio::task::JoinHandle<u16> {
    let (client, url, token) = (app.client.clone(), app.at("/api/tokens/gcp/refresh"), token.to_owned());
    tokio::spawn(async move {
        client
            .post(url)
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    })
}

/// Instance A's forced refresh is held at the provider with the refresh token `rt-1`; the backend holding
/// its advisory lock is terminated; instance B is asked to refresh the same credential. B must wait for
/// A to land its result, then refresh with the rotated token: `rt-1` reaches the provider once.
async fn a_lock_holder_cut_from_the_database_keeps_the_lock(db: Db) {
    let endpoint = TokenEndpoint::start().await;
    let Some((a, b)) = endpoint.two_instances(db).await else {
        return;
    };
    let (_, token) = a.user("lease@example.com").await;
    endpoint.store_gcp(&a, &token, 3600, "rt-1").await;
    let mut admin = sqlx::PgConnection::connect(&a.database_url).await.unwrap();
    sqlx::raw_sql(COUNT_ATTEMPTS).execute(&mut admin).await.unwrap();

    endpoint.hold();
    let from_a = refresh_now(&a, &token).await;
    endpoint.wait_for_calls(1).await;
    // A's lease (none where the lock is only the advisory one).
    let a_holder: String = sqlx::query_scalar("SELECT holder FROM refresh_locks")
        .fetch_optional(&mut admin)
        .await
        .unwrap()
        .unwrap_or_default();
    let terminated: i64 = sqlx::query_scalar(TERMINATE_LOCK_HOLDERS)
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert_eq!(terminated, 1, "one backend held the credential's advisory lock");

    let from_b = refresh_now(&b, &token).await;
    // Either B is at the provider too (the defect), or it is waiting for A's lease.
    wait::until("instance B at the provider or waiting for the lease", || {
        let (url, holder, endpoint) = (a.database_url.clone(), a_holder.clone(), &endpoint);
        async move {
            let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
            let waiting: i64 = sqlx::query_scalar(WAITING_TAKERS)
                .bind(holder)
                .fetch_one(&mut conn)
                .await
                .unwrap();
            endpoint.calls() >= 2 || waiting >= 1
        }
    })
    .await;
    assert_eq!(
        endpoint.calls(),
        1,
        "instance B called the provider while A was still there"
    );
    endpoint.release();
    assert_eq!(wait::bounded("A's refresh", from_a).await.unwrap(), 200);
    assert_eq!(wait::bounded("B's refresh", from_b).await.unwrap(), 200);
    assert_eq!(endpoint.reused(), 0, "a refresh token was spent twice");
    assert_eq!(endpoint.calls(), 2, "B refreshed after A, with the rotated token");
    let data = b.credentials("gcp", &token).await;
    assert_eq!(data["tokenData"]["access_token"], "access-2");
    assert!(endpoint.is_live(data["tokenData"]["refresh_token"].as_str().unwrap()));
}

crate::on_postgres!(a_lock_holder_cut_from_the_database_keeps_the_lock);
