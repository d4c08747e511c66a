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
        let res = async { self.delete_inner(&Self::key(&caller.org, &target)?).await }.await;
        self.audited(caller, EventKind::CredentialDelete, &target, client_addr, res)
            .await
    }

    async fn delete_inner(&self, key: &ConnectionKey) -> Result<(), CredentialError> {
        let _lock = self.lock(key).await?;
        let row = self.row(key).await?;
        // An adopted row's secret keeps its own name (see `secret_of`); a row whose reference is foreign to
        // this store loses the secret its key names, as before.
        let name = self.secret_of(&row).unwrap_or_else(|_| self.secret_name(key));
        // Fail early, before touching anything, when the secret store is down.
        self.secrets.check().await?;
        if !self
            .store
            .delete_connection(key.org().as_str(), key.provider(), key.name().as_str())
            .await?
        {
            return Err(CredentialError::NotConnected(key.describe()));
        }
        if let Err(e) = self.secrets.delete(&name).await {
            // Put the reference back only where there is none: a row stored meanwhile by a writer outside
            // this lock is newer than ours and stays.
            self.store.put_connection(&row, None).await?;
            return Err(e.into());
        }
        self.changed(key).await;
        Ok(())
    }
}
