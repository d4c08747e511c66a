//! Running a refresh in a task of its own, so that a caller that goes away cannot cut it in half.
//!
//! A refresh triggered by a read or by `POST .../refresh` used to run inside the HTTP request's future.
//! A client that disconnected after the provider had rotated the refresh token but before the secret
//! write dropped that future, and with it the only copy of the new refresh token: the next refresh
//! presented the old one, and providers with single-use refresh tokens revoke the grant for that. The
//! provider call, the secret write and the row update now run in a spawned task; the caller awaits its
//! `JoinHandle`, and dropping the handle leaves the task running to the end.
//!
//! The audit event of the refresh is recorded in the *caller's* task when the caller is still there:
//! `CredentialService::refresh_now` counts the `credential_refresh` events recorded in its task
//! ([`crate::audit::count_recorded`]) so that each forced refresh is audited exactly once, and events
//! recorded in another task are not counted. When the caller has gone, the task records the event
//! itself; [`Handoff`] decides which of the two does, so that it is recorded once either way.

use std::sync::{Arc, Mutex, MutexGuard};

use crate::audit::EventKind;
use crate::credentials::CredentialService;

/// The audit event of a refresh that was taken to the provider and recorded in the row.
#[derive(Debug, Clone)]
pub(super) struct AuditNote {
    pub user_id: String,
    pub provider: String,
    pub client_addr: String,
    pub ok: bool,
    /// The provider's reason code on failure.
    pub detail: Option<String>,
}

impl AuditNote {
    pub(super) async fn record(&self, svc: &CredentialService) {
        let kind = EventKind::CredentialRefresh;
        let (user, provider, addr) = (&self.user_id, &self.provider, &self.client_addr);
        svc.audit(user, kind, provider, self.ok, addr, self.detail.as_deref())
            .await;
    }
}

enum State {
    /// The task is still working.
    Running,
    /// The task finished; the caller records this note (if any).
    Done(Option<AuditNote>),
    /// The caller went away before the task finished: the task records its note itself.
    CallerGone,
}

/// Shared between a refresh task and its caller: who records the refresh's audit event.
#[derive(Clone)]
pub(super) struct Handoff(Arc<Mutex<State>>);

impl Handoff {
    pub(super) fn new() -> Self {
        Self(Arc::new(Mutex::new(State::Running)))
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The critical sections only move a value: a poisoned lock still holds a consistent state.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Task side, at the end: hands `note` to the caller, or gives it back when the caller has gone
    /// (then the task records it).
    pub(super) fn finish(&self, note: Option<AuditNote>) -> Option<AuditNote> {
        let mut s = self.state();
        match *s {
            State::CallerGone => note,
            _ => {
                *s = State::Done(note);
                None
            }
        }
    }

    /// Caller side, once the task has ended: the note to record.
    fn take(&self) -> Option<AuditNote> {
        match &mut *self.state() {
            State::Done(note) => note.take(),
            _ => None,
        }
    }

    /// Caller side, when it is dropped early: the note if the task already finished, else the task is
    /// told to record it itself.
    fn abandon(&self) -> Option<AuditNote> {
        match std::mem::replace(&mut *self.state(), State::CallerGone) {
            State::Done(note) => note,
            _ => None,
        }
    }
}

/// Held by the caller while it awaits the task; if the caller is dropped before it recorded the
/// task's note, the note is recorded from a task of its own.
pub(super) struct CallerGuard {
    handoff: Handoff,
    svc: CredentialService,
    /// A note being recorded right now (until the record call returns).
    recording: Option<AuditNote>,
    done: bool,
}

impl CallerGuard {
    pub(super) fn new(handoff: Handoff, svc: CredentialService) -> Self {
        Self {
            handoff,
            svc,
            recording: None,
            done: false,
        }
    }

    /// After the task ended: records its note in this (the caller's) task.
    pub(super) async fn record_note(mut self) {
        if let Some(note) = self.handoff.take() {
            self.recording = Some(note.clone());
            note.record(&self.svc).await;
            self.recording = None;
        }
        self.done = true;
    }
}

impl Drop for CallerGuard {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        // Dropped while recording: the queued write was cancelled with it (a Tokio channel send that
        // is dropped sends nothing), so it is recorded again here, once.
        let note = self.recording.take().or_else(|| self.handoff.abandon());
        if let (Some(note), Ok(rt)) = (note, tokio::runtime::Handle::try_current()) {
            let svc = self.svc.clone();
            rt.spawn(async move { note.record(&svc).await });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note() -> AuditNote {
        AuditNote {
            user_id: "u".into(),
            provider: "gcp".into(),
            client_addr: "a".into(),
            ok: true,
            detail: None,
        }
    }

    #[test]
    fn the_caller_records_when_it_is_still_there() {
        let h = Handoff::new();
        assert!(h.finish(Some(note())).is_none(), "handed to the caller");
        assert!(h.take().is_some());
        assert!(h.take().is_none(), "taken once");
        assert!(h.abandon().is_none(), "nothing left to record on drop");
    }

    #[test]
    fn the_task_records_when_the_caller_has_gone() {
        let h = Handoff::new();
        assert!(h.abandon().is_none(), "task still running: nothing yet");
        assert!(h.finish(Some(note())).is_some(), "given back to the task");
    }

    #[test]
    fn a_caller_dropped_after_the_task_finished_records_it() {
        let h = Handoff::new();
        assert!(h.finish(Some(note())).is_none());
        assert!(h.abandon().is_some());
        assert!(h.take().is_none());
    }
}
