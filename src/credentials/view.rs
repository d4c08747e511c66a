//! What a listing shows of a connection: metadata, status and age; never a secret.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::clock::rfc3339;
use crate::db::Connection;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionView {
    pub provider: String,
    pub metadata: Map<String, Value>,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    /// When the current access token expires (RFC 3339), for providers whose tokens expire.
    pub expires_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// Seconds since the secret was last written (stored or refreshed): the credential's age.
    pub age_seconds: i64,
    pub secret_version: i64,
    /// `vault:kv/data/...` or `local:kv/data/...`: where the secret lives (not the secret).
    pub secret_ref: String,
}

impl ConnectionView {
    pub fn from_row(c: &Connection, now_ms: i64) -> Self {
        let metadata = match serde_json::from_str::<Value>(&c.metadata) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        };
        Self {
            provider: c.provider.clone(),
            metadata,
            status: c.status.clone(),
            status_reason: c.status_reason.clone(),
            expires_at: c.expires_at.map(|s| rfc3339(s * 1000)),
            created_at: rfc3339(c.created_at),
            updated_at: rfc3339(c.updated_at),
            age_seconds: (now_ms - c.updated_at).max(0) / 1000,
            secret_version: c.secret_version,
            secret_ref: c.secret_ref.clone(),
        }
    }
}
