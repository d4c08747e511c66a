//! A store that follows an AWS onboarding (`POST /api/connect/aws`): the external id issued for the
//! connection before its role existed is the one stored, the role is assumed with it before anything is
//! written (a role that cannot be assumed is refused, naming AWS's error code), and the onboarding is then
//! used up. SQL keeps the onboarding (`db::OnboardingStore`); the assumption is the refresh grant's.

use rand::RngCore as _;
use serde_json::{Map, Value};

use super::{ConnectionKey, CredentialError, CredentialService, TokenData};
use crate::refresh::{GrantContext, GrantError};

/// Generated AWS external ids: 32 hex characters (AWS allows 2 to 1224 of `[\w+=,.@:/-]`).
fn generate_external_id() -> String {
    let mut b = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

/// What a store's generated fields (the catalog's `generated_if_absent`: aws `external_id`) hold.
#[derive(Debug, Default)]
pub(super) struct Generated {
    /// Generated now: the answer shows it, once.
    pub shown_once: Option<String>,
    /// The id a pending onboarding issued (taken, or given back by the body): the role is assumed first.
    pub onboarded: Option<String>,
}

impl CredentialService {
    /// Fills `fields`' absent generated fields: the id a pending onboarding issued for `key`'s connection,
    /// else a new one. A body that gives the onboarding's id itself is treated as taking it.
    pub(super) async fn generated_fields(
        &self,
        key: &ConnectionKey,
        fields: &mut Map<String, Value>,
    ) -> Result<Generated, CredentialError> {
        let mut out = Generated::default();
        for field in key.spec().fields.iter().filter(|f| f.generated_if_absent) {
            let issued = self.issued_external_id(key).await?;
            match (fields.get(field.name).and_then(Value::as_str), issued) {
                (None, Some(id)) => {
                    fields.insert(field.name.to_string(), Value::String(id.clone()));
                    out.onboarded = Some(id);
                }
                (None, None) => {
                    let id = out.shown_once.insert(generate_external_id()).clone();
                    fields.insert(field.name.to_string(), Value::String(id));
                }
                (Some(given), Some(id)) if given == id => out.onboarded = Some(id),
                // The user's own id: stored as given, the onboarding left pending.
                (Some(_), _) => {}
            }
        }
        Ok(out)
    }

    /// The external id issued for `key`'s connection and not used yet, if any.
    async fn issued_external_id(&self, key: &ConnectionKey) -> Result<Option<String>, CredentialError> {
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
