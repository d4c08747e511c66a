//! Credential checks through the service (`docs/CHECKS.md`): every provider's check against a stand-in
//! that answers what the provider documents (`support::provider_api`; AWS against moto's STS), `PUT`
//! checking first, `POST .../check` moving the status, and the background pass.

use serde_json::{Value, json};
use tokenkeeper::providers::{ProviderSpec, catalog};

use crate::support::app::{Db, Secrets, TestApp, TestConfig, spawn_app};
use crate::support::provider_api::{Mode, ProviderApi};
use crate::support::sts::Moto;

/// Every example credential of every provider but AWS (moto's test below), its user-given URLs pointing
/// at the stand-in, the service-account key one that can sign.
fn examples(api: &ProviderApi) -> Vec<(&'static ProviderSpec, Value)> {
    let mut out = Vec::new();
    for spec in catalog().iter().filter(|s| s.id != "aws") {
        for mut example in spec.example_credentials() {
            for field in ["base_url", "url"] {
                if spec.field(field).is_some() {
                    example[field] = json!(api.base(spec.id));
                }
            }
            if example.get("service_account_json").is_some() {
                // A key that can sign, whose token_uri is the stand-in (the configured override).
                let mut key: Value =
                    serde_json::from_str(include_str!("../fixtures/gcp-service-account.json")).unwrap();
                key["token_uri"] = json!(api.server.url("/token"));
                example["service_account_json"] = json!(key.to_string());
            }
            out.push((spec, example));
        }
    }
    out
}

async fn put(app: &TestApp, token: &str, provider: &str, body: &Value) -> (u16, Value) {
    let r = app
        .put_auth(&format!("/api/tokens/{provider}"), token, body.clone())
        .await;
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn stored(app: &TestApp, token: &str, provider: &str) -> u16 {
    app.get_auth(&format!("/api/tokens/{provider}"), token)
        .await
        .status()
        .as_u16()
}

/// Success, rejection (401/403 or the provider's own "invalid"), a hang and an outage, for each
/// provider: stored `active` only on success; 400 and 502 store nothing.
async fn put_checks_every_provider_first(db: Db, secrets: Secrets) {
    let api = ProviderApi::start().await;
    let Some(cfg) = api.config(TestConfig::default()).secrets(secrets).await else {
        return;
    };
    let app = spawn_app(db, cfg).await.unwrap();
    let (_, token) = app.user("checks@example.com").await;
    for (spec, body) in examples(&api) {
        let id = spec.id;
        api.set(Mode::Accept);
        let (status, view) = put(&app, &token, id, &body).await;
        assert_eq!(status, 200, "{id}: {view}");
        assert_eq!(view["status"], "active", "{id}");
        assert!(view["lastCheckedAt"].is_string(), "{id}: {view}");
        assert_eq!(view["lastCheckError"], Value::Null);
        assert_eq!(
            app.delete_auth(&format!("/api/tokens/{id}"), &token).await.status(),
            200
        );

        for mode in [Mode::Reject, Mode::Invalid] {
            api.set(mode);
            let (status, err) = put(&app, &token, id, &body).await;
            assert_eq!(status, 400, "{id} {mode:?}: {err}");
            assert_eq!(err["error"], format!("Credential rejected by {id}"));
            assert_eq!(err["provider"], id);
            let expected = match (id, mode) {
                ("slack", _) => "invalid_auth",
                ("datadog", Mode::Invalid) => "/valid is false",
                ("datadog", _) => "HTTP 403",
                ("coroot", _) => "HTTP 404",
                ("gcp", _) if body.get("access_token").is_some() => "HTTP 400",
                // The mint is refused first.
                ("gcp" | "azure" | "tailscale", _) => "invalid_client",
                _ => "HTTP 401",
            };
            assert_eq!(err["detail"], expected, "{id} {mode:?}");
            assert_eq!(stored(&app, &token, id).await, 404, "{id}: nothing stored");
        }

        api.set(Mode::Hang);
        let (status, err) = put(&app, &token, id, &body).await;
        assert_eq!(status, 502, "{id} hang: {err}");
        assert_eq!(err["error"], format!("Could not reach {id} to check the credential"));
        assert_eq!(err["provider"], id);
        assert_eq!(stored(&app, &token, id).await, 404);
    }

    // An outage: nothing listens any more.
    let bodies = examples(&api);
    drop(api);
    for (spec, body) in bodies {
        let (status, err) = put(&app, &token, spec.id, &body).await;
        assert_eq!(status, 502, "{}: {err}", spec.id);
        assert_eq!(stored(&app, &token, spec.id).await, 404);
    }
}

/// AWS: the role assumed with moto's STS, then GetCallerIdentity signed with the assumed keys.
async fn aws_is_checked_by_assuming_the_role(db: Db) {
    let Some(moto) = Moto::shared().await else { return };
    let cfg = |sts: &str| {
        TestConfig::default()
            .with("TOKENKEEPER_CHECK_ON_STORE", "true")
            .with("AWS_ENDPOINT_URL_STS", sts)
            .with("AWS_ACCESS_KEY_ID", &moto.access_key_id)
            .with("AWS_SECRET_ACCESS_KEY", &moto.secret_access_key)
            .with("AWS_REGION", "us-east-1")
            .with("TOKENKEEPER_OUTBOUND_TIMEOUT_SECS", "2")
    };
    let app = spawn_app(db, cfg(&moto.endpoint)).await.unwrap();
    let (_, token) = app.user("aws-check@example.com").await;
    let good = json!({"role_arn": moto.role_arn, "external_id": moto.external_id});
    let (status, view) = put(&app, &token, "aws", &good).await;
    assert_eq!((status, view["status"].as_str()), (200, Some("active")), "{view}");
    assert_eq!(app.delete_auth("/api/tokens/aws", &token).await.status(), 200);

    let wrong = json!({"role_arn": moto.role_arn, "external_id": "not-the-external-id"});
    let (status, err) = put(&app, &token, "aws", &wrong).await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["detail"], "AccessDenied");
    assert_eq!(stored(&app, &token, "aws").await, 404);

    let closed = spawn_app(db, cfg("http://127.0.0.1:9")).await.unwrap();
    let (_, token) = closed.user("aws-outage@example.com").await;
    let (status, err) = put(&closed, &token, "aws", &good).await;
    assert_eq!(status, 502, "{err}");
    assert_eq!(stored(&closed, &token, "aws").await, 404);
}

crate::on_all_stores!(put_checks_every_provider_first);
crate::on_both_backends!(aws_is_checked_by_assuming_the_role);
