//! A reference write that committed but whose answer was lost (the connection dropped after the commit):
//! the store must not undo a write that landed. Played by a database wrapper whose `put_connection`
//! commits, then reports an error.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use secrecy::ExposeSecret as _;
use serde_json::json;

use crate::support::app::{Db, Secrets, TestConfig, spawn_app};
use crate::support::store_faults::FaultyStore;

/// The replacing write landed; only its answer was lost. The new credential stands, in SQL and as the
/// secret store's current version (what Aurora reads), and the store reports success. Undoing it from
/// the reference read before would put the old content back on top of a reference naming the new one.
async fn a_reference_write_whose_answer_was_lost_is_not_undone(db: Db, secrets: Secrets) {
    let Some(cfg) = TestConfig::default().secrets(secrets).await else {
        return;
    };
    let app = spawn_app(db, cfg).await.unwrap();
    let (uid, token) = app.user("lost-answer@example.com").await;
    let body = |k: &str| json!({"api_token": k, "base_url": "https://s.example.com"});
    let r = app.put_auth("/api/tokens/splunk", &token, body("splunk-old")).await;
    assert_eq!(r.status(), 200);
    let store = FaultyStore::new(app.services.store.clone());
    store.lose_next_put.store(true, Ordering::SeqCst);
    let svc = app.library_credentials(Arc::new(store), app.services.secrets.clone());
    let stored = svc
        .store_tokens_in_db(&uid.as_str().into(), &body("splunk-new"), "splunk", "test")
        .await;
    assert!(stored.is_ok(), "the write landed: {:?}", stored.err());

    let row = app.row(&uid, "splunk").await;
    assert_eq!(row.secret_version, 2);
    let name = format!("aurora-dev-{uid}-splunk-token");
    let current = app.services.secrets.read(&name, None).await.unwrap().unwrap();
    assert_eq!(current.version, 2, "nothing written on top of the new version");
    assert!(current.value.expose_secret().contains("splunk-new"));
    let data = app.credentials("splunk", &token).await;
    assert_eq!(data["tokenData"]["api_token"], "splunk-new");
}

crate::on_all_stores!(a_reference_write_whose_answer_was_lost_is_not_undone);
