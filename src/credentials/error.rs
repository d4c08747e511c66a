//! What can go wrong with a credential; `http::error` maps each to a status code.

use crate::db::DbError;
use crate::providers::FieldError;
use crate::secrets::SecretError;

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("Unknown provider: {0}")]
    UnknownProvider(String),
    #[error("{0}")]
    Invalid(#[from] FieldError),
    #[error("No {0} credential is stored")]
    NotConnected(String),
    #[error("The {provider} credential needs to be connected again")]
    NeedsReauth { provider: String, reason: String },
    #[error("The {0} credential was changed at the same time; retry")]
    Conflict(String),
    /// A new connection whose secret name another connection's secret already has (see `store.rs`).
    #[error("The connection name {0:?} would share a secret name with another connection; choose another name")]
    NameTaken(String),
    #[error("Secret store unavailable")]
    SecretStoreUnavailable(#[source] SecretError),
    #[error("The provider could not refresh the {provider} credential")]
    RefreshUnavailable { provider: String, reason: String },
    /// The provider refused the credential a store checked first: nothing was stored.
    #[error("Credential rejected by {provider}")]
    CheckRejected { provider: String, detail: String },
    /// The provider could not be reached to check the credential a store was given: nothing was stored.
    #[error("Could not reach {provider} to check the credential")]
    CheckUnreachable { provider: String, detail: String },
    #[error("stored credential is inconsistent: {0}")]
    Inconsistent(String),
    #[error(transparent)]
    Db(#[from] DbError),
    /// The event could not be written to the audit log (which fails closed).
    #[error(transparent)]
    AuditUnavailable(#[from] crate::audit::AuditError),
}

impl From<SecretError> for CredentialError {
    fn from(e: SecretError) -> Self {
        match e {
            SecretError::Unavailable(_) => {
                crate::metrics::secret_store_error();
                Self::SecretStoreUnavailable(e)
            }
            SecretError::CasMismatch => Self::Conflict(String::new()),
            SecretError::Corrupt(m) => Self::Inconsistent(m),
        }
    }
}

/// A short, non-secret reason for the audit trail.
pub(super) fn failure_reason(e: &CredentialError) -> &'static str {
    match e {
        CredentialError::UnknownProvider(_) => "unknown provider",
        CredentialError::Invalid(_) => "invalid input",
        CredentialError::NotConnected(_) => "not connected",
        CredentialError::NeedsReauth { .. } => "needs_reauth",
        CredentialError::Conflict(_) => "concurrent change",
        CredentialError::NameTaken(_) => "secret name taken",
        CredentialError::SecretStoreUnavailable(_) => "secret store unavailable",
        CredentialError::RefreshUnavailable { .. } => "refresh failed",
        CredentialError::CheckRejected { .. } => "check rejected",
        CredentialError::CheckUnreachable { .. } => "check unreachable",
        CredentialError::Inconsistent(_) => "inconsistent",
        CredentialError::Db(_) => "database error",
        CredentialError::AuditUnavailable(_) => "audit log unavailable",
    }
}
