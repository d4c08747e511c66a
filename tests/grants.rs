//! The grant layer (`tokenkeeper::refresh::grants`) against real servers: django-oauth-toolkit (rotating,
//! single-use refresh tokens with reuse protection), moto's STS (signature checking on), and a local fake
//! for the shapes only the real providers answer with (Slack, Azure, Bitbucket, Google, failures).
//!
//! External servers (python + django-oauth-toolkit, moto) follow the skip rule of `support::skip`.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};
use tokenkeeper::config::{GrantSettings, ProviderGrantSettings, SESSION_DURATION_VAR, Settings};
use tokenkeeper::providers::{self, ProviderSpec, RefreshKind, TokenData};
use tokenkeeper::refresh::grants::{self, GrantContext, GrantError, Refreshed};

use support::fake_provider::{self as fake, FakeProvider};
use support::oauth_server::OAuthServer;
use support::sts::Moto;

const NOW: i64 = 1_900_000_000;
const USER: &str = "user123";

/// The grants' settings, read from these variables as at start-up.
fn settings(vars: &[(&str, &str)]) -> GrantSettings {
    let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    Settings::from_lookup(&|k| map.get(k).cloned())
        .expect("settings")
        .grants
}

fn spec(id: &str) -> &'static ProviderSpec {
    providers::find(id).expect("provider in catalog")
}

fn data(v: Value) -> TokenData {
    match v {
        Value::Object(m) => TokenData::new(m),
        _ => panic!("token data must be an object"),
    }
}

async fn refresh_at(
    provider: &str,
    token_data: &TokenData,
    settings: &GrantSettings,
    now: i64,
    timeout: Duration,
) -> Result<Refreshed, GrantError> {
    let http = grants::http_client(timeout);
    let ctx = GrantContext {
        http: &http,
        settings,
        now,
        user_id: USER,
    };
    grants::refresh(spec(provider), token_data, &ctx).await
}

async fn refresh(provider: &str, token_data: &TokenData, settings: &GrantSettings) -> Result<Refreshed, GrantError> {
    refresh_at(provider, token_data, settings, NOW, Duration::from_secs(10)).await
}

fn reauth(reason: &str) -> GrantError {
    GrantError::NeedsReauth { reason: reason.into() }
}

fn transient(reason: &str) -> GrantError {
    GrantError::Transient { reason: reason.into() }
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("{v} is not a string"))
}

// ------------------------------------------------------------------------------------------------------
// django-oauth-toolkit

#[tokio::test]
async fn dot_refresh_grant_rotates_and_reuse_is_refused() {
    let Some(dot) = OAuthServer::shared().await else { return };
    let client = dot.new_client("password").await;
    let pair = dot.password_tokens(&client).await;
    let settings = settings(&[
        ("TOKENKEEPER_GCP_TOKEN_URL", &dot.token_url),
        ("TOKENKEEPER_GCP_CLIENT_ID", &client.client_id),
        ("TOKENKEEPER_GCP_CLIENT_SECRET", &client.client_secret),
    ]);
    let old = data(
        json!({"access_token": pair.access_token, "refresh_token": pair.refresh_token,
                          "expires_at": NOW - 10, "email": "user@example.com"}),
    );

    let fresh = refresh("gcp", &old, &settings).await.expect("refresh");
    let t = &fresh.token_data;
    assert_ne!(s(&t["access_token"]), pair.access_token);
    assert_ne!(
        s(&t["refresh_token"]),
        pair.refresh_token,
        "DOT rotates: the new refresh token is stored"
    );
    assert_eq!(
        t["expires_at"],
        json!(NOW + support::oauth_server::ACCESS_TOKEN_SECONDS)
    );
    assert_eq!(
        fresh.expires_at,
        Some(NOW + support::oauth_server::ACCESS_TOKEN_SECONDS)
    );
    assert_eq!(t["email"], "user@example.com", "other fields are kept");
    assert_eq!(t.len(), old.len(), "same shape");
    let stats = dot.stats(&client.client_id).await;
    assert_eq!((stats.refresh_grants(), stats.refresh_ok), (1, 1));
    assert_eq!((stats.refresh_token_reuse, stats.family_revocations), (0, 0));

    // The old refresh token was single-use: presenting it again is refused, and reuse protection revokes the
    // family, the rotated token included.
    assert_eq!(
        refresh("gcp", &old, &settings).await.unwrap_err(),
        reauth("invalid_grant")
    );
    let stats = dot.stats(&client.client_id).await;
    assert_eq!((stats.refresh_token_reuse, stats.family_revocations), (1, 1));
    assert_eq!(
        refresh("gcp", &fresh.token_data, &settings).await.unwrap_err(),
        reauth("invalid_grant")
    );
}

#[tokio::test]
async fn dot_rotating_chain_never_reuses_a_refresh_token() {
    let Some(dot) = OAuthServer::shared().await else { return };
    let client = dot.new_client("password").await;
    let pair = dot.password_tokens(&client).await;
    let settings = settings(&[
        ("TOKENKEEPER_SLACK_TOKEN_URL", &dot.token_url),
        ("TOKENKEEPER_SLACK_CLIENT_ID", &client.client_id),
        ("TOKENKEEPER_SLACK_CLIENT_SECRET", &client.client_secret),
    ]);
    let mut current = data(
        json!({"access_token": pair.access_token, "refresh_token": pair.refresh_token,
                                  "expires_at": NOW, "team_id": "T0123456789"}),
    );
    let mut seen = vec![pair.refresh_token.clone()];
    for i in 0..5 {
        let fresh = refresh_at("slack", &current, &settings, NOW + i * 100, Duration::from_secs(10))
            .await
            .expect("refresh");
        let rt = s(&fresh.token_data["refresh_token"]).to_string();
        assert!(!seen.contains(&rt));
        seen.push(rt);
        assert_eq!(fresh.token_data["team_id"], "T0123456789");
        current = fresh.token_data;
    }
    let stats = dot.stats(&client.client_id).await;
    assert_eq!((stats.refresh_ok, stats.refresh_failed), (5, 0));
    assert_eq!((stats.refresh_token_reuse, stats.family_revocations), (0, 0));
}

#[tokio::test]
async fn dot_http_basic_client_auth() {
    let Some(dot) = OAuthServer::shared().await else { return };
    let client = dot.new_client("password").await;
    let pair = dot.password_tokens(&client).await;
    let good = settings(&[
        ("TOKENKEEPER_BITBUCKET_TOKEN_URL", &dot.token_url),
        ("TOKENKEEPER_BITBUCKET_CLIENT_ID", &client.client_id),
        ("TOKENKEEPER_BITBUCKET_CLIENT_SECRET", &client.client_secret),
    ]);
    let bad = settings(&[
        ("TOKENKEEPER_BITBUCKET_TOKEN_URL", &dot.token_url),
        ("TOKENKEEPER_BITBUCKET_CLIENT_ID", &client.client_id),
        ("TOKENKEEPER_BITBUCKET_CLIENT_SECRET", "wrong-secret"),
    ]);
    let old = data(
        json!({"access_token": pair.access_token, "refresh_token": pair.refresh_token,
                          "expires_at": "1893456000", "email": "dev@example.com"}),
    );
    assert_eq!(
        refresh("bitbucket", &old, &bad).await.unwrap_err(),
        reauth("invalid_client")
    );
    let fresh = refresh("bitbucket", &old, &good)
        .await
        .expect("refresh with HTTP Basic");
    assert_ne!(s(&fresh.token_data["refresh_token"]), pair.refresh_token);
    assert!(
        fresh.token_data["expires_at"].is_i64(),
        "expires_at is stored as an integer"
    );
    let stats = dot.stats(&client.client_id).await;
    assert_eq!((stats.refresh_ok, stats.refresh_failed), (1, 1));
    assert_eq!(stats.errors.get("invalid_client"), Some(&1));
}

#[tokio::test]
async fn dot_client_credentials() {
    let Some(dot) = OAuthServer::shared().await else { return };
    let client = dot.new_client("client-credentials").await;
    let settings = settings(&[("TOKENKEEPER_TAILSCALE_TOKEN_URL", &dot.token_url)]);
    let stored = data(json!({"client_id": client.client_id, "client_secret": client.client_secret, "tailnet": "-"}));
    let fresh = refresh("tailscale", &stored, &settings)
        .await
        .expect("client_credentials");
    let t = &fresh.token_data;
    assert!(!s(&t["access_token"]).is_empty());
    assert_eq!(
        t["expires_at"],
        json!(NOW + support::oauth_server::ACCESS_TOKEN_SECONDS)
    );
    for k in ["client_id", "client_secret", "tailnet"] {
        assert_eq!(t[k], stored[k], "{k} kept");
    }
    assert_eq!(t.len(), 5);

    let wrong = stored.with([("client_secret", json!("not-the-secret"))]);
    assert_eq!(
        refresh("tailscale", &wrong, &settings).await.unwrap_err(),
        reauth("invalid_client")
    );
    let stats = dot.stats(&client.client_id).await;
    assert_eq!(stats.grants.get("client_credentials"), Some(&2));
}

#[tokio::test]
async fn dot_client_stored_with_the_credential_wins_over_settings() {
    let Some(dot) = OAuthServer::shared().await else { return };
    let client = dot.new_client("password").await;
    let pair = dot.password_tokens(&client).await;
    let settings = settings(&[
        ("TOKENKEEPER_GCP_TOKEN_URL", &dot.token_url),
        ("TOKENKEEPER_GCP_CLIENT_ID", "some-other-client"),
        ("TOKENKEEPER_GCP_CLIENT_SECRET", "some-other-secret"),
    ]);
    let old = data(
        json!({"access_token": pair.access_token, "refresh_token": pair.refresh_token,
                          "client_id": client.client_id, "client_secret": client.client_secret}),
    );
    let fresh = refresh("gcp", &old, &settings)
        .await
        .expect("refresh with the stored client");
    assert_eq!(fresh.token_data["client_id"], json!(client.client_id));
}

// ------------------------------------------------------------------------------------------------------
// moto STS

fn aws_settings(moto: &Moto, secret: &str, extra: &[(&str, &str)]) -> GrantSettings {
    let mut vars = vec![
        ("AWS_ENDPOINT_URL_STS", moto.endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", moto.access_key_id.as_str()),
        ("AWS_SECRET_ACCESS_KEY", secret),
        ("AWS_REGION", "us-east-1"),
    ];
    vars.extend_from_slice(extra);
    settings(&vars)
}

fn wall_clock() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(tokenkeeper::clock::secs_i64)
        .unwrap()
}

#[tokio::test]
async fn sts_assume_role_returns_working_temporary_keys() {
    let Some(moto) = Moto::shared().await else { return };
    let settings = aws_settings(moto, &moto.secret_access_key, &[]);
    let stored = data(json!({"role_arn": moto.role_arn, "external_id": moto.external_id}));
    let now = wall_clock();
    let fresh = refresh_at("aws", &stored, &settings, now, Duration::from_secs(10))
        .await
        .expect("AssumeRole");
    let t = &fresh.token_data;
    assert!(s(&t["access_key_id"]).starts_with("ASIA"), "{}", t["access_key_id"]);
    assert!(!s(&t["secret_access_key"]).is_empty());
    assert!(!s(&t["session_token"]).is_empty());
    assert_eq!(t["role_arn"], json!(moto.role_arn));
    assert_eq!(t["external_id"], json!(moto.external_id));
    let expires_at = fresh.expires_at.unwrap();
    assert_eq!(t["expires_at"], json!(expires_at));
    assert_eq!(grants::parse_iso8601_utc(s(&t["expiration"])), Some(expires_at));
    assert!(
        (expires_at - (now + 3600)).abs() < 120,
        "default duration 3600 s: {expires_at} vs {now}"
    );

    // The temporary keys work, and name the user in the session.
    let creds = (
        s(&t["access_key_id"]).to_string(),
        s(&t["secret_access_key"]).to_string(),
        s(&t["session_token"]).to_string(),
    );
    let who = caller_identity(&moto.endpoint, &creds).await;
    assert!(
        who.contains(&format!("assumed-role/{}/tokenkeeper-{USER}", support::sts::ROLE)),
        "{who}"
    );
}

#[tokio::test]
async fn sts_session_duration_setting_is_clamped() {
    let Some(moto) = Moto::shared().await else { return };
    let stored = data(json!({"role_arn": moto.role_arn, "external_id": moto.external_id}));
    for (setting, expected) in [("900", 900), ("60", 900), ("7200", 7200)] {
        let settings = aws_settings(moto, &moto.secret_access_key, &[(SESSION_DURATION_VAR, setting)]);
        assert_eq!(settings.aws.session_duration_secs, expected);
        let now = wall_clock();
        let fresh = refresh_at("aws", &stored, &settings, now, Duration::from_secs(10))
            .await
            .expect("AssumeRole");
        let got = fresh.expires_at.unwrap() - now;
        assert!((got - i64::from(expected)).abs() < 120, "{setting}: lifetime {got}");
    }
    let none = aws_settings(moto, &moto.secret_access_key, &[]);
    assert_eq!(none.aws.session_duration_secs, 3600);
    let huge = aws_settings(moto, &moto.secret_access_key, &[(SESSION_DURATION_VAR, "999999")]);
    assert_eq!(huge.aws.session_duration_secs, 43200);
}

#[tokio::test]
async fn sts_wrong_credentials_need_reauth() {
    let Some(moto) = Moto::shared().await else { return };
    let stored = data(json!({"role_arn": moto.role_arn, "external_id": moto.external_id}));

    let wrong_secret = aws_settings(moto, "wrong-secret-access-key", &[]);
    let err = refresh("aws", &stored, &wrong_secret).await.unwrap_err();
    assert_eq!(err, reauth("SignatureDoesNotMatch"));
    assert!(
        err.to_string().contains("SignatureDoesNotMatch"),
        "a clear message: {err}"
    );

    let mut unknown_key = aws_settings(moto, &moto.secret_access_key, &[]);
    unknown_key.aws.access_key_id = Some("AKIAUNKNOWNKEY000000".into());
    assert_eq!(
        refresh("aws", &stored, &unknown_key).await.unwrap_err(),
        reauth("InvalidClientTokenId")
    );

    // Right keys, wrong external id: the role's trust policy refuses.
    let good = aws_settings(moto, &moto.secret_access_key, &[]);
    let wrong_ext = stored.with([("external_id", json!("not-the-external-id"))]);
    assert_eq!(
        refresh("aws", &wrong_ext, &good).await.unwrap_err(),
        reauth("AccessDenied")
    );
}

#[tokio::test]
async fn sts_unreachable_is_transient() {
    let port = support::process::free_port();
    let endpoint = format!("http://127.0.0.1:{port}/");
    let settings = settings(&[
        ("AWS_ENDPOINT_URL_STS", &endpoint),
        ("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE"),
        ("AWS_SECRET_ACCESS_KEY", "x"),
    ]);
    let stored = data(json!({"role_arn": "arn:aws:iam::123456789012:role/R", "external_id": "tk-ext"}));
    assert_eq!(
        refresh("aws", &stored, &settings).await.unwrap_err(),
        transient("connect_error")
    );
    let no_keys = settings_without_aws();
    let err = refresh("aws", &stored, &no_keys).await.unwrap_err();
    assert!(
        err.is_transient() && err.reason().starts_with("not_configured"),
        "{err:?}"
    );
}

fn settings_without_aws() -> GrantSettings {
    settings(&[])
}

/// `sts:GetCallerIdentity` with temporary credentials; returns the XML answer.
async fn caller_identity(endpoint: &str, (key, secret, token): &(String, String, String)) -> String {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    let body = "Action=GetCallerIdentity&Version=2011-06-15";
    let identity =
        aws_credential_types::Credentials::new(key.clone(), secret.clone(), Some(token.clone()), None, "t").into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("sts")
        .time(std::time::SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let ct = "application/x-www-form-urlencoded; charset=utf-8";
    let headers = [("content-type", ct)];
    let req = SignableRequest::new(
        "POST",
        endpoint,
        headers.iter().copied(),
        SignableBody::Bytes(body.as_bytes()),
    )
    .unwrap();
    let (instructions, _) = sign(req, &params).unwrap().into_parts();
    let mut req = reqwest::Client::new().post(endpoint).header("content-type", ct);
    for (k, v) in instructions.headers() {
        req = req.header(k, v);
    }
    let resp = req.body(body).send().await.unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert!(status.is_success(), "GetCallerIdentity: {status} {text}");
    text
}

// ------------------------------------------------------------------------------------------------------
// Fake provider endpoints

#[tokio::test]
async fn slack_rotation_ok_true_and_ok_false() {
    let fake = FakeProvider::start();
    let settings = settings(&[
        (
            "TOKENKEEPER_SLACK_TOKEN_URL",
            &format!("{}/slack/api/oauth.v2.access", fake.base_url),
        ),
        ("TOKENKEEPER_SLACK_CLIENT_ID", fake::SLACK_CLIENT_ID),
        ("TOKENKEEPER_SLACK_CLIENT_SECRET", fake::SLACK_CLIENT_SECRET),
    ]);
    let seed = fake.issue_refresh_token("slack");
    let old = data(
        json!({"access_token": "xoxe.xoxb-1-old", "refresh_token": seed, "expires_at": NOW,
                          "team_id": "T0123456789"}),
    );
    let fresh = refresh("slack", &old, &settings).await.expect("rotation");
    let t = &fresh.token_data;
    assert!(s(&t["access_token"]).starts_with("xoxe.xoxb-1-rotated"));
    assert!(s(&t["refresh_token"]).starts_with("xoxe-1-rotated"));
    assert_eq!(t["expires_at"], json!(NOW + 43200));
    assert_eq!(t["team_id"], "T0123456789");
    assert_eq!(t.len(), old.len(), "Slack's extra answer fields are not copied in");
    let form = fake.last_form("slack");
    assert_eq!(form["grant_type"], "refresh_token");
    assert_eq!(form["client_secret"], fake::SLACK_CLIENT_SECRET);

    // HTTP 200 {"ok": false, "error": "invalid_refresh_token"}: the old token was used up.
    assert_eq!(
        refresh("slack", &old, &settings).await.unwrap_err(),
        reauth("invalid_refresh_token")
    );
    // The new one works.
    refresh("slack", &fresh.token_data, &settings)
        .await
        .expect("second rotation");

    let wrong = with_client_secret(&settings, "slack", "nope");
    let err = refresh("slack", &fresh.token_data, &wrong).await.unwrap_err();
    assert_eq!(err, reauth("bad_client_secret"));
}

/// `base` with another platform client secret for `provider`.
fn with_client_secret(base: &GrantSettings, provider: &str, secret: &str) -> GrantSettings {
    let mut s = base.clone();
    let spec = spec(provider);
    let client = ProviderGrantSettings {
        client_secret: Some(secrecy::SecretString::from(secret.to_string())),
        ..s.provider(spec).clone()
    };
    s.set_provider(spec, client);
    s
}

#[tokio::test]
async fn azure_client_credentials_and_errors() {
    let fake = FakeProvider::start();
    let settings = settings(&[("AZURE_AUTHORITY_HOST", &format!("{}/azure/", fake.base_url))]);
    let stored = data(
        json!({"tenant_id": fake::AZURE_TENANT, "client_id": fake::AZURE_CLIENT_ID,
                             "client_secret": fake::AZURE_CLIENT_SECRET,
                             "subscription_id": "00000000-0000-4000-8000-000000000002",
                             "subscription_name": "Production"}),
    );
    let fresh = refresh("azure", &stored, &settings).await.expect("client_credentials");
    assert!(s(&fresh.token_data["access_token"]).starts_with("eyJ"));
    assert_eq!(fresh.expires_at, Some(NOW + 3599));
    assert_eq!(fresh.token_data.len(), stored.len() + 2);
    let form = fake.last_form("azure");
    assert_eq!(form["scope"], "https://management.azure.com/.default");
    assert_eq!(form["grant_type"], "client_credentials");

    let wrong = stored.with([("client_secret", json!("wrong~secret"))]);
    let err = refresh("azure", &wrong, &settings).await.unwrap_err();
    assert_eq!(err, reauth("invalid_client"));
    let shown = format!("{err} {err:?}");
    assert!(
        !shown.contains("AADSTS") && !shown.contains("wrong~secret"),
        "no body in errors: {shown}"
    );

    let other_tenant = stored.with([("tenant_id", json!("contoso.onmicrosoft.com"))]);
    assert_eq!(
        refresh("azure", &other_tenant, &settings).await.unwrap_err(),
        reauth("invalid_request")
    );
    assert_eq!(fake.calls("azure"), 3);
}

#[tokio::test]
async fn bitbucket_uses_http_basic_and_keeps_its_refresh_token() {
    let fake = FakeProvider::start();
    let settings = settings(&[
        (
            "TOKENKEEPER_BITBUCKET_TOKEN_URL",
            &format!("{}/bitbucket/site/oauth2/access_token", fake.base_url),
        ),
        ("TOKENKEEPER_BITBUCKET_CLIENT_ID", fake::BITBUCKET_KEY),
        ("TOKENKEEPER_BITBUCKET_CLIENT_SECRET", fake::BITBUCKET_SECRET),
    ]);
    let seed = fake.issue_refresh_token("bitbucket");
    let old = data(json!({"access_token": "old", "refresh_token": seed, "expires_at": 1, "email": "dev@example.com"}));
    let fresh = refresh("bitbucket", &old, &settings).await.expect("refresh");
    assert_eq!(fresh.token_data["refresh_token"], json!(seed));
    assert_eq!(fresh.expires_at, Some(NOW + 7200));
    assert!(fake.last_authorization("bitbucket").unwrap().starts_with("Basic "));
    let form = fake.last_form("bitbucket");
    assert!(
        !form.contains_key("client_secret") && !form.contains_key("client_id"),
        "{form:?}"
    );

    let wrong = with_client_secret(&settings, "bitbucket", "nope");
    assert_eq!(
        refresh("bitbucket", &old, &wrong).await.unwrap_err(),
        reauth("invalid_client")
    );
    let revoked = old.with([("refresh_token", json!("never-issued"))]);
    assert_eq!(
        refresh("bitbucket", &revoked, &settings).await.unwrap_err(),
        reauth("invalid_grant")
    );
}

#[tokio::test]
async fn failures_503_hang_and_redirect_are_transient() {
    let fake = FakeProvider::start();
    let old = data(json!({"access_token": "a", "refresh_token": "r", "expires_at": 1}));
    let at = |path: &str| {
        settings(&[
            ("TOKENKEEPER_BITBUCKET_TOKEN_URL", &format!("{}{path}", fake.base_url)),
            ("TOKENKEEPER_BITBUCKET_CLIENT_ID", "id"),
            ("TOKENKEEPER_BITBUCKET_CLIENT_SECRET", "secret"),
        ])
    };
    assert_eq!(
        refresh("bitbucket", &old, &at("/status/503")).await.unwrap_err(),
        transient("http_503")
    );

    // An endpoint that never answers is cut at the timeout (the bound only turns a hang into a failure).
    let hang_settings = at("/hang");
    let hang = refresh_at("bitbucket", &old, &hang_settings, NOW, Duration::from_secs(1));
    let err = support::wait::bounded("the call to an endpoint that never answers", hang)
        .await
        .unwrap_err();
    assert_eq!(err, transient("timeout"));
    assert_eq!(fake.calls("hang"), 1);

    let err = refresh("bitbucket", &old, &at("/redirect")).await.unwrap_err();
    assert_eq!(err, transient("unexpected_status_302"));
    assert_eq!(fake.calls("redirect-target"), 0, "redirects are not followed");

    // Nothing listening.
    let closed = format!("http://127.0.0.1:{}/token", support::process::free_port());
    let s = settings(&[
        ("TOKENKEEPER_BITBUCKET_TOKEN_URL", &closed),
        ("TOKENKEEPER_BITBUCKET_CLIENT_ID", "id"),
    ]);
    assert_eq!(
        refresh("bitbucket", &old, &s).await.unwrap_err(),
        transient("connect_error")
    );
}

#[tokio::test]
async fn gcp_service_account_jwt_bearer() {
    let fake = FakeProvider::start();
    let token_uri = format!("{}/gcp/token", fake.base_url);
    let settings = settings(&[("TOKENKEEPER_GCP_TOKEN_URL", &token_uri)]);
    let stored = data(json!({"service_account_json": fake::service_account_json(fake::gcp_private_key(), &token_uri)}));
    assert!(matches!(
        grants::refresh_kind_for(spec("gcp"), &stored),
        RefreshKind::JwtBearer { .. }
    ));

    let fresh = refresh("gcp", &stored, &settings).await.expect("JWT-bearer grant");
    assert!(s(&fresh.token_data["access_token"]).starts_with("ya29.c.sa-"));
    assert_eq!(fresh.expires_at, Some(NOW + 3599));
    assert_eq!(fresh.token_data["service_account_json"], stored["service_account_json"]);
    assert_eq!(
        fake.last_form("gcp")["grant_type"],
        "urn:ietf:params:oauth:grant-type:jwt-bearer"
    );

    // Refreshed data (key + access_token + expires_at) is still recognized as a service-account credential.
    assert!(matches!(
        grants::refresh_kind_for(spec("gcp"), &fresh.token_data),
        RefreshKind::JwtBearer { .. }
    ));
    refresh_at("gcp", &fresh.token_data, &settings, NOW + 3000, Duration::from_secs(10))
        .await
        .expect("second JWT-bearer grant");
    assert_eq!(fake.calls("gcp"), 2);
}

#[tokio::test]
async fn gcp_jwt_bearer_refuses_other_token_uris_and_bad_keys() {
    let fake = FakeProvider::start();
    let token_uri = format!("{}/gcp/token", fake.base_url);
    let key = fake::gcp_private_key();
    // A key pointing at the fake, without the override configured: refused, nothing sent.
    let stored = data(json!({"service_account_json": fake::service_account_json(key, &token_uri)}));
    assert_eq!(
        refresh("gcp", &stored, &settings(&[])).await.unwrap_err(),
        reauth("token_uri not allowed")
    );
    // The override configured, the key pointing elsewhere (metadata server): refused.
    let settings = settings(&[("TOKENKEEPER_GCP_TOKEN_URL", &token_uri)]);
    let ssrf = data(json!({"service_account_json":
        fake::service_account_json(key, "http://169.254.169.254/computeMetadata/v1/token")}));
    assert_eq!(
        refresh("gcp", &ssrf, &settings).await.unwrap_err(),
        reauth("token_uri not allowed")
    );
    assert_eq!(fake.calls("gcp"), 0);

    // Signed by a key Google does not know: invalid_grant.
    let other = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 1024).unwrap();
    let unknown = data(json!({"service_account_json": fake::service_account_json(&other, &token_uri)}));
    assert_eq!(
        refresh("gcp", &unknown, &settings).await.unwrap_err(),
        reauth("invalid_grant")
    );
    // Not a key at all.
    let mut broken: Value = serde_json::from_str(&fake::service_account_json(key, &token_uri)).unwrap();
    broken["private_key"] = json!("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
    let broken = data(json!({"service_account_json": broken.to_string()}));
    assert_eq!(
        refresh("gcp", &broken, &settings).await.unwrap_err(),
        reauth("service account private_key is not an RSA PEM key")
    );
    // Over 4096 bits (stored before the limit existed: the store refuses such keys now): not signed.
    let mut big: Value = serde_json::from_str(&fake::service_account_json(key, &token_uri)).unwrap();
    big["private_key"] = json!(include_str!("fixtures/rsa-4098.pem"));
    let big = data(json!({"service_account_json": big.to_string()}));
    assert_eq!(
        refresh("gcp", &big, &settings).await.unwrap_err(),
        reauth("service account private_key is an RSA key of 4098 bits; at most 4096 are accepted")
    );
    assert_eq!(fake.calls("gcp"), 1);
}

#[tokio::test]
async fn gcp_oauth_refresh_keeps_the_refresh_token_when_none_is_returned() {
    let fake = FakeProvider::start();
    let settings = settings(&[
        ("TOKENKEEPER_GCP_TOKEN_URL", &format!("{}/gcp/token", fake.base_url)),
        ("TOKENKEEPER_GCP_CLIENT_ID", fake::GCP_CLIENT_ID),
        ("TOKENKEEPER_GCP_CLIENT_SECRET", fake::GCP_CLIENT_SECRET),
    ]);
    let seed = fake.issue_refresh_token("gcp");
    let old = data(
        json!({"access_token": "ya29.old", "refresh_token": seed, "expires_at": NOW - 1,
                          "email": "user@example.com"}),
    );
    let fresh = refresh("gcp", &old, &settings).await.expect("refresh");
    assert!(s(&fresh.token_data["access_token"]).starts_with("ya29.oauth-"));
    assert_eq!(fresh.token_data["refresh_token"], json!(seed));
    assert_eq!(fresh.expires_at, Some(NOW + 3599));

    // No platform client configured: not the user's fault, so not needs_reauth.
    let unconfigured = self::settings(&[("TOKENKEEPER_GCP_TOKEN_URL", &format!("{}/gcp/token", fake.base_url))]);
    let err = refresh("gcp", &old, &unconfigured).await.unwrap_err();
    assert!(
        err.is_transient() && err.reason().contains("TOKENKEEPER_GCP_CLIENT_ID"),
        "{err:?}"
    );
    // No refresh token stored: the user must reconnect.
    let mut fields = old.fields().clone();
    fields.remove("refresh_token");
    let no_rt = TokenData::new(fields);
    assert!(refresh("gcp", &no_rt, &settings).await.unwrap_err().needs_reauth());
}

#[tokio::test]
async fn static_credentials_are_not_refreshable() {
    let settings = settings(&[]);
    let grafana = data(json!({"api_key": "glsa_x", "base_url": "https://example.grafana.net"}));
    assert_eq!(
        refresh("grafana", &grafana, &settings).await.unwrap_err(),
        GrantError::NotRefreshable
    );
    let slack_static = data(json!({"access_token": "xoxb-1", "team_id": "T1"}));
    assert_eq!(
        refresh("slack", &slack_static, &settings).await.unwrap_err(),
        GrantError::NotRefreshable
    );
}
