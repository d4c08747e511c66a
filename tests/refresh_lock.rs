//! The SQLite refresh lock across processes: two independent stores on one database file stand for
//! two processes (say `serve` and `tokenkeeper tokens get`). Only one may refresh a credential at a
//! time, whoever holds it; a lease left by a holder that vanished is taken over.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokenkeeper::db::Store as _;
use tokenkeeper::db::sqlite::SqliteStore;
use tokio::time::timeout;

/// Long enough that a lock that is free would have been taken (a take is one local SQLite write).
const BLOCKED: Duration = Duration::from_millis(300);
/// Generous bound for what should happen promptly, so that a slow machine does not fail the test.
const PROMPTLY: Duration = Duration::from_secs(5);

async fn two_processes() -> (tempfile::TempDir, Arc<SqliteStore>, Arc<SqliteStore>) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("tk.db").display());
    let a = SqliteStore::connect(&url).await.unwrap();
    a.migrate().await.unwrap();
    let b = SqliteStore::connect(&url).await.unwrap();
    b.migrate().await.unwrap();
    (dir, Arc::new(a), Arc::new(b))
}

fn wall_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

async fn lease_rows(store: &SqliteStore, key: &str) -> Vec<(String, i64)> {
    sqlx::query_as("SELECT holder, until_ms FROM refresh_locks WHERE key = $1")
        .bind(key)
        .fetch_all(store.pool())
        .await
        .unwrap()
}

/// Waits (boundedly) for the lease row of `key` to be gone: a release runs on the runtime, after the drop.
async fn released(store: &SqliteStore, key: &str) {
    timeout(PROMPTLY, async {
        while !lease_rows(store, key).await.is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the lease row is deleted after the guard drops");
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

    assert!(
        timeout(BLOCKED, b.refresh_lock("k")).await.is_err(),
        "another process took a held lock"
    );
    // The same process too (another engine, or a nested take) waits: the lock is the row, not the store.
    assert!(timeout(BLOCKED, a.refresh_lock("k")).await.is_err());

    // Other keys are independent, including keys that differ only after the NUL of "user\0provider".
    let other = timeout(PROMPTLY, b.refresh_lock("other"))
        .await
        .expect("other key not blocked");
    other.unwrap();
    let _u_gcp = timeout(PROMPTLY, a.refresh_lock("u\u{0}gcp")).await.unwrap().unwrap();
    let _u_aws = timeout(PROMPTLY, b.refresh_lock("u\u{0}aws"))
        .await
        .expect("u\\0aws not blocked by u\\0gcp");

    let waiter = tokio::spawn({
        let b = b.clone();
        async move { b.refresh_lock("k").await }
    });
    tokio::time::sleep(BLOCKED).await;
    assert!(!waiter.is_finished(), "waiter got the lock while it was held");
    drop(held);
    let second = timeout(PROMPTLY, waiter)
        .await
        .expect("waiter gets the lock once it is released")
        .unwrap()
        .unwrap();
    let rows = lease_rows(&a, "k").await;
    assert_eq!(rows.len(), 1);
    assert_ne!(rows[0].0, first_holder, "the row now names the second holder");
    drop(second);
    released(&a, "k").await;
    // And free for anyone again.
    timeout(PROMPTLY, a.refresh_lock("k")).await.unwrap().unwrap();
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
    let took = timeout(PROMPTLY, b.refresh_lock("k"))
        .await
        .expect("an expired lease does not block")
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
    assert!(timeout(BLOCKED, b.refresh_lock("k2")).await.is_err());
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
    timeout(Duration::from_secs(30), futures::future::try_join_all(tasks))
        .await
        .expect("all holders finish")
        .unwrap();
    assert_eq!(overlaps.load(Ordering::SeqCst), 0, "two holders at once");
    released(&a, "shared").await;
}
