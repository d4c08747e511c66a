//! AWS onboarding (`POST /api/connect/aws`, then `PUT /api/tokens/aws {"role_arn"}`) against moto as a real
//! IAM, CloudFormation and STS (signatures and trust policies checked): the role is created with the
//! answer's trust policy (IAM `CreateRole`) or template (CloudFormation `CreateStack`), and the store
//! assumes it with the issued external id before anything is written.
//!
//! What moto enforces (moto 5.2): the trust policy's principal and a *wrong* `sts:ExternalId` (AccessDenied).
//! It lets an `AssumeRole` without any external id through, and assumes roles that do not exist, so the
//! refusals here are of roles that exist and trust someone else or another external id.

use serde_json::{Value, json};
use tokenkeeper::clock::Clock as _;

use crate::support::app::{Db, TestApp, TestConfig, error_of, spawn_app};
use crate::support::sts::{ACCOUNT, Moto, USER};

const DAY_MS: i64 = 24 * 3600 * 1000;

fn aws_config(moto: &Moto) -> TestConfig {
    TestConfig::default()
        .with("AWS_ENDPOINT_URL_STS", &moto.endpoint)
        .with("AWS_ACCESS_KEY_ID", &moto.access_key_id)
        .with("AWS_SECRET_ACCESS_KEY", &moto.secret_access_key)
        .with("AWS_REGION", "us-east-1")
}

/// `POST /api/connect/aws` with `body` as the holder of `token` in `org` (their personal org when `None`).
async fn onboard(app: &TestApp, token: &str, org: Option<&str>, body: Value) -> reqwest::Response {
    let mut req = app
        .client
        .post(app.at("/api/connect/aws"))
        .bearer_auth(token)
        .json(&body);
    if let Some(org) = org {
        req = req.header("X-Org-ID", org);
    }
    req.send().await.unwrap()
}

/// An onboarding that must succeed: the answer.
async fn onboarded(app: &TestApp, token: &str, body: Value) -> Value {
    let r = onboard(app, token, None, body).await;
    let status = r.status();
    let answer: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{answer}");
    answer
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

/// `GET /api/tokens/aws?name=...`: 200 or 404.
async fn stored(app: &TestApp, token: &str, name: &str) -> bool {
    let r = app.get_auth(&format!("/api/tokens/aws?name={name}"), token).await;
    match r.status().as_u16() {
        200 => true,
        404 => false,
        s => panic!("GET /api/tokens/aws?name={name}: {s}"),
    }
}

/// The answer's trust policy, principal and template; the role made from its trust policy with IAM
/// `CreateRole` is assumed with the issued external id when the role is stored, and the id is used up.
async fn the_role_made_from_the_trust_policy_is_assumed_with_the_issued_id(db: Db) {
    let Some(moto) = Moto::shared().await else { return };
    let Some(app) = spawn_app(db, aws_config(moto)).await else {
        return;
    };
    let (_, token) = app.user("onboard@example.com").await;
    let now = app.clock.now_ms();

    let first = onboarded(&app, &token, json!({"name": "prod"})).await;
    let external_id = text(&first["externalId"]).to_string();
    assert!(
        uuid::Uuid::parse_str(&external_id).is_ok_and(|u| u.get_version_num() == 4),
        "{external_id}"
    );
    // No TOKENKEEPER_AWS_PRINCIPAL_ARN: who Tokenkeeper's keys are, as moto's STS says.
    let principal = format!("arn:aws:iam::{ACCOUNT}:user/{USER}");
    assert_eq!(first["principalArn"], json!(principal));
    let statement = &first["trustPolicy"]["Statement"][0];
    assert_eq!(statement["Principal"]["AWS"], json!(principal));
    assert_eq!(statement["Action"], "sts:AssumeRole");
    assert_eq!(
        statement["Condition"]["StringEquals"]["sts:ExternalId"],
        json!(external_id)
    );
    let template = &first["cloudFormationTemplate"];
    assert_eq!(template["Parameters"]["ExternalId"]["Default"], json!(external_id));
    assert_eq!(
        template["Parameters"]["TrustedPrincipalArn"]["Default"],
        json!(principal)
    );
    assert_eq!(
        template["Parameters"]["ManagedPolicyArns"]["Default"],
        "arn:aws:iam::aws:policy/ReadOnlyAccess"
    );
    assert_eq!(template["Resources"]["TokenkeeperRole"]["Type"], "AWS::IAM::Role");
    assert_eq!(first["quickCreateUrl"], Value::Null, "no TOKENKEEPER_AWS_TEMPLATE_URL");
    let expires = tokenkeeper::clock::rfc3339(now + 7 * DAY_MS);
    assert_eq!(first["expiresAt"], json!(expires));

    // Asked again (even later): the same id and expiry; another connection name: another id.
    app.clock.advance_secs(3600);
    let again = onboarded(&app, &token, json!({"name": "prod"})).await;
    assert_eq!(
        (&again["externalId"], &again["expiresAt"]),
        (&first["externalId"], &first["expiresAt"])
    );
    let other = onboarded(&app, &token, json!({})).await;
    assert_ne!(other["externalId"], first["externalId"]);

    // The user creates the role with the trust policy as given.
    let role = moto
        .create_role(&format!("tk-prod-{}", db_tag(db)), &first["trustPolicy"].to_string())
        .await;
    let r = app
        .put_auth("/api/tokens/aws?name=prod", &token, json!({"role_arn": role}))
        .await;
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["generatedExternalId"],
        Value::Null,
        "the id was issued before, not now: {body}"
    );
    let r = app.get_auth("/api/tokens/aws/credentials?name=prod", &token).await;
    assert_eq!(r.status(), 200);
    let creds: Value = r.json().await.unwrap();
    let data = &creds["tokenData"];
    assert_eq!(data["external_id"], json!(external_id));
    assert_eq!(data["role_arn"], json!(role));
    assert!(text(&data["access_key_id"]).starts_with("ASIA"), "{data}");

    // Used: a new onboarding of the connection issues a new id.
    let after = onboarded(&app, &token, json!({"name": "prod"})).await;
    assert_ne!(after["externalId"], first["externalId"]);
}

/// The CloudFormation templates: the answer's, deployed as it is, and the operator's shared copy
/// (`tokenkeeper aws-template`) deployed with the quick-create link's parameters, as the AWS console would
/// (moto's CloudFormation): the store assumes either role.
async fn the_roles_made_from_the_templates_are_assumed(db: Db) {
    let Some(moto) = Moto::shared().await else { return };
    let template_url = "https://tk-templates.s3.amazonaws.com/aws-role.json";
    let cfg = aws_config(moto).with("TOKENKEEPER_AWS_TEMPLATE_URL", template_url);
    let Some(app) = spawn_app(db, cfg).await else { return };
    let (_, token) = app.user("stack@example.com").await;
    let tag = db_tag(db);

    let answer = onboarded(&app, &token, json!({})).await;
    let template = answer["cloudFormationTemplate"].to_string();
    let role = moto.create_stack(&format!("tokenkeeper-{tag}"), &template, &[]).await;
    let r = app.put_auth("/api/tokens/aws", &token, json!({"role_arn": role})).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let creds = app.credentials("aws", &token).await;
    assert_eq!(creds["tokenData"]["external_id"], answer["externalId"]);
    assert!(text(&creds["tokenData"]["session_token"]).len() > 10);

    // The operator's copy, printed by the CLI with the same AWS keys: no external id of its own.
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tokenkeeper"))
        .arg("aws-template")
        .env("TOKENKEEPER_DATA_DIR", dir.path())
        .env_remove("DATABASE_URL")
        .env_remove("VAULT_ADDR")
        .env_remove("TOKENKEEPER_AWS_PRINCIPAL_ARN")
        .env("AWS_ENDPOINT_URL_STS", &moto.endpoint)
        .env("AWS_ACCESS_KEY_ID", &moto.access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", &moto.secret_access_key)
        .env("AWS_REGION", "us-east-1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let shared: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(shared["Parameters"]["ExternalId"].get("Default").is_none(), "{shared}");
    assert_eq!(
        shared["Parameters"]["TrustedPrincipalArn"]["Default"],
        answer["principalArn"]
    );

    // A second connection, created the way its quick-create link says.
    let named = onboarded(&app, &token, json!({"name": "linked"})).await;
    let link = text(&named["quickCreateUrl"]);
    let (_, query) = link.split_once("#/stacks/create/review?").unwrap();
    let params: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    assert!(params.contains(&("templateURL".into(), template_url.into())), "{link}");
    let stack_params: Vec<(&str, &str)> = params
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("param_")?, v.as_str())))
        .collect();
    assert_eq!(stack_params.len(), 2, "{link}");
    let role = moto
        .create_stack(&format!("tokenkeeper-linked-{tag}"), &shared.to_string(), &stack_params)
        .await;
    let r = app
        .put_auth("/api/tokens/aws?name=linked", &token, json!({"role_arn": role}))
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}

/// A role that cannot be assumed (it requires another external id, or trusts another principal): 400 naming
/// AWS's error code, nothing stored, the onboarding still pending; once the role is right, it is stored.
async fn a_role_that_cannot_be_assumed_is_refused_and_nothing_stored(db: Db) {
    let Some(moto) = Moto::shared().await else { return };
    let Some(app) = spawn_app(db, aws_config(moto)).await else {
        return;
    };
    let (_, token) = app.user("refused@example.com").await;
    let answer = onboarded(&app, &token, json!({})).await;
    let external_id = text(&answer["externalId"]).to_string();
    let principal = text(&answer["principalArn"]).to_string();
    let tag = db_tag(db);

    let other_id = trust_other_id(&principal);
    let other_principal =
        tokenkeeper::connect::trust_policy(&format!("arn:aws:iam::{ACCOUNT}:user/someone-else"), &external_id);
    for (name, trust) in [("other-id", other_id), ("other-principal", other_principal)] {
        let role = moto.create_role(&format!("tk-{name}-{tag}"), &trust.to_string()).await;
        let r = app.put_auth("/api/tokens/aws", &token, json!({"role_arn": role})).await;
        assert_eq!(r.status(), 400, "{name}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["detail"], "AccessDenied", "{name}: {body}");
        assert_eq!(body["provider"], "aws", "{name}: {body}");
        assert!(text(&body["error"]).contains("aws"), "{name}: {body}");
        assert!(!stored(&app, &token, "default").await, "{name}: nothing stored");
    }
    // The onboarding's id given back in the body is the onboarding's too: the role is assumed first.
    let role = moto
        .create_role(&format!("tk-echo-{tag}"), &trust_other_id(&principal).to_string())
        .await;
    let body = json!({"role_arn": role, "external_id": external_id});
    let r = app.put_auth("/api/tokens/aws", &token, body).await;
    assert_eq!(
        r.status(),
        400,
        "the body's copy of the issued id is assumed with first"
    );
    assert!(!stored(&app, &token, "default").await);
    // Still pending: the same id; the role fixed, the store goes through.
    let again = onboarded(&app, &token, json!({})).await;
    assert_eq!(again["externalId"], json!(external_id));
    let role = moto
        .create_role(&format!("tk-fixed-{tag}"), &answer["trustPolicy"].to_string())
        .await;
    let r = app.put_auth("/api/tokens/aws", &token, json!({"role_arn": role})).await;
    assert_eq!(r.status(), 200);
    assert!(stored(&app, &token, "default").await);
}

/// With checks on store (the deployment default; the suite turns them off): the check assumes the onboarded
/// role (with the issued id) and calls `GetCallerIdentity` with its keys; refused the same way, accepted as
/// `active`.
async fn with_checks_on_the_check_assumes_the_onboarded_role(db: Db) {
    let Some(moto) = Moto::shared().await else { return };
    let cfg = aws_config(moto).with("TOKENKEEPER_CHECK_ON_STORE", "true");
    let Some(app) = spawn_app(db, cfg).await else { return };
    let (_, token) = app.user("checked@example.com").await;
    let answer = onboarded(&app, &token, json!({})).await;
    let principal = text(&answer["principalArn"]).to_string();
    let tag = db_tag(db);
    let role = moto
        .create_role(
            &format!("tk-checked-bad-{tag}"),
            &trust_other_id(&principal).to_string(),
        )
        .await;
    let r = app.put_auth("/api/tokens/aws", &token, json!({"role_arn": role})).await;
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["detail"], "AccessDenied", "{body}");
    assert!(!stored(&app, &token, "default").await);
    let role = moto
        .create_role(&format!("tk-checked-{tag}"), &answer["trustPolicy"].to_string())
        .await;
    let r = app.put_auth("/api/tokens/aws", &token, json!({"role_arn": role})).await;
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "active", "{body}");
}

/// With `TOKENKEEPER_AWS_PRINCIPAL_ARN` and `_TEMPLATE_URL`: no STS call for the principal, and the
/// quick-create link. Roles in the org: editor yes, viewer 403; an org the caller is not in 404; bad
/// bodies 400; an expired onboarding is not used (the store generates a new id, shown once).
async fn onboarding_settings_roles_and_bad_input(db: Db) {
    let principal = "arn:aws:iam::210987654321:role/tokenkeeper-prod";
    let template_url = "https://tk-templates.s3.amazonaws.com/aws-role.json";
    let logs = tempfile::tempdir().unwrap();
    let audit_log = logs.path().join("audit.log");
    let cfg = TestConfig::default()
        .with("TOKENKEEPER_AUDIT_LOG", audit_log.to_str().unwrap())
        .with("TOKENKEEPER_AWS_PRINCIPAL_ARN", principal)
        .with("TOKENKEEPER_AWS_TEMPLATE_URL", template_url)
        .with("AWS_REGION", "eu-west-1");
    let Some(app) = spawn_app(db, cfg).await else { return };
    let (_, admin) = app.user("admin@example.com").await;
    let answer = onboarded(&app, &admin, json!({"name": "prod"})).await;
    assert_eq!(answer["principalArn"], principal);
    let link = text(&answer["quickCreateUrl"]);
    let prefix = "https://console.aws.amazon.com/cloudformation/home?region=eu-west-1#/stacks/create/review?";
    let query = link.strip_prefix(prefix).unwrap_or_else(|| panic!("{link}"));
    let params: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    for (k, v) in [
        ("templateURL", template_url),
        ("stackName", "tokenkeeper-prod"),
        ("param_ExternalId", text(&answer["externalId"])),
        ("param_TrustedPrincipalArn", principal),
    ] {
        assert!(params.contains(&(k.to_string(), v.to_string())), "{k} in {link}");
    }

    // Audited, in the trail and the JSON-lines log: the provider and the connection, never the external id.
    let again = onboarded(&app, &admin, json!({"name": "prod"})).await;
    assert_eq!(again["externalId"], answer["externalId"]);
    let external_id = text(&answer["externalId"]);
    let page: Value = app.get_auth("/api/audit", &admin).await.json().await.unwrap();
    let onboards: Vec<Value> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "credential_onboard")
        .map(|e| json!([e["provider"], e["name"], e["outcome"], e["detail"]]))
        .collect();
    assert_eq!(
        onboards,
        [
            json!(["aws", "prod", "ok", "pending external id given again"]),
            json!(["aws", "prod", "ok", "external id issued"]),
        ],
        "{page}"
    );
    assert!(!page.to_string().contains(external_id), "{page}");
    let log = std::fs::read_to_string(&audit_log).unwrap();
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|l| l["event"] == "credential_onboard")
        .collect();
    assert_eq!(lines.len(), 2, "{log}");
    assert!(
        lines
            .iter()
            .all(|l| l["provider"] == "aws" && l["connection"] == "prod"),
        "{log}"
    );
    assert!(!log.contains(external_id), "{log}");

    // A shared org: an editor may, a viewer may not; a stranger does not see the org.
    let org: Value = app
        .post_auth("/api/orgs", &admin, json!({"name": "Team"}))
        .await
        .json()
        .await
        .unwrap();
    let org = text(&org["id"]).to_string();
    let (mut tokens, mut ids) = (Vec::new(), Vec::new());
    for (email, role) in [("editor@example.com", "editor"), ("viewer@example.com", "viewer")] {
        let (id, t) = app.user(email).await;
        ids.push(id);
        let add = json!({"email": email, "role": role});
        let r = app.post_auth(&format!("/api/orgs/{org}/members"), &admin, add).await;
        assert_eq!(r.status(), 201);
        tokens.push(t);
    }
    let in_org = onboard(&app, &tokens[0], Some(&org), json!({"name": "prod"})).await;
    assert_eq!(in_org.status(), 200);
    let in_org: Value = in_org.json().await.unwrap();
    assert_ne!(in_org["externalId"], answer["externalId"], "per org");
    let r = app
        .client
        .get(app.at("/api/audit?scope=org"))
        .bearer_auth(&admin)
        .header("X-Org-ID", &org)
        .send()
        .await
        .unwrap();
    let org_page: Value = r.json().await.unwrap();
    let editor_id = org_page["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "credential_onboard")
        .map(|e| e["userId"].clone());
    assert_eq!(
        editor_id,
        Some(json!(ids[0])),
        "the editor's onboarding in the org's trail: {org_page}"
    );
    let viewer = onboard(&app, &tokens[1], Some(&org), json!({"name": "prod"})).await;
    assert_eq!(viewer.status(), 403);
    let (_, stranger) = app.user("stranger@example.com").await;
    assert_eq!(onboard(&app, &stranger, Some(&org), json!({})).await.status(), 404);
    let unknown = "org-00000000000000000000000000000000";
    assert_eq!(onboard(&app, &admin, Some(unknown), json!({})).await.status(), 404);

    for (body, message) in [
        (json!({"name": "Not Valid"}), "name must be"),
        (json!({"name": "x".repeat(41)}), "name must be"),
        (json!({"returnUrl": "https://app.example.com/"}), "unknown field"),
    ] {
        let r = onboard(&app, &admin, None, body.clone()).await;
        assert_eq!(r.status(), 400, "{body}");
        assert!(error_of(r).await.contains(message), "{body}");
    }
    assert_eq!(app.post("/api/connect/aws", json!({})).await.status(), 401);

    // Eight days later the onboarding has expired: the store does not take its id (were it taken, the store
    // would assume the role first, at the closed port the test STS endpoint is: 502), and a new onboarding
    // issues a new one. (Sessions expired too: sign in again.)
    app.clock.advance_secs(8 * 24 * 3600);
    let admin = app.login("admin@example.com", "correct-horse-battery").await;
    let role = json!({"role_arn": "arn:aws:iam::123456789012:role/reader"});
    let r = app.put_auth("/api/tokens/aws?name=prod", &admin, role).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let generated = text(&body["generatedExternalId"]);
    assert_ne!(generated, text(&answer["externalId"]));
    let fresh = onboarded(&app, &admin, json!({"name": "prod"})).await;
    assert_ne!(fresh["externalId"], answer["externalId"]);
}

/// Without a principal setting or AWS keys there is nothing to trust: 400 naming the setting. With keys but
/// STS unreachable (the test default: a closed port): 503 naming the variable that would do without STS.
async fn onboarding_without_a_principal_names_the_setting(db: Db) {
    let mut cfg = TestConfig::default();
    cfg.env.remove("AWS_ACCESS_KEY_ID");
    cfg.env.remove("AWS_SECRET_ACCESS_KEY");
    let Some(app) = spawn_app(db, cfg).await else { return };
    let (_, token) = app.user("nokeys@example.com").await;
    let r = onboard(&app, &token, None, json!({})).await;
    assert_eq!(r.status(), 400);
    assert!(error_of(r).await.contains("TOKENKEEPER_AWS_PRINCIPAL_ARN"));

    let Some(app) = spawn_app(db, TestConfig::default()).await else {
        return;
    };
    let (_, token) = app.user("nosts@example.com").await;
    let r = onboard(&app, &token, None, json!({})).await;
    assert_eq!(r.status(), 503);
    let e = error_of(r).await;
    assert!(
        e.contains("GetCallerIdentity") && e.contains("TOKENKEEPER_AWS_PRINCIPAL_ARN"),
        "{e}"
    );
}

/// Requests at once for one connection (on two instances sharing the database when on PostgreSQL) get one
/// external id: one statement decides.
async fn requests_at_once_get_one_external_id(db: Db) {
    let cfg = || TestConfig::default().with("TOKENKEEPER_AWS_PRINCIPAL_ARN", "arn:aws:iam::210987654321:role/tk");
    let Some(app) = spawn_app(db, cfg()).await else { return };
    let other = match db {
        Db::Postgres => Some(crate::support::app::spawn_sibling(&app, cfg()).await),
        Db::Sqlite => None,
    };
    let (_, token) = app.user("race@example.com").await;
    let answers = futures::future::join_all((0..8).map(|i| {
        let target = match (&other, i % 2) {
            (Some(o), 1) => o,
            _ => &app,
        };
        onboard(target, &token, None, json!({"name": "race"}))
    }))
    .await;
    let mut ids = std::collections::BTreeSet::new();
    for r in answers {
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        ids.insert(text(&body["externalId"]).to_string());
    }
    assert_eq!(ids.len(), 1, "{ids:?}");
}

/// A trust policy for `principal` that requires an external id nobody was issued.
fn trust_other_id(principal: &str) -> Value {
    tokenkeeper::connect::trust_policy(principal, "some-other-external-id")
}

/// Moto is shared by every test of the binary: role and stack names differ per backend.
fn db_tag(db: Db) -> &'static str {
    match db {
        Db::Sqlite => "sqlite",
        Db::Postgres => "postgres",
    }
}

crate::on_both_backends!(
    the_role_made_from_the_trust_policy_is_assumed_with_the_issued_id,
    the_roles_made_from_the_templates_are_assumed,
    a_role_that_cannot_be_assumed_is_refused_and_nothing_stored,
    onboarding_settings_roles_and_bad_input,
    onboarding_without_a_principal_names_the_setting,
    requests_at_once_get_one_external_id,
    with_checks_on_the_check_assumes_the_onboarded_role,
);
