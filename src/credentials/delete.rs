//! Deleting: the reference first, then every version of the secret. If the secret store refuses,
//! the reference is put back so nothing is left half-deleted, and the caller is told to retry. Once both
//! are gone, the grant is revoked at the provider where the catalog says how ([`super::revoke`]).

use super::revoke::{Pending, Revoked};
use super::{Caller, ConnectionKey, CredentialError, CredentialService, Target};
use crate::audit::EventKind;

/// What a delete did besides deleting: whether the provider took the grant back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deleted {
    /// `Some(true)`: the provider confirmed the revocation; `Some(false)`: it refused, failed, was too
    /// slow or could not be asked; `None`: the provider has no revocation for this credential.
    pub revoked: Option<bool>,
}

impl CredentialService {
    /// Deletes the one connection `target` names; the org's other connections to the provider stay. The
    /// provider's answer to the revocation changes nothing locally: the connection is gone either way.
    #[tracing::instrument(skip_all, fields(user = %caller.user, org = %caller.org))]
    pub async fn delete(
        &self,
        caller: &Caller,
        target: impl Into<Target>,
        client_addr: &str,
    ) -> Result<Deleted, CredentialError> {
        let target = target.into();
        let res = async {
            let key = Self::key(&caller.org, &target)?;
            let pending = self.delete_inner(caller, &key).await?;
            // Outside the credential's lock: the provider may take the whole outbound timeout.
            Ok(self.revoke_deleted(key.spec(), pending).await)
        }
        .await;
        let outcome = match res {
            Ok(outcome) => outcome,
            Err(e) => {
                return self
                    .audited(caller, EventKind::CredentialDelete, &target, client_addr, Err(e))
                    .await;
            }
        };
        let detail = outcome.audit_detail();
        self.audit(
            caller,
            EventKind::CredentialDelete,
            &target,
            true,
            client_addr,
            detail.as_deref(),
        )
        .await?;
        Ok(Deleted {
            revoked: match outcome {
                Revoked::NotRevocable => None,
                Revoked::Confirmed => Some(true),
                Revoked::Refused | Revoked::Failed(_) => Some(false),
            },
        })
    }

    async fn delete_inner(&self, caller: &Caller, key: &ConnectionKey) -> Result<Pending, CredentialError> {
        let user = caller.user.as_str();
        let _lock = self.lock(key).await?;
        let row = self.row(key).await?;
        // An adopted row's secret keeps its own name (see `secret_of`); a row whose reference is foreign to
        // this store loses the secret its key names, as before.
        let secret = self.secret_of(&row).unwrap_or_else(|_| self.secret_name(key));
        // Fail early, before touching anything, when the secret store is down.
        self.secrets.check().await?;
        // The token to revoke is read before it is destroyed (only where the provider can revoke at all).
        let pending = self.pending_revocation(key, &row).await;
        let events = self.config.events.of_change(Some(&row), None, user, self.clock.now());
        let (org, provider, name) = (key.org().as_str(), key.provider(), key.name().as_str());
        if !self
            .store
            .delete_connection_emitting(org, provider, name, &events)
            .await?
        {
            return Err(CredentialError::NotConnected(key.describe()));
        }
        if let Err(e) = self.secrets.delete(&secret).await {
            // Put the reference back only where there is none: a row stored meanwhile by a writer outside
            // this lock is newer than ours and stays. Receivers told of the delete learn it is back.
            let events = self.config.events.of_change(None, Some(&row), user, self.clock.now());
            self.store.put_connection_emitting(&row, None, &events).await?;
            return Err(e.into());
        }
        self.changed(key).await;
        Ok(pending)
    }
}
