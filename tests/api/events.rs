//! Change events through the public surface: the real service writes them with each change, its
//! deliverer posts them to a local receiver (`support::webhook_receiver`), and the test checks each
//! request as a receiver would, with its own HMAC (the Standard Webhooks definition), not the service's
//! signing code. Backoff is crossed by moving the service's clock, never by waiting.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::json;
use tokenkeeper::events::deliver::{DeliveryReport, backoff};

use crate::support::app::{Db, Secrets, TestApp, TestConfig, scraped, spawn_app};
use crate::support::token_endpoint::{Answer, TokenEndpoint};
use crate::support::webhook_receiver::{KEY, Received, Receiver};

/// One deliverer pass of `app`.
pub async fn pass(app: &TestApp) -> DeliveryReport {
    let (_stop, stop) = tokio::sync::watch::channel(false);
    app.services
        .webhooks
        .as_ref()
        .expect("webhooks configured")
        .run_pass(&stop)
        .await
}

/// A deliverer pass of `app` in a task of its own (for a test to act while it runs).
pub fn spawn_pass(app: &TestApp) -> tokio::task::JoinHandle<DeliveryReport> {
    let deliverer = app.services.webhooks.clone().expect("webhooks configured");
    tokio::spawn(async move {
        let (_stop, stop) = tokio::sync::watch::channel(false);
        deliverer.run_pass(&stop).await
    })
}

/// The signature a receiver computes: base64 HMAC-SHA256 of `{id}.{timestamp}.{body}` under the key.
pub fn signed_by_the_key(r: &Received) -> bool {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(KEY).unwrap();
    mac.update(format!("{}.{}.{}", r.id, r.timestamp, r.body).as_bytes());
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    r.signature == format!("v1,{expected}")
}

/// `(provider, type)` of each request, in arrival order.
pub fn kinds(received: &[Received]) -> Vec<(String, String)> {
    received
        .iter()
        .map(|r| {
            let v = r.json();
            (
                v["data"]["provider"].as_str().unwrap().into(),
                v["type"].as_str().unwrap().into(),
            )
        })
        .collect()
}

pub fn of(received: &[Received], provider: &str) -> Vec<Received> {
    received
        .iter()
        .filter(|r| r.json()["data"]["provider"] == provider)
        .cloned()
        .collect()
}

/// The event ids waiting in the outbox for `provider`'s connection, in the order they were written.
pub async fn written_order(app: &TestApp, provider: &str) -> Vec<String> {
    use sqlx::Connection as _;
    let q = "SELECT event_id FROM event_outbox WHERE stream LIKE '%/' || $1 || '/%' ORDER BY id";
    if app.database_url.starts_with("postgres") {
        let mut c = sqlx::PgConnection::connect(&app.database_url).await.unwrap();
        sqlx::query_scalar(q).bind(provider).fetch_all(&mut c).await.unwrap()
    } else {
        let mut c = sqlx::SqliteConnection::connect(&app.database_url).await.unwrap();
        sqlx::query_scalar(q).bind(provider).fetch_all(&mut c).await.unwrap()
    }
}

pub fn ids(received: &[Received]) -> Vec<String> {
    received.iter().map(|r| r.id.clone()).collect()
}

pub async fn metric(app: &TestApp, name: &str) -> i64 {
    scraped::<i64>(&app.client, &app.at("/metrics"), name).await
}

pub async fn store(app: &TestApp, token: &str, provider: &str, key: &str) {
    let body = match provider {
        "splunk" => json!({"api_token": key, "base_url": "https://s.example.com"}),
        _ => json!({"api_key": key, "base_url": "https://g.example.com"}),
    };
    let r = app.put_auth(&format!("/api/tokens/{provider}"), token, body).await;
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
}

/// On every database and secret store: the events are written with the connection rows, after the secret
/// (a write, a refresh's failure, a delete that destroys the secret first, in OpenBao too).
async fn each_change_is_one_signed_event_with_its_data_and_no_secret(db: Db, secrets: Secrets) {
    let receiver = Receiver::start().await;
    let endpoint = TokenEndpoint::start().await;
    let Some(cfg) = receiver
        .config(endpoint.config(TestConfig::default()))
        .secrets(secrets)
        .await
    else {
        return;
    };
    let app = spawn_app(db, cfg).await.unwrap();
    let (uid, token) = app.user("events@example.com").await;
    store(&app, &token, "splunk", "ev-splunk-secret-1").await;
    store(&app, &token, "splunk", "ev-splunk-secret-2").await;
    endpoint.store_gcp(&app, &token, 10, "rt-ev-secret").await;
    endpoint.answer(Answer::InvalidGrant);
    let _ = app.post_auth("/api/tokens/gcp/refresh", &token, json!({})).await;
    let reason = app.row(&uid, "gcp").await.status_reason.expect("a reason");
    assert_eq!(app.delete_auth("/api/tokens/splunk", &token).await.status(), 200);
    assert_eq!(metric(&app, "tokenkeeper_webhook_backlog").await, 5);

    let report = pass(&app).await;
    assert_eq!((report.delivered, report.failed), (5, 0));
    let got = receiver.accepted();
    let k = |p: &str, t: &str| (p.to_string(), format!("connection.{t}"));
    let splunk: Vec<_> = kinds(&got).into_iter().filter(|(p, _)| p == "splunk").collect();
    assert_eq!(
        splunk,
        [k("splunk", "created"), k("splunk", "updated"), k("splunk", "deleted")]
    );
    let gcp: Vec<_> = kinds(&got).into_iter().filter(|(p, _)| p == "gcp").collect();
    assert_eq!(gcp, [k("gcp", "created"), k("gcp", "status_changed")]);
    for r in &got {
        assert!(signed_by_the_key(r), "signature of {}", r.body);
        assert!(r.id.starts_with("msg_"));
        let v = r.json();
        assert_eq!(
            v.as_object().unwrap().keys().collect::<Vec<_>>(),
            ["data", "timestamp", "type"],
            "{v}"
        );
        assert!(v["timestamp"].as_str().unwrap().ends_with('Z'));
        let d = &v["data"];
        assert_eq!(
            (&d["org"], &d["user"], &d["name"]),
            (&json!(uid), &json!(uid), &json!("default"))
        );
        for secret in ["ev-splunk-secret", "rt-ev-secret", "access-0", "platform-client-secret"] {
            assert!(!r.body.contains(secret), "a secret in {}", r.body);
        }
    }
    let mut ids: Vec<_> = got.iter().map(|r| r.id.clone()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 5, "distinct ids");
    let created = of(&got, "splunk")[0].json();
    // The test app stores without a check (TOKENKEEPER_CHECK_ON_STORE=false): a static key starts unchecked.
    assert_eq!(created["data"]["status"], "unchecked");
    let changed = of(&got, "gcp")[1].json();
    assert_eq!(
        (
            &changed["data"]["from"],
            &changed["data"]["to"],
            &changed["data"]["reason"]
        ),
        (&json!("unchecked"), &json!("needs_reauth"), &json!(reason))
    );
    assert_eq!(metric(&app, "tokenkeeper_webhook_deliveries_total").await, 5);
    assert_eq!(metric(&app, "tokenkeeper_webhook_backlog").await, 0);
}

/// The receiver answers 500 to one connection's events for over an hour, then 200: every event arrives,
/// in order; meanwhile its later events wait and the other connection's go through.
async fn a_failing_receiver_gets_every_event_in_order_and_blocks_only_that_connection(db: Db) {
    let receiver = Receiver::start().await;
    let app = spawn_app(db, receiver.config(TestConfig::default())).await.unwrap();
    let (_, token) = app.user("retry@example.com").await;
    receiver.answer_for("splunk", 500);
    for n in 1..=3 {
        store(&app, &token, "splunk", &format!("retry-splunk-{n}")).await;
    }
    for n in 1..=2 {
        store(&app, &token, "grafana", &format!("retry-grafana-{n}")).await;
    }
    let written = written_order(&app, "splunk").await;
    assert_eq!(written.len(), 3);
    let first = pass(&app).await;
    assert_eq!(
        (first.delivered, first.failed),
        (2, 1),
        "grafana's two, splunk's head once"
    );
    let (mut waited, mut attempts) = (0, 1);
    while waited <= 3600 {
        let wait = i64::try_from(backoff(attempts).as_secs()).unwrap();
        app.clock.advance_secs(wait);
        waited += wait;
        let r = pass(&app).await;
        assert_eq!((r.delivered, r.failed), (0, 1), "the head again, nothing after it");
        attempts += 1;
    }
    let tries = of(&receiver.received(), "splunk");
    assert_eq!(tries.len(), usize::try_from(attempts).unwrap());
    assert!(tries.iter().all(|t| t.id == tries[0].id), "only the head was tried");
    assert_eq!(metric(&app, "tokenkeeper_webhook_backlog").await, 3);

    receiver.answer_for("splunk", 200);
    app.clock.advance_secs(3600);
    assert_eq!(pass(&app).await.delivered, 3);
    let splunk = of(&receiver.accepted(), "splunk");
    let kinds: Vec<_> = kinds(&splunk).into_iter().map(|(_, t)| t).collect();
    assert_eq!(
        kinds,
        ["connection.created", "connection.updated", "connection.updated"]
    );
    assert_eq!(tries[0].id, written[0]);
    assert_eq!(ids(&splunk), written, "in order, none twice");
    assert!(splunk.iter().all(signed_by_the_key));
    assert_eq!(
        metric(&app, "tokenkeeper_webhook_delivery_failures_total").await,
        i64::from(attempts)
    );
    assert_eq!(metric(&app, "tokenkeeper_webhook_backlog").await, 0);
}

/// An event that fails for a day is given up (kept as dead, counted) and its connection's next goes on.
async fn an_event_failing_for_a_day_is_given_up_and_the_next_goes_on(db: Db) {
    let receiver = Receiver::start().await;
    let app = spawn_app(db, receiver.config(TestConfig::default())).await.unwrap();
    let (_, token) = app.user("dead@example.com").await;
    receiver.answer(500);
    store(&app, &token, "splunk", "dead-splunk-1").await;
    for _ in 0..26 {
        pass(&app).await;
        app.clock.advance_secs(3600);
    }
    assert_eq!(metric(&app, "tokenkeeper_webhook_events_given_up_total").await, 1);
    assert_eq!(metric(&app, "tokenkeeper_webhook_dead_events").await, 1);
    receiver.answer(200);
    store(&app, &token, "splunk", "dead-splunk-2").await;
    assert_eq!(pass(&app).await.delivered, 1);
    let last = receiver.accepted();
    assert_eq!(kinds(&last), [("splunk".to_string(), "connection.updated".to_string())]);
    assert_eq!(metric(&app, "tokenkeeper_webhook_backlog").await, 0);
}

crate::on_all_stores!(each_change_is_one_signed_event_with_its_data_and_no_secret);
// Delivery after the write (retries, backoff, giving up) reads only the outbox, never the secret store.
crate::on_both_backends!(
    a_failing_receiver_gets_every_event_in_order_and_blocks_only_that_connection,
    an_event_failing_for_a_day_is_given_up_and_the_next_goes_on,
);
