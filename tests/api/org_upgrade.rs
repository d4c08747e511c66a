//! A database made by the release before orgs (migrations up to 0004) is upgraded in place: every user
//! gets a personal org and keeps every connection, session and audit event, read back through the service.

use secrecy::SecretString;
use serde_json::{Value, json};

use crate::support::app::{Db, Secrets, TestConfig, spawn_on_database};

const INTERNAL: &str = "s3cret-internal";
/// The last migration of the release before orgs.
const BEFORE_ORGS: i64 = 4;

/// Rows as the previous release wrote them: a registered user with a session, an internal caller's user
/// (no users row), a connection each, an audit event.
fn old_rows(alice: &str, svc: &str) -> String {
    let session = tokenkeeper::identity::sessions::hash_token("tks_upgrade_session_token");
    let far = i64::MAX / 4;
    let conn = |user: &str| {
        format!(
            "INSERT INTO connections (user_id, provider, secret_ref, secret_version, metadata, status, created_at, \
             updated_at) VALUES ('{user}', 'grafana', 'local:kv/data/aurora/users/aurora-dev-{user}-grafana-token', 1, \
             '{{\"base_url\":\"https://g.example.com\"}}', 'active', 1000, 2000);"
        )
    };
    format!(
        "INSERT INTO users (id, email, name, created_at) VALUES ('{alice}', '{alice}@example.com', 'Alice', 1000);
         INSERT INTO sessions (token_hash, user_id, created_at, expires_at) VALUES ('{session}', '{alice}', 1000, {far});
         {}
         {}
         INSERT INTO audit_events (user_id, kind, provider, outcome, at) VALUES ('{alice}', 'credential_store', 'grafana', 'ok', 1500);",
        conn(alice),
        conn(svc)
    )
}

async fn previous_release_is_upgraded(db: Db, secrets: Secrets) {
    // Ids unique per run: OpenBao is shared by the tests of a binary.
    let run = uuid::Uuid::new_v4().simple().to_string();
    let (alice, svc) = (format!("alice-{run}"), format!("svc-{run}"));
    let Some((url, _dir)) = crate::support::upgrade::database_at(db, BEFORE_ORGS, old_rows(&alice, &svc)).await else {
        return;
    };
    let Some(cfg) = TestConfig::default()
        .with("TOKENKEEPER_INTERNAL_SECRET", INTERNAL)
        .secrets(secrets)
        .await
    else {
        return;
    };
    let app = spawn_on_database(url, cfg).await;
    // The secrets, where the previous release wrote them (the embedded store lives in the new data dir).
    for user in [&alice, &svc] {
        let name = format!("aurora-dev-{user}-grafana-token");
        let value = json!({"api_key": format!("glsa_{user}"), "base_url": "https://g.example.com"}).to_string();
        let written = app
            .services
            .secrets
            .write(&name, &SecretString::from(value), Some(0))
            .await
            .unwrap();
        assert_eq!(written, 1);
        // The reference in this test's secret store (`vault:` with OpenBao).
        let reference = app.services.secrets.reference(&name);
        let set = format!("UPDATE connections SET secret_ref = '{reference}' WHERE user_id = '{user}'");
        crate::support::app::sql(&app, &set).await;
    }
    let session = "tks_upgrade_session_token";

    // The registered user: their session still works, their connection is in their personal org.
    let listed: Value = app.get_auth("/api/tokens", session).await.json().await.unwrap();
    assert_eq!(listed["connections"][0]["provider"], "grafana", "{listed}");
    assert_eq!(
        app.credentials("grafana", session).await["tokenData"]["api_key"],
        format!("glsa_{alice}")
    );
    let orgs: Value = app.get_auth("/api/orgs", session).await.json().await.unwrap();
    assert_eq!(
        orgs["orgs"],
        json!([{"id": alice, "name": "Alice", "personal": true, "role": "admin"}])
    );
    let audit: Value = app.get_auth("/api/audit", session).await.json().await.unwrap();
    assert!(
        audit["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["at"] == "1970-01-01T00:00:01.500Z"),
        "{audit}"
    );
    // The row moved to the org and kept its creator, reference and times.
    let row = app.row(&alice, "grafana").await;
    assert_eq!(
        (row.org_id.as_str(), row.user_id.as_str()),
        (alice.as_str(), alice.as_str())
    );
    assert!(
        row.secret_ref.ends_with(&format!("/aurora-dev-{alice}-grafana-token")),
        "{}",
        row.secret_ref
    );
    assert_eq!(row.created_at.as_millis(), 1000);

    // The internal caller's user (no users row): a personal org was made for them too.
    let internal = |path: &str| {
        app.client
            .get(app.at(path))
            .header("X-User-ID", svc.as_str())
            .header("X-Internal-Secret", INTERNAL)
            .send()
    };
    let r = internal("/api/tokens/grafana/credentials").await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap()["tokenData"]["api_key"],
        format!("glsa_{svc}")
    );
    let orgs: Value = internal("/api/orgs").await.unwrap().json().await.unwrap();
    assert_eq!(
        orgs["orgs"],
        json!([{"id": svc, "name": svc, "personal": true, "role": "admin"}])
    );
}

crate::on_all_stores!(previous_release_is_upgraded);
