//! Refreshing a credential: one code path for every provider and every trigger (a read within the
//! margin, `POST .../refresh`, the background refresher), as methods of [`CredentialService`].
//!
//! Single flight: the credential's lock ([`super::lock`]), then the row is read again: another caller or
//! instance may have refreshed already, and then its result is served instead of calling the provider
//! again (rotating refresh tokens are single-use: a second call would revoke the grant). The outbound
//! call itself is a stateless grant ([`crate::refresh::grants`]).
//!
//! Each refresh runs in a task of its own ([`detach`]): a caller that goes away does not cut a refresh
//! between the provider call and the secret write, nor lose its audit event.

mod detach;
mod due;
mod persist;
mod run;
mod serve;

use std::time::Duration;

use super::read::needs_reauth;
use super::{
    Caller, ConnectionKey, ConnectionStatus, ConnectionView, CredentialError, CredentialService, Target, TokenData,
};
use crate::audit::EventKind;
use crate::clock::Timestamp;
use crate::config::GrantSettings;
use crate::db::Connection;
use crate::refresh::timing;

pub use detach::Outcome;
pub(super) use detach::Tasks;
pub use due::{DueBatch, PassReport};

/// How credentials are refreshed.
#[derive(Debug, Clone)]
pub struct RefreshSettings {
    /// Refresh this long before a token expires (at most half the token's lifetime).
    pub margin: Duration,
    /// Bounds every outbound call (connect included).
    pub outbound_timeout: Duration,
    /// What the grants need: endpoint overrides, the platform's OAuth clients, AWS credentials.
    pub grants: std::sync::Arc<GrantSettings>,
}

impl Default for RefreshSettings {
    fn default() -> Self {
        Self {
            margin: Duration::from_secs(300),
            outbound_timeout: Duration::from_secs(10),
            grants: std::sync::Arc::default(),
        }
    }
}

/// Why a refresh is attempted; it decides what "due" means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// A read: refresh when expiring, unless a failing provider is in backoff.
    Read,
    /// The background refresher, which claimed the row at `since` because it was due (its backoff, if
    /// any, over): refresh unless someone did, or stored a new credential, since the claim.
    Scheduled { since: Timestamp },
    /// `POST /api/tokens/{provider}/refresh`: refresh unless someone did since the request began.
    Forced { since: Timestamp },
}

/// What a refresh left in the row, as its task found or made it.
enum Landed {
    /// Fresh token data, just written; the row names it.
    Fresh(TokenData),
    /// Nothing new from the provider: not due, nothing to refresh, or the user stored a new credential
    /// meanwhile. The row names what to serve.
    Current(Connection),
    /// The provider refused or failed; the row says so (`degraded` or `needs_reauth`).
    Failed(Connection),
}

impl CredentialService {
    fn margin_secs(&self) -> i64 {
        crate::clock::secs_i64(self.config.refresh.margin)
    }

    /// Whether a credential is due for a refresh at `now`: within the margin of its expiry (a margin
    /// capped by the lifetime of tokens a refresh obtained), expired, or none minted yet
    /// ([`timing::is_expiring`], in whole seconds like the columns it reads).
    pub(super) fn is_expiring(&self, row: &Connection, now: Timestamp) -> bool {
        let secs = |t: Option<Timestamp>| t.map(Timestamp::as_secs);
        timing::is_expiring(
            self.margin_secs(),
            secs(row.expires_at),
            secs(row.next_refresh_at),
            now.as_secs(),
        )
    }

    /// When the background refresher should next look at a stored credential: the refresh margin before
    /// expiry, or now when the expiry is unknown (mint a token now). Whole seconds.
    pub(super) fn next_refresh_at(&self, expires_at: Option<Timestamp>) -> Timestamp {
        let secs = expires_at.map_or(self.clock.now_secs(), |e| e.as_secs() - self.margin_secs());
        Timestamp::from_secs(secs)
    }

    /// Refreshes the credential if `trigger` says it is due, and gives the token data to serve; the
    /// outcome says whether the refresh recorded its audit event.
    ///
    /// The work runs in a spawned task that this call awaits: dropping this future (a client that
    /// disconnects) leaves the refresh running to the end, so a rotated refresh token is always stored.
    #[tracing::instrument(level = "debug", skip_all, fields(?trigger))]
    pub(super) async fn refresh(
        &self,
        caller: &Caller,
        key: &ConnectionKey,
        trigger: Trigger,
        client_addr: &str,
    ) -> Outcome<TokenData> {
        let job = detach::Job::new(key.clone(), caller.clone(), trigger, client_addr);
        let key = key.clone();
        self.detached(job, |svc, landed| async move { svc.serve(&key, landed?).await })
            .await
    }

    /// `POST /api/tokens/{provider}/refresh`: refresh now (single flight still applies: a refresh that
    /// completed while this request waited for the lock counts).
    ///
    /// Audited exactly once, ok or failed. Once the request reaches the refresh, its task records the
    /// event (there a client that disconnects cannot stop it) and its outcome says so.
    /// What ends before is recorded here: unknown provider, not connected, `needs_reauth`, a provider
    /// whose credentials do not refresh.
    #[tracing::instrument(skip_all, fields(user = %caller.user, org = %caller.org))]
    pub async fn refresh_now(
        &self,
        caller: &Caller,
        target: impl Into<Target>,
        client_addr: &str,
    ) -> Result<ConnectionView, CredentialError> {
        let target = target.into();
        let mut audited = false;
        let res = async {
            let key = Self::key(&caller.org, &target)?;
            let row = self.row(&key).await?;
            if row.status == ConnectionStatus::NeedsReauth {
                return Err(needs_reauth(&row));
            }
            if key.spec().refreshes() {
                let forced = Trigger::Forced {
                    since: self.clock.now(),
                };
                let outcome = self.refresh(caller, &key, forced, client_addr).await;
                audited = outcome.audited;
                outcome.data?;
            }
            Ok(ConnectionView::from_row(&self.row(&key).await?, self.clock.now()))
        }
        .await;
        if audited {
            return res;
        }
        self.audited(caller, EventKind::CredentialRefresh, &target, client_addr, res)
            .await
    }
}
