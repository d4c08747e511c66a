//! The audit trail at scale: credential reads aggregated per connection, caller and minute (exact under
//! concurrency and across instances), or one row each with `TOKENKEEPER_AUDIT_READS=every`; old events
//! pruned in bounded batches, by one instance at a time.

use serde_json::{Value, json};

use crate::support::app::{Db, Secrets, TestApp, TestConfig, spawn_app, spawn_sibling};

const MINUTE_MS: i64 = 60_000;

/// A user with a stored splunk credential: (user id, session token).
async fn reader(app: &TestApp, email: &str) -> (String, String) {
    let (uid, token) = app.user(email).await;
    let creds = json!({"api_token": "scale-splunk-token", "base_url": "https://s.example.com"});
    assert_eq!(app.put_auth("/api/tokens/splunk", &token, creds).await.status(), 200);
    (uid, token)
}

async fn read_n_at_once(app: &TestApp, token: &str, n: usize) {
    let reads = (0..n).map(|_| async {
        let r = app.get_auth("/api/tokens/splunk/credentials", token).await;
        assert_eq!(r.status(), 200);
    });
    futures::future::join_all(reads).await;
}

/// The `credential_read` rows of the token's holder, newest first: (count, at).
async fn read_rows(app: &TestApp, token: &str) -> Vec<(i64, String)> {
    let page: Value = app.get_auth("/api/audit?limit=200", token).await.json().await.unwrap();
    page["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "credential_read")
        .map(|e| (e["count"].as_i64().unwrap(), e["at"].as_str().unwrap().to_string()))
        .collect()
}

/// Moves the clock to the start of the next minute.
fn next_minute(app: &TestApp) {
    use tokenkeeper::clock::Clock as _;
    let now = app.clock.now_ms();
    app.clock.set_ms((now.div_euclid(MINUTE_MS) + 1) * MINUTE_MS);
}

/// N reads at once by one caller in one minute: one row whose count is N; other events count 1.
async fn concurrent_reads_in_a_minute_are_one_row_with_their_count(db: Db) {
    let app = spawn_app(db, TestConfig::default()).await.unwrap();
    let (_, token) = reader(&app, "counted@example.com").await;
    next_minute(&app);
    read_n_at_once(&app, &token, 40).await;
    read_n_at_once(&app, &token, 25).await;
    let rows = read_rows(&app, &token).await;
    assert_eq!(rows.iter().map(|r| r.0).collect::<Vec<_>>(), [65], "{rows:?}");
    // Flushed again with nothing new: the count stays.
    assert_eq!(read_rows(&app, &token).await.len(), 1);
    let page: Value = app.get_auth("/api/audit", &token).await.json().await.unwrap();
    let store = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "credential_store");
    assert_eq!(store.unwrap()["count"], 1);
    // A read in the next minute (by the Clock) starts a new row; the first keeps its count.
    next_minute(&app);
    read_n_at_once(&app, &token, 3).await;
    let rows = read_rows(&app, &token).await;
    assert_eq!(rows.iter().map(|r| r.0).collect::<Vec<_>>(), [3, 65], "{rows:?}");
    assert!(rows[0].1.ends_with(":00.000Z"), "the first read's time: {rows:?}");
}

/// `every`: one row per read, each with count 1.
async fn every_keeps_one_row_per_read(db: Db) {
    let cfg = TestConfig::default().with("TOKENKEEPER_AUDIT_READS", "every");
    let app = spawn_app(db, cfg).await.unwrap();
    let (_, token) = reader(&app, "every@example.com").await;
    read_n_at_once(&app, &token, 12).await;
    let rows = read_rows(&app, &token).await;
    assert_eq!(rows.len(), 12, "{rows:?}");
    assert!(rows.iter().all(|r| r.0 == 1), "{rows:?}");
}

/// Two instances on one database reading one connection in one minute: their counts add up in one row,
/// whichever flushes first, also with a count flushed in between.
async fn two_instances_counts_add_up(db: Db) {
    // The two instances share the secret store too.
    let Some(cfg) = TestConfig::default().secrets(Secrets::OpenBao).await else {
        return;
    };
    let a = spawn_app(db, cfg).await.unwrap();
    let b = spawn_sibling(&a, TestConfig::default().secrets(Secrets::OpenBao).await.unwrap()).await;
    let (_, token) = reader(&a, "shared@example.com").await;
    next_minute(&a);
    tokio::join!(read_n_at_once(&a, &token, 30), read_n_at_once(&b, &token, 20));
    b.services.audit.flush().await;
    read_n_at_once(&b, &token, 5).await;
    a.services.audit.flush().await;
    let rows = read_rows(&b, &token).await;
    assert_eq!(rows.iter().map(|r| r.0).collect::<Vec<_>>(), [55], "{rows:?}");
}

fn failed_login<'a>(detail: &'a str) -> tokenkeeper::audit::Event<'a> {
    use tokenkeeper::audit::{Event, EventKind, Outcome};
    Event {
        user_id: Some("pruned-user"),
        org_id: None,
        kind: EventKind::Login,
        provider: None,
        connection: None,
        outcome: Outcome::Failed,
        client_addr: Some("10.0.0.1"),
        detail: Some(detail),
    }
}

async fn details_left(app: &TestApp) -> Vec<String> {
    let rows = app
        .services
        .store
        .list_audit(tokenkeeper::db::AuditOwner::User("pruned-user"), None, 100)
        .await
        .unwrap();
    rows.into_iter().map(|r| r.detail.unwrap()).collect()
}

/// Events older than the retention (by the Clock) are deleted, statement after statement of at most the
/// batch size; newer ones stay.
async fn old_events_are_pruned_in_batches(db: Db) {
    let cfg = TestConfig::default()
        .with("TOKENKEEPER_AUDIT_RETENTION_DAYS", "1")
        .with("TOKENKEEPER_AUDIT_PRUNE_BATCH", "2");
    let app = spawn_app(db, cfg).await.unwrap();
    for d in ["old-1", "old-2", "old-3", "old-4", "old-5"] {
        app.services.audit.record(failed_login(d)).await.unwrap();
    }
    app.clock.advance_secs(12 * 3600);
    for d in ["new-1", "new-2"] {
        app.services.audit.record(failed_login(d)).await.unwrap();
    }
    app.services.audit.flush().await;
    // Nothing is a day old yet.
    let report = app.services.audit_pruner.run_pass().await.expect("pruned");
    assert_eq!((report.deleted, report.batches), (0, 1));
    app.clock.advance_secs(12 * 3600 + 1);
    let report = app.services.audit_pruner.run_pass().await.expect("pruned");
    assert_eq!((report.deleted, report.batches), (5, 3), "5 rows, 2 a statement");
    assert_eq!(details_left(&app).await, ["new-2", "new-1"]);
}

/// While another instance holds the prune lock, a pass deletes nothing; once it is released, one does.
async fn one_instance_prunes_at_a_time(db: Db) {
    use sqlx::Connection as _;
    let cfg = || TestConfig::default().with("TOKENKEEPER_AUDIT_RETENTION_DAYS", "1");
    let a = spawn_app(db, cfg()).await.unwrap();
    let b = spawn_sibling(&a, cfg()).await;
    a.services.audit.record(failed_login("old")).await.unwrap();
    a.services.audit.flush().await;
    a.clock.advance_secs(2 * 24 * 3600);

    // Another instance pruning: its session holds the lock.
    let key = tokenkeeper::db::lock_key(tokenkeeper::db::AUDIT_PRUNE_LOCK);
    let mut other = sqlx::PgConnection::connect(&a.database_url).await.unwrap();
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(key)
        .execute(&mut other)
        .await
        .unwrap();
    assert!(a.services.audit_pruner.run_pass().await.is_none());
    assert!(b.services.audit_pruner.run_pass().await.is_none());
    assert_eq!(details_left(&a).await, ["old"]);
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(key)
        .execute(&mut other)
        .await
        .unwrap();

    assert_eq!(b.services.audit_pruner.run_pass().await.unwrap().deleted, 1);
    assert!(details_left(&a).await.is_empty());
    // b released the lock when its pass ended: a's pass runs (nothing left to delete), and the other
    // session can take the lock.
    assert_eq!(a.services.audit_pruner.run_pass().await.unwrap().deleted, 0);
    let free: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(key)
        .fetch_one(&mut other)
        .await
        .unwrap();
    assert!(free, "no instance keeps the prune lock after its pass");
}

crate::on_both_backends!(
    concurrent_reads_in_a_minute_are_one_row_with_their_count,
    every_keeps_one_row_per_read,
    two_instances_counts_add_up,
    old_events_are_pruned_in_batches,
);
crate::on_postgres!(one_instance_prunes_at_a_time);
