//! The read cache: a credential's reference row and its secret token data, in process memory only
//! (never Redis, disk or logs); the token data is held as a `SecretString`, zeroized when dropped.
//!
//! A hit serves an `active`, unexpiring credential with no SQL and no secret-store round trip. It stays
//! correct because every change drops the entry: writes, deletes, refreshes and status changes drop it
//! here, and on PostgreSQL `NOTIFY tokenkeeper_cache` makes every other instance drop its copy too (after a
//! lost listener connection, everything is dropped). Entries are also checked against the secret version a
//! freshly read reference names, so a slow path never serves an older version.

use std::collections::HashMap;
use std::sync::RwLock;

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};

use crate::db::Connection;

/// Upper bound on cached credentials; beyond it the cache is cleared (simple and bounded).
const MAX_ENTRIES: usize = 50_000;

struct Entry {
    row: Connection,
    /// `None` when secrets are not cached (`TOKENKEEPER_READ_CACHE=false`): the row alone still saves
    /// the SQL lookup, and the secret comes from the secret store on every read.
    data: Option<SecretString>,
}

#[derive(Default)]
pub struct ReadCache {
    /// Whether token data is kept too, or only the (non-secret) reference rows.
    secrets: bool,
    /// Whether every change made by any process reaches this cache (PostgreSQL `NOTIFY`). Without
    /// it (SQLite: the CLI is another process writing the same file), cached rows are not trusted
    /// on their own: each read looks the reference up in SQL, and a cached secret is only served if
    /// it is the version that reference names.
    notified: bool,
    entries: RwLock<HashMap<String, Entry>>,
    /// Bumped by every drop. A reader notes it before reading SQL and the secret store, and only
    /// caches what it read if no drop happened meanwhile: otherwise a change announced while it was
    /// reading could be overwritten by the older data it read.
    epoch: std::sync::atomic::AtomicU64,
}

/// `{provider}:{user}`: provider ids never hold a `:`, and the key travels as PostgreSQL text (no NUL).
pub fn key(user_id: &str, provider: &str) -> String {
    format!("{provider}:{user_id}")
}

/// Token data as stored (a JSON object's text); `None` for anything else. Every reader of stored
/// token data goes through this.
pub(crate) fn parse(data: &SecretString) -> Option<Map<String, Value>> {
    match serde_json::from_str(data.expose_secret()) {
        Ok(Value::Object(m)) => Some(m),
        _ => None,
    }
}

impl ReadCache {
    /// Caches reference rows, and token data only when `secrets`; `notified`: every change by any
    /// process is announced to this cache.
    pub fn new(secrets: bool, notified: bool) -> Self {
        Self {
            secrets,
            notified,
            ..Self::default()
        }
    }

    /// The cached row, and its token data when secrets are cached; only when changes by every process
    /// are announced here (otherwise `None`: read the reference from SQL and use [`ReadCache::get`]).
    pub fn entry(&self, key: &str) -> Option<(Connection, Option<Map<String, Value>>)> {
        if !self.notified {
            return None;
        }
        let entries = self.entries.read().expect("cache poisoned");
        let e = entries.get(key)?;
        Some((e.row.clone(), e.data.as_ref().and_then(parse)))
    }

    /// The cached token data if it was cached with exactly the reference row `row` (same secret version,
    /// and not a deleted and stored-again credential whose new secret restarted at the same version).
    pub fn get(&self, key: &str, row: &Connection) -> Option<Map<String, Value>> {
        let entries = self.entries.read().expect("cache poisoned");
        let e = entries.get(key).filter(|e| e.row == *row)?;
        parse(e.data.as_ref()?)
    }

    /// The epoch to pass to [`ReadCache::put`]; note it before reading.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Caches what was read since `epoch`, unless something was dropped meanwhile.
    pub fn put(&self, key: &str, row: &Connection, data: &Map<String, Value>, epoch: u64) {
        let data = self
            .secrets
            .then(|| SecretString::from(Value::Object(data.clone()).to_string()));
        let mut entries = self.entries.write().expect("cache poisoned");
        if self.epoch() != epoch {
            return;
        }
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(key.to_string(), Entry { row: row.clone(), data });
    }

    pub fn remove(&self, key: &str) {
        let mut entries = self.entries.write().expect("cache poisoned");
        self.epoch.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        entries.remove(key);
    }

    pub fn clear(&self) {
        let mut entries = self.entries.write().expect("cache poisoned");
        self.epoch.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        entries.clear();
    }

    pub fn len(&self) -> usize {
        self.entries.read().expect("cache poisoned").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
