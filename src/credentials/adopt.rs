//! Connections adopted from elsewhere (Aurora's `user_tokens`): the row Tokenkeeper would have written for
//! token data that already sits in the secret store, under the name it already has. Nothing is written
//! here; the importer (`crate::import`) decides and writes.

use serde_json::{Map, Value};

use super::{ConnectionKey, CredentialError, CredentialService};
use crate::clock::Timestamp;
use crate::db::{Connection, ConnectionStatus};
use crate::providers::TokenData;

/// A credential found elsewhere: who owns it, who stored it, and where its secret is.
pub struct Adopted<'a> {
    pub key: &'a ConnectionKey,
    pub user_id: &'a str,
    pub secret_name: &'a str,
    pub secret_version: u64,
    pub created_at: Timestamp,
}

impl CredentialService {
    /// The row for `data` as found. The catalog's checks run on the catalog's fields only (fields that
    /// the other system kept beside them stay in the secret, untouched); data that fails them is refused
    /// with the field's error.
    pub fn adopt(&self, a: &Adopted<'_>, data: &TokenData) -> Result<Connection, CredentialError> {
        let spec = a.key.spec();
        let known: Map<String, Value> = data
            .fields()
            .iter()
            .filter(|(name, _)| spec.field(name).is_some() || spec.expires_at_field == Some(name.as_str()))
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        let valid = spec.validate(&Value::Object(known), &self.config.url_policy)?;
        let expires_at = valid.expires_at.map(Timestamp::from_secs);
        Ok(Connection {
            org_id: a.key.org().as_str().to_string(),
            user_id: a.user_id.to_string(),
            provider: a.key.provider().to_string(),
            name: a.key.name().as_str().to_string(),
            id: uuid::Uuid::new_v4().simple().to_string(),
            secret_ref: self.secrets.reference(a.secret_name),
            secret_version: a.secret_version,
            metadata: valid.metadata,
            status: ConnectionStatus::Active,
            status_reason: None,
            expires_at,
            next_refresh_at: valid.refresh.refreshes().then(|| self.next_refresh_at(expires_at)),
            refresh_failures: 0,
            // Never checked here: a static key falls due one check interval after Aurora stored it.
            last_checked_at: None,
            last_check_error: None,
            next_check_at: self.next_check_at(valid.refresh, None, a.created_at),
            created_at: a.created_at,
            updated_at: a.created_at,
        })
    }
}
