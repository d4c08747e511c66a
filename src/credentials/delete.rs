//! Deleting: the reference first, then every version of the secret. If the secret store refuses,
//! the reference is put back so nothing is left half-deleted, and the caller is told to retry.

use super::{Caller, ConnectionKey, CredentialError, CredentialService, Target};
use crate::audit::EventKind;

impl CredentialService {
    /// Deletes the one connection `target` names; the org's other connections to the provider stay.
    #[tracing::instrument(skip_all, fields(user = %caller.user, org = %caller.org))]
    pub async fn delete(
        &self,
        caller: &Caller,
        target: impl Into<Target>,
        client_addr: &str,
    ) -> Result<(), CredentialError> {
        let target = target.into();
        let res = async { self.delete_inner(caller, &Self::key(&caller.org, &target)?).await }.await;
        self.audited(caller, EventKind::CredentialDelete, &target, client_addr, res)
            .await
    }

    async fn delete_inner(&self, caller: &Caller, key: &ConnectionKey) -> Result<(), CredentialError> {
        let user = caller.user.as_str();
        let _lock = self.lock(key).await?;
        let row = self.row(key).await?;
        // An adopted row's secret keeps its own name (see `secret_of`); a row whose reference is foreign to
        // this store loses the secret its key names, as before.
        let secret = self.secret_of(&row).unwrap_or_else(|_| self.secret_name(key));
        // Fail early, before touching anything, when the secret store is down.
        self.secrets.check().await?;
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
        Ok(())
    }
}
