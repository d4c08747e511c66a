//! Change events across the service's life: events pending when it stops are delivered by the next
//! instance; two instances on one database deliver each event once, in order; a receiver slower than the
//! event rate leaves the backlog in the database, with at most one batch in memory.

use crate::events::{ids, kinds, metric, of, pass, signed_by_the_key, spawn_pass, store, written_order};
use crate::support::app::{Db, Secrets, TestConfig, spawn_app, spawn_on_database, spawn_sibling};
use crate::support::wait;
use crate::support::webhook_receiver::Receiver;

/// On every database and secret store (the next instance on the same ones).
async fn events_pending_at_shutdown_are_delivered_after_restart(db: Db, secrets: Secrets) {
    let receiver = Receiver::start().await;
    let Some(cfg) = receiver.config(TestConfig::default()).secrets(secrets).await else {
        return;
    };
    let mut first = spawn_app(db, cfg).await.unwrap();
    let (_, token) = first.user("restart@example.com").await;
    store(&first, &token, "splunk", "restart-splunk").await;
    store(&first, &token, "grafana", "restart-grafana").await;
    assert_eq!(metric(&first, "tokenkeeper_webhook_backlog").await, 2);
    first.begin_shutdown().await;
    assert!(receiver.received().is_empty());

    // The next instance's background deliverer sends them on its own.
    let cfg = receiver
        .config(TestConfig::default())
        .with("TOKENKEEPER_WEBHOOK_DELIVERER_DISABLED", "false")
        .with("TOKENKEEPER_WEBHOOK_INTERVAL_SECS", "1")
        .secrets(secrets)
        .await
        .expect("the store the first instance had");
    let second = spawn_on_database(first.database_url.clone(), cfg).await;
    wait::until("the pending events arrive", || async { receiver.accepted().len() == 2 }).await;
    let got = receiver.accepted();
    assert!(got.iter().all(signed_by_the_key));
    let mut k = kinds(&got);
    k.sort();
    assert_eq!(
        k,
        [
            ("grafana".to_string(), "connection.created".to_string()),
            ("splunk".to_string(), "connection.created".to_string())
        ]
    );
    // The receiver records a request before it answers: the outbox empties just after.
    wait::until("the outbox empties", || async {
        metric(&second, "tokenkeeper_webhook_backlog").await == 0
    })
    .await;
}

/// A receiver that holds every request: the deliverer sends one batch (the bound) and waits; the rest
/// stays in the database (the backlog metric counts it there).
async fn a_slow_receiver_leaves_the_backlog_in_the_database(db: Db) {
    let receiver = Receiver::start().await;
    let cfg = receiver
        .config(TestConfig::default())
        .with("TOKENKEEPER_WEBHOOK_BATCH", "3");
    let app = spawn_app(db, cfg).await.unwrap();
    for u in 0..4 {
        let (_, token) = app.user(&format!("slow{u}@example.com")).await;
        store(&app, &token, "splunk", &format!("slow-splunk-{u}")).await;
        store(&app, &token, "grafana", &format!("slow-grafana-{u}")).await;
    }
    receiver.hold();
    let running = spawn_pass(&app);
    wait::until("a batch is held at the receiver", || async { receiver.held().0 == 3 }).await;
    assert_eq!(
        metric(&app, "tokenkeeper_webhook_backlog").await,
        8,
        "all of it in the database"
    );
    receiver.release();
    let report = wait::bounded("the pass ends", running).await.unwrap();
    assert_eq!((report.delivered, report.batches, report.largest_batch), (8, 3, 3));
    assert_eq!(receiver.held().1, 3, "never more than a batch in flight");
    assert_eq!(metric(&app, "tokenkeeper_webhook_backlog").await, 0);
}

crate::on_all_stores!(events_pending_at_shutdown_are_delivered_after_restart);
// The backlog is the outbox's alone: the secret store plays no part in it.
crate::on_both_backends!(a_slow_receiver_leaves_the_backlog_in_the_database);

/// Two instances on one PostgreSQL: while one delivers, the other's pass sends nothing; passes of both,
/// at once, deliver every event exactly once and in order per connection.
async fn two_instances_deliver_each_event_once_in_order(db: Db) {
    let receiver = Receiver::start().await;
    let a = spawn_app(db, receiver.config(TestConfig::default())).await.unwrap();
    let b = spawn_sibling(&a, receiver.config(TestConfig::default())).await;
    let (_, token) = a.user("pair@example.com").await;
    store(&a, &token, "splunk", "pair-splunk-0").await;
    receiver.hold();
    let running = spawn_pass(&a);
    wait::until("a's request is held", || async { receiver.held().0 == 1 }).await;
    let other = pass(&b).await;
    assert!(!other.held_lease && other.delivered + other.failed == 0, "{other:?}");
    receiver.release();
    assert_eq!(wait::bounded("a's pass", running).await.unwrap().delivered, 1);

    for n in 1..=5 {
        store(&a, &token, "splunk", &format!("pair-splunk-{n}")).await;
        store(&b, &token, "grafana", &format!("pair-grafana-{n}")).await;
    }
    let written = [written_order(&a, "splunk").await, written_order(&a, "grafana").await];
    while metric(&a, "tokenkeeper_webhook_backlog").await > 0 {
        let (ra, rb) = tokio::join!(pass(&a), pass(&b));
        assert_eq!(ra.failed + rb.failed, 0);
    }
    let got = receiver.accepted();
    assert_eq!(got.len(), 11);
    // Each connection's events arrived in the order they were written, each once.
    assert_eq!(ids(&of(&got, "splunk"))[1..], written[0]);
    assert_eq!(ids(&of(&got, "grafana")), written[1]);
    let types: Vec<_> = kinds(&of(&got, "grafana")).into_iter().map(|(_, t)| t).collect();
    assert_eq!(types[0], "connection.created");
}

crate::on_postgres!(two_instances_deliver_each_event_once_in_order);
