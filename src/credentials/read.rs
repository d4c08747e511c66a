//! Reading: listings and metadata (no secret), and the secret token data itself (refreshed first if due).

use super::refresh::Trigger;
use super::{ConnectionView, CredentialError, CredentialService, TokenData, status};
use crate::audit::EventKind;
use crate::db::Connection;

impl CredentialService {
    /// Every user's connections counted per status (for `/metrics`).
    pub async fn count_by_status(&self) -> Result<Vec<(String, i64)>, CredentialError> {
        Ok(self.store.count_connections_by_status().await?)
    }

    pub async fn list(&self, user_id: &str) -> Result<Vec<ConnectionView>, CredentialError> {
        let now = self.clock.now_ms();
        let rows = self.store.list_connections(user_id).await?;
        Ok(rows.iter().map(|c| ConnectionView::from_row(c, now)).collect())
    }

    pub async fn connection(&self, user_id: &str, provider: &str) -> Result<ConnectionView, CredentialError> {
        Self::spec(provider)?;
        let row = self.row(user_id, provider).await?;
        Ok(ConnectionView::from_row(&row, self.clock.now_ms()))
    }

    pub(super) async fn row(&self, user_id: &str, provider: &str) -> Result<Connection, CredentialError> {
        self.store
            .get_connection(user_id, provider)
            .await?
            .ok_or_else(|| CredentialError::NotConnected(provider.to_string()))
    }

    /// The seed's `get_token_data(user, provider)`: the secret token data, refreshed first when it
    /// expires within the margin. A connection that needs re-authorization is refused (409).
    pub async fn get_token_data(
        &self,
        user_id: &str,
        provider: &str,
        client_addr: &str,
    ) -> Result<TokenData, CredentialError> {
        let res = self.get_inner(user_id, provider, client_addr).await;
        self.audited(user_id, EventKind::CredentialRead, provider, client_addr, res)
            .await
    }

    async fn get_inner(&self, user_id: &str, provider: &str, addr: &str) -> Result<TokenData, CredentialError> {
        let spec = Self::spec(provider)?;
        // Fast path: an active, unexpiring credential whose reference row is cached: no SQL, and with
        // cached token data no secret-store call either.
        if let Some(cache) = &self.cache
            && let Some((row, data)) = cache.entry(&super::cache::key(user_id, provider))
            && row.status == status::ACTIVE
            && !self.is_expiring(&row, self.clock.now_secs())
        {
            return match data {
                Some(data) => Ok(TokenData(data)),
                None => self.read_secret(&row).await,
            };
        }
        let ticket = self.cache.as_ref().map(|c| c.ticket());
        let row = self.row(user_id, provider).await?;
        if row.status == status::NEEDS_REAUTH {
            return Err(needs_reauth(&row));
        }
        if self.is_expiring(&row, self.clock.now_secs()) {
            return self.refresh(spec, user_id, provider, Trigger::Read, addr).await.data;
        }
        let data = self.read_secret(&row).await?;
        if let (Some(cache), Some(ticket)) = (&self.cache, ticket) {
            cache.put(&super::cache::key(user_id, provider), &row, &data.0, ticket);
        }
        Ok(data)
    }

    /// The secret version the reference names.
    pub(super) async fn read_secret(&self, row: &Connection) -> Result<TokenData, CredentialError> {
        let key = super::cache::key(&row.user_id, &row.provider);
        if let Some(hit) = self.cache.as_ref().and_then(|c| c.get(&key, row)) {
            return Ok(TokenData(hit));
        }
        let name = self.secret_name(&row.user_id, &row.provider);
        if row.secret_ref != self.secrets.reference(&name) {
            return Err(CredentialError::Inconsistent(format!(
                "reference {} is not in the configured secret store",
                row.secret_ref
            )));
        }
        let secret = self
            .secrets
            .read(&name, Some(row.secret_version as u64))
            .await?
            .ok_or_else(|| {
                CredentialError::Inconsistent(format!("secret {name} v{} is missing", row.secret_version))
            })?;
        super::cache::parse(&secret.value)
            .map(TokenData)
            .ok_or_else(|| CredentialError::Inconsistent(format!("secret {name} is not a JSON object")))
    }
}

pub(super) fn needs_reauth(row: &Connection) -> CredentialError {
    CredentialError::NeedsReauth {
        provider: row.provider.clone(),
        reason: row.status_reason.clone().unwrap_or_else(|| "needs_reauth".into()),
    }
}
