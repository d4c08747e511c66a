//! The SQLite refresh lock across processes: two independent stores on one database file stand for
//! two processes (say `serve` and `tokenkeeper tokens get`). Only one may refresh a credential at a
//! time, whoever holds it; a lease left by a holder that vanished is taken over.
//!
//! "Waits" is shown by events, not by time: a trigger records every attempt to take a lease (each one
//! `INSERT ... ON CONFLICT` into `refresh_locks`), so a waiter seen trying again has been refused.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use support::wait;
use tokenkeeper::db::Store as _;
use tokenkeeper::db::sqlite::SqliteStore;

async fn two_processes() -> (tempfile::TempDir, Arc<SqliteStore>, Arc<SqliteStore>) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("tk.db").display());
    let a = SqliteStore::connect(&url).await.unwrap();
    a.migrate().await.unwrap();
    let b = SqliteStore::connect(&url).await.unwrap();
    b.migrate().await.unwrap();
    sqlx::raw_sql(
        "CREATE TABLE lock_attempts (key TEXT NOT NULL, holder TEXT NOT NULL); \
         CREATE TRIGGER count_lock_attempts BEFORE INSERT ON refresh_locks \
         BEGIN INSERT INTO lock_attempts (key, holder) VALUES (NEW.key, NEW.holder); END;",
    )
    .execute(a.pool())
    .await
    .unwrap();
    (dir, Arc::new(a), Arc::new(b))
}

fn wall_ms() -> i64 {
    tokenkeeper::clock::millis_i64(SystemTime::now().duration_since(UNIX_EPOCH).unwrap())
}

async fn lease_rows(store: &SqliteStore, key: &str) -> Vec<(String, i64)> {
    sqlx::query_as("SELECT holder, until_ms FROM refresh_locks WHERE key = $1")
        .bind(key)
        .fetch_all(store.pool())
        .await
        .unwrap()
}

/// Waits (boundedly) until `n` takers of `key` other than `holder` have each tried at least twice:
/// refused once, they are waiting for it.
async fn refused(store: &SqliteStore, key: &str, holder: &str, n: i64) {
    wait::until(&format!("{n} takers of {key:?} refused and trying again"), || async {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM (SELECT holder FROM lock_attempts WHERE key = $1 AND holder <> $2 \
             GROUP BY holder HAVING COUNT(*) >= 2)",
        )
        .bind(key)
        .bind(holder)
        .fetch_one(store.pool())
        .await
        .unwrap();
        waiting >= n
    })
    .await;
}

/// Waits (boundedly) for the lease row of `key` to be gone: a release runs on the runtime, after the drop.
async fn released(store: &SqliteStore, key: &str) {
    wait::until("the lease row is deleted after the guard drops", || async {
        lease_rows(store, key).await.is_empty()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_process_waits_until_the_first_releases() {
    let (_dir, a, b) = two_processes().await;
    let held = a.refresh_lock("k").await.unwrap();
    let rows = lease_rows(&a, "k").await;
    assert_eq!(rows.len(), 1);
    let first_holder = rows[0].0.clone();
    // Wall-clock lease, in the future.
    assert!(rows[0].1 > wall_ms(), "lease ends in the future: {rows:?}");

    // Another process waits, and so does the same one (another engine, or a nested take): the lock is
    // the row, not the store.
    let take = |store: &Arc<SqliteStore>| {
        let store = store.clone();
        tokio::spawn(async move { store.refresh_lock("k").await })
    };
    let (from_b, from_a) = (take(&b), take(&a));
    refused(&a, "k", &first_holder, 2).await;
    assert!(
        !from_b.is_finished() && !from_a.is_finished(),
        "a waiter got the lock while it was held"
    );

    // Other keys are independent, including keys that differ only after the NUL of "user\0provider".
    wait::bounded("other key not blocked", b.refresh_lock("other"))
        .await
        .unwrap();
    let _u_gcp = wait::bounded("u\\0gcp", a.refresh_lock("u\u{0}gcp")).await.unwrap();
    let _u_aws = wait::bounded("u\\0aws not blocked by u\\0gcp", b.refresh_lock("u\u{0}aws"))
        .await
        .unwrap();

    // Released: one waiter takes it, then the other once that one lets go; each row names its holder.
    drop(held);
    let (first, other) = match wait::bounded(
        "a waiter takes the released lock",
        futures::future::select(from_b, from_a),
    )
    .await
    {
        futures::future::Either::Left((got, other)) | futures::future::Either::Right((got, other)) => (got, other),
    };
    let first = first.unwrap().unwrap();
    let rows = lease_rows(&a, "k").await;
    assert_eq!(rows.len(), 1);
    assert_ne!(rows[0].0, first_holder, "the row now names the second holder");
    let second_holder = rows[0].0.clone();
    assert!(!other.is_finished(), "both waiters hold the lock");
    drop(first);
    let second = wait::bounded("the other waiter takes it next", other)
        .await
        .unwrap()
        .unwrap();
    let rows = lease_rows(&a, "k").await;
    assert_eq!(rows.len(), 1);
    assert!(rows[0].0 != first_holder && rows[0].0 != second_holder, "{rows:?}");
    drop(second);
    released(&a, "k").await;
    // And free for anyone again.
    wait::bounded("the free lock", a.refresh_lock("k")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_of_a_vanished_holder_is_taken_over() {
    let (_dir, a, b) = two_processes().await;
    // A process that died holding the lock: its row stays, with a lease that ran out.
    sqlx::query("INSERT INTO refresh_locks (key, holder, until_ms) VALUES ($1, 'vanished', $2)")
        .bind("k")
        .bind(wall_ms() - 1_000)
        .execute(a.pool())
        .await
        .unwrap();
    let took = wait::bounded("an expired lease does not block", b.refresh_lock("k"))
        .await
        .unwrap();
    let rows = lease_rows(&b, "k").await;
    assert_eq!(rows.len(), 1);
    assert_ne!(rows[0].0, "vanished");
    assert!(rows[0].1 > wall_ms());
    drop(took);
    released(&b, "k").await;

    // A live lease of another process (not expired) blocks, though.
    sqlx::query("INSERT INTO refresh_locks (key, holder, until_ms) VALUES ($1, 'alive', $2)")
        .bind("k2")
        .bind(wall_ms() + 60_000)
        .execute(a.pool())
        .await
        .unwrap();
    let waiter = tokio::spawn({
        let b = b.clone();
        async move { b.refresh_lock("k2").await }
    });
    refused(&b, "k2", "alive", 1).await;
    assert!(!waiter.is_finished(), "a live lease was taken over");
    waiter.abort();
    // Failed attempts leave the live holder's row alone.
    let rows = lease_rows(&b, "k2").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0, "alive");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn holders_never_overlap_across_processes() {
    let (_dir, a, b) = two_processes().await;
    let inside = Arc::new(AtomicUsize::new(0));
    let overlaps = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let store = if i % 2 == 0 { a.clone() } else { b.clone() };
            let (inside, overlaps) = (inside.clone(), overlaps.clone());
            tokio::spawn(async move {
                let _lock = store.refresh_lock("shared").await.unwrap();
                if inside.fetch_add(1, Ordering::SeqCst) != 0 {
                    overlaps.fetch_add(1, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
                inside.fetch_sub(1, Ordering::SeqCst);
            })
        })
        .collect();
    wait::bounded("all holders finish", futures::future::try_join_all(tasks))
        .await
        .unwrap();
    assert_eq!(overlaps.load(Ordering::SeqCst), 0, "two holders at once");
    released(&a, "shared").await;
}
