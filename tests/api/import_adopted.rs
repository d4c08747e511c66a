//! What an import adds, used afterwards (the fixture of `import.rs`): Aurora's AWS accounts as named `aws`
//! connections with the workspace's external id (and idempotent); a second instance's identity cache
//! learning of the imported users at once; an imported user held to changing their password first; a
//! `PUT` over an adopted connection writing a new version of Aurora's own secret; an imported AWS account
//! assumed through a real STS (moto).

use std::time::Duration;

use serde_json::{Value, json};
use tokenkeeper::import::Options;
use tokenkeeper::import::report::Table;

use super::import::{Setup, counts, import, in_org, reason, setup};
use crate::support::app::{Db, Secrets, TestConfig, spawn_app, spawn_sibling};
use crate::support::aurora::{Aurora, secret_name};
use crate::support::openbao::OpenBao;
use crate::support::sts::Moto;

/// The JSON inside a KV v2 secret's `value` (Aurora's payload), and its version.
async fn kv(bao: &OpenBao, name: &str) -> Option<(Value, u64)> {
    let (status, body) = bao.root("GET", &format!("aurora/data/users/{name}"), None).await;
    if status == 404 {
        return None;
    }
    assert_eq!(status, 200, "{name}: {body}");
    let value = serde_json::from_str(body["data"]["data"]["value"].as_str().unwrap()).unwrap();
    Some((value, body["data"]["metadata"]["version"].as_u64().unwrap()))
}

async fn what_an_import_adds_is_used_like_the_rest(db: Db) {
    let Some(Setup {
        app,
        aurora,
        bao,
        _fake: _kept_serving,
        ..
    }) = setup(db).await
    else {
        return;
    };
    // A second instance that has looked bob up before the import: "no such user", nothing to change.
    let sibling = spawn_sibling(&app, TestConfig::default()).await;
    let bob_state = || async { sibling.services.identity.password_state(&aurora.bob.id).await.unwrap() };
    assert!(!bob_state().await.must_change);

    let report = import(&app, &aurora.url, Options::default()).await.unwrap();
    assert_eq!(counts(&report, Table::UserConnections), (2, 0, 0), "{report}");
    assert_eq!(report.providers["aws"].added, 2, "{report}");

    // Each AWS account is a named connection of the org, storing what `PUT /api/tokens/aws` stores.
    let alice = app.login(&aurora.alice.email, aurora.alice.password).await;
    let (status, listed) = in_org(&app, &alice, &aurora.org, "/api/tokens").await;
    assert_eq!(status, 200, "{listed}");
    for account in aurora.aws_accounts {
        let role = format!("arn:aws:iam::{account}:role/AuroraReadOnly");
        let expected = json!({"role_arn": role, "external_id": aurora.aws_external_id,
                              "region": "eu-west-1", "read_only_role_arn": role});
        let conn = listed["connections"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["provider"] == "aws" && c["name"] == account)
            .unwrap_or_else(|| panic!("no aws connection {account}: {listed}"));
        assert_eq!(conn["metadata"], expected, "{conn}");
        let name = format!("aurora-dev-{}-aws-{account}-token", aurora.org);
        assert_eq!(
            conn["secretRef"],
            format!("vault:kv/data/aurora/users/{name}"),
            "{conn}"
        );
        assert_eq!(kv(bao, &name).await, Some((expected, 1)));
    }
    let again = import(&app, &aurora.url, Options::default()).await.unwrap();
    assert_eq!(counts(&again, Table::UserConnections), (0, 2, 0), "{again}");
    assert!(again.nothing_added(), "{again}");

    // The other instance sees the imported flag at once (SQLite: the identity change counter; PostgreSQL:
    // the triggers' announcements), well before its cached answer would have expired (30 s).
    crate::support::wait::until_within("the sibling sees bob's flag", Duration::from_secs(10), || async {
        bob_state().await.must_change
    })
    .await;
    let bob = sibling.login(&aurora.bob.email, aurora.bob.password).await;
    let r = sibling.get_auth("/api/orgs", &bob).await;
    assert_eq!(r.status(), 403);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "password_change_required");

    // Bob changes the password Aurora gave him; then he may use his account.
    let change = json!({"currentPassword": aurora.bob.password, "newPassword": "bobs-own-password"});
    assert_eq!(
        app.post_auth("/api/auth/change-password", &bob, change).await.status(),
        200
    );
    assert_eq!(app.get_auth("/api/orgs", &bob).await.status(), 200);
    crate::support::wait::until("the sibling sees the change", || async {
        sibling.get_auth("/api/orgs", &bob).await.status() == 200
    })
    .await;

    // A PUT over the adopted Slack connection writes a new version of Aurora's secret (named after bob,
    // who stored it in Aurora), not a secret under the name Tokenkeeper would give a new connection.
    let slack = tokenkeeper::providers::find("slack").unwrap().example_credentials()[0].clone();
    let r = app
        .client
        .put(app.at("/api/tokens/slack"))
        .bearer_auth(&alice)
        .header("X-Org-ID", &aurora.org)
        .json(&slack)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let adopted = secret_name(&aurora.bob.id, "slack");
    let (value, version) = kv(bao, &adopted).await.unwrap();
    assert_eq!((&value, version), (&slack, 2));
    let computed = format!("aurora-dev-{}-slack-token", aurora.org);
    assert_eq!(kv(bao, &computed).await, None, "nothing under the computed name");
    let (status, read) = in_org(&app, &alice, &aurora.org, "/api/tokens/slack/credentials").await;
    assert_eq!((status, &read["tokenData"]), (200, &slack), "{read}");
    let (_, conn) = in_org(&app, &alice, &aurora.org, "/api/tokens/slack").await;
    assert_eq!(
        conn["secretRef"],
        format!("vault:kv/data/aurora/users/{adopted}"),
        "{conn}"
    );
}

/// An imported AWS account is assumed like one stored with `PUT /api/tokens/aws`: moto's STS (signatures
/// checked) hands out keys for the role, with the workspace's external id. An account whose org and user
/// have no workspace takes the external id Aurora keeps in Vault (`aws-external-id-<user id>`); one with
/// neither is skipped, and the report names the secret it looked for (never an external id).
async fn an_imported_aws_account_is_assumed(db: Db) {
    let (Some(admin), Some(moto)) = (crate::support::postgres::admin_url(), Moto::shared().await) else {
        return;
    };
    let cfg = TestConfig::default()
        .with("AWS_ENDPOINT_URL_STS", &moto.endpoint)
        .with("AWS_ACCESS_KEY_ID", &moto.access_key_id)
        .with("AWS_SECRET_ACCESS_KEY", &moto.secret_access_key)
        .with("AWS_REGION", "us-east-1");
    let Some(cfg) = cfg.secrets(Secrets::OpenBao).await else {
        return;
    };
    let Some(bao) = OpenBao::shared().await else {
        return;
    };
    let app = spawn_app(db, cfg).await.unwrap();
    let aurora = Aurora::create(&admin, bao, 4_102_444_800).await;
    {
        use sqlx::Connection as _;
        let mut c = sqlx::PgConnection::connect(&aurora.url).await.unwrap();
        sqlx::query("UPDATE workspaces SET aws_external_id = $1")
            .bind(&moto.external_id)
            .execute(&mut c)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO user_connections (user_id, org_id, account_id, role_arn, region) \
             VALUES ($1, $2, $3, $4, 'us-east-1')",
        )
        .bind(&aurora.alice.id)
        .bind(&aurora.org)
        .bind(crate::support::sts::ACCOUNT)
        .bind(&moto.role_arn)
        .execute(&mut c)
        .await
        .unwrap();
    }
    // Erin has no org (her personal org has no workspace) and her user no workspace: her external id is
    // only in Vault, where Aurora writes it. Frank, also without an org, has it nowhere.
    let (status, body) = bao
        .root(
            "POST",
            &format!("aurora/data/users/aws-external-id-{}", aurora.erin.id),
            Some(json!({"data": {"value": moto.external_id}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let frank = uuid::Uuid::new_v4().to_string();
    let frank_row = {
        use sqlx::Connection as _;
        let mut c = sqlx::PgConnection::connect(&aurora.url).await.unwrap();
        sqlx::query("INSERT INTO users (id, email) VALUES ($1, $2)")
            .bind(&frank)
            .bind(format!("frank-{}@aurora.example", &frank[..8]))
            .execute(&mut c)
            .await
            .unwrap();
        let mut ids = Vec::new();
        for (user, account) in [
            (&aurora.erin.id, crate::support::sts::ACCOUNT),
            (&frank, "333333333333"),
        ] {
            let id: i32 = sqlx::query_scalar(
                "INSERT INTO user_connections (user_id, account_id, role_arn, region) \
                 VALUES ($1, $2, $3, 'us-east-1') RETURNING id",
            )
            .bind(user)
            .bind(account)
            .bind(&moto.role_arn)
            .fetch_one(&mut c)
            .await
            .unwrap();
            ids.push(id);
        }
        ids[1].to_string()
    };
    let report = import(&app, &aurora.url, Options::default()).await.unwrap();
    assert_eq!(counts(&report, Table::UserConnections), (4, 0, 1), "{report}");
    let why = reason(&report, Table::UserConnections, &frank_row);
    assert!(why.contains(&format!("aws-external-id-{frank}")), "{why}");
    assert!(!report.to_string().contains(&moto.external_id), "{report}");

    // Erin's account is assumed with the external id from Vault.
    let erin = app.login(&aurora.erin.email, aurora.erin.password).await;
    let path = format!("/api/tokens/aws/credentials?name={}", crate::support::sts::ACCOUNT);
    let r = app.get_auth(&path, &erin).await;
    let (status, body) = (r.status(), r.json::<Value>().await.unwrap());
    assert_eq!(status, 200, "{body}");
    let data = &body["tokenData"];
    assert!(data["session_token"].as_str().is_some_and(|v| !v.is_empty()), "{body}");
    assert_eq!(data["external_id"], json!(moto.external_id), "{body}");

    let alice = app.login(&aurora.alice.email, aurora.alice.password).await;
    let path = format!("/api/tokens/aws/credentials?name={}", crate::support::sts::ACCOUNT);
    let (status, body) = in_org(&app, &alice, &aurora.org, &path).await;
    assert_eq!(status, 200, "{body}");
    let data = &body["tokenData"];
    for f in ["access_key_id", "secret_access_key", "session_token"] {
        assert!(data[f].as_str().is_some_and(|v| !v.is_empty()), "{f}: {body}");
    }
    assert_eq!(
        (&data["role_arn"], &data["external_id"]),
        (&json!(moto.role_arn), &json!(moto.external_id))
    );
}

crate::on_both_backends!(
    what_an_import_adds_is_used_like_the_rest,
    an_imported_aws_account_is_assumed
);
