//! moto's server as a real STS, in signature-checking mode.
//!
//! ```ignore
//! let Some(moto) = Moto::shared().await else { return }; // one server per test binary
//! // moto.endpoint, moto.access_key_id / secret_access_key (an IAM user allowed sts:AssumeRole),
//! // moto.role_arn: a role trusting that user only with sts:ExternalId == moto.external_id
//! let arn = moto.create_role("r", &trust_policy_json).await; // as the account's administrator
//! let arn = moto.create_stack("s", &template_json, &[("ExternalId", "...")]).await; // output `RoleArn`
//! ```
//!
//! Start-up: `python3 -m moto.server -H 127.0.0.1 -p PORT` with authentication off (moto's default), then,
//! through moto's IAM API: an IAM user with an access key and an inline policy allowing `sts:AssumeRole`,
//! and a role whose trust policy names that user and requires the external id. Finally `POST
//! /moto-api/reset-auth` with `0` turns authentication on: from then on every request's SigV4 signature is
//! checked against the IAM user's secret (unknown key -> `InvalidClientTokenId`, wrong secret ->
//! `SignatureDoesNotMatch`) and its policies are evaluated (`AccessDenied`).
//!
//! Needs `python3` (or `$TOKENKEEPER_PYTHON`) with `moto[server]`; missing: `None` after the skip notice
//! of `support::skip` (a failure under `TOKENKEEPER_REQUIRE_ALL=1`).
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;

use super::oauth_server::{http, python_with, wait_for_http};
use super::process::{ExternalProcess, free_port};
use super::skip::Dependency;

pub const REGION: &str = "us-east-1";
pub const ACCOUNT: &str = "123456789012";
pub const USER: &str = "tokenkeeper-service";
pub const ROLE: &str = "tokenkeeper-target";
pub const EXTERNAL_ID: &str = "tk-test-external-id-0123";
/// The account's administrator (every action allowed): what a user creating roles signs with.
pub const ADMIN: &str = "account-admin";

pub struct Moto {
    /// `http://127.0.0.1:PORT/` (for `AWS_ENDPOINT_URL_STS`).
    pub endpoint: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub role_arn: String,
    pub external_id: String,
    /// The administrator's access key id and secret.
    admin: (String, String),
    log: std::path::PathBuf,
    dir: tempfile::TempDir,
    process: ExternalProcess,
}

static SHARED: tokio::sync::OnceCell<Option<Moto>> = tokio::sync::OnceCell::const_new();

impl Moto {
    pub async fn shared() -> Option<&'static Moto> {
        SHARED.get_or_init(Self::start).await.as_ref()
    }

    pub async fn start() -> Option<Moto> {
        let python = python_with(Dependency::Moto, "import moto.server, flask, werkzeug")?;
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("moto.log");
        let port = free_port();
        let mut cmd = Command::new(&python);
        cmd.args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .env_remove("INITIAL_NO_AUTH_ACTION_COUNT")
            .env("MOTO_ACCOUNT_ID", ACCOUNT)
            .env("AWS_DEFAULT_REGION", REGION);
        let process = ExternalProcess::spawn(cmd, &log);
        let endpoint = format!("http://127.0.0.1:{port}/");
        wait_for_http(&format!("{endpoint}moto-api/"), &log, Duration::from_secs(60)).await;

        // Authentication is still off: any key signs the setup calls (IAM routes by the signed service).
        let setup = ("AKIAIOSFODNN7EXAMPLE", "setup-secret");
        iam(&endpoint, setup, &[("Action", "CreateUser"), ("UserName", USER)], &log).await;
        let key = iam(
            &endpoint,
            setup,
            &[("Action", "CreateAccessKey"), ("UserName", USER)],
            &log,
        )
        .await;
        let access_key_id = xml(&key, "AccessKeyId");
        let secret_access_key = xml(&key, "SecretAccessKey");
        let allow =
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sts:AssumeRole","Resource":"*"}]}"#;
        iam(
            &endpoint,
            setup,
            &[
                ("Action", "PutUserPolicy"),
                ("UserName", USER),
                ("PolicyName", "assume"),
                ("PolicyDocument", allow),
            ],
            &log,
        )
        .await;
        iam(&endpoint, setup, &[("Action", "CreateUser"), ("UserName", ADMIN)], &log).await;
        let admin_key = iam(
            &endpoint,
            setup,
            &[("Action", "CreateAccessKey"), ("UserName", ADMIN)],
            &log,
        )
        .await;
        let everything = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
        iam(
            &endpoint,
            setup,
            &[
                ("Action", "PutUserPolicy"),
                ("UserName", ADMIN),
                ("PolicyName", "admin"),
                ("PolicyDocument", everything),
            ],
            &log,
        )
        .await;
        let trust = format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{ACCOUNT}:user/{USER}"}},"Action":"sts:AssumeRole","Condition":{{"StringEquals":{{"sts:ExternalId":"{EXTERNAL_ID}"}}}}}}]}}"#
        );
        let role = iam(
            &endpoint,
            setup,
            &[
                ("Action", "CreateRole"),
                ("RoleName", ROLE),
                ("AssumeRolePolicyDocument", &trust),
                ("MaxSessionDuration", "43200"),
            ],
            &log,
        )
        .await;
        let role_arn = xml(&role, "Arn");
        // From now on every request must be signed with a known key.
        let resp = http()
            .post(format!("{endpoint}moto-api/reset-auth"))
            .body("0")
            .send()
            .await
            .expect("moto reset-auth");
        assert!(resp.status().is_success(), "moto reset-auth: {}", resp.status());
        Some(Moto {
            endpoint,
            access_key_id,
            secret_access_key,
            role_arn,
            external_id: EXTERNAL_ID.into(),
            admin: (xml(&admin_key, "AccessKeyId"), xml(&admin_key, "SecretAccessKey")),
            log,
            dir,
            process,
        })
    }
}

impl Moto {
    /// IAM `CreateRole` with `trust` (a policy document) as the administrator: the role's ARN.
    pub async fn create_role(&self, name: &str, trust: &str) -> String {
        let params = [
            ("Action", "CreateRole"),
            ("RoleName", name),
            ("AssumeRolePolicyDocument", trust),
        ];
        let admin = (self.admin.0.as_str(), self.admin.1.as_str());
        xml(&iam(&self.endpoint, admin, &params, &self.log).await, "Arn")
    }

    /// CloudFormation `CreateStack` of `template` with `parameters` (else their defaults) as the
    /// administrator, then `DescribeStacks`: the stack's output `RoleArn`.
    pub async fn create_stack(&self, name: &str, template: &str, parameters: &[(&str, &str)]) -> String {
        let admin = (self.admin.0.as_str(), self.admin.1.as_str());
        let mut create = vec![
            ("Action".to_string(), "CreateStack".to_string()),
            ("StackName".to_string(), name.to_string()),
            ("TemplateBody".to_string(), template.to_string()),
        ];
        for (i, (key, value)) in parameters.iter().enumerate() {
            create.push((format!("Parameters.member.{}.ParameterKey", i + 1), key.to_string()));
            create.push((format!("Parameters.member.{}.ParameterValue", i + 1), value.to_string()));
        }
        let create: Vec<(&str, &str)> = create.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        call(&self.endpoint, admin, CLOUDFORMATION, &create, &self.log).await;
        let describe = [("Action", "DescribeStacks"), ("StackName", name)];
        let stacks = call(&self.endpoint, admin, CLOUDFORMATION, &describe, &self.log).await;
        assert!(stacks.contains("CREATE_COMPLETE"), "stack {name}: {stacks}");
        // Tokenkeeper's template has one output.
        assert!(
            stacks.contains("<OutputKey>RoleArn</OutputKey>"),
            "no RoleArn output: {stacks}"
        );
        xml(&stacks, "OutputValue")
    }
}

/// An AWS query API: the name SigV4 signs with (moto routes by it) and the API version.
type Api = (&'static str, &'static str);
const IAM: Api = ("iam", "2010-05-08");
const CLOUDFORMATION: Api = ("cloudformation", "2010-05-15");

/// A SigV4-signed IAM query call; panics (with moto's log) on failure; returns the XML answer.
async fn iam(endpoint: &str, key: (&str, &str), params: &[(&str, &str)], log: &Path) -> String {
    call(endpoint, key, IAM, params, log).await
}

/// A SigV4-signed query call to `api`; panics (with moto's log) on failure; returns the XML answer.
async fn call(endpoint: &str, key: (&str, &str), api: Api, params: &[(&str, &str)], log: &Path) -> String {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    form.extend_pairs(params).append_pair("Version", api.1);
    // Encoded as Python's `urlencode` does (`*` escaped, `~` not): moto checks the signature over the body as
    // it encodes the parsed form again.
    let body = form.finish().replace('*', "%2A").replace("%7E", "~");
    let identity = aws_credential_types::Credentials::new(key.0, key.1, None, None, "test").into();
    let params_v4 = v4::SigningParams::builder()
        .identity(&identity)
        .region(REGION)
        .name(api.0)
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let ct = "application/x-www-form-urlencoded; charset=utf-8";
    let headers = [("content-type", ct)];
    let signable = SignableRequest::new(
        "POST",
        endpoint,
        headers.iter().copied(),
        SignableBody::Bytes(body.as_bytes()),
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params_v4).unwrap().into_parts();
    let mut req = http().post(endpoint).header("content-type", ct);
    for (name, value) in instructions.headers() {
        req = req.header(name, value);
    }
    let resp = req.body(body).send().await.expect("moto IAM call");
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    assert!(
        status.is_success(),
        "moto {} {params:?}: {status} {text}\nlog:\n{}",
        api.0,
        std::fs::read_to_string(log).unwrap_or_default()
    );
    text
}

fn xml(doc: &str, tag: &str) -> String {
    let open = format!("<{tag}>");
    let (_, after) = doc.split_once(&open).unwrap_or_else(|| panic!("no <{tag}> in {doc}"));
    let (text, _) = after.split_once(&format!("</{tag}>")).expect("closing tag");
    text.trim().to_string()
}
