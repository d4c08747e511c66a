//! A database decorator that injects faults through the library's `Store` trait: everything is delegated
//! to the real store, except what a test switches on.
//! - `lose_next_put`: the next `put_connection` commits, then reports an error (an answer lost after
//!   the commit);
//! - `session_gate`: `create_session` waits at a [`Gate`] (a login held after its password check).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use secrecy::SecretString;
use tokenkeeper::db::{
    AttemptCounts, AuditRecord, Backend, ChangeFeed, ConnectStore, Connection, DbError, FlowRow, ImportStore,
    ImportWrite, MemberChange, MemberRow, NewEvent, NewSession, Onboarding, OnboardingStore, OrgRow, OrgStore,
    OutboxStore, PendingEvent, RefreshLock, SharedStore, Store, User,
};

pub struct FaultyStore {
    pub inner: SharedStore,
    pub lose_next_put: AtomicBool,
    pub session_gate: Option<Arc<Gate>>,
}

impl FaultyStore {
    pub fn new(inner: SharedStore) -> Self {
        Self {
            inner,
            lose_next_put: AtomicBool::new(false),
            session_gate: None,
        }
    }
}

/// Holds every caller until opened; counts those that arrived.
#[derive(Default)]
pub struct Gate {
    arrived: AtomicUsize,
    open: tokio::sync::Notify,
    opened: AtomicBool,
}

impl Gate {
    pub async fn pass(&self) {
        let notified = self.open.notified();
        self.arrived.fetch_add(1, Ordering::SeqCst);
        if !self.opened.load(Ordering::SeqCst) {
            super::wait::bounded("the gate opens", notified).await;
        }
    }

    pub fn arrived(&self) -> usize {
        self.arrived.load(Ordering::SeqCst)
    }

    pub fn open(&self) {
        self.opened.store(true, Ordering::SeqCst);
        self.open.notify_waiters();
    }
}

fn lost() -> DbError {
    DbError::Sql(sqlx::Error::Io(std::io::Error::new(
        std::io::ErrorKind::ConnectionReset,
        "connection reset after commit",
    )))
}

#[async_trait::async_trait]
impl OrgStore for FaultyStore {
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
impl ImportStore for FaultyStore {
    async fn org_by_id(&self, id: &str) -> Result<Option<OrgRow>, DbError> {
        self.inner.org_by_id(id).await
    }
    async fn apply_import(&self, w: &ImportWrite) -> Result<(), DbError> {
        self.inner.apply_import(w).await
    }
}

#[async_trait::async_trait]
impl OutboxStore for FaultyStore {
    async fn due_events(&self, now: i64, limit: i64) -> Result<Vec<PendingEvent>, DbError> {
        self.inner.due_events(now, limit).await
    }
    async fn event_delivered(&self, id: i64) -> Result<(), DbError> {
        self.inner.event_delivered(id).await
    }
    async fn event_failed(&self, id: i64, next_attempt_at: i64, error: &str) -> Result<(), DbError> {
        self.inner.event_failed(id, next_attempt_at, error).await
    }
    async fn event_dead(&self, id: i64, at: i64, error: &str) -> Result<(), DbError> {
        self.inner.event_dead(id, at, error).await
    }
    async fn outbox_counts(&self) -> Result<(i64, i64), DbError> {
        self.inner.outbox_counts().await
    }
    async fn take_deliverer_lease(&self, holder: &str, now: i64, until: i64) -> Result<bool, DbError> {
        self.inner.take_deliverer_lease(holder, now, until).await
    }
    async fn release_deliverer_lease(&self, holder: &str) -> Result<(), DbError> {
        self.inner.release_deliverer_lease(holder).await
    }
}

#[async_trait::async_trait]
impl ConnectStore for FaultyStore {
    async fn insert_flow(&self, flow: &FlowRow, prune_before: i64) -> Result<(), DbError> {
        self.inner.insert_flow(flow, prune_before).await
    }
    async fn claim_flow(&self, state_hash: &str, now: i64) -> Result<Option<FlowRow>, DbError> {
        self.inner.claim_flow(state_hash, now).await
    }
}

#[async_trait::async_trait]
impl OnboardingStore for FaultyStore {
    async fn issue_onboarding(&self, fresh: &Onboarding, now: i64) -> Result<Onboarding, DbError> {
        self.inner.issue_onboarding(fresh, now).await
    }
    async fn pending_onboarding(
        &self,
        org_id: &str,
        provider: &str,
        name: &str,
        now: i64,
    ) -> Result<Option<Onboarding>, DbError> {
        self.inner.pending_onboarding(org_id, provider, name, now).await
    }
    async fn use_onboarding(
        &self,
        org_id: &str,
        provider: &str,
        name: &str,
        external_id: &str,
        now: i64,
    ) -> Result<bool, DbError> {
        self.inner
            .use_onboarding(org_id, provider, name, external_id, now)
            .await
    }
}

#[async_trait::async_trait]
impl Store for FaultyStore {
    async fn put_connection_emitting(
        &self,
        c: &Connection,
        expected: Option<u64>,
        events: &[NewEvent],
    ) -> Result<bool, DbError> {
        let landed = self.inner.put_connection_emitting(c, expected, events).await?;
        if self.lose_next_put.swap(false, Ordering::SeqCst) {
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
    async fn create_session(&self, session: &NewSession) -> Result<bool, DbError> {
        if let Some(gate) = &self.session_gate {
            gate.pass().await;
        }
        self.inner.create_session(session).await
    }
    async fn session_user(&self, token_hash: &str, now: i64) -> Result<Option<(String, i64)>, DbError> {
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
    async fn update_connection_emitting(&self, c: &Connection, events: &[NewEvent]) -> Result<bool, DbError> {
        self.inner.update_connection_emitting(c, events).await
    }
    async fn get_connection(&self, org_id: &str, provider: &str, name: &str) -> Result<Option<Connection>, DbError> {
        self.inner.get_connection(org_id, provider, name).await
    }
    async fn connection_by_secret_ref(&self, secret_ref: &str) -> Result<Option<Connection>, DbError> {
        self.inner.connection_by_secret_ref(secret_ref).await
    }
    async fn list_connections(&self, user_id: &str) -> Result<Vec<Connection>, DbError> {
        self.inner.list_connections(user_id).await
    }
    async fn count_connections_by_status(&self) -> Result<Vec<(String, i64)>, DbError> {
        self.inner.count_connections_by_status().await
    }
    async fn delete_connection_emitting(
        &self,
        org_id: &str,
        provider: &str,
        name: &str,
        events: &[NewEvent],
    ) -> Result<bool, DbError> {
        self.inner
            .delete_connection_emitting(org_id, provider, name, events)
            .await
    }
    async fn refresh_lock(&self, key: &str) -> Result<RefreshLock, DbError> {
        self.inner.refresh_lock(key).await
    }
    async fn claim_due(
        &self,
        now: tokenkeeper::clock::Timestamp,
        lease_until: tokenkeeper::clock::Timestamp,
        limit: i64,
    ) -> Result<Vec<tokenkeeper::db::DueConnection>, DbError> {
        self.inner.claim_due(now, lease_until, limit).await
    }
    async fn claim_due_checks(
        &self,
        now: tokenkeeper::clock::Timestamp,
        lease_until: tokenkeeper::clock::Timestamp,
        limit: i64,
    ) -> Result<Vec<tokenkeeper::db::DueConnection>, DbError> {
        self.inner.claim_due_checks(now, lease_until, limit).await
    }
    async fn notify_changed(&self, key: &str) -> Result<Option<u64>, DbError> {
        self.inner.notify_changed(key).await
    }
    async fn subscribe_changes(&self) -> Result<ChangeFeed, DbError> {
        self.inner.subscribe_changes().await
    }
    async fn notify_identity_changed(&self) -> Result<Option<u64>, DbError> {
        self.inner.notify_identity_changed().await
    }
    async fn subscribe_identity_changes(&self) -> Result<ChangeFeed, DbError> {
        self.inner.subscribe_identity_changes().await
    }
}
