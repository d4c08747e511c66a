//! `aws-template`: the CloudFormation template of AWS onboarding's role, for the operator to upload to S3
//! (`TOKENKEEPER_AWS_TEMPLATE_URL`), where the quick-create links of `POST /api/connect/aws` point.

use crate::config::Settings;

/// Prints the shared template: the principal filled in, the external id left to each link's parameter.
pub async fn run(settings: &Settings) -> anyhow::Result<()> {
    let http = crate::refresh::http_client(settings.outbound_timeout);
    let principal = crate::connect::principal(&settings.connect, &settings.grants.aws, &http).await?;
    let template = crate::connect::cloudformation_template(&principal, None);
    println!("{}", serde_json::to_string_pretty(&template)?);
    Ok(())
}
