//! Change events (`docs/EVENTS.md`): what a connection change tells the operator's webhook receiver.
//!
//! The credential service builds an event for each change ([`ChangeEvents`]) and hands it to the
//! database write of the change, which stores it in the outbox in the same transaction; the
//! [`deliver::Deliverer`] (driven by `background::webhooks`) sends what the outbox holds, signed
//! ([`signing`]), at least once and in order per connection. Bodies carry names, statuses and reason
//! codes, never a secret.

pub mod deliver;
pub mod signing;

use serde_json::{Map, Value, json};

use crate::clock::Timestamp;
use crate::db::{Connection, NewEvent};

/// What happened to a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Created,
    Updated,
    Deleted,
    StatusChanged,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "connection.created",
            Self::Updated => "connection.updated",
            Self::Deleted => "connection.deleted",
            Self::StatusChanged => "connection.status_changed",
        }
    }
}

/// Builds the events of connection changes; empty (nothing written) when no receiver is configured.
#[derive(Debug, Clone, Copy, Default)]
pub struct ChangeEvents {
    enabled: bool,
}

impl ChangeEvents {
    pub fn new(enabled: bool) -> Self {
        Self { enabled }
    }

    /// The events of a write that turns `before` (none: a new connection) into `after` (none: deleted).
    /// `user`: who made the change (for a refresh or a check, the connection's creator).
    pub fn of_change(
        &self,
        before: Option<&Connection>,
        after: Option<&Connection>,
        user: &str,
        now: Timestamp,
    ) -> Vec<NewEvent> {
        let Some(row) = after.or(before).filter(|_| self.enabled) else {
            return Vec::new();
        };
        let event = |kind: EventType, extra: Map<String, Value>| new_event(kind, row, user, extra, now);
        let mut events = Vec::with_capacity(2);
        match (before, after) {
            (None, Some(a)) => events.push(event(EventType::Created, state(a))),
            (Some(_), None) => events.push(event(EventType::Deleted, Map::new())),
            (Some(b), Some(a)) => {
                if b.secret_version != a.secret_version {
                    events.push(event(EventType::Updated, state(a)));
                }
                if b.status != a.status {
                    let mut change = Map::new();
                    change.insert("from".into(), json!(b.status));
                    change.insert("to".into(), json!(a.status));
                    change.insert("reason".into(), json!(a.status_reason));
                    events.push(event(EventType::StatusChanged, change));
                }
            }
            (None, None) => {}
        }
        events
    }
}

/// What a created or updated connection is now: its status and expiry, nothing secret.
fn state(c: &Connection) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("status".into(), json!(c.status));
    m.insert("expiresAt".into(), json!(c.expires_at.map(Timestamp::rfc3339)));
    m
}

/// The queue an event joins: one per connection.
pub fn stream_of(org: &str, provider: &str, name: &str) -> String {
    format!("{org}/{provider}/{name}")
}

fn new_event(kind: EventType, row: &Connection, user: &str, extra: Map<String, Value>, now: Timestamp) -> NewEvent {
    let mut data = Map::new();
    data.insert("org".into(), json!(row.org_id));
    data.insert("user".into(), json!(user));
    data.insert("provider".into(), json!(row.provider));
    data.insert("name".into(), json!(row.name));
    data.insert("connectionId".into(), json!(row.id));
    data.extend(extra);
    let body = json!({"type": kind.as_str(), "timestamp": now.rfc3339(), "data": data});
    NewEvent {
        event_id: format!("msg_{}", uuid::Uuid::new_v4().simple()),
        stream: stream_of(&row.org_id, &row.provider, &row.name),
        kind: kind.as_str(),
        body: body.to_string(),
        created_at: now.as_millis(),
    }
}
