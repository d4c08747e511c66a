//! Running a refresh in a task of its own, so that a caller that goes away cannot cut it in half.
//!
//! A refresh triggered by a read or by `POST .../refresh` used to run inside the HTTP request's future.
//! A client that disconnected after the provider had rotated the refresh token but before the secret
//! write dropped that future, and with it the only copy of the new refresh token: the next refresh
//! presented the old one, and providers with single-use refresh tokens revoke the grant for that. The
//! provider call, the secret write and the row update now run in a spawned task; the caller awaits its
//! `JoinHandle`, and dropping the handle leaves the task running to the end.
//!
//! The refresh's audit event is recorded by the task too, before it ends, for the same reason: the task
//! runs to the end whether or not anyone awaits it, so the event is written exactly once with no
//! hand-over between task and caller. The [`Outcome`] tells the caller whether it was
//! (`POST .../refresh` audits what ends before the refresh itself, and only that).

use std::future::Future;

use super::{Landed, Trigger};
use crate::audit::EventKind;
use crate::credentials::{Caller, ConnectionKey, CredentialError, CredentialService, failure_reason};

/// What a refresh came to, as its caller gets it.
#[derive(Debug)]
pub struct Outcome<T> {
    /// What the caller asked for (the token data to serve, for a reader).
    pub data: Result<T, CredentialError>,
    /// Whether the refresh recorded a `credential_refresh` event. Always, for a forced refresh whose
    /// task ran; otherwise when the refresh was taken to the provider and its result is in the row.
    pub audited: bool,
}

/// One refresh, owned by its task.
pub(super) struct Job {
    pub key: ConnectionKey,
    /// For whom it runs: the audit event's user and org.
    pub caller: Caller,
    pub trigger: Trigger,
    pub client_addr: String,
    /// The provider's answer, once it is in the row: what the audit event says.
    pub note: Option<AuditNote>,
}

/// A refresh's audit event: ok, or failed with a short non-secret reason.
pub(super) struct AuditNote {
    ok: bool,
    detail: Option<String>,
}

impl AuditNote {
    pub(super) fn ok() -> Self {
        Self { ok: true, detail: None }
    }

    pub(super) fn failed(reason: String) -> Self {
        Self {
            ok: false,
            detail: Some(reason),
        }
    }

    fn of(error: Option<&CredentialError>) -> Self {
        Self {
            ok: error.is_none(),
            detail: error.map(|e| failure_reason(e).to_string()),
        }
    }
}

impl Job {
    pub(super) fn new(key: ConnectionKey, caller: Caller, trigger: Trigger, client_addr: &str) -> Self {
        Self {
            key,
            caller,
            trigger,
            client_addr: client_addr.to_string(),
            note: None,
        }
    }

    /// Records the refresh's `credential_refresh` event, if it has one, and says whether it did.
    ///
    /// A refresh taken to the provider whose result is in the row has one, whatever its trigger (ok,
    /// or failed with the provider's reason). A forced refresh always has one, so that each
    /// `POST .../refresh` reaching the refresh is audited here, where its client cannot stop it: its
    /// outcome when the provider was not called or its result not kept (someone else refreshed first,
    /// a provider with nothing to refresh, the credential deleted or replaced meanwhile, an error).
    /// The error is the audit log's, when it cannot be written (and fails closed).
    async fn record_audit(
        &mut self,
        svc: &CredentialService,
        error: Option<&CredentialError>,
    ) -> Result<bool, CredentialError> {
        let forced = matches!(self.trigger, Trigger::Forced { .. });
        let Some(note) = self.note.take().or_else(|| forced.then(|| AuditNote::of(error))) else {
            return Ok(false);
        };
        let kind = EventKind::CredentialRefresh;
        let (caller, target, addr) = (&self.caller, self.key.target(), &self.client_addr);
        svc.audit(caller, kind, &target, note.ok, addr, note.detail.as_deref())
            .await?;
        Ok(true)
    }
}

/// The refresh tasks still running: [`Tasks::finish`] awaits them at shutdown, since one whose caller
/// went away must still store the token it got.
#[derive(Clone, Default)]
pub(in crate::credentials) struct Tasks(tokio_util::task::TaskTracker);

impl Tasks {
    /// Once no new refresh can start: waits (up to `within`) for those still running.
    pub(in crate::credentials) async fn finish(&self, within: std::time::Duration) {
        self.0.close();
        if tokio::time::timeout(within, self.0.wait()).await.is_err() {
            tracing::warn!(left = self.0.len(), "refreshes still running at shutdown");
        }
    }
}

impl CredentialService {
    /// Runs `job` in a task of its own and waits for its outcome: under the credential's lock, the refresh
    /// and then `deliver`, which turns what it left in the row into what the caller asked for (reading the
    /// secret the row names, before a delete or a store can come between); then the audit event.
    pub(super) async fn detached<T, F, Fut>(&self, mut job: Job, deliver: F) -> Outcome<T>
    where
        T: Send + 'static,
        F: FnOnce(CredentialService, Result<Landed, CredentialError>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, CredentialError>> + Send,
    {
        let provider = job.key.provider().to_string();
        let svc = self.clone();
        // The task keeps the caller's span: what it logs names the credential and the trigger.
        let task = self.tasks.0.spawn(tracing::Instrument::instrument(
            async move {
                let data = async {
                    // Held until the caller's data is read too: a delete or store must not come between.
                    let _lock = svc.lock(&job.key).await?;
                    let landed = svc.refresh_locked(&mut job).await;
                    deliver(svc.clone(), landed).await
                }
                .await;
                match job.record_audit(&svc, data.as_ref().err()).await {
                    Ok(audited) => Outcome { data, audited },
                    Err(e) => Outcome {
                        data: Err(e),
                        audited: true,
                    },
                }
            },
            tracing::Span::current(),
        ));
        match task.await {
            Ok(outcome) => outcome,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // Cancelled: only when the runtime shuts down.
            Err(_) => Outcome {
                data: Err(CredentialError::RefreshUnavailable {
                    provider,
                    reason: "cancelled".into(),
                }),
                audited: false,
            },
        }
    }
}
