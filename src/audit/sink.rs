//! The JSON-lines sink for security tooling (`TOKENKEEPER_AUDIT_LOG`): every event, credential reads
//! one line each (never aggregated), written before the request that made it answers; one JSON object per
//! line, never a secret. Vault's file audit device is the model.
//!
//! A file is opened for appending; [`Sink::reopen`] (on SIGHUP) makes the next event open the path
//! again, so that logrotate's "move, then HUP" (or its `create` mode) works. A file removed from under
//! the sink is noticed at the next event (it has no link left) and the path is opened again. When a line
//! cannot be written (the file cannot be opened, the disk is full), the event's request fails with
//! [`AuditError::Unavailable`] (503), unless the sink fails open: then the error is logged, at most once
//! a minute, and the request is served. It recovers by itself: each event tries again.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;

use crate::config::AuditLogTarget;

/// The request's event could not be written to the sink (fail-closed).
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("Audit log unavailable")]
    Unavailable,
}

/// One line of the sink.
#[derive(Debug, Serialize)]
pub(super) struct Line<'a> {
    /// RFC 3339.
    pub time: String,
    pub event: &'a str,
    pub outcome: &'a str,
    pub user: Option<&'a str>,
    pub provider: Option<&'a str>,
    /// The connection's name (`default` unless named).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection: Option<&'a str>,
    /// The caller's address.
    pub address: Option<&'a str>,
    pub detail: Option<&'a str>,
}

/// How often (by the clock, in milliseconds) a sink that cannot write logs it.
const COMPLAIN_EVERY_MS: i64 = 60_000;

pub(super) struct Sink {
    target: AuditLogTarget,
    fail_open: bool,
    /// The open file (`None` for stdout, or until the path is opened again).
    file: Mutex<Option<File>>,
    reopen: AtomicBool,
    /// When the last error was logged (clock milliseconds).
    last_complaint: Mutex<Option<i64>>,
}

impl Sink {
    /// Opens the sink. Fail-closed, a file that cannot be opened stops start-up (the error names the
    /// path); failing open, it is logged and tried again at each event.
    pub(super) fn open(target: AuditLogTarget, fail_open: bool) -> std::io::Result<Self> {
        let file = match &target {
            AuditLogTarget::Stdout => None,
            AuditLogTarget::File(path) => match open_append(path) {
                Ok(f) => Some(f),
                Err(e) if fail_open => {
                    tracing::error!(path = %path.display(), error = %e, "cannot open the audit log; serving anyway (fail-open)");
                    None
                }
                Err(e) => return Err(e),
            },
        };
        Ok(Self {
            target,
            fail_open,
            file: Mutex::new(file),
            reopen: AtomicBool::new(false),
            last_complaint: Mutex::new(None),
        })
    }

    pub(super) fn is_stdout(&self) -> bool {
        self.target == AuditLogTarget::Stdout
    }

    /// The next event opens the file again (SIGHUP: the file was rotated).
    pub(super) fn reopen(&self) {
        self.reopen.store(true, Ordering::SeqCst);
    }

    /// Writes the line; `now_ms`: the clock's time, for logging errors at most once a minute.
    pub(super) fn write(&self, line: &Line<'_>, now_ms: i64) -> Result<(), AuditError> {
        let mut text = serde_json::to_vec(line).expect("an audit line serializes");
        text.push(b'\n');
        let written = match &self.target {
            AuditLogTarget::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(&text).and_then(|()| out.flush())
            }
            AuditLogTarget::File(path) => self.write_file(path, &text),
        };
        let Err(e) = written else { return Ok(()) };
        if self.complain_now(now_ms) {
            tracing::error!(error = %e, fail_open = self.fail_open, "cannot write the audit log");
        }
        if self.fail_open {
            Ok(())
        } else {
            Err(AuditError::Unavailable)
        }
    }

    fn write_file(&self, path: &Path, text: &[u8]) -> std::io::Result<()> {
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        let rotated = self.reopen.swap(false, Ordering::SeqCst);
        // Removed (no name left), rotated, or not open since a failure: open the path again.
        let stale = rotated
            || file
                .as_ref()
                .is_none_or(|f| f.metadata().map_or(true, |m| m.nlink() == 0));
        if stale {
            *file = None;
            *file = Some(open_append(path)?);
        }
        let f = file.as_mut().expect("opened above");
        if let Err(e) = f.write_all(text) {
            *file = None;
            return Err(e);
        }
        Ok(())
    }

    /// True at most once per [`COMPLAIN_EVERY_MS`].
    fn complain_now(&self, now_ms: i64) -> bool {
        let mut last = self.last_complaint.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_some_and(|t| (t..t + COMPLAIN_EVERY_MS).contains(&now_ms)) {
            return false;
        }
        *last = Some(now_ms);
        true
    }
}

/// Appends; a new file is readable by its owner only (it names users and their addresses).
fn open_append(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    OpenOptions::new().create(true).append(true).mode(0o600).open(path)
}
