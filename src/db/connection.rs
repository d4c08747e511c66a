//! A connection row: the reference to a credential's secret and what may be shown without it, typed.
//! Columns differ in form (status and metadata are text, expiry times whole seconds, row times
//! milliseconds); [`ColumnValues`] and [`Connection::from_columns`] are the only conversions.

use serde_json::{Map, Value};

use crate::clock::Timestamp;

/// A connection's state, shown in listings; stored as the same text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionStatus {
    /// Usable; refreshed when due.
    Active,
    /// The last refresh failed for now (timeout, 5xx, throttling, a platform setting missing): retried
    /// with backoff, a still-valid token keeps being served.
    Degraded,
    /// The provider refused the credential: no more refreshes until a new one is stored.
    NeedsReauth,
    /// Stored without a check (`?check=false`, or `TOKENKEEPER_CHECK_ON_STORE=false`): served like an
    /// active one; the next check (on demand or in the background) decides.
    Unchecked,
}

impl ConnectionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Degraded => "degraded",
            Self::NeedsReauth => "needs_reauth",
            Self::Unchecked => "unchecked",
        }
    }
}

impl std::str::FromStr for ConnectionStatus {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, UnknownStatus> {
        match s {
            "active" => Ok(Self::Active),
            "degraded" => Ok(Self::Degraded),
            "needs_reauth" => Ok(Self::NeedsReauth),
            "unchecked" => Ok(Self::Unchecked),
            other => Err(UnknownStatus(other.to_string())),
        }
    }
}

impl std::fmt::Display for ConnectionStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown connection status {0:?}")]
pub struct UnknownStatus(String);

/// A stored connection: the reference to its secret and what may be shown without it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// The org that owns it.
    pub org_id: String,
    /// The user who first stored it.
    pub user_id: String,
    pub provider: String,
    /// Which of the org's connections to `provider` it is (`default` unless named).
    pub name: String,
    /// A stable handle, shown in listings (32 hex digits).
    pub id: String,
    pub secret_ref: String,
    /// The secret's version this reference names (a KV v2 version, from 1).
    pub secret_version: u64,
    /// Non-secret display fields, as the catalog declares them (stored as a JSON object's text).
    pub metadata: Map<String, Value>,
    pub status: ConnectionStatus,
    pub status_reason: Option<String>,
    /// When the current access token expires (stored in whole seconds).
    pub expires_at: Option<Timestamp>,
    /// When the background refresher should look at it next; `None`: never (stored in whole seconds).
    pub next_refresh_at: Option<Timestamp>,
    pub refresh_failures: i32,
    pub created_at: Timestamp,
    /// When the secret was last written (stored or refreshed).
    pub updated_at: Timestamp,
    /// When the credential was last checked with its provider (stored in milliseconds).
    pub last_checked_at: Option<Timestamp>,
    /// What the last check found wrong (a short code or fixed text); `None` after a check it passed.
    pub last_check_error: Option<String>,
    /// When the background pass checks it next; `None`: never (not a static key, or rejected).
    pub next_check_at: Option<Timestamp>,
}

/// A connection's typed fields in their columns' forms, for binding.
pub(crate) struct ColumnValues<'a> {
    pub secret_version: i64,
    pub metadata: String,
    pub status: &'static str,
    pub status_reason: Option<&'a str>,
    pub expires_at: Option<i64>,
    pub next_refresh_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub last_checked_at: Option<i64>,
    pub last_check_error: Option<&'a str>,
    pub next_check_at: Option<i64>,
}

impl Connection {
    /// The columns' values; a version beyond the column's range (no store hands one out) is an error.
    pub(crate) fn columns(&self) -> Result<ColumnValues<'_>, sqlx::Error> {
        Ok(ColumnValues {
            secret_version: version_column(self.secret_version)?,
            metadata: Value::Object(self.metadata.clone()).to_string(),
            status: self.status.as_str(),
            status_reason: self.status_reason.as_deref(),
            expires_at: self.expires_at.map(Timestamp::as_secs),
            next_refresh_at: self.next_refresh_at.map(Timestamp::as_secs),
            created_at: self.created_at.as_millis(),
            updated_at: self.updated_at.as_millis(),
            last_checked_at: self.last_checked_at.map(Timestamp::as_millis),
            last_check_error: self.last_check_error.as_deref(),
            next_check_at: self.next_check_at.map(Timestamp::as_secs),
        })
    }

    /// The check columns of a row read (see [`Connection::from_columns`] for the others).
    pub(crate) fn with_check_columns(
        mut self,
        last_checked_at: Option<i64>,
        last_check_error: Option<String>,
        next_check_at: Option<i64>,
    ) -> Self {
        self.last_checked_at = last_checked_at.map(Timestamp::from_millis);
        self.last_check_error = last_check_error;
        self.next_check_at = next_check_at.map(Timestamp::from_secs);
        self
    }

    /// From a row's columns. Metadata that is not a JSON object (changed by hand) reads as none; an
    /// unknown status is an error.
    #[allow(clippy::too_many_arguments)] // one per column
    pub(crate) fn from_columns(
        org_id: String,
        user_id: String,
        provider: String,
        name: String,
        id: String,
        secret_ref: String,
        secret_version: i64,
        metadata: &str,
        status: &str,
        status_reason: Option<String>,
        expires_at: Option<i64>,
        next_refresh_at: Option<i64>,
        refresh_failures: i32,
        created_at: i64,
        updated_at: i64,
    ) -> Result<Self, sqlx::Error> {
        let metadata = match serde_json::from_str(metadata) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        };
        Ok(Self {
            org_id,
            user_id,
            provider,
            name,
            id,
            secret_ref,
            secret_version: u64::try_from(secret_version).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
            metadata,
            status: status.parse().map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
            status_reason,
            expires_at: expires_at.map(Timestamp::from_secs),
            next_refresh_at: next_refresh_at.map(Timestamp::from_secs),
            refresh_failures,
            created_at: Timestamp::from_millis(created_at),
            updated_at: Timestamp::from_millis(updated_at),
            last_checked_at: None,
            last_check_error: None,
            next_check_at: None,
        })
    }
}

/// A secret version in its column's form (SQL's signed 64-bit integer).
pub(crate) fn version_column(version: u64) -> Result<i64, sqlx::Error> {
    i64::try_from(version).map_err(|e| sqlx::Error::Encode(Box::new(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_stored_and_shown_as_before() {
        for (status, text) in [
            (ConnectionStatus::Active, "active"),
            (ConnectionStatus::Degraded, "degraded"),
            (ConnectionStatus::NeedsReauth, "needs_reauth"),
            (ConnectionStatus::Unchecked, "unchecked"),
        ] {
            assert_eq!(status.as_str(), text);
            assert_eq!(text.parse::<ConnectionStatus>().unwrap(), status);
            assert_eq!(serde_json::to_value(status).unwrap(), text);
        }
        assert!("checked".parse::<ConnectionStatus>().is_err());
    }

    #[test]
    fn columns_round_trip() {
        let c = Connection::from_columns(
            "o".into(),
            "u".into(),
            "gcp".into(),
            "default".into(),
            "c1".into(),
            "local:x".into(),
            3,
            r#"{"email":"u@example.com"}"#,
            "degraded",
            Some("http_503".into()),
            Some(1_700_000_300),
            Some(1_700_000_000),
            2,
            1_699_999_999_123,
            1_700_000_000_456,
        )
        .unwrap();
        assert_eq!(c.expires_at, Some(Timestamp::from_secs(1_700_000_300)));
        assert_eq!(c.updated_at.as_millis(), 1_700_000_000_456);
        let cols = c.columns().unwrap();
        assert_eq!(cols.secret_version, 3);
        assert_eq!(cols.metadata, r#"{"email":"u@example.com"}"#);
        assert_eq!(
            (cols.status, cols.expires_at, cols.next_refresh_at),
            ("degraded", Some(1_700_000_300), Some(1_700_000_000))
        );
        assert_eq!(
            (cols.created_at, cols.updated_at),
            (1_699_999_999_123, 1_700_000_000_456)
        );
        // Metadata changed by hand into something else reads as none.
        let odd = Connection::from_columns(
            "o".into(),
            "u".into(),
            "gcp".into(),
            "default".into(),
            "c1".into(),
            "r".into(),
            1,
            "[1]",
            "active",
            None,
            None,
            None,
            0,
            0,
            0,
        );
        assert!(odd.unwrap().metadata.is_empty());
    }

    #[test]
    fn a_version_outside_either_range_is_an_error_not_a_wrapped_number() {
        let negative = Connection::from_columns(
            "u".into(),
            "u".into(),
            "gcp".into(),
            "default".into(),
            "c1".into(),
            "r".into(),
            -1,
            "{}",
            "active",
            None,
            None,
            None,
            0,
            0,
            0,
        );
        assert!(matches!(negative, Err(sqlx::Error::Decode(_))), "{negative:?}");
        let mut c = Connection::from_columns(
            "u".into(),
            "u".into(),
            "gcp".into(),
            "default".into(),
            "c1".into(),
            "r".into(),
            1,
            "{}",
            "active",
            None,
            None,
            None,
            0,
            0,
            0,
        )
        .unwrap();
        c.secret_version = u64::MAX;
        assert!(matches!(c.columns(), Err(sqlx::Error::Encode(_))));
    }
}
