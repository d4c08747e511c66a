//! Who is calling, in memory: every authenticated request needs its session (or its Auth.js user's
//! password state) and the caller's role in the org it acts in, and reading them from SQL each time made
//! identity the bulk of a request's cost. This cache keeps the three lookups' answers:
//! - a live session's user and expiry, by token hash (unknown tokens are not kept: a flood of them must
//!   not fill memory or push out real sessions);
//! - a user's password state: its last change and whether it must be changed before anything else (and
//!   "no such user", the usual answer for Auth.js users);
//! - a member's role in an org (only memberships that exist).
//!
//! Revocation must still hold on every instance within a second, so every change drops what it touches,
//! here and in every other process, like the credential read cache does: on PostgreSQL, triggers on
//! `users`, `sessions` and `memberships` announce the user whose rows changed on `tokenkeeper_identity`
//! in the changing transaction (so also a change made by hand), and each instance's listener drops that
//! user's entries (all of them after a lost listener connection). On SQLite, every process bumps a
//! counter beside the database after a change ([`super::generation`]), and a hit is only served while
//! the counter still has the value the entries reflect. The process that makes a change drops its own
//! entries at once ([`IdentityCache::changed`]). A reader caches what it read only if nothing was dropped
//! since it started reading (a ticket), so an answer read before a change cannot outlive it. As a last
//! resort (a process killed between its SQLite commit and its bump), nothing is served past [`MAX_AGE`].

use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

use super::generation::ChangeGeneration;
use super::{ChangeFeed, DbError, SharedStore};
use table::Table;

/// Entries per kind; beyond it that kind is cleared (simple and bounded).
const MAX_ENTRIES: usize = 100_000;

/// How long an entry may serve hits without SQL.
pub const MAX_AGE: Duration = Duration::from_secs(30);

/// What changed, for [`IdentityCache::changed`].
#[derive(Debug, Clone, Copy)]
pub enum Changed<'a> {
    /// A user's password, or their row, or one of their memberships.
    User(&'a str),
    /// One session (revoked at logout), by its token hash.
    Session(&'a str),
    /// Users and memberships in bulk (an import): everything cached goes.
    Everyone,
}

/// What requests need to know of a user's password. The default is "no such user" (an Auth.js user
/// without a Tokenkeeper account): never changed, nothing to change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PasswordState {
    /// When it last changed (epoch ms); `None` when never.
    pub changed_at: Option<i64>,
    /// The password was handed to the user: their own sessions may only change it (`identity`).
    pub must_change: bool,
}

/// What a reader notes before it reads SQL.
#[derive(Debug, Clone, Copy)]
struct Ticket {
    epoch: u64,
    seen: u64,
}

pub struct IdentityCache {
    store: SharedStore,
    /// SQLite: the identity change counter of every process on the database; entries reflect `seen`.
    shared: Option<Arc<ChangeGeneration>>,
    seen: AtomicU64,
    /// Bumped by every drop, before it drops (see [`Ticket`]).
    epoch: AtomicU64,
    /// PostgreSQL: announcements applied so far (this instance's own included).
    announcements: AtomicU64,
    /// Token hash -> (user id, expiry in epoch ms).
    sessions: Table<String, (String, i64)>,
    /// User id -> their password state (the default when no such user).
    users: Table<String, PasswordState>,
    /// (org id, user id) -> role.
    roles: Table<(String, String), String>,
}

impl IdentityCache {
    /// A cache over `store`, kept in step with the other processes' changes.
    pub async fn connect(store: SharedStore) -> Result<Arc<Self>, DbError> {
        let feed = store.subscribe_identity_changes().await?;
        let shared = match &feed {
            ChangeFeed::Counted(counter) => Some(counter.clone()),
            ChangeFeed::Announced(_) => None,
        };
        // A counter that cannot be read now is taken as 0: the first read that can tells a change.
        let seen = shared.as_ref().map_or(0, |g| g.current().unwrap_or(0));
        let cache = Arc::new(Self {
            store,
            shared,
            seen: AtomicU64::new(seen),
            epoch: AtomicU64::new(0),
            announcements: AtomicU64::new(0),
            sessions: Table::new(),
            users: Table::new(),
            roles: Table::new(),
        });
        if let ChangeFeed::Announced(mut changes) = feed {
            let weak = Arc::downgrade(&cache);
            tokio::spawn(async move {
                while let Some(announcement) = changes.recv().await {
                    let Some(cache) = weak.upgrade() else { break };
                    cache.announced(&announcement);
                }
            });
        }
        Ok(cache)
    }

    /// The user of a live session, by the token's hash.
    pub async fn session_user(&self, token_hash: &str, now: i64) -> Result<Option<String>, DbError> {
        if let Some((user, expires_at)) = self.hit(&self.sessions, token_hash)
            && expires_at > now
        {
            return Ok(Some(user));
        }
        let ticket = self.ticket();
        let found = self.store.session_user(token_hash, now).await?;
        if let Some(found) = &found {
            self.sessions
                .put(token_hash.to_string(), found.clone(), || self.current(ticket));
        }
        Ok(found.map(|(user, _)| user))
    }

    /// When `user_id` last changed their password (epoch ms); `None` when never, or no such user.
    pub async fn password_changed_at(&self, user_id: &str) -> Result<Option<i64>, DbError> {
        Ok(self.password_state(user_id).await?.changed_at)
    }

    /// `user_id`'s password state; the default when there is no such user.
    pub async fn password_state(&self, user_id: &str) -> Result<PasswordState, DbError> {
        if let Some(state) = self.hit(&self.users, user_id) {
            return Ok(state);
        }
        let ticket = self.ticket();
        let state = self
            .store
            .user_by_id(user_id)
            .await?
            .map(|u| PasswordState {
                changed_at: u.password_changed_at,
                must_change: u.must_change_password,
            })
            .unwrap_or_default();
        self.users.put(user_id.to_string(), state, || self.current(ticket));
        Ok(state)
    }

    /// `user_id`'s role in `org_id`; `None` when not a member (or no such org).
    pub async fn role(&self, org_id: &str, user_id: &str) -> Result<Option<String>, DbError> {
        let key = (org_id.to_string(), user_id.to_string());
        if let Some(role) = self.hit(&self.roles, &key) {
            return Ok(Some(role));
        }
        let ticket = self.ticket();
        let role = self.store.membership(org_id, user_id).await?.map(|(_, role)| role);
        if let Some(role) = &role {
            self.roles.put(key, role.clone(), || self.current(ticket));
        }
        Ok(role)
    }

    /// This process committed a change: drops what it touched here, and tells the other processes
    /// (SQLite; PostgreSQL's triggers did). A failed notice is logged: the others' entries then last until
    /// [`MAX_AGE`] at most.
    pub async fn changed(&self, what: Changed<'_>) {
        match what {
            Changed::User(user) => self.drop_user(user),
            Changed::Session(hash) => {
                self.epoch.fetch_add(1, SeqCst);
                self.sessions.retain(|h, _| h != hash);
            }
            Changed::Everyone => self.clear(),
        }
        match self.store.notify_identity_changed().await {
            // The counter went to `counted`: if ours was the only change since the entries were cached,
            // they stay valid.
            Ok(Some(counted)) => {
                let _ = self
                    .seen
                    .compare_exchange(counted.wrapping_sub(1), counted, SeqCst, SeqCst);
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "could not notify other processes of an identity change"),
        }
    }

    /// How many announcements (PostgreSQL) have been applied; always 0 on SQLite.
    pub fn announcements(&self) -> u64 {
        self.announcements.load(SeqCst)
    }

    /// How many entries are cached, of every kind.
    pub fn len(&self) -> usize {
        self.sessions.len() + self.users.len() + self.roles.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// An announced change: `u:{user id}` drops that user's entries; anything else ([`super::CHANGED_ALL`]
    /// after a lost listener connection) drops everything.
    fn announced(&self, announcement: &str) {
        match announcement.strip_prefix("u:") {
            Some(user) => self.drop_user(user),
            None => self.clear(),
        }
        self.announcements.fetch_add(1, SeqCst);
    }

    fn drop_user(&self, user: &str) {
        self.epoch.fetch_add(1, SeqCst);
        self.sessions.retain(|_, (u, _)| u != user);
        self.users.retain(|u, _| u != user);
        self.roles.retain(|(_, u), _| u != user);
    }

    fn clear(&self) {
        self.epoch.fetch_add(1, SeqCst);
        self.sessions.clear();
        self.users.clear();
        self.roles.clear();
    }

    /// The shared counter's value (0 where there is none); `None` when it cannot be read, which no noted
    /// value equals, so nothing is served or cached until it can be read again.
    fn shared_now(&self) -> Option<u64> {
        self.shared.as_ref().map_or(Some(0), |g| g.current().ok())
    }

    /// A cached value, unless another process changed something since the entries were cached: then they
    /// all go.
    fn hit<K, Q, V>(&self, table: &Table<K, V>, key: &Q) -> Option<V>
    where
        K: Hash + Eq + std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        V: Clone,
    {
        let now = self.shared_now();
        if now == Some(self.seen.load(SeqCst)) {
            return table.get(key);
        }
        self.clear();
        if let Some(now) = now {
            self.seen.store(now, SeqCst);
        }
        None
    }

    fn ticket(&self) -> Ticket {
        Ticket {
            epoch: self.epoch.load(SeqCst),
            seen: self.seen.load(SeqCst),
        }
    }

    /// Nothing was dropped and no other process changed anything since `ticket` was taken.
    fn current(&self, ticket: Ticket) -> bool {
        self.epoch.load(SeqCst) == ticket.epoch
            && self.seen.load(SeqCst) == ticket.seen
            && self.shared_now() == Some(ticket.seen)
    }
}

mod table;

#[cfg(test)]
#[path = "identity_cache_tests.rs"]
mod tests;
