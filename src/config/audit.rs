//! The audit trail's settings: how credential reads are recorded, how long events are kept, and the
//! JSON-lines sink for security tooling.

use std::path::PathBuf;
use std::time::Duration;

use super::{ConfigError, Env, err, flag, parsed, raw};

pub const READS_VAR: &str = "TOKENKEEPER_AUDIT_READS";
pub const RETENTION_VAR: &str = "TOKENKEEPER_AUDIT_RETENTION_DAYS";
pub const PRUNE_BATCH_VAR: &str = "TOKENKEEPER_AUDIT_PRUNE_BATCH";
pub const PRUNE_INTERVAL_VAR: &str = "TOKENKEEPER_AUDIT_PRUNE_INTERVAL_SECS";
pub const LOG_VAR: &str = "TOKENKEEPER_AUDIT_LOG";
pub const FAIL_OPEN_VAR: &str = "TOKENKEEPER_AUDIT_LOG_FAIL_OPEN";

/// How credential reads are recorded in `audit_events`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadAudit {
    /// One row per connection, caller, outcome and minute, with a count (the default).
    Aggregate,
    /// One row per read.
    Every,
}

/// Where the JSON-lines sink writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditLogTarget {
    Stdout,
    File(PathBuf),
}

#[derive(Debug, Clone)]
pub struct AuditSettings {
    /// [`READS_VAR`]: `aggregate` (default) or `every`.
    pub reads: ReadAudit,
    /// [`RETENTION_VAR`]: events older than this many days are deleted (default 90, at least 1).
    pub retention_days: u32,
    /// [`PRUNE_BATCH_VAR`]: rows deleted per statement (default 5,000).
    pub prune_batch: u32,
    /// [`PRUNE_INTERVAL_VAR`]: how often an instance tries to prune (default an hour).
    pub prune_interval: Duration,
    /// [`LOG_VAR`]: a file path or `stdout`; unset: no sink.
    pub log: Option<AuditLogTarget>,
    /// [`FAIL_OPEN_VAR`]: serve (logging an error at most once a minute) when the sink cannot be written,
    /// instead of answering 503.
    pub fail_open: bool,
}

impl Default for AuditSettings {
    fn default() -> Self {
        Self {
            reads: ReadAudit::Aggregate,
            retention_days: 90,
            prune_batch: 5_000,
            prune_interval: Duration::from_secs(3600),
            log: None,
            fail_open: false,
        }
    }
}

/// A hundred years: the largest retention (it stays far from overflowing millisecond arithmetic).
const MAX_RETENTION_DAYS: i64 = 36_500;

impl AuditSettings {
    pub(super) fn from_lookup(env: Env) -> Result<Self, ConfigError> {
        let d = Self::default();
        let reads = match raw(env, READS_VAR).as_deref().map(str::trim) {
            None | Some("aggregate") => ReadAudit::Aggregate,
            Some("every") => ReadAudit::Every,
            Some(v) => return Err(err(READS_VAR, format!("{v:?}: expected aggregate or every"))),
        };
        let retention: i64 = parsed(env, RETENTION_VAR, i64::from(d.retention_days))?;
        let retention_days = u32::try_from(retention)
            .ok()
            .filter(|days| (1..=MAX_RETENTION_DAYS).contains(&i64::from(*days)))
            .ok_or_else(|| {
                err(
                    RETENTION_VAR,
                    format!("{retention} is outside 1..={MAX_RETENTION_DAYS} (days)"),
                )
            })?;
        let prune_batch: u32 = parsed(env, PRUNE_BATCH_VAR, d.prune_batch)?;
        if prune_batch == 0 {
            return Err(err(PRUNE_BATCH_VAR, "must be at least 1"));
        }
        let interval: u64 = parsed(env, PRUNE_INTERVAL_VAR, d.prune_interval.as_secs())?;
        if !(1..=super::MAX_SECS).contains(&interval) {
            return Err(err(
                PRUNE_INTERVAL_VAR,
                format!("{interval} is outside 1..={}", super::MAX_SECS),
            ));
        }
        let log = raw(env, LOG_VAR).map(|v| match v.trim() {
            "stdout" | "-" => AuditLogTarget::Stdout,
            path => AuditLogTarget::File(PathBuf::from(path)),
        });
        Ok(Self {
            reads,
            retention_days,
            prune_batch,
            prune_interval: Duration::from_secs(interval),
            log,
            fail_open: flag(env, FAIL_OPEN_VAR)?,
        })
    }
}
