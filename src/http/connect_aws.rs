//! `POST /api/connect/aws`: AWS onboarding (`docs/CONNECT.md`, "AWS onboarding"). The external id the new
//! role's trust policy must require, issued for the org and connection name before the role exists, with
//! what the user needs to create the role; `PUT /api/tokens/aws {"role_arn"}` later uses it.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::extract::{ClientAddr, InOrg, OptionalJson, OrgHeader};
use crate::credentials::Caller;
use crate::orgs::Permission;

/// The connection the role is for; optional.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OnboardBody {
    /// The connection's name (`[a-z0-9][a-z0-9-]{0,39}`, default `default`): the later `PUT
    /// /api/tokens/aws?name=...` names it too.
    #[schema(example = "prod")]
    pub name: Option<String>,
}

/// What the user needs to create the role Tokenkeeper will assume.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Onboarding {
    /// The `sts:ExternalId` the role's trust policy requires. The same for this org and connection name
    /// until a store uses it or it expires.
    #[schema(example = "5f0c2a9e-8a53-4d7e-9a4b-3f1c8e2b7d10")]
    pub external_id: String,
    /// The principal the role trusts: `TOKENKEEPER_AWS_PRINCIPAL_ARN`, else Tokenkeeper's own AWS identity.
    #[schema(example = "arn:aws:iam::123456789012:user/tokenkeeper")]
    pub principal_arn: String,
    /// The role's trust policy (IAM policy JSON): the principal may `sts:AssumeRole` with the external id.
    #[schema(value_type = Object)]
    pub trust_policy: Value,
    /// A CloudFormation template (JSON) creating the role with `ReadOnlyAccess`; its output `RoleArn` is
    /// what `PUT /api/tokens/aws` takes.
    #[schema(value_type = Object)]
    pub cloud_formation_template: Value,
    /// The AWS console's quick-create link for the operator's copy of the template
    /// (`TOKENKEEPER_AWS_TEMPLATE_URL`), parameters filled in; `null` when that is not set.
    pub quick_create_url: Option<String>,
    /// RFC 3339: after it the external id is no longer taken by a store, and a new one is issued.
    pub expires_at: String,
}

/// Start an AWS onboarding: an external id for the org's connection, and the role to create with it.
#[utoipa::path(
    post,
    path = "/api/connect/aws",
    operation_id = "startAwsOnboarding",
    tag = "connect",
    params(OrgHeader),
    request_body(content = Option<OnboardBody>, content_type = "application/json", description = "Optional; the body may be left out"),
    security(("bearer" = []), ("authjs_session_cookie" = []), ("internal_user_id" = [], "internal_secret" = [])),
    responses(
        (status = 200, description = "The external id and the role to create", body = Onboarding),
        (status = 400, description = "A bad `name`, unknown body fields, or no principal (neither `TOKENKEEPER_AWS_PRINCIPAL_ARN` nor Tokenkeeper's AWS keys set)", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "The caller's role in the org does not allow it", body = ErrorBody),
        (status = 404, description = "An org the caller is not a member of", body = ErrorBody),
        (status = 413, description = "Request body too large", body = ErrorBody),
        (status = 415, description = "Content-Type is not application/json", body = ErrorBody),
        (status = 500, description = "Internal error (details only in the log)", body = ErrorBody),
        (status = 503, description = "The database or the audit log is unavailable, or STS could not say who Tokenkeeper is (the message names AWS's error code)", body = ErrorBody),
    ),
)]
pub(super) async fn onboard(
    State(state): State<AppState>,
    InOrg(acting): InOrg,
    ClientAddr(addr): ClientAddr,
    OptionalJson(body): OptionalJson<OnboardBody>,
) -> Result<Json<Onboarding>, ApiError> {
    acting.require(Permission::WriteConnections)?;
    let caller = Caller::new(acting.user.clone(), acting.org.clone());
    let o = state.connect.onboard_role(&caller, "aws", body.name, &addr).await?;
    Ok(Json(Onboarding {
        external_id: o.external_id,
        principal_arn: o.principal_arn,
        trust_policy: o.trust_policy,
        cloud_formation_template: o.cloudformation_template,
        quick_create_url: o.quick_create_url,
        expires_at: o.expires_at.rfc3339(),
    }))
}
