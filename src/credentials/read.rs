//! Reading: listings and metadata (no secret), and the secret token data itself (refreshed first if due).

use super::refresh::Trigger;
use super::{
    Caller, ConnectionKey, ConnectionStatus, ConnectionView, CredentialError, CredentialService, OrgId, Target,
    TokenData,
};
use crate::audit::EventKind;
use crate::db::Connection;

// The read path's spans are at debug level: a read is the hot path, and its events carry their own ids.
impl CredentialService {
    /// Every user's connections counted per status (for `/metrics`).
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn count_by_status(&self) -> Result<Vec<(String, i64)>, CredentialError> {
        Ok(self.store.count_connections_by_status().await?)
    }

    /// Change events in the outbox, `(waiting, dead)` (for `/metrics`).
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn outbox_counts(&self) -> Result<(i64, i64), CredentialError> {
        Ok(self.store.outbox_counts().await?)
    }

    /// The connections of `org`.
    #[tracing::instrument(level = "debug", skip_all, fields(org = %org))]
    pub async fn list(&self, org: &OrgId) -> Result<Vec<ConnectionView>, CredentialError> {
        let now = self.clock.now();
        let rows = self.store.list_connections(org.as_str()).await?;
        Ok(rows.iter().map(|c| ConnectionView::from_row(c, now)).collect())
    }

    /// One connection of `org` (a bare provider id names its `default` connection).
    #[tracing::instrument(level = "debug", skip_all, fields(org = %org))]
    pub async fn connection(&self, org: &OrgId, target: impl Into<Target>) -> Result<ConnectionView, CredentialError> {
        let key = Self::key(org, &target.into())?;
        let row = self.row(&key).await?;
        Ok(ConnectionView::from_row(&row, self.clock.now()))
    }

    pub(super) async fn row(&self, key: &ConnectionKey) -> Result<Connection, CredentialError> {
        self.store
            .get_connection(key.org().as_str(), key.provider(), key.name().as_str())
            .await?
            .ok_or_else(|| CredentialError::NotConnected(key.describe()))
    }

    /// The seed's `get_token_data(user, provider)`: the secret token data, refreshed first when it
    /// expires within the margin. A connection that needs re-authorization is refused (409).
    #[tracing::instrument(level = "debug", skip_all, fields(user = %caller.user, org = %caller.org))]
    pub async fn get_token_data(
        &self,
        caller: &Caller,
        target: impl Into<Target>,
        client_addr: &str,
    ) -> Result<TokenData, CredentialError> {
        let target = target.into();
        let res = async {
            self.get_inner(caller, &Self::key(&caller.org, &target)?, client_addr)
                .await
        }
        .await;
        self.audited(caller, EventKind::CredentialRead, &target, client_addr, res)
            .await
    }

    async fn get_inner(&self, caller: &Caller, key: &ConnectionKey, addr: &str) -> Result<TokenData, CredentialError> {
        // Fast path: a usable (active, unchecked or degraded), unexpiring credential whose reference row is cached: no SQL, and with
        // cached token data no secret-store call either.
        if let Some(cache) = &self.cache
            && let Some((row, data)) = cache.entry(key)
            && row.status != ConnectionStatus::NeedsReauth
            && !self.is_expiring(&row, self.clock.now())
        {
            return match data {
                Some(data) => Ok(data),
                None => self.read_secret(key, &row).await,
            };
        }
        let ticket = self.cache.as_ref().map(|c| c.ticket());
        let row = self.row(key).await?;
        if row.status == ConnectionStatus::NeedsReauth {
            return Err(needs_reauth(&row));
        }
        if self.is_expiring(&row, self.clock.now()) {
            return self.refresh(caller, key, Trigger::Read, addr).await.data;
        }
        let data = self.read_secret(key, &row).await?;
        if let (Some(cache), Some(ticket)) = (&self.cache, ticket) {
            cache.put(key, &row, &data, ticket);
        }
        Ok(data)
    }

    /// The secret version the reference `row` of `key` names.
    pub(super) async fn read_secret(
        &self,
        key: &ConnectionKey,
        row: &Connection,
    ) -> Result<TokenData, CredentialError> {
        if let Some(hit) = self.cache.as_ref().and_then(|c| c.get(key, row)) {
            return Ok(hit);
        }
        let name = self.secret_of(row)?;
        let secret = self
            .secrets
            .read(&name, Some(row.secret_version))
            .await?
            .ok_or_else(|| {
                CredentialError::Inconsistent(format!("secret {name} v{} is missing", row.secret_version))
            })?;
        TokenData::decode(&secret.value).map_err(|e| CredentialError::Inconsistent(format!("secret {name}: {e}")))
    }
}

pub(super) fn needs_reauth(row: &Connection) -> CredentialError {
    CredentialError::NeedsReauth {
        provider: row.provider.clone(),
        reason: row.status_reason.clone().unwrap_or_else(|| "needs_reauth".into()),
    }
}
