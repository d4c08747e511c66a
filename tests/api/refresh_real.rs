//! Refresh through the whole service against real servers: moto's STS (signatures checked) and
//! django-oauth-toolkit with rotating, single-use refresh tokens and reuse protection.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokenkeeper::background::{Refresher, RefresherSettings};
use tokenkeeper::credentials::DueBatch;

use crate::support::app::{Db, Secrets, TestConfig, spawn_app, spawn_sibling};
use crate::support::oauth_server::OAuthServer;
use crate::support::sts::Moto;

fn aws_config(moto: &Moto, secret: &str) -> TestConfig {
    TestConfig::default()
        .with("AWS_ENDPOINT_URL_STS", &moto.endpoint)
        .with("AWS_ACCESS_KEY_ID", &moto.access_key_id)
        .with("AWS_SECRET_ACCESS_KEY", secret)
        .with("AWS_REGION", "us-east-1")
}

async fn aws_assume_role_and_reassume_before_expiration(db: Db) {
    let Some(moto) = Moto::shared().await else { return };
    let app = spawn_app(db, aws_config(moto, &moto.secret_access_key)).await.unwrap();
    let (_, token) = app.user("aws@example.com").await;
    let body = json!({"role_arn": moto.role_arn, "external_id": moto.external_id});
    assert_eq!(app.put_auth("/api/tokens/aws", &token, body).await.status(), 200);
    let r = app.get_auth("/api/tokens/aws/credentials", &token).await;
    assert_eq!(r.status(), 200);
    let first: Value = r.json().await.unwrap();
    let data = &first["tokenData"];
    for f in ["access_key_id", "secret_access_key", "session_token", "expiration"] {
        assert!(
            data[f].as_str().is_some_and(|v| !v.is_empty()),
            "{f} in {}",
            data.as_object().unwrap().keys().cloned().collect::<Vec<_>>().join(",")
        );
    }
    assert_eq!(data["role_arn"], moto.role_arn.as_str());
    let expires_at = data["expires_at"].as_i64().unwrap();
    // Not due yet: the same keys are served without a new AssumeRole.
    let again = app.credentials("aws", &token).await;
    assert_eq!(again["tokenData"]["access_key_id"], data["access_key_id"]);
    // Shortly before Expiration (inside the margin): re-assumed.
    app.clock.set_ms((expires_at - 120) * 1000);
    let later = app.credentials("aws", &token).await;
    assert_ne!(
        later["tokenData"]["access_key_id"], data["access_key_id"],
        "re-assumed before Expiration"
    );
    let view: Value = app.get_auth("/api/tokens/aws", &token).await.json().await.unwrap();
    assert_eq!(view["status"], "active");
}

async fn aws_wrong_service_key_needs_reauth(db: Db) {
    let Some(moto) = Moto::shared().await else { return };
    let app = spawn_app(db, aws_config(moto, "definitely-not-the-right-secret-key"))
        .await
        .unwrap();
    let (_, token) = app.user("awsbad@example.com").await;
    let body = json!({"role_arn": moto.role_arn, "external_id": moto.external_id});
    assert_eq!(app.put_auth("/api/tokens/aws", &token, body).await.status(), 200);
    let r = app.get_auth("/api/tokens/aws/credentials", &token).await;
    assert_eq!(r.status(), 409);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["provider"], "aws");
    assert_eq!(body["reason"], "SignatureDoesNotMatch");
}

async fn aws_external_id_generated_and_shown_once(db: Db) {
    let app = spawn_app(db, TestConfig::default()).await.unwrap();
    let (_, token) = app.user("awsgen@example.com").await;
    let body = json!({"role_arn": "arn:aws:iam::123456789012:role/reader"});
    let r: Value = app
        .put_auth("/api/tokens/aws", &token, body)
        .await
        .json()
        .await
        .unwrap();
    let generated = r["generatedExternalId"].as_str().unwrap().to_string();
    assert_eq!(generated.len(), 32);
    let view: Value = app.get_auth("/api/tokens/aws", &token).await.json().await.unwrap();
    assert!(view.get("generatedExternalId").is_none(), "shown once, at store time");
    assert_eq!(view["metadata"]["external_id"], generated.as_str());
}

/// At least a minute of the background refresher and readers racing on short-lived tokens against a
/// real OAuth server: no refresh token is ever presented twice (reuse protection would revoke the grant).
async fn soak_refresher_and_readers_never_reuse_a_refresh_token(db: Db) {
    let Some(server) = OAuthServer::shared().await else {
        return;
    };
    let client = server.new_client("password").await;
    let cfg = TestConfig::default()
        .with("TOKENKEEPER_GCP_TOKEN_URL", &server.token_url)
        .with("TOKENKEEPER_GCP_CLIENT_ID", &client.client_id)
        .with("TOKENKEEPER_GCP_CLIENT_SECRET", &client.client_secret)
        .with("TOKENKEEPER_REFRESH_MARGIN_SECS", "60");
    let app = Arc::new(spawn_app(db, cfg).await.unwrap());
    let mut tokens = Vec::new();
    for i in 0..4 {
        let (_, t) = app.user(&format!("soak{i}@example.com")).await;
        let pair = server.password_tokens(&client).await;
        let now = tokenkeeper::clock::Clock::now_secs(app.clock.as_ref());
        let body = json!({"access_token": pair.access_token, "refresh_token": pair.refresh_token, "expires_at": now + pair.expires_in});
        assert_eq!(app.put_auth("/api/tokens/gcp", &t, body).await.status(), 200);
        tokens.push(t);
    }
    let soak = Duration::from_secs(
        std::env::var("TOKENKEEPER_SOAK_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(60),
    );
    let deadline = Instant::now() + soak;
    let reads = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    // Readers.
    for r in 0..8 {
        let (app, tokens, reads, failures) = (app.clone(), tokens.clone(), reads.clone(), failures.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = r;
            while Instant::now() < deadline {
                let t = &tokens[i % tokens.len()];
                let resp = app.get_auth("/api/tokens/gcp/credentials", t).await;
                if resp.status() != 200 {
                    failures.fetch_add(1, Ordering::SeqCst);
                }
                reads.fetch_add(1, Ordering::SeqCst);
                i += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }
    // The background refresher, and time running fast: tokens come due every few seconds.
    let (app2, (_stop_tx, stop)) = (app.clone(), tokio::sync::watch::channel(false));
    tasks.push(tokio::spawn(async move {
        let settings = RefresherSettings {
            batch: DueBatch {
                limit: 10,
                concurrency: 4,
                ..DueBatch::default()
            },
            ..RefresherSettings::default()
        };
        let refresher = Refresher::new(app2.services.credentials.clone(), app2.services.clock.clone(), settings);
        while Instant::now() < deadline {
            refresher.run_pass(&stop).await;
            app2.clock.advance_secs(20);
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }));
    for t in tasks {
        t.await.unwrap();
    }
    let stats = server.stats(&client.client_id).await;
    assert_eq!(
        stats.refresh_token_reuse, 0,
        "a refresh token was used twice: {stats:?}"
    );
    assert_eq!(stats.family_revocations, 0, "the grant was revoked: {stats:?}");
    assert_eq!(stats.refresh_failed, 0, "{stats:?}");
    assert_eq!(failures.load(Ordering::SeqCst), 0, "reads failed during the soak");
    let expected = (soak.as_secs() / 3).max(3);
    assert!(
        stats.refresh_ok >= expected,
        "too few refreshes to mean anything: {stats:?}"
    );
    assert!(reads.load(Ordering::SeqCst) > 500);
    let list: Value = app.get_auth("/api/tokens", &tokens[0]).await.json().await.unwrap();
    assert_eq!(list["connections"][0]["status"], "active");
}

/// Single flight across two instances (one PostgreSQL, one OpenBao) against the real django-oauth-toolkit,
/// whose refresh tokens are single-use with reuse protection: 200 reads racing over both instances make
/// one refresh grant, no refresh token is presented twice, and every read gets the one new access token.
async fn single_flight_across_instances_against_a_real_oauth_server(db: Db) {
    let Some(server) = OAuthServer::shared().await else {
        return;
    };
    let client = server.new_client("password").await;
    let cfg = || {
        TestConfig::default()
            .with("TOKENKEEPER_GCP_TOKEN_URL", &server.token_url)
            .with("TOKENKEEPER_GCP_CLIENT_ID", &client.client_id)
            .with("TOKENKEEPER_GCP_CLIENT_SECRET", &client.client_secret)
    };
    let Some(first) = cfg().secrets(Secrets::OpenBao).await else {
        return;
    };
    let a = spawn_app(db, first).await.unwrap();
    let b = spawn_sibling(&a, cfg().secrets(Secrets::OpenBao).await.unwrap()).await;
    let (_, token) = a.user("dot-multi@example.com").await;
    let pair = server.password_tokens(&client).await;
    // Inside the refresh margin: the first read of either instance refreshes.
    let now = tokenkeeper::clock::Clock::now_secs(a.clock.as_ref());
    let body = json!({"access_token": pair.access_token, "refresh_token": pair.refresh_token, "expires_at": now + 60});
    assert_eq!(a.put_auth("/api/tokens/gcp", &token, body).await.status(), 200);
    let before = server.stats(&client.client_id).await;

    let reads = (0..100)
        .map(|_| a.get_auth("/api/tokens/gcp/credentials", &token))
        .chain((0..100).map(|_| b.get_auth("/api/tokens/gcp/credentials", &token)));
    let mut served = std::collections::BTreeSet::new();
    for r in futures::future::join_all(reads).await {
        let status = r.status();
        let body: Value = r.json().await.unwrap();
        assert_eq!(status, 200, "{body}\n{}", server.log());
        served.insert(body["tokenData"]["access_token"].as_str().unwrap().to_string());
    }
    let stats = server.stats(&client.client_id).await;
    assert_eq!(
        stats.refresh_grants() - before.refresh_grants(),
        1,
        "one refresh grant across both instances: {stats:?}"
    );
    assert_eq!(
        (stats.refresh_token_reuse, stats.family_revocations),
        (0, 0),
        "{stats:?}"
    );
    assert_eq!(served.len(), 1, "one access token served: {served:?}");
    assert!(!served.contains(&pair.access_token), "the refreshed token is served");
}

// Several instances share PostgreSQL, not a SQLite file.
crate::on_postgres!(single_flight_across_instances_against_a_real_oauth_server);

mod real {
    use super::*;
    crate::on_both_backends!(
        aws_assume_role_and_reassume_before_expiration,
        aws_wrong_service_key_needs_reauth,
        aws_external_id_generated_and_shown_once,
        soak_refresher_and_readers_never_reuse_a_refresh_token,
    );
}
