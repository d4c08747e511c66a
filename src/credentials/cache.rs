//! The read cache: secret token data in process memory only (never Redis, disk or logs), held in
//! `SecretString`s that are zeroized when dropped.
//!
//! Entries are keyed by the secret version the SQL reference names, so a replaced or refreshed
//! credential can never be served from the cache: its reference names a new version. On top of that,
//! every write and delete drops the entry here, and on PostgreSQL tells the other instances to drop
//! theirs (`NOTIFY tokenkeeper_cache`), so no copy of a replaced or deleted secret lingers anywhere.

use std::collections::HashMap;
use std::sync::Mutex;

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};

/// Upper bound on cached credentials; beyond it the cache is cleared (simple and bounded).
const MAX_ENTRIES: usize = 50_000;

#[derive(Default)]
pub struct ReadCache {
    entries: Mutex<HashMap<String, (i64, SecretString)>>,
}

/// `{provider}:{user}`: provider ids never hold a `:`, and the key travels as PostgreSQL text (no NUL).
pub fn key(user_id: &str, provider: &str) -> String {
    format!("{provider}:{user_id}")
}

impl ReadCache {
    pub fn get(&self, key: &str, version: i64) -> Option<Map<String, Value>> {
        let entries = self.entries.lock().expect("cache poisoned");
        let (v, data) = entries.get(key)?;
        if *v != version {
            return None;
        }
        match serde_json::from_str(data.expose_secret()) {
            Ok(Value::Object(m)) => Some(m),
            _ => None,
        }
    }

    pub fn put(&self, key: &str, version: i64, data: &Map<String, Value>) {
        let text = SecretString::from(Value::Object(data.clone()).to_string());
        let mut entries = self.entries.lock().expect("cache poisoned");
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(key.to_string(), (version, text));
    }

    pub fn remove(&self, key: &str) {
        self.entries.lock().expect("cache poisoned").remove(key);
    }

    pub fn clear(&self) {
        self.entries.lock().expect("cache poisoned").clear();
    }

    pub fn len(&self) -> usize {
        self.entries.lock().expect("cache poisoned").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
