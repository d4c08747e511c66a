//! A credential service built as a library caller builds one (`CredentialService::new`, nothing but
//! defaults): it takes the credential lock like the server's, and its `refresh_due` (the background
//! refresher's unit of work) leaves a claimed credential that someone refreshed or stored anew after the
//! claim as it is, without reading its secret.

use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::json;
use tokenkeeper::clock::Clock as _;
use tokenkeeper::credentials::DueBatch;
use tokenkeeper::secrets::{SecretError, SecretStore, SecretVersion};

use crate::support::app::{Db, Secrets, TestConfig, spawn_app};
use crate::support::decorated::{Decorated, Hooks};

/// Counts the reads of the store it decorates.
#[derive(Default)]
struct CountingReads {
    reads: AtomicUsize,
}

#[async_trait::async_trait]
impl Hooks for CountingReads {
    async fn read(
        &self,
        inner: &dyn SecretStore,
        name: &str,
        version: Option<u64>,
    ) -> Result<Option<SecretVersion>, SecretError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        inner.read(name, version).await
    }
}

async fn a_claimed_row_that_is_not_due_any_more_is_left_unread(db: Db, secrets: Secrets) {
    let Some(cfg) = TestConfig::default().secrets(secrets).await else {
        return;
    };
    let app = spawn_app(db, cfg).await.unwrap();
    let (_, token) = app.user("due@example.com").await;
    // Expiring within the margin: due at once.
    let expires_at = app.clock.now_secs() + 60;
    let body = json!({"access_token": "access-0", "refresh_token": "rt-0", "expires_at": expires_at});
    assert_eq!(app.put_auth("/api/tokens/gcp", &token, body).await.status(), 200);
    let secrets = Decorated::around(app.services.secrets.clone(), CountingReads::default());
    let svc = app.library_credentials(app.services.store.clone(), secrets.clone());
    let never = || false;

    // Claimed as of a moment before the credential was stored: stored since, so not due any more.
    let claimed_at = tokenkeeper::clock::Timestamp::from_millis(app.clock.now_ms() - 1);
    let report = svc.refresh_due(claimed_at, &DueBatch::default(), &never).await.unwrap();
    assert_eq!((report.claimed, report.refreshed, report.failed), (1, 1, 0));
    assert_eq!(secrets.hooks.reads.load(Ordering::SeqCst), 0, "the secret was read");

    // Once the claim's lease has run out it is due: its refresh starts from the secret (and fails here:
    // no OAuth client is configured for this service).
    app.clock
        .advance_secs(tokenkeeper::clock::secs_i64(DueBatch::default().lease) + 1);
    let report = svc
        .refresh_due(app.clock.now(), &DueBatch::default(), &never)
        .await
        .unwrap();
    assert_eq!((report.claimed, report.refreshed, report.failed), (1, 0, 1));
    assert!(secrets.hooks.reads.load(Ordering::SeqCst) > 0);
}

crate::on_all_stores!(a_claimed_row_that_is_not_due_any_more_is_left_unread);

/// Returns once a session waits for an advisory lock in the app's database (at most 10 s).
async fn someone_waits_for_a_lock(database_url: &str) {
    use sqlx::Connection as _;
    let mut c = sqlx::PgConnection::connect(database_url).await.unwrap();
    for _ in 0..500 {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        )
        .fetch_one(&mut c)
        .await
        .unwrap();
        if waiting > 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the service never waited for the credential lock");
}

/// Stores and deletes hold the credential's lock also without any refresh settings: while another
/// process holds it (here the test, through the database's cross-process lock), they wait.
async fn stores_and_deletes_wait_for_the_credential_lock(db: Db) {
    let app = spawn_app(db, TestConfig::default()).await.unwrap();
    let (uid, _) = app.user("locked@example.com").await;
    let svc = app.library_credentials(app.services.store.clone(), app.services.secrets.clone());
    let body = json!({"api_token": "splunk-token", "base_url": "https://s.example.com"});
    let held = app
        .services
        .store
        .refresh_lock(&format!("{uid}\u{0}splunk"))
        .await
        .unwrap();
    let store = tokio::spawn({
        let (svc, uid, body) = (svc.clone(), uid.clone(), body.clone());
        async move {
            svc.store_tokens_in_db(&uid.as_str().into(), &body, "splunk", "test")
                .await
                .map(|_| ())
        }
    });
    someone_waits_for_a_lock(&app.database_url).await;
    assert!(
        app.services
            .store
            .get_connection(&uid, "splunk", "default")
            .await
            .unwrap()
            .is_none()
    );
    drop(held);
    store.await.unwrap().unwrap();
    assert!(
        app.services
            .store
            .get_connection(&uid, "splunk", "default")
            .await
            .unwrap()
            .is_some()
    );

    let held = app
        .services
        .store
        .refresh_lock(&format!("{uid}\u{0}splunk"))
        .await
        .unwrap();
    let delete = tokio::spawn({
        let (svc, uid) = (svc.clone(), uid.clone());
        async move { svc.delete(&uid.as_str().into(), "splunk", "test").await }
    });
    someone_waits_for_a_lock(&app.database_url).await;
    assert!(
        app.services
            .store
            .get_connection(&uid, "splunk", "default")
            .await
            .unwrap()
            .is_some()
    );
    drop(held);
    delete.await.unwrap().unwrap();
    assert!(
        app.services
            .store
            .get_connection(&uid, "splunk", "default")
            .await
            .unwrap()
            .is_none()
    );
}

// Waiting for a lock is seen in PostgreSQL's `pg_locks`; the lock itself is the same on both.
crate::on_postgres!(stores_and_deletes_wait_for_the_credential_lock);
