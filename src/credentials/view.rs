//! What a listing shows of a connection: metadata, status and age; never a secret.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::clock::Timestamp;
use crate::db::{Connection, ConnectionStatus};

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionView {
    /// A stable handle of the connection (32 hex digits).
    pub id: String,
    pub provider: String,
    /// Which of the org's connections to the provider (`default` unless named: `?name=`).
    pub name: String,
    pub metadata: Map<String, Value>,
    pub status: ConnectionStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    /// When the current access token expires (RFC 3339), for providers whose tokens expire.
    pub expires_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// Seconds since the secret was last written (stored or refreshed): the credential's age.
    pub age_seconds: i64,
    pub secret_version: u64,
    /// `vault:kv/data/...` or `local:kv/data/...`: where the secret lives (not the secret).
    pub secret_ref: String,
    /// When the credential was last checked with its provider (RFC 3339); `null`: never.
    pub last_checked_at: Option<String>,
    /// What the last check found wrong (`HTTP 401`, `invalid_auth`, `timed out`, ...); `null` when it passed.
    pub last_check_error: Option<String>,
}

impl ConnectionView {
    pub fn from_row(c: &Connection, now: Timestamp) -> Self {
        Self {
            id: c.id.clone(),
            provider: c.provider.clone(),
            name: c.name.clone(),
            metadata: c.metadata.clone(),
            status: c.status,
            status_reason: c.status_reason.clone(),
            expires_at: c.expires_at.map(Timestamp::rfc3339),
            created_at: c.created_at.rfc3339(),
            updated_at: c.updated_at.rfc3339(),
            age_seconds: (now.as_millis() - c.updated_at.as_millis()).max(0) / 1000,
            secret_version: c.secret_version,
            secret_ref: c.secret_ref.clone(),
            last_checked_at: c.last_checked_at.map(Timestamp::rfc3339),
            last_check_error: c.last_check_error.clone(),
        }
    }
}
