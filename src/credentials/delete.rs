//! Deleting: the reference first, then every version of the secret. If the secret store refuses,
//! the reference is put back so nothing is left half-deleted, and the caller is told to retry.

use super::{CredentialError, CredentialService};
use crate::audit::EventKind;

impl CredentialService {
    pub async fn delete(&self, user_id: &str, provider: &str, client_addr: &str) -> Result<(), CredentialError> {
        let res = self.delete_inner(user_id, provider).await;
        self.audited(user_id, EventKind::CredentialDelete, provider, client_addr, res)
            .await
    }

    async fn delete_inner(&self, user_id: &str, provider: &str) -> Result<(), CredentialError> {
        Self::spec(provider)?;
        let _lock = self.lock(user_id, provider).await?;
        let row = self.row(user_id, provider).await?;
        // Fail early, before touching anything, when the secret store is down.
        self.secrets.check().await?;
        if !self.store.delete_connection(user_id, provider).await? {
            return Err(CredentialError::NotConnected(provider.to_string()));
        }
        let name = self.secret_name(user_id, provider);
        if let Err(e) = self.secrets.delete(&name).await {
            // Put the reference back only where there is none: a row stored meanwhile by a writer outside
            // this lock is newer than ours and stays.
            self.store.put_connection(&row, None).await?;
            return Err(e.into());
        }
        self.changed(user_id, provider).await;
        Ok(())
    }
}
