//! The read cache: a credential's reference row and its secret token data, in process memory only
//! (never Redis, disk or logs). The token data is kept parsed (a hit shares it, nothing is parsed again);
//! its strings are zeroized when the last copy is dropped ([`TokenData`]).
//!
//! A hit serves an `active`, unexpiring credential with no SQL and no secret-store round trip. It stays
//! correct because every change drops the entry: writes, deletes, refreshes and status changes drop it
//! here, and other processes' changes reach it too. On PostgreSQL, `NOTIFY tokenkeeper_cache`, sent by a
//! trigger in the transaction of every change to a connection row, drops the changed key (after a lost
//! listener connection, everything). On SQLite, whose file the CLI or another
//! server writes from another process, every process bumps a shared counter after a change
//! ([`crate::db::generation`]); a hit is only served while the counter still has the value the entries
//! reflect, and a foreign change drops everything. Entries are also checked against the secret version a
//! freshly read reference names, so a slow path never serves an older version. As a last resort against
//! an announcement that never came (a process killed between its commit and its counter bump), no entry
//! is served past [`MAX_AGE`].

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use super::{ConnectionKey, TokenData};
use crate::db::Connection;
use crate::db::generation::ChangeGeneration;

/// Upper bound on cached credentials; beyond it the cache is cleared (simple and bounded).
const MAX_ENTRIES: usize = 50_000;

/// How long an entry may serve hits; then the next read goes to SQL (and the secret store) again.
pub const MAX_AGE: Duration = Duration::from_secs(60);

struct Entry {
    cached_at: Instant,
    row: Connection,
    /// `None` when secrets are not cached (`TOKENKEEPER_READ_CACHE=false`): the row alone still saves
    /// the SQL lookup, and the secret comes from the secret store on every read.
    data: Option<TokenData>,
}

#[derive(Default)]
pub struct ReadCache {
    /// Whether token data is kept too, or only the (non-secret) reference rows.
    secrets: bool,
    /// SQLite: the change counter shared by every process on the database; the entries reflect the
    /// value `seen`. `None` on PostgreSQL, where changes arrive as notifications and drop entries.
    shared: Option<Arc<ChangeGeneration>>,
    seen: AtomicU64,
    entries: RwLock<HashMap<ConnectionKey, Entry>>,
    /// Bumped by every drop. A reader notes it before reading SQL and the secret store, and only
    /// caches what it read if no drop happened meanwhile: otherwise a change announced while it was
    /// reading could be overwritten by the older data it read.
    epoch: AtomicU64,
    /// PostgreSQL: announcements applied so far (ours included). Announcements arrive in commit order,
    /// so a count that reached n means every change up to the n-th is reflected (tests wait on it).
    announcements: AtomicU64,
}

/// What a reader notes before it reads SQL and the secret store; see [`ReadCache::put`].
#[derive(Debug, Clone, Copy)]
pub struct Ticket {
    epoch: u64,
    seen: u64,
}

impl ReadCache {
    /// Caches reference rows, and token data only when `secrets`. `shared`: the change counter of a
    /// SQLite database (`None` where changes are announced instead).
    pub fn new(secrets: bool, shared: Option<Arc<ChangeGeneration>>) -> Self {
        // A counter that cannot be read now is taken as 0: the first read that can tells a change.
        let seen = AtomicU64::new(shared.as_ref().map_or(0, |g| g.current().unwrap_or(0)));
        Self {
            secrets,
            shared,
            seen,
            ..Self::default()
        }
    }

    // A panic while the lock is held cannot leave the map half-changed (each change is one map call), so a
    // poisoned lock is used as it is.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<ConnectionKey, Entry>> {
        self.entries.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<ConnectionKey, Entry>> {
        self.entries.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The shared counter's value (0 where there is none); `None` when it cannot be read, which no noted
    /// value equals, so nothing is served or cached until it can be read again.
    fn shared_now(&self) -> Option<u64> {
        self.shared.as_ref().map_or(Some(0), |g| g.current().ok())
    }

    /// The cached row, and its token data when secrets are cached. `None` also when another process
    /// changed a credential since the entries were cached: they are all dropped then.
    pub fn entry(&self, key: &ConnectionKey) -> Option<(Connection, Option<TokenData>)> {
        {
            let entries = self.read();
            if self.shared_now() == Some(self.seen.load(SeqCst)) {
                let e = entries.get(key).filter(|e| e.cached_at.elapsed() < MAX_AGE)?;
                return Some((e.row.clone(), e.data.clone()));
            }
        }
        self.catch_up();
        None
    }

    /// Drops everything after another process's change, and notes the counter's value.
    fn catch_up(&self) {
        let mut entries = self.write();
        let now = self.shared_now();
        if now != Some(self.seen.load(SeqCst)) {
            self.epoch.fetch_add(1, SeqCst);
            entries.clear();
            if let Some(now) = now {
                self.seen.store(now, SeqCst);
            }
        }
    }

    /// This process changed a credential (its entry already dropped) and the shared counter went to
    /// `counted`: if that was the only change since the entries were cached, they stay valid.
    pub fn changed_here(&self, counted: u64) {
        let _ = self
            .seen
            .compare_exchange(counted.wrapping_sub(1), counted, SeqCst, SeqCst);
    }

    /// The cached token data if it was cached with exactly the reference row `row` (same secret version,
    /// and not a deleted and stored-again credential whose new secret restarted at the same version).
    pub fn get(&self, key: &ConnectionKey, row: &Connection) -> Option<TokenData> {
        let entries = self.read();
        let e = entries
            .get(key)
            .filter(|e| e.row == *row && e.cached_at.elapsed() < MAX_AGE)?;
        e.data.clone()
    }

    /// The ticket to pass to [`ReadCache::put`]; take it before reading.
    pub fn ticket(&self) -> Ticket {
        Ticket {
            epoch: self.epoch.load(SeqCst),
            seen: self.seen.load(SeqCst),
        }
    }

    /// Caches what was read since `ticket` was taken, unless anything was dropped or changed meanwhile
    /// (here or in another process).
    pub fn put(&self, key: &ConnectionKey, row: &Connection, data: &TokenData, ticket: Ticket) {
        let data = self.secrets.then(|| data.clone());
        let mut entries = self.write();
        let current = self.epoch.load(SeqCst) == ticket.epoch
            && self.seen.load(SeqCst) == ticket.seen
            && self.shared_now() == Some(ticket.seen);
        if !current {
            return;
        }
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        let cached_at = Instant::now();
        entries.insert(
            key.clone(),
            Entry {
                cached_at,
                row: row.clone(),
                data,
            },
        );
    }

    pub fn remove(&self, key: &ConnectionKey) {
        let mut entries = self.write();
        self.epoch.fetch_add(1, SeqCst);
        entries.remove(key);
    }

    pub fn clear(&self) {
        let mut entries = self.write();
        self.epoch.fetch_add(1, SeqCst);
        entries.clear();
    }

    /// An announced change (another instance's, or this one's coming back): drops its entry, or all
    /// of them for [`crate::db::CHANGED_ALL`] or an announcement that names no key this cache could hold.
    pub fn announced(&self, announcement: &str) {
        match ConnectionKey::from_announcement(announcement) {
            Some(key) => self.remove(&key),
            None => self.clear(),
        }
        self.announcements.fetch_add(1, SeqCst);
    }

    pub fn announcements(&self) -> u64 {
        self.announcements.load(SeqCst)
    }

    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, Value};

    use super::*;
    use crate::clock::Timestamp;

    fn k(user: &str) -> ConnectionKey {
        ConnectionKey::of_row(user, "grafana", "default").unwrap()
    }

    fn row(version: u64) -> Connection {
        Connection {
            org_id: "u".into(),
            user_id: "u".into(),
            provider: "grafana".into(),
            name: "default".into(),
            id: "c1".into(),
            secret_ref: "local:x".into(),
            secret_version: version,
            metadata: Map::new(),
            status: crate::db::ConnectionStatus::Active,
            status_reason: None,
            expires_at: None,
            next_refresh_at: None,
            refresh_failures: 0,
            created_at: Timestamp::from_millis(0),
            updated_at: Timestamp::from_millis(0),
            last_checked_at: None,
            last_check_error: None,
            next_check_at: None,
        }
    }

    fn data(v: &str) -> TokenData {
        let mut m = Map::new();
        m.insert("api_key".into(), Value::from(v));
        TokenData::new(m)
    }

    fn cached_key(c: &ReadCache, user: &str) -> Option<Value> {
        c.entry(&k(user)).and_then(|(_, d)| d).map(|d| d["api_key"].clone())
    }

    #[test]
    fn another_processes_change_drops_every_entry() {
        let shared = Arc::new(ChangeGeneration::private());
        let c = ReadCache::new(true, Some(shared.clone()));
        c.put(&k("a"), &row(1), &data("one"), c.ticket());
        c.put(&k("b"), &row(1), &data("two"), c.ticket());
        assert_eq!(cached_key(&c, "a"), Some(Value::from("one")));
        shared.bump().unwrap(); // another process changed something
        assert_eq!(cached_key(&c, "b"), None);
        assert!(c.is_empty());
        // In step again: new entries are served.
        c.put(&k("a"), &row(2), &data("new"), c.ticket());
        assert_eq!(cached_key(&c, "a"), Some(Value::from("new")));
    }

    #[test]
    fn own_change_keeps_the_other_entries() {
        let shared = Arc::new(ChangeGeneration::private());
        let c = ReadCache::new(true, Some(shared.clone()));
        c.put(&k("a"), &row(1), &data("one"), c.ticket());
        c.put(&k("b"), &row(1), &data("two"), c.ticket());
        c.remove(&k("a"));
        c.changed_here(shared.bump().unwrap());
        assert_eq!(cached_key(&c, "a"), None);
        assert_eq!(cached_key(&c, "b"), Some(Value::from("two")));
        // Another process's change in between: this process cannot tell which key, so all go.
        c.remove(&k("b"));
        shared.bump().unwrap();
        c.changed_here(shared.bump().unwrap());
        c.put(&k("c"), &row(1), &data("three"), c.ticket());
        assert_eq!(cached_key(&c, "c"), None);
        assert!(c.is_empty());
    }

    #[test]
    fn entries_expire() {
        let c = ReadCache::new(true, None);
        c.put(&k("a"), &row(1), &data("one"), c.ticket());
        assert_eq!(cached_key(&c, "a"), Some(Value::from("one")));
        {
            let mut entries = c.entries.write().unwrap();
            let e = entries.get_mut(&k("a")).unwrap();
            e.cached_at = e.cached_at.checked_sub(MAX_AGE).expect("up for over a minute");
        }
        assert_eq!(cached_key(&c, "a"), None);
        assert!(c.get(&k("a"), &row(1)).is_none());
    }

    #[test]
    fn a_read_that_raced_a_change_is_not_cached() {
        let shared = Arc::new(ChangeGeneration::private());
        let c = ReadCache::new(true, Some(shared.clone()));
        let ticket = c.ticket();
        shared.bump().unwrap(); // committed by another process while this reader was reading
        c.put(&k("a"), &row(1), &data("old"), ticket);
        assert_eq!(cached_key(&c, "a"), None);
        let ticket = c.ticket();
        c.remove(&k("a")); // and by this one
        c.put(&k("a"), &row(1), &data("old"), ticket);
        assert_eq!(cached_key(&c, "a"), None);
    }

    #[test]
    fn a_hit_shares_the_parsed_data() {
        let c = ReadCache::new(true, None);
        let stored = data("one");
        c.put(&k("a"), &row(1), &stored, c.ticket());
        let hit = c.get(&k("a"), &row(1)).unwrap();
        assert!(
            std::ptr::eq(hit.fields(), stored.fields()),
            "not parsed or copied again"
        );
        // Only for exactly the row it was cached with.
        assert!(c.get(&k("a"), &row(2)).is_none());
        // Rows only, when secrets are not cached.
        let rows_only = ReadCache::new(false, None);
        rows_only.put(&k("a"), &row(1), &stored, rows_only.ticket());
        assert!(rows_only.entry(&k("a")).is_some_and(|(_, d)| d.is_none()));
    }

    #[test]
    fn announcements_drop_their_key_or_everything() {
        let c = ReadCache::new(true, None);
        c.put(&k("a"), &row(1), &data("one"), c.ticket());
        c.put(&k("b"), &row(1), &data("two"), c.ticket());
        c.announced("grafana:a");
        assert_eq!(
            (cached_key(&c, "a"), cached_key(&c, "b")),
            (None, Some(Value::from("two")))
        );
        c.announced(crate::db::CHANGED_ALL);
        assert!(c.is_empty());
        c.put(&k("a"), &row(1), &data("one"), c.ticket());
        c.announced("nosuchprovider:a");
        assert!(
            c.is_empty(),
            "an announcement naming no key it could hold drops everything"
        );
        assert_eq!(c.announcements(), 3);
    }
}
