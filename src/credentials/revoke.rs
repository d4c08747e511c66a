//! Revocation on delete (`docs/CONNECT.md`): the deleted credential's grant is taken back at the
//! provider's revocation endpoint, as the catalog declares it ([`crate::providers::Revocation`]) or
//! `TOKENKEEPER_<P>_REVOKE_URL` gives it (RFC 7009). Best effort, bounded by the outbound timeout: the
//! local delete never waits on the provider's answer to happen.

use super::{ConnectionKey, CredentialService, TokenData};
use crate::db::Connection;
use crate::providers::ProviderSpec;
use crate::refresh::grants::{self, GrantContext};

/// A deleted credential whose grant may be revoked: its token data (read before the secret was
/// destroyed) and owner, or why there is nothing to revoke with.
pub(super) enum Pending {
    /// The provider has no revocation (for this credential's shape).
    Nothing,
    /// The token data could not be read before the delete: the grant stays at the provider.
    Unreadable,
    Token {
        data: TokenData,
        user_id: String,
    },
}

/// What the provider said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Revoked {
    NotRevocable,
    /// 2xx (and not Slack's `ok: false`).
    Confirmed,
    /// The provider answered, but not with a confirmation (or the credential had no token to send).
    Refused,
    /// Not asked or no answer in time: the reason code (`timeout`, `connect`, `token_unreadable`, ...).
    Failed(String),
}

impl Revoked {
    /// The audit event's detail: `None` where nothing was to be revoked.
    pub(super) fn audit_detail(&self) -> Option<String> {
        match self {
            Revoked::NotRevocable => None,
            Revoked::Confirmed => Some("revoked".into()),
            Revoked::Refused => Some("revocation refused".into()),
            Revoked::Failed(reason) => Some(format!("revocation failed: {reason}")),
        }
    }
}

impl CredentialService {
    /// The revocation endpoint override of `spec` (`TOKENKEEPER_<P>_REVOKE_URL`).
    fn revoke_override(&self, spec: &ProviderSpec) -> Option<&str> {
        self.config.refresh.grants.provider(spec).revoke_url.as_deref()
    }

    /// Reads the token data of `row` when its provider revokes at all; never fails the delete.
    pub(super) async fn pending_revocation(&self, key: &ConnectionKey, row: &Connection) -> Pending {
        let spec = key.spec();
        if spec.revocation.is_none() && self.revoke_override(spec).is_none() {
            return Pending::Nothing;
        }
        match self.read_secret(key, row).await {
            Ok(data) => Pending::Token {
                data,
                user_id: row.user_id.clone(),
            },
            Err(e) => {
                tracing::warn!(provider = spec.id, error = %e, "a deleted credential could not be read to revoke it");
                Pending::Unreadable
            }
        }
    }

    /// Revokes the grant of a deleted credential, once, within the outbound timeout.
    pub(super) async fn revoke_deleted(&self, spec: &'static ProviderSpec, pending: Pending) -> Revoked {
        let (data, user_id) = match pending {
            Pending::Nothing => return Revoked::NotRevocable,
            Pending::Unreadable => return Revoked::Failed("token_unreadable".into()),
            Pending::Token { data, user_id } => (data, user_id),
        };
        let Some(at) = spec.revocation_for(data.fields(), self.revoke_override(spec)) else {
            return Revoked::NotRevocable;
        };
        let ctx = GrantContext {
            http: &self.config.http,
            settings: &self.config.refresh.grants,
            now: self.clock.now_secs(),
            user_id: &user_id,
        };
        let outcome = match grants::revoke(spec, at.url, at.token_fields, &data, &ctx).await {
            Ok(true) => Revoked::Confirmed,
            Ok(false) => Revoked::Refused,
            Err(e) => Revoked::Failed(e.reason().to_string()),
        };
        tracing::info!(provider = spec.id, outcome = ?outcome, "revocation of a deleted credential's grant");
        outcome
    }
}
