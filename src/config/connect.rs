//! `ConnectSettings`: where browsers come back to after a provider's consent page, and where they may be
//! sent on from there; what AWS onboarding tells users to trust.

use super::grants::{endpoint, plain};
use super::{ConfigError, Env, err};

pub const PUBLIC_URL_VAR: &str = "TOKENKEEPER_PUBLIC_URL";
pub const RETURN_URLS_VAR: &str = "TOKENKEEPER_CONNECT_RETURN_URLS";
pub const AWS_PRINCIPAL_VAR: &str = "TOKENKEEPER_AWS_PRINCIPAL_ARN";
pub const AWS_TEMPLATE_URL_VAR: &str = "TOKENKEEPER_AWS_TEMPLATE_URL";

#[derive(Debug, Clone)]
pub struct ConnectSettings {
    /// `TOKENKEEPER_PUBLIC_URL` without a trailing slash: the callback is `{public_url}/api/connect/callback`.
    /// Default: `http://` and the listen address.
    pub public_url: String,
    /// `TOKENKEEPER_CONNECT_RETURN_URLS` (comma-separated): a return URL must start with one of them; the
    /// first is the default. Default: `{public_url}/`.
    pub return_urls: Vec<String>,
    /// `TOKENKEEPER_AWS_PRINCIPAL_ARN`: the principal users' roles trust (else STS `GetCallerIdentity`).
    pub aws_principal_arn: Option<String>,
    /// `TOKENKEEPER_AWS_TEMPLATE_URL`: where the operator put the CloudFormation template (for the
    /// console's quick-create link).
    pub aws_template_url: Option<String>,
}

impl ConnectSettings {
    pub(super) fn from_lookup(env: Env, listen: std::net::SocketAddr) -> Result<Self, ConfigError> {
        let public_url = endpoint(env, PUBLIC_URL_VAR)?
            .map(|u| u.trim_end_matches('/').to_string())
            .unwrap_or_else(|| format!("http://{listen}"));
        let return_urls = match plain(env, RETURN_URLS_VAR)? {
            None => vec![format!("{public_url}/")],
            Some(list) => {
                let urls: Vec<String> = list
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect();
                for u in &urls {
                    let parsed = url::Url::parse(u).map_err(|e| err(RETURN_URLS_VAR, format!("{u:?}: {e}")))?;
                    if !matches!(parsed.scheme(), "https" | "http") || parsed.host_str().is_none() {
                        return Err(err(
                            RETURN_URLS_VAR,
                            format!("{u:?}: expected an http(s) URL with a host"),
                        ));
                    }
                    // A bare origin would let `https://app.example.com.evil.test` pass a prefix check.
                    if parsed.path().is_empty() || !u[parsed.scheme().len() + 3..].contains('/') {
                        return Err(err(RETURN_URLS_VAR, format!("{u:?}: end the origin with a '/'")));
                    }
                }
                if urls.is_empty() {
                    return Err(err(RETURN_URLS_VAR, "no URL given"));
                }
                urls
            }
        };
        let aws_principal_arn = plain(env, AWS_PRINCIPAL_VAR)?;
        if let Some(arn) = &aws_principal_arn
            && !arn.starts_with("arn:")
        {
            return Err(err(AWS_PRINCIPAL_VAR, "expected an ARN (arn:aws:iam::<account>:...)"));
        }
        Ok(Self {
            public_url,
            return_urls,
            aws_principal_arn,
            aws_template_url: endpoint(env, AWS_TEMPLATE_URL_VAR)?,
        })
    }

    /// `{public_url}/api/connect/callback`: the `redirect_uri` of every flow.
    pub fn callback_url(&self) -> String {
        format!("{}/api/connect/callback", self.public_url)
    }
}
