//! AWS onboarding (`docs/CONNECT.md`, "AWS onboarding"): before the user creates the role, Tokenkeeper
//! issues the external id the role's trust policy must require (kept in SQL for the org and connection
//! name), and hands out what the user needs to create the role: the principal to trust, the trust policy,
//! a CloudFormation template, and the console's quick-create link for the operator's copy of the template.
//! The later `PUT /api/tokens/aws` of the same connection takes that external id (`credentials/store.rs`).

use serde_json::{Value, json};

use super::{ConnectError, ConnectService, flow};
use crate::audit::{Event, EventKind, Outcome};
use crate::clock::Timestamp;
use crate::config::{AwsSettings, ConnectSettings};
use crate::credentials::Caller;
use crate::db::Onboarding;
use crate::providers::{self, Connect};

/// How long an issued external id waits for its role: creating a role may need an AWS administrator, so
/// days, not minutes. Asking again before then gives the same id (and the same expiry).
pub const ONBOARDING_LIFETIME_MS: i64 = 7 * 24 * 3600 * 1000;
/// The permissions the template's role gets unless the user changes the parameter.
pub const DEFAULT_POLICY_ARN: &str = "arn:aws:iam::aws:policy/ReadOnlyAccess";
/// The longest session Tokenkeeper may ask for (its `TOKENKEEPER_AWS_SESSION_DURATION_SECS` tops out here).
const MAX_SESSION_SECS: u32 = 43_200;

/// What `POST /api/connect/aws` answers.
#[derive(Debug, Clone)]
pub struct AwsOnboarding {
    pub external_id: String,
    pub principal_arn: String,
    pub trust_policy: Value,
    pub cloudformation_template: Value,
    pub quick_create_url: Option<String>,
    pub expires_at: Timestamp,
}

impl ConnectService {
    /// Issues (or gives again, while pending) the external id of `caller`'s org's connection `name` of
    /// `provider` (a provider the catalog connects with a role: `Connect::AwsRole`); audited as
    /// `credential_onboard` (the connection and provider; never the external id).
    #[tracing::instrument(skip_all, fields(user = %caller.user, org = %caller.org, provider = %provider))]
    pub async fn onboard_role(
        &self,
        caller: &Caller,
        provider: &str,
        name: Option<String>,
        client_addr: &str,
    ) -> Result<AwsOnboarding, ConnectError> {
        let spec = providers::find(provider).ok_or_else(|| ConnectError::UnknownProvider(provider.to_string()))?;
        if !matches!(spec.connect, Connect::AwsRole) {
            return Err(ConnectError::NoFlow(provider.to_string()));
        }
        let name = flow::connection_name(name)?;
        // Before anything is written: without a principal there is nothing the user could do with an id.
        let principal_arn = self.principal().await?;
        let now = self.clock.now_ms();
        let fresh = Onboarding {
            org_id: caller.org.to_string(),
            provider: spec.id.to_string(),
            name: name.to_string(),
            external_id: uuid::Uuid::new_v4().to_string(),
            created_by: caller.user.to_string(),
            created_at: now,
            expires_at: now + ONBOARDING_LIFETIME_MS,
        };
        let issued = self.store.issue_onboarding(&fresh, now).await?;
        let detail = match issued.external_id == fresh.external_id {
            true => "external id issued",
            false => "pending external id given again",
        };
        self.audit
            .record(Event {
                user_id: Some(caller.user.as_str()),
                org_id: Some(caller.org.as_str()),
                kind: EventKind::CredentialOnboard,
                provider: Some(spec.id),
                connection: Some(name.as_str()),
                outcome: Outcome::Ok,
                client_addr: Some(client_addr),
                detail: Some(detail),
            })
            .await?;
        let stack = format!("tokenkeeper-{}", issued.name);
        let quick_create_url = self.settings.aws_template_url.as_deref().map(|template| {
            quick_create_url(
                &self.grants.aws.region,
                template,
                &stack,
                &issued.external_id,
                &principal_arn,
            )
        });
        Ok(AwsOnboarding {
            trust_policy: trust_policy(&principal_arn, &issued.external_id),
            cloudformation_template: cloudformation_template(&principal_arn, Some(&issued.external_id)),
            quick_create_url,
            expires_at: Timestamp::from_millis(issued.expires_at),
            external_id: issued.external_id,
            principal_arn,
        })
    }

    /// The principal users' roles trust ([`principal`]); STS's answer is kept (the keys do not change while
    /// the process runs).
    pub async fn principal(&self) -> Result<String, ConnectError> {
        if let Some(arn) = &self.settings.aws_principal_arn {
            return Ok(arn.clone());
        }
        let arn = self
            .aws_principal
            .get_or_try_init(|| principal(&self.settings, &self.grants.aws, &self.http))
            .await?;
        Ok(arn.clone())
    }
}

/// The principal users' roles trust: `TOKENKEEPER_AWS_PRINCIPAL_ARN`, else who Tokenkeeper's own AWS
/// credentials are (STS `GetCallerIdentity`).
pub async fn principal(
    settings: &ConnectSettings,
    aws: &AwsSettings,
    http: &reqwest::Client,
) -> Result<String, ConnectError> {
    if let Some(arn) = &settings.aws_principal_arn {
        return Ok(arn.clone());
    }
    if aws.access_key_id.is_none() || aws.secret_access_key.is_none() {
        return Err(ConnectError::NotConfigured(
            "TOKENKEEPER_AWS_PRINCIPAL_ARN (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)".into(),
        ));
    }
    crate::refresh::grants::sts::caller_identity(aws, http)
        .await
        .map(|arn| trustable(&arn))
        .map_err(|e| {
            tracing::warn!(error = %e, "STS GetCallerIdentity failed");
            ConnectError::PrincipalUnavailable(e.reason().to_string())
        })
}

/// A trust policy cannot name an STS session (`arn:aws:sts::<account>:assumed-role/<role>/<session>`, what
/// `GetCallerIdentity` answers for keys of an assumed role): it names the role. (A role with a path needs
/// `TOKENKEEPER_AWS_PRINCIPAL_ARN`: the session ARN does not carry the path.)
fn trustable(arn: &str) -> String {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    if let [_, partition, "sts", _, account, resource] = parts.as_slice()
        && let Some(rest) = resource.strip_prefix("assumed-role/")
        && let Some((role, _session)) = rest.split_once('/')
    {
        return format!("arn:{partition}:iam::{account}:role/{role}");
    }
    arn.to_string()
}

/// The role's trust policy: `principal` may assume it, only with `external_id`.
pub fn trust_policy(principal: &str, external_id: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"AWS": principal},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"sts:ExternalId": external_id}},
        }],
    })
}

/// A CloudFormation template (JSON) for the role: parameters for the external id (defaulting to
/// `external_id` when given: the operator's shared copy has none), the trusted principal and the managed
/// policies (`ReadOnlyAccess`); the role's ARN as the stack's output.
pub fn cloudformation_template(principal: &str, external_id: Option<&str>) -> Value {
    let mut external = json!({
        "Type": "String",
        "Description": "The external id Tokenkeeper issued for this connection (POST /api/connect/aws)",
        "MinLength": 2,
        "MaxLength": 1224,
        "AllowedPattern": "[\\w+=,.@:/-]*",
    });
    if let Some(id) = external_id {
        external["Default"] = json!(id);
    }
    json!({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "An IAM role Tokenkeeper assumes (STS AssumeRole with an external id) to read this account",
        "Parameters": {
            "ExternalId": external,
            "TrustedPrincipalArn": {
                "Type": "String",
                "Description": "Tokenkeeper's AWS identity, the only principal allowed to assume the role",
                "Default": principal,
            },
            "ManagedPolicyArns": {
                "Type": "CommaDelimitedList",
                "Description": "What the role may do",
                "Default": DEFAULT_POLICY_ARN,
            },
        },
        "Resources": {
            "TokenkeeperRole": {
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "AssumeRolePolicyDocument": {
                        "Version": "2012-10-17",
                        "Statement": [{
                            "Effect": "Allow",
                            "Principal": {"AWS": {"Ref": "TrustedPrincipalArn"}},
                            "Action": "sts:AssumeRole",
                            "Condition": {"StringEquals": {"sts:ExternalId": {"Ref": "ExternalId"}}},
                        }],
                    },
                    "ManagedPolicyArns": {"Ref": "ManagedPolicyArns"},
                    "MaxSessionDuration": MAX_SESSION_SECS,
                },
            },
        },
        "Outputs": {
            "RoleArn": {
                "Description": "Give this to Tokenkeeper: PUT /api/tokens/aws {\"role_arn\": ...}",
                "Value": {"Fn::GetAtt": ["TokenkeeperRole", "Arn"]},
            },
        },
    })
}

/// The AWS console's quick-create link: the template at `template_url` (which CloudFormation reads from
/// S3), the stack's name and the parameters filled in; the user reviews and clicks "Create stack".
pub fn quick_create_url(region: &str, template_url: &str, stack: &str, external_id: &str, principal: &str) -> String {
    // The console reads these from the fragment, encoded like a query.
    let params = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("templateURL", template_url)
        .append_pair("stackName", stack)
        .append_pair("param_ExternalId", external_id)
        .append_pair("param_TrustedPrincipalArn", principal)
        .finish();
    let region = url::form_urlencoded::byte_serialize(region.as_bytes()).collect::<String>();
    format!("https://console.aws.amazon.com/cloudformation/home?region={region}#/stacks/create/review?{params}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_trusted_as_its_role() {
        assert_eq!(
            trustable("arn:aws:sts::123456789012:assumed-role/Deployer/i-0abc"),
            "arn:aws:iam::123456789012:role/Deployer"
        );
        assert_eq!(
            trustable("arn:aws-cn:sts::123456789012:assumed-role/R/s"),
            "arn:aws-cn:iam::123456789012:role/R"
        );
        let user = "arn:aws:iam::123456789012:user/tokenkeeper";
        assert_eq!(trustable(user), user);
    }

    #[test]
    fn quick_create_link_carries_the_parameters() {
        let url = quick_create_url(
            "eu-west-1",
            "https://bucket.s3.amazonaws.com/tk role.json",
            "tokenkeeper-default",
            "ext-1",
            "arn:aws:iam::1:user/u",
        );
        assert!(
            url.starts_with(
                "https://console.aws.amazon.com/cloudformation/home?region=eu-west-1#/stacks/create/review?"
            ),
            "{url}"
        );
        let (_, fragment_query) = url.split_once("review?").unwrap();
        let got: Vec<(String, String)> = url::form_urlencoded::parse(fragment_query.as_bytes())
            .into_owned()
            .collect();
        assert!(got.contains(&(
            "templateURL".into(),
            "https://bucket.s3.amazonaws.com/tk role.json".into()
        )));
        assert!(got.contains(&("param_ExternalId".into(), "ext-1".into())));
        assert!(got.contains(&("param_TrustedPrincipalArn".into(), "arn:aws:iam::1:user/u".into())));
    }

    #[test]
    fn the_shared_template_has_no_external_id_of_its_own() {
        let t = cloudformation_template("arn:aws:iam::1:user/u", None);
        assert!(t["Parameters"]["ExternalId"].get("Default").is_none());
        assert_eq!(t["Parameters"]["ManagedPolicyArns"]["Default"], DEFAULT_POLICY_ARN);
    }
}
