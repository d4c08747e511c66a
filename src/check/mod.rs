//! Running a provider's check (`docs/CHECKS.md`): the one request its catalog entry declares
//! ([`crate::providers::CheckSpec`]), and what its answer means ([`CheckOutcome`]).
//!
//! Stateless like [`crate::refresh`]: no SQL, no secret store. Credentials that are minted (client
//! credentials, a service-account key, an AWS role) are minted first through the refresh grants, and the
//! minted token makes the request. Nothing here branches on a provider id.

mod answer;
mod request;

use crate::config::CheckSettings;
use crate::net::SafeFetcher;
use crate::providers::{CheckAuth, ProviderSpec, RefreshKind, TokenData};
use crate::refresh::{GrantContext, GrantError, refresh_kind_for};

pub use answer::read_answer;

/// What a check found. `detail` is short and fixed or a provider's error code: never a body or a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckOutcome {
    /// The provider accepted the credential.
    Accepted { detail: String },
    /// The provider refused it (401/403 or its own "invalid"): the user must connect it again.
    Rejected { detail: String },
    /// No usable answer: the provider could not be reached, timed out, or failed (5xx, 429, ...).
    Unreachable { detail: String },
    /// Not checked: an OAuth access token that has already expired (its refresh will tell).
    Skipped { detail: String },
}

impl CheckOutcome {
    pub fn detail(&self) -> &str {
        match self {
            Self::Accepted { detail }
            | Self::Rejected { detail }
            | Self::Unreachable { detail }
            | Self::Skipped { detail } => detail,
        }
    }

    fn rejected(detail: impl Into<String>) -> Self {
        Self::Rejected { detail: detail.into() }
    }

    fn unreachable(detail: impl Into<String>) -> Self {
        Self::Unreachable { detail: detail.into() }
    }
}

/// What a check needs besides the credential.
#[derive(Clone, Copy)]
pub struct CheckContext<'a> {
    /// For minting first (and the AWS settings).
    pub grants: GrantContext<'a>,
    pub settings: &'a CheckSettings,
    /// Requests to URLs users gave: only where the address policy allows.
    pub user_urls: &'a SafeFetcher,
    /// Requests to hosted APIs and to endpoints an operator configured.
    pub configured: &'a SafeFetcher,
}

/// Check `token_data`, a credential of `spec`: one request (after a mint for minted kinds), bounded by the
/// fetchers' timeout.
pub async fn check(spec: &ProviderSpec, token_data: &TokenData, ctx: &CheckContext<'_>) -> CheckOutcome {
    let outcome = run(spec, token_data, ctx).await;
    tracing::info!(provider = spec.id, outcome = ?outcome, "credential checked");
    outcome
}

async fn run(spec: &ProviderSpec, token_data: &TokenData, ctx: &CheckContext<'_>) -> CheckOutcome {
    let minted;
    let data = match refresh_kind_for(spec, token_data) {
        RefreshKind::ClientCredentials { .. } | RefreshKind::JwtBearer { .. } | RefreshKind::AwsAssumeRole => {
            match crate::refresh::refresh(spec, token_data, &ctx.grants).await {
                Ok(fresh) => {
                    minted = fresh.token_data;
                    &minted
                }
                Err(GrantError::NeedsReauth { reason }) => return CheckOutcome::rejected(reason),
                Err(e) => return CheckOutcome::unreachable(e.reason()),
            }
        }
        RefreshKind::OAuthRefreshToken { .. }
            if spec
                .expires_at_of(token_data.fields())
                .is_some_and(|at| at <= ctx.grants.now) =>
        {
            return CheckOutcome::Skipped {
                detail: "the access token has expired; its next refresh checks the credential".into(),
            };
        }
        _ => token_data,
    };
    let present = |field: &str| data.str_field(field).is_some_and(|v| !v.is_empty());
    let Some(auth) = spec.check.auth.iter().find(|parts| {
        parts.iter().all(|part| match *part {
            CheckAuth::When { field, equals } => data.str_field(field) == Some(equals),
            _ => part.fields().iter().all(|f| present(f)),
        })
    }) else {
        return CheckOutcome::rejected("the credential lacks the fields its check needs");
    };
    let (fetcher, request) = match request::build(spec, data, auth, ctx) {
        Ok(built) => built,
        Err(outcome) => return outcome,
    };
    match fetcher.send(request).await {
        Ok(answer) => read_answer(&spec.check, answer.status, &answer.body),
        Err(e) => CheckOutcome::unreachable(e.to_string()),
    }
}

/// Whether `auth` signs with AWS keys (its request's body is signed, not just carried).
fn signs(auth: &[CheckAuth]) -> bool {
    auth.iter().any(|a| matches!(a, CheckAuth::SigV4 { .. }))
}
