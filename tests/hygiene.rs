//! No secret in the logs or the SQL tables: a full run of traffic (register, login, change-password,
//! a credential for every provider, reads, a successful refresh with token rotation, a replacement, a
//! delete, requests authenticated with the internal secret and refused Auth.js cookies) with every log
//! line captured at TRACE level, then the logs and a dump of every SQL table are scanned for each secret
//! value used, and for the service's own secrets (the Vault token, `AUTH_SECRET`, the internal secret).

mod support;

use serde_json::{Value, json};
use support::app::{Db, Secrets, TestConfig, spawn_app};
use support::fake_provider::{FakeProvider, SLACK_CLIENT_ID, SLACK_CLIENT_SECRET};
use tokenkeeper::providers::catalog;

const AUTH_SECRET: &str = "hygiene-auth-secret-0123456789-abcdefghijklmn";
const INTERNAL_SECRET: &str = "hygiene-internal-secret-0123456789";

async fn dump_sql(database_url: &str) -> String {
    use sqlx::{Connection as _, Row as _};
    let mut out = String::new();
    if database_url.starts_with("postgres") {
        let mut c = sqlx::PgConnection::connect(database_url).await.unwrap();
        let tables: Vec<String> =
            sqlx::query_scalar("SELECT tablename::text FROM pg_tables WHERE schemaname = 'public'")
                .fetch_all(&mut c)
                .await
                .unwrap();
        for t in tables {
            let q = format!("SELECT row_to_json(t)::text AS j FROM \"{t}\" t");
            for row in sqlx::query(sqlx::AssertSqlSafe(q)).fetch_all(&mut c).await.unwrap() {
                out.push_str(&row.get::<String, _>("j"));
                out.push('\n');
            }
        }
    } else {
        let mut c = sqlx::SqliteConnection::connect(database_url).await.unwrap();
        let tables: Vec<String> = sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'")
            .fetch_all(&mut c)
            .await
            .unwrap();
        for t in tables {
            let cols: Vec<String> = sqlx::query(sqlx::AssertSqlSafe(format!("PRAGMA table_info(\"{t}\")")))
                .fetch_all(&mut c)
                .await
                .unwrap()
                .iter()
                .map(|r| r.get::<String, _>("name"))
                .collect();
            let concat = cols
                .iter()
                .map(|c| format!("quote(\"{c}\")"))
                .collect::<Vec<_>>()
                .join(" || '|' || ");
            let q = format!("SELECT {concat} AS j FROM \"{t}\"");
            for row in sqlx::query(sqlx::AssertSqlSafe(q)).fetch_all(&mut c).await.unwrap() {
                out.push_str(&row.get::<String, _>("j"));
                out.push('\n');
            }
        }
    }
    out
}

/// Drives the traffic on one app and returns every secret value it used.
async fn traffic(db: Db, secrets: Secrets) -> Option<(Vec<String>, String)> {
    // Slack refreshes against a stand-in that rotates its tokens.
    let slack = FakeProvider::start();
    let cfg = TestConfig::default()
        .with(
            "TOKENKEEPER_SLACK_TOKEN_URL",
            &format!("{}/slack/api/oauth.v2.access", slack.base_url),
        )
        .with("TOKENKEEPER_SLACK_CLIENT_ID", SLACK_CLIENT_ID)
        .with("TOKENKEEPER_SLACK_CLIENT_SECRET", SLACK_CLIENT_SECRET)
        .with("AUTH_SECRET", AUTH_SECRET)
        .with("TOKENKEEPER_INTERNAL_SECRET", INTERNAL_SECRET)
        .secrets(secrets)
        .await?;
    let mut used = vec![
        AUTH_SECRET.to_string(),
        INTERNAL_SECRET.to_string(),
        SLACK_CLIENT_SECRET.to_string(),
    ];
    if secrets == Secrets::OpenBao {
        used.push(support::openbao::OpenBao::shared().await?.limited_token.clone());
    }
    let app = spawn_app(db, cfg).await?;
    let pw1 = "first-Passw0rd-hygiene".to_string();
    let pw2 = "second-Passw0rd-hygiene".to_string();
    let uid = app.register("hygiene@example.com", &pw1).await;
    let token = app.login("hygiene@example.com", &pw1).await;
    let bad = app
        .post(
            "/api/auth/login",
            json!({"email": "hygiene@example.com", "password": "wrong-Passw0rd-x"}),
        )
        .await;
    assert_eq!(bad.status(), 401);
    let r = app
        .post_auth(
            "/api/auth/change-password",
            &token,
            json!({"currentPassword": pw1, "newPassword": pw2}),
        )
        .await;
    assert_eq!(r.status(), 200);
    used.extend([pw1, pw2, "wrong-Passw0rd-x".to_string(), token.clone()]);
    let sa = include_str!("fixtures/gcp-service-account.json");
    for spec in catalog() {
        for mut example in spec.example_credentials() {
            if example.get("service_account_json").is_some() {
                example["service_account_json"] = json!(sa);
            }
            let r = app
                .put_auth(&format!("/api/tokens/{}", spec.id), &token, example.clone())
                .await;
            assert_eq!(r.status(), 200, "{}", spec.id);
            let r = app
                .get_auth(&format!("/api/tokens/{}/credentials", spec.id), &token)
                .await;
            // Credentials that must be minted first answer 503 here (the token endpoints point at a closed
            // port); that failure path is part of the traffic whose logs are scanned.
            let mints = example.get("access_token").is_none() && spec.refreshes();
            assert_eq!(r.status(), if mints { 503 } else { 200 }, "{}", spec.id);
            for f in spec.fields.iter().filter(|f| f.secret) {
                match example.get(f.name) {
                    Some(Value::String(v)) if f.name == "service_account_json" => {
                        let key: Value = serde_json::from_str(v).unwrap();
                        let pem = key["private_key"].as_str().unwrap();
                        // The key body, without the PEM armour lines.
                        used.push(pem.lines().nth(1).unwrap().to_string());
                    }
                    Some(Value::String(v)) => used.push(v.clone()),
                    _ => {}
                }
            }
        }
    }
    // A refresh that rotates both tokens: the old and the new ones are secrets.
    let seed = slack.issue_refresh_token("slack");
    let now = tokenkeeper::clock::Clock::now_secs(app.clock.as_ref());
    let before = json!({"access_token": "xoxe.xoxb-1-hygiene-before", "refresh_token": seed, "expires_at": now + 10, "team_id": "T0123456789"});
    assert_eq!(app.put_auth("/api/tokens/slack", &token, before).await.status(), 200);
    let fresh = app.credentials("slack", &token).await;
    assert_eq!(slack.calls("slack"), 1, "the read refreshed");
    let fresh = &fresh["tokenData"];
    for field in ["access_token", "refresh_token"] {
        let v = fresh[field].as_str().unwrap();
        assert!(v.contains("-rotated"), "{field} was rotated");
        used.push(v.to_string());
    }
    used.extend(["xoxe.xoxb-1-hygiene-before".to_string(), seed]);
    // The internal secret at work, a wrong guess of it, and an Auth.js cookie refused.
    let me = |secret: &str| {
        app.client
            .get(app.at("/api/auth/me"))
            .header("X-User-ID", &uid)
            .header("X-Internal-Secret", secret)
            .send()
    };
    assert_eq!(me(INTERNAL_SECRET).await.unwrap().status(), 200);
    assert_eq!(me("hygiene-internal-wrong-guess").await.unwrap().status(), 401);
    used.push("hygiene-internal-wrong-guess".into());
    let cookie =
        "authjs.session-token=eyJhbGciOiJkaXIiLCJlbmMiOiJBMjU2Q0JDLUhTNTEyIn0..hygiene-iv.hygiene-cipher.hygiene-tag";
    let r = app
        .client
        .get(app.at("/api/auth/me"))
        .header("Cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    used.push("hygiene-cipher".into());
    // A replacement and a delete, too.
    let r = app
        .put_auth(
            "/api/tokens/grafana",
            &token,
            json!({"api_key": "glsa_replacement_hygiene", "base_url": "https://g.example.com"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    used.push("glsa_replacement_hygiene".into());
    assert_eq!(app.delete_auth("/api/tokens/datadog", &token).await.status(), 200);
    // The session token hash is stored; the token itself must not be.
    let sql = dump_sql(&app.database_url).await;
    Some((used, sql))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_in_logs_or_sql() {
    let logs = support::logs::Capture::install("trace");
    let mut runs = vec![(Db::Sqlite, Secrets::Embedded), (Db::Sqlite, Secrets::OpenBao)];
    if support::postgres::admin_url().is_some() {
        runs.extend([(Db::Postgres, Secrets::Embedded), (Db::Postgres, Secrets::OpenBao)]);
    }
    let mut checked = 0;
    for (db, secrets) in runs {
        let Some((used, sql)) = traffic(db, secrets).await else {
            continue;
        };
        for v in &used {
            assert!(v.len() >= 8, "too short to scan meaningfully: {}", v.len());
            assert!(
                !sql.contains(v.as_str()),
                "{db:?}/{secrets:?}: a secret value is in the SQL tables"
            );
        }
        assert!(
            sql.contains("hygiene@example.com"),
            "the dump is real: it holds the account"
        );
        checked += used.len();
        let text = logs.text();
        assert!(text.contains("response"), "logs were captured");
        for v in &used {
            assert!(
                !text.contains(v.as_str()),
                "{db:?}/{secrets:?}: a secret value is in the logs"
            );
        }
        // Password hashes never reach the logs either.
        assert!(
            !text.contains("$2b$") && !text.contains("$argon2"),
            "a password hash is in the logs"
        );
    }
    assert!(checked > 30, "scanned {checked} values");
}
