//! A reference write that committed but whose answer was lost (the connection dropped after the commit):
//! the store must not undo a write that landed. Played by a database wrapper whose `put_connection`
//! commits, then reports an error.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use secrecy::{ExposeSecret as _, SecretString};
use serde_json::json;
use tokenkeeper::db::{
    AttemptCounts, AuditRecord, Backend, ChangeFeed, Connection, DbError, MemberChange, MemberRow, NewSession, OrgRow,
    OrgStore, RefreshLock, SharedStore, Store, User,
};

use crate::support::app::{Db, Secrets, TestConfig, spawn_app};

/// Delegates everything; `put_connection` loses its answer once when `lose` is set.
struct LosesAnswer {
    inner: SharedStore,
    lose: AtomicBool,
}

fn lost() -> DbError {
    DbError::Sql(sqlx::Error::Io(std::io::Error::new(
        std::io::ErrorKind::ConnectionReset,
        "connection reset after commit",
    )))
}

#[async_trait::async_trait]
impl OrgStore for LosesAnswer {
    async fn ensure_personal_org(&self, user_id: &str, name: &str, now: i64) -> Result<(), DbError> {
        self.inner.ensure_personal_org(user_id, name, now).await
    }
    async fn create_org(&self, org: &OrgRow) -> Result<(), DbError> {
        self.inner.create_org(org).await
    }
    async fn orgs_of(&self, user_id: &str) -> Result<Vec<(OrgRow, String)>, DbError> {
        self.inner.orgs_of(user_id).await
    }
    async fn membership(&self, org_id: &str, user_id: &str) -> Result<Option<(OrgRow, String)>, DbError> {
        self.inner.membership(org_id, user_id).await
    }
    async fn members(&self, org_id: &str) -> Result<Vec<MemberRow>, DbError> {
        self.inner.members(org_id).await
    }
    async fn add_member(&self, org_id: &str, user_id: &str, role: &str, now: i64) -> Result<bool, DbError> {
        self.inner.add_member(org_id, user_id, role, now).await
    }
    async fn change_member(
        &self,
        org_id: &str,
        by: &str,
        user_id: &str,
        role: Option<&str>,
    ) -> Result<MemberChange, DbError> {
        self.inner.change_member(org_id, by, user_id, role).await
    }
}

#[async_trait::async_trait]
impl Store for LosesAnswer {
    async fn put_connection(&self, c: &Connection, expected: Option<u64>) -> Result<bool, DbError> {
        let landed = self.inner.put_connection(c, expected).await?;
        if self.lose.swap(false, Ordering::SeqCst) {
            return Err(lost());
        }
        Ok(landed)
    }

    fn backend(&self) -> Backend {
        self.inner.backend()
    }
    async fn migrate(&self) -> Result<(), DbError> {
        self.inner.migrate().await
    }
    async fn ping(&self) -> Result<(), DbError> {
        self.inner.ping().await
    }
    async fn create_user(&self, user: &User) -> Result<(), DbError> {
        self.inner.create_user(user).await
    }
    async fn user_by_email(&self, email: &str) -> Result<Option<User>, DbError> {
        self.inner.user_by_email(email).await
    }
    async fn user_by_id(&self, id: &str) -> Result<Option<User>, DbError> {
        self.inner.user_by_id(id).await
    }
    async fn set_password(
        &self,
        user_id: &str,
        hash: &SecretString,
        changed_at: i64,
        keep_session: Option<&str>,
    ) -> Result<bool, DbError> {
        self.inner.set_password(user_id, hash, changed_at, keep_session).await
    }
    async fn create_session(&self, session: &NewSession) -> Result<(), DbError> {
        self.inner.create_session(session).await
    }
    async fn session_user(&self, token_hash: &str, now: i64) -> Result<Option<String>, DbError> {
        self.inner.session_user(token_hash, now).await
    }
    async fn revoke_session(&self, token_hash: &str, now: i64) -> Result<(), DbError> {
        self.inner.revoke_session(token_hash, now).await
    }
    async fn prune_sessions(&self, user_id: &str, now: i64, revoked_before: i64) -> Result<u64, DbError> {
        self.inner.prune_sessions(user_id, now, revoked_before).await
    }
    async fn reserve_attempts(&self, keys: &[String], at: i64) -> Result<Vec<i64>, DbError> {
        self.inner.reserve_attempts(keys, at).await
    }
    async fn confirm_failures(&self, ids: &[i64]) -> Result<(), DbError> {
        self.inner.confirm_failures(ids).await
    }
    async fn delete_failures(&self, ids: &[i64]) -> Result<(), DbError> {
        self.inner.delete_failures(ids).await
    }
    async fn failures_since(
        &self,
        key: &str,
        since: i64,
        pending_since: i64,
        attempt_id: i64,
    ) -> Result<AttemptCounts, DbError> {
        self.inner.failures_since(key, since, pending_since, attempt_id).await
    }
    async fn clear_failures(&self, key: &str) -> Result<(), DbError> {
        self.inner.clear_failures(key).await
    }
    async fn prune_failures(&self, before: i64) -> Result<u64, DbError> {
        self.inner.prune_failures(before).await
    }
    async fn insert_audit(&self, event: &AuditRecord) -> Result<(), DbError> {
        self.inner.insert_audit(event).await
    }
    async fn insert_audit_batch(&self, events: &[AuditRecord]) -> Result<(), DbError> {
        self.inner.insert_audit_batch(events).await
    }
    async fn prune_audit(&self, before: i64, batch: i64) -> Result<Option<tokenkeeper::db::PruneReport>, DbError> {
        self.inner.prune_audit(before, batch).await
    }
    async fn list_audit(
        &self,
        owner: tokenkeeper::db::AuditOwner<'_>,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<AuditRecord>, DbError> {
        self.inner.list_audit(owner, before, limit).await
    }
    async fn update_connection(&self, c: &Connection) -> Result<bool, DbError> {
        self.inner.update_connection(c).await
    }
    async fn get_connection(&self, user_id: &str, provider: &str) -> Result<Option<Connection>, DbError> {
        self.inner.get_connection(user_id, provider).await
    }
    async fn list_connections(&self, user_id: &str) -> Result<Vec<Connection>, DbError> {
        self.inner.list_connections(user_id).await
    }
    async fn count_connections_by_status(&self) -> Result<Vec<(String, i64)>, DbError> {
        self.inner.count_connections_by_status().await
    }
    async fn delete_connection(&self, user_id: &str, provider: &str) -> Result<bool, DbError> {
        self.inner.delete_connection(user_id, provider).await
    }
    async fn refresh_lock(&self, key: &str) -> Result<RefreshLock, DbError> {
        self.inner.refresh_lock(key).await
    }
    async fn claim_due(
        &self,
        now: tokenkeeper::clock::Timestamp,
        lease_until: tokenkeeper::clock::Timestamp,
        limit: i64,
    ) -> Result<Vec<(String, String)>, DbError> {
        self.inner.claim_due(now, lease_until, limit).await
    }
    async fn notify_changed(&self, key: &str) -> Result<Option<u64>, DbError> {
        self.inner.notify_changed(key).await
    }
    async fn subscribe_changes(&self) -> Result<ChangeFeed, DbError> {
        self.inner.subscribe_changes().await
    }
}

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
    let store = LosesAnswer {
        inner: app.services.store.clone(),
        lose: AtomicBool::new(true),
    };
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
