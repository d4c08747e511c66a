//! A store that follows an AWS onboarding (`POST /api/connect/aws`): the external id issued for the
//! connection before its role existed is the one stored, the role is assumed with it before anything is
//! written (a role that cannot be assumed is refused, naming AWS's error code), and the onboarding is then
//! used up. SQL keeps the onboarding (`db::OnboardingStore`); the assumption is the refresh grant's.

use super::{ConnectionKey, CredentialError, CredentialService, TokenData};
use crate::refresh::{GrantContext, GrantError};

impl CredentialService {
    /// The external id issued for `key`'s connection and not used yet, if any.
    pub(super) async fn issued_external_id(&self, key: &ConnectionKey) -> Result<Option<String>, CredentialError> {
        let (org, provider, name) = (key.org().as_str(), key.provider(), key.name().as_str());
        let pending = self
            .store
            .pending_onboarding(org, provider, name, self.clock.now_ms())
            .await?;
        Ok(pending.map(|o| o.external_id))
    }

    /// Assumes the role of `data` (its grant, from the catalog) before it is stored: AWS's refusal is the
    /// user's to fix (400 with its code), an unreachable STS is not (502). Nothing is written either way.
    pub(super) async fn assume_first(
        &self,
        key: &ConnectionKey,
        data: &TokenData,
        user: &str,
    ) -> Result<(), CredentialError> {
        let ctx = GrantContext {
            http: &self.config.http,
            settings: &self.config.refresh.grants,
            now: self.clock.now_secs(),
            user_id: user,
        };
        let provider = key.provider().to_string();
        match crate::refresh::refresh(key.spec(), data, &ctx).await {
            Ok(_) => Ok(()),
            Err(GrantError::NeedsReauth { reason }) => Err(CredentialError::CheckRejected {
                provider,
                detail: reason,
            }),
            Err(e) => Err(CredentialError::CheckUnreachable {
                provider,
                detail: e.reason().to_string(),
            }),
        }
    }

    /// The onboarding that issued `external_id` has served (the connection is stored): a new onboarding of
    /// the connection issues a new id. A failure here leaves it pending, which does no harm: it is logged.
    pub(super) async fn onboarding_used(&self, key: &ConnectionKey, external_id: &str) {
        let (org, provider, name) = (key.org().as_str(), key.provider(), key.name().as_str());
        let now = self.clock.now_ms();
        if let Err(e) = self.store.use_onboarding(org, provider, name, external_id, now).await {
            tracing::warn!(provider, error = %e, "could not mark an onboarding used");
        }
    }
}
