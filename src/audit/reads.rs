//! Credential reads counted per group (connection, caller, outcome and reason) and minute, in memory, and
//! written as one row per group and minute whose count adds up across flushes and instances.
//!
//! The first read of a group in a minute is queued at once as a row with count 1 (so the row exists, in
//! its place among the other events, as soon as anything is written); the reads after it are counted
//! here and queued as one row with their count at each flush (every few seconds, before `/api/audit`
//! answers, and at shutdown). The database adds the counts of rows with the same key (an upsert), so two
//! instances reading one connection in one minute share one row whose count is the sum. An instance
//! killed between flushes loses its unflushed counts (at most a few seconds of its reads).

use std::collections::HashMap;
use std::sync::Mutex;

use crate::db::AuditRecord;

use super::EventKind;

const MINUTE_MS: i64 = 60_000;

/// One group of reads in one minute.
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
struct Group {
    minute: i64,
    user_id: Option<String>,
    org_id: Option<String>,
    provider: Option<String>,
    connection: Option<String>,
    client_addr: Option<String>,
    outcome: String,
    detail: Option<String>,
}

impl Group {
    fn of(rec: AuditRecord) -> (Self, i64) {
        let group = Self {
            minute: rec.at.div_euclid(MINUTE_MS),
            user_id: rec.user_id,
            org_id: rec.org_id,
            provider: rec.provider,
            connection: rec.connection,
            client_addr: rec.client_addr,
            outcome: rec.outcome,
            detail: rec.detail,
        };
        (group, rec.at)
    }

    /// The group's name in the database: the same for every instance, unambiguous whatever the fields
    /// hold (a JSON array).
    fn key(&self) -> String {
        serde_json::json!([
            self.minute,
            self.user_id,
            self.provider,
            self.client_addr,
            self.outcome,
            self.detail,
            self.org_id,
            self.connection
        ])
        .to_string()
    }

    fn record(&self, at: i64, count: i64) -> AuditRecord {
        AuditRecord {
            id: 0,
            user_id: self.user_id.clone(),
            org_id: self.org_id.clone(),
            kind: EventKind::CredentialRead.as_str().to_string(),
            provider: self.provider.clone(),
            connection: self.connection.clone(),
            outcome: self.outcome.clone(),
            client_addr: self.client_addr.clone(),
            detail: self.detail.clone(),
            at,
            count,
            read_key: Some(self.key()),
        }
    }
}

#[derive(Debug)]
struct Tally {
    /// The first read's time.
    at: i64,
    /// Reads since the last flush, not yet queued.
    unflushed: i64,
}

/// The groups of the current minute (and of past minutes until their last counts are flushed).
#[derive(Debug, Default)]
pub(super) struct ReadCounts {
    groups: Mutex<HashMap<Group, Tally>>,
}

impl ReadCounts {
    /// Counts one read; returns the row to queue now when it is its group's first in this minute.
    pub(super) fn count(&self, rec: AuditRecord) -> Option<AuditRecord> {
        let (group, at) = Group::of(rec);
        let mut groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tally) = groups.get_mut(&group) {
            tally.unflushed += 1;
            return None;
        }
        let first = group.record(at, 1);
        groups.insert(group, Tally { at, unflushed: 0 });
        Some(first)
    }

    /// The counts since the last drain, one row per group (in key order), each group's count set back to
    /// zero; groups of minutes before `now_ms`'s are forgotten (a late read of one starts a new row with
    /// count 1, which the database adds to the row already there).
    pub(super) fn drain(&self, now_ms: i64) -> Vec<AuditRecord> {
        let minute = now_ms.div_euclid(MINUTE_MS);
        let mut out = Vec::new();
        let mut groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        groups.retain(|group, tally| {
            if tally.unflushed > 0 {
                out.push(group.record(tally.at, tally.unflushed));
                tally.unflushed = 0;
            }
            group.minute >= minute
        });
        out.sort_by(|a, b| a.read_key.cmp(&b.read_key));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(at: i64, addr: &str) -> AuditRecord {
        AuditRecord {
            id: 0,
            user_id: Some("u".into()),
            org_id: None,
            kind: EventKind::CredentialRead.as_str().into(),
            provider: Some("splunk".into()),
            connection: None,
            outcome: "ok".into(),
            client_addr: Some(addr.into()),
            detail: None,
            at,
            count: 1,
            read_key: None,
        }
    }

    #[test]
    fn first_read_of_a_group_is_queued_the_rest_counted_until_drained() {
        let counts = ReadCounts::default();
        let first = counts.count(read(60_001, "a")).expect("first read of the minute");
        assert_eq!((first.count, first.at), (1, 60_001));
        assert!(counts.count(read(60_002, "a")).is_none());
        assert!(counts.count(read(60_003, "a")).is_none());
        // Another caller is another group; another minute too.
        assert!(counts.count(read(60_004, "b")).is_some());
        assert!(counts.count(read(120_000, "a")).is_some());
        let drained = counts.drain(120_000);
        assert_eq!(drained.len(), 1);
        assert_eq!((drained[0].count, drained[0].read_key.clone()), (2, first.read_key));
        // Nothing new: nothing to write; the past minute's groups are gone, the current one stays.
        assert!(counts.drain(120_000).is_empty());
        assert!(counts.count(read(120_001, "a")).is_none());
        assert!(
            counts.count(read(60_005, "a")).is_some(),
            "a late read of a forgotten minute"
        );
    }
}
