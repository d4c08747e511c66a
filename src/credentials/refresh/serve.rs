//! What a reader gets once a refresh has landed: the fresh token data, or the version the row names,
//! unless a failed refresh left no usable token.

use super::Landed;
use crate::clock::Timestamp;
use crate::credentials::read::needs_reauth;
use crate::credentials::{ConnectionKey, ConnectionStatus, CredentialError, CredentialService, TokenData};
use crate::db::Connection;

impl CredentialService {
    /// What a reader gets after a refresh: the fresh data, or what the row names (a failure that keeps a
    /// still-valid token serves it).
    pub(super) async fn serve(&self, key: &ConnectionKey, landed: Landed) -> Result<TokenData, CredentialError> {
        match landed {
            Landed::Fresh(data) => Ok(data),
            Landed::Current(row) | Landed::Failed(row) => {
                if row.status == ConnectionStatus::NeedsReauth {
                    return Err(needs_reauth(&row));
                }
                self.serve_current(key, &row, self.clock.now()).await
            }
        }
    }

    /// The stored credential, unless the last refresh failed and it holds no usable token: then
    /// [`CredentialError::RefreshUnavailable`] (503).
    ///
    /// Usable means unexpired; with no known expiry, holding an access token at all. A credential never
    /// minted (azure, tailscale, aws before their first token) has neither: serving its stored fields
    /// would answer 200 with no token in it.
    async fn serve_current(
        &self,
        key: &ConnectionKey,
        row: &Connection,
        now: Timestamp,
    ) -> Result<TokenData, CredentialError> {
        if row.status != ConnectionStatus::Degraded {
            return self.read_secret(key, row).await;
        }
        match row.expires_at {
            Some(e) if e <= now => Err(unavailable(row)),
            Some(_) => self.read_secret(key, row).await,
            None => {
                let data = self.read_secret(key, row).await?;
                match data.str_field("access_token") {
                    Some(_) => Ok(data),
                    None => Err(unavailable(row)),
                }
            }
        }
    }
}

/// A failed refresh left no usable token: 503, with the provider's reason.
pub(super) fn unavailable(row: &Connection) -> CredentialError {
    CredentialError::RefreshUnavailable {
        provider: row.provider.clone(),
        reason: row.status_reason.clone().unwrap_or_default(),
    }
}
