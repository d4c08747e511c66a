//! A check's request, built from its catalog declaration: the URL (hosted default, operator override, the
//! user's base URL or the STS endpoint), the credential in its place, the body.

use serde_json::{Map, Value};

use super::{CheckContext, CheckOutcome, signs};
use crate::net::SafeFetcher;
use crate::providers::{CheckAuth, CheckBase, CheckMethod, ProviderSpec, TokenData, fill_template};
use crate::refresh::grants::sts;

type Built<'a> = (&'a SafeFetcher, reqwest::RequestBuilder);

pub(super) fn build<'a>(
    spec: &ProviderSpec,
    data: &TokenData,
    auth: &[CheckAuth],
    ctx: &CheckContext<'a>,
) -> Result<Built<'a>, CheckOutcome> {
    let check = &spec.check;
    let (fetcher, base) = base_url(spec, data, ctx)?;
    let path = fill_template(check.path, data.fields())
        .ok_or_else(|| CheckOutcome::rejected("the credential lacks a field of the check's path"))?;
    let mut url = url::Url::parse(&format!("{}{path}", base.trim_end_matches('/')))
        .map_err(|_| CheckOutcome::rejected("the base URL is not a valid URL"))?;
    if !check.query.is_empty() {
        url.query_pairs_mut().extend_pairs(check.query);
    }
    let method = match check.method {
        CheckMethod::Get => reqwest::Method::GET,
        CheckMethod::Post => reqwest::Method::POST,
    };
    let mut req = fetcher
        .request(method, url.as_str())
        .map_err(|e| CheckOutcome::unreachable(e.to_string()))?;

    let field = |name: &str| data.str_field(name).unwrap_or_default().to_string();
    let mut form: Vec<(String, String)> = check.form.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let mut json = Map::new();
    for part in auth {
        match *part {
            CheckAuth::Bearer { field: f } => req = req.bearer_auth(field(f)),
            CheckAuth::Header { name, field: f } => req = req.header(name, field(f)),
            CheckAuth::Basic { user, password } => req = req.basic_auth(field(user), Some(field(password))),
            CheckAuth::Form { param, field: f } => form.push((param.to_string(), field(f))),
            CheckAuth::Json { member, field: f } => {
                json.insert(member.to_string(), Value::String(field(f)));
            }
            CheckAuth::SigV4 { .. } | CheckAuth::When { .. } => {}
        }
    }
    if !json.is_empty() {
        req = req.json(&json);
    }
    if !form.is_empty() || signs(auth) {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&form)
            .finish();
        if signs(auth) {
            for (name, value) in sigv4(data, url.as_str(), &body, ctx)? {
                req = req.header(name, value);
            }
        }
        req = req.header(reqwest::header::CONTENT_TYPE, sts::FORM).body(body);
    }
    Ok((fetcher, req))
}

/// The base URL and the fetcher allowed to reach it.
fn base_url<'a>(
    spec: &ProviderSpec,
    data: &TokenData,
    ctx: &CheckContext<'a>,
) -> Result<(&'a SafeFetcher, String), CheckOutcome> {
    match spec.check.base {
        CheckBase::Hosted(default) => {
            let url = match ctx.settings.api_url(spec) {
                Some(url) => url.to_string(),
                None => fill_template(default, data.fields())
                    .ok_or_else(|| CheckOutcome::rejected("the credential lacks a field of the API's URL"))?,
            };
            Ok((ctx.configured, url))
        }
        CheckBase::Field(name) => {
            let default = spec.field(name).and_then(|f| f.default);
            let url = data
                .str_field(name)
                .or(default)
                .ok_or_else(|| CheckOutcome::rejected(format!("no {name}")))?;
            Ok((ctx.user_urls, url.to_string()))
        }
        CheckBase::AwsSts => sts::endpoint(&ctx.grants.settings.aws)
            .map(|url| (ctx.configured, url))
            .map_err(|e| CheckOutcome::unreachable(e.reason())),
    }
}

/// SigV4 headers with the temporary keys the role assumption left in `data`.
fn sigv4(
    data: &TokenData,
    url: &str,
    body: &str,
    ctx: &CheckContext<'_>,
) -> Result<Vec<(String, String)>, CheckOutcome> {
    let key = |name: &str| data.str_field(name).unwrap_or_default().to_string();
    let identity = aws_credential_types::Credentials::new(
        key("access_key_id"),
        key("secret_access_key"),
        Some(key("session_token")),
        None,
        "tokenkeeper-assumed-role",
    );
    let region = ctx.grants.settings.aws.region.as_str();
    sts::signed_headers(url, region, identity, body).map_err(|e| CheckOutcome::unreachable(e.reason()))
}
