//! Provider credentials through HTTP (`docs/API.md`, `docs/STORAGE.md`), on every pair of database and secret store.

use serde_json::{Value, json};
use tokenkeeper::providers::catalog;

use crate::support::app::{Db, Secrets, TestApp, TestConfig, error_of, spawn_app};

async fn app(db: Db, secrets: Secrets) -> Option<TestApp> {
    let cfg = TestConfig::default().secrets(secrets).await?;
    spawn_app(db, cfg).await
}

/// Every provider: a valid credential stores, lists without secrets, and reads back whole.
async fn every_provider_stores_and_reads_back(db: Db, secrets: Secrets) {
    let Some(app) = app(db, secrets).await else { return };
    let (uid, token) = app.user("all@example.com").await;
    for spec in catalog() {
        for mut example in spec.example_credentials() {
            if example.get("service_account_json").is_some() {
                // The catalog's example key cannot sign; this test-only key can.
                example["service_account_json"] = json!(include_str!("../fixtures/gcp-service-account.json"));
            }
            let r = app
                .put_auth(&format!("/api/tokens/{}", spec.id), &token, example.clone())
                .await;
            assert_eq!(r.status(), 200, "store {}: {:?}", spec.id, r.text().await);
            let view: Value = r.json().await.unwrap();
            assert_eq!(view["provider"], spec.id);
            // The test app stores without a check (tests/api/checks.rs checks).
            assert_eq!(view["status"], "unchecked");
            let expected_ref = format!(
                "{}:kv/data/aurora/users/aurora-dev-{uid}-{}-token",
                if secrets == Secrets::OpenBao { "vault" } else { "local" },
                spec.id
            );
            assert_eq!(view["secretRef"], expected_ref.as_str());

            let r = app
                .get_auth(&format!("/api/tokens/{}/credentials", spec.id), &token)
                .await;
            let data: Value = if example.get("access_token").is_none() && spec.refreshes() {
                // Nothing minted yet (service principal, role, service-account key, OAuth client), and the
                // token endpoints point at a closed port here: no usable token to hand out, so 503, not
                // the stored inputs passed off as a working credential. What was stored is read directly.
                assert_eq!(r.status(), 503, "read {}", spec.id);
                let want = format!("The provider could not refresh the {} credential", spec.id);
                assert_eq!(error_of(r).await, want);
                let name = format!("aurora-dev-{uid}-{}-token", spec.id);
                let stored = app.services.secrets.read(&name, None).await.unwrap().unwrap();
                let stored: Value = serde_json::from_str(secrecy::ExposeSecret::expose_secret(&stored.value)).unwrap();
                json!({ "tokenData": stored })
            } else {
                assert_eq!(r.status(), 200, "read {}", spec.id);
                assert_eq!(r.headers()["cache-control"], "no-store");
                r.json().await.unwrap()
            };
            for (k, v) in example.as_object().unwrap() {
                let got = &data["tokenData"][k];
                // Normalized values (objects stored as JSON text, numbers from strings) keep their meaning.
                assert!(!got.is_null(), "{}: field {k} missing after read", spec.id);
                if v.is_string() && got.is_string() && spec.field(k).is_some_and(|f| f.secret) {
                    assert_eq!(got, v, "{}: secret field {k} changed", spec.id);
                }
            }
        }
    }
    let list: Value = app.get_auth("/api/tokens", &token).await.json().await.unwrap();
    let listed = list["connections"].as_array().unwrap();
    assert_eq!(listed.len(), catalog().len());
    // No secret value in the listing.
    let text = list.to_string();
    for spec in catalog() {
        for example in spec.example_credentials() {
            for f in spec.fields.iter().filter(|f| f.secret) {
                if let Some(v) = example.get(f.name).and_then(Value::as_str).filter(|v| v.len() >= 6) {
                    assert!(
                        !text.contains(v),
                        "{}: secret {} appears in the listing",
                        spec.id,
                        f.name
                    );
                }
            }
        }
    }
}

async fn validation_errors_name_the_field(db: Db, secrets: Secrets) {
    let Some(app) = app(db, secrets).await else { return };
    let (_, token) = app.user("val@example.com").await;
    for spec in catalog() {
        let example = spec.example_credential();
        for f in spec.fields.iter().filter(|f| f.required) {
            let mut body = example.clone();
            if body.as_object_mut().unwrap().remove(f.name).is_none() {
                continue; // not part of this variant
            }
            let r = app.put_auth(&format!("/api/tokens/{}", spec.id), &token, body).await;
            assert_eq!(r.status(), 400, "{} without {}", spec.id, f.name);
            let msg = error_of(r).await;
            assert!(
                msg.contains(f.name),
                "{}: error {msg:?} should name {}",
                spec.id,
                f.name
            );
        }
        let mut body = example.clone();
        body.as_object_mut().unwrap().insert("no_such_field".into(), json!("x"));
        let r = app.put_auth(&format!("/api/tokens/{}", spec.id), &token, body).await;
        assert_eq!(r.status(), 400);
        assert!(error_of(r).await.contains("no_such_field"));
    }
    // Malformed formats.
    for (provider, field, value) in [
        ("grafana", "base_url", json!("http://grafana.example.com")),
        ("grafana", "base_url", json!("https://127.0.0.1")),
        ("splunk", "base_url", json!("https://169.254.169.254/")),
        ("aws", "role_arn", json!("not-an-arn")),
        ("datadog", "site", json!("evil.example.com")),
    ] {
        let mut body = catalog()
            .iter()
            .find(|p| p.id == provider)
            .unwrap()
            .example_credential();
        body[field] = value;
        let r = app.put_auth(&format!("/api/tokens/{provider}"), &token, body).await;
        assert_eq!(r.status(), 400, "{provider}.{field}");
        assert!(error_of(r).await.contains(field));
    }
    let r = app.put_auth("/api/tokens/nope", &token, json!({})).await;
    assert_eq!(r.status(), 404);
    assert_eq!(app.get_auth("/api/tokens/nope", &token).await.status(), 404);
    let r = app
        .put_auth("/api/tokens/grafana", &token, json!(["not", "an", "object"]))
        .await;
    assert_eq!(r.status(), 400);
    // Nothing was stored by any of the refused requests.
    let list: Value = app.get_auth("/api/tokens", &token).await.json().await.unwrap();
    assert_eq!(list["connections"], json!([]));
}

async fn users_cannot_reach_each_other(db: Db, secrets: Secrets) {
    let Some(app) = app(db, secrets).await else { return };
    let (_, alice) = app.user("alice@example.com").await;
    let (_, bob) = app.user("bob@example.com").await;
    let creds = json!({"api_key": "glsa_bob_secret_key_123456", "base_url": "https://bob.grafana.net"});
    assert_eq!(app.put_auth("/api/tokens/grafana", &bob, creds).await.status(), 200);
    assert_eq!(app.get_auth("/api/tokens/grafana", &alice).await.status(), 404);
    assert_eq!(
        app.get_auth("/api/tokens/grafana/credentials", &alice).await.status(),
        404
    );
    assert_eq!(app.delete_auth("/api/tokens/grafana", &alice).await.status(), 404);
    let list: Value = app.get_auth("/api/tokens", &alice).await.json().await.unwrap();
    assert_eq!(list["connections"], json!([]));
    let data = app.credentials("grafana", &bob).await;
    assert_eq!(data["tokenData"]["api_key"], "glsa_bob_secret_key_123456");
}

async fn replace_keeps_versions_and_delete_destroys(db: Db, secrets: Secrets) {
    let Some(app) = app(db, secrets).await else { return };
    let (uid, token) = app.user("rot@example.com").await;
    let v1 = json!({"api_token": "splunk-token-one-0001", "base_url": "https://splunk.example.com"});
    let v2 = json!({"api_token": "splunk-token-two-0002", "base_url": "https://splunk.example.com"});
    let r: Value = app
        .put_auth("/api/tokens/splunk", &token, v1)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r["secretVersion"], 1);
    app.clock.advance_secs(90);
    let r: Value = app
        .put_auth("/api/tokens/splunk", &token, v2)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r["secretVersion"], 2);
    app.clock.advance_secs(30);
    let view: Value = app.get_auth("/api/tokens/splunk", &token).await.json().await.unwrap();
    assert_eq!(view["ageSeconds"], 30);
    let data = app.credentials("splunk", &token).await;
    assert_eq!(data["tokenData"]["api_token"], "splunk-token-two-0002");
    // The previous version is kept in the secret store (rotation).
    let name = format!("aurora-dev-{uid}-splunk-token");
    let old = app.services.secrets.read(&name, Some(1)).await.unwrap().unwrap();
    assert!(secrecy::ExposeSecret::expose_secret(&old.value).contains("splunk-token-one-0001"));

    assert_eq!(app.delete_auth("/api/tokens/splunk", &token).await.status(), 200);
    assert_eq!(app.get_auth("/api/tokens/splunk", &token).await.status(), 404);
    assert_eq!(
        app.get_auth("/api/tokens/splunk/credentials", &token).await.status(),
        404
    );
    assert_eq!(app.delete_auth("/api/tokens/splunk", &token).await.status(), 404);
    assert!(app.services.secrets.read(&name, None).await.unwrap().is_none());
    assert!(app.services.secrets.read(&name, Some(1)).await.unwrap().is_none());
}

async fn concurrent_writers_lose_nothing(db: Db, secrets: Secrets) {
    let Some(app) = app(db, secrets).await else { return };
    let (uid, token) = app.user("race@example.com").await;
    let name = format!("aurora-dev-{uid}-datadog-token");
    let mut total = 0;
    // Several rounds: the writers race between the secret store and SQL, and finish in any order.
    for round in 0..4 {
        let writes = (0..8).map(|i| {
            let body = json!({"api_key": format!("dd-api-key-{round}-{i:04}-abcdef"), "app_key": format!("dd-app-key-{i:04}-abcdef")});
            app.put_auth("/api/tokens/datadog", &token, body)
        });
        let statuses: Vec<u16> = futures::future::join_all(writes)
            .await
            .iter()
            .map(|r| r.status().as_u16())
            .collect();
        assert!(statuses.iter().all(|s| *s == 200 || *s == 409), "{statuses:?}");
        let winners = statuses.iter().filter(|s| **s == 200).count();
        assert!(winners >= 1);
        total += winners;
        // Every success made its own version: none was silently overwritten.
        let latest = app.services.secrets.read(&name, None).await.unwrap().unwrap();
        assert_eq!(usize::try_from(latest.version).unwrap(), total, "versions {statuses:?}");
        // The reference names the newest version whatever order the writers finished in, and reads give it.
        let view: Value = app.get_auth("/api/tokens/datadog", &token).await.json().await.unwrap();
        assert_eq!(view["secretVersion"], latest.version, "round {round}");
        let newest = serde_json::from_str::<Value>(secrecy::ExposeSecret::expose_secret(&latest.value)).unwrap();
        let data = app.credentials("datadog", &token).await;
        assert_eq!(data["tokenData"]["api_key"], newest["api_key"]);
    }
}

async fn cookie_sessions_get_no_secrets(db: Db, secrets: Secrets) {
    let f: Value = serde_json::from_str(include_str!("../fixtures/authjs/fixtures.json")).unwrap();
    let secret = f["accepted_secrets"][0].as_str().unwrap();
    let Some(cfg) = TestConfig::default().with("AUTH_SECRET", secret).secrets(secrets).await else {
        return;
    };
    let app = spawn_app(db, cfg).await.unwrap();
    app.clock.set_ms(f["now"].as_i64().unwrap() * 1000);
    let jwe = f["tokens"]["valid"]["token"].as_str().unwrap();
    let creds = json!({"api_token": "netdata-token-000111", "space_name": "ops"});
    assert_eq!(app.put_auth("/api/tokens/netdata", jwe, creds).await.status(), 200);
    let cookie = format!("authjs.session-token={jwe}");
    let get = |path: &'static str| app.client.get(app.at(path)).header("Cookie", cookie.clone()).send();
    assert_eq!(get("/api/tokens/netdata").await.unwrap().status(), 200);
    assert_eq!(get("/api/tokens/netdata/credentials").await.unwrap().status(), 403);
    // The same session as a Bearer JWE may read them.
    assert_eq!(app.get_auth("/api/tokens/netdata/credentials", jwe).await.status(), 200);
}

async fn unauthenticated_token_routes_are_401(db: Db, secrets: Secrets) {
    let Some(app) = app(db, secrets).await else { return };
    for path in ["/api/tokens", "/api/tokens/gcp", "/api/tokens/gcp/credentials"] {
        let r = app.client.get(app.at(path)).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path}");
        assert_eq!(error_of(r).await, "Authentication required");
    }
    let r = app.client.get(app.at("/api/providers")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let providers: Value = r.json().await.unwrap();
    assert_eq!(providers["providers"].as_array().unwrap().len(), 13);
}

/// Secret names carry the user id reduced to letters, digits, `-` and `_` (Aurora's naming), so an id
/// the reduction would change could land on another user's secret: `a.b` and `ab` are both `ab`.
async fn user_ids_that_would_share_a_secret_name_are_refused(db: Db, secrets: Secrets) {
    let Some(cfg) = TestConfig::default()
        .with("TOKENKEEPER_INTERNAL_SECRET", "internal-test-secret")
        .secrets(secrets)
        .await
    else {
        return;
    };
    let app = spawn_app(db, cfg).await.unwrap();
    let as_user = |req: reqwest::RequestBuilder, uid: &str| {
        req.header("X-User-ID", uid)
            .header("X-Internal-Secret", "internal-test-secret")
    };
    let put = |uid: &'static str, key: &'static str| {
        as_user(app.client.put(app.at("/api/tokens/grafana")), uid)
            .json(&json!({"api_key": key, "base_url": "https://g.example.com"}))
            .send()
    };
    assert_eq!(put("ab", "glsa_owner_of_ab").await.unwrap().status(), 200);
    let r = put("a.b", "glsa_intruder_a_dot_b").await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(error_of(r).await.contains("userId"));
    let r = as_user(app.client.get(app.at("/api/tokens/grafana/credentials")), "ab")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.json::<Value>().await.unwrap()["tokenData"]["api_key"],
        "glsa_owner_of_ab"
    );
}

/// Stores and deletes of one credential racing each other: a delete removes the reference, then destroys
/// the secret, so a store landing between the two would leave a reference to a destroyed secret. They take
/// the credential's lock, so after every round the credential is either absent or readable.
async fn stores_and_deletes_racing_leave_no_dangling_reference(db: Db, secrets: Secrets) {
    let Some(app) = app(db, secrets).await else { return };
    let (_, token) = app.user("store-delete@example.com").await;
    let body =
        |i: usize| json!({"api_token": format!("splunk-race-token-{i:04}"), "base_url": "https://s.example.com"});
    assert_eq!(app.put_auth("/api/tokens/splunk", &token, body(0)).await.status(), 200);
    for round in 1..=15 {
        let (put, del) = tokio::join!(
            app.put_auth("/api/tokens/splunk", &token, body(round)),
            app.delete_auth("/api/tokens/splunk", &token)
        );
        assert!(
            [200, 409].contains(&put.status().as_u16()),
            "round {round}: put {}",
            put.status()
        );
        assert!(
            [200, 404].contains(&del.status().as_u16()),
            "round {round}: delete {}",
            del.status()
        );
        let read = app.get_auth("/api/tokens/splunk/credentials", &token).await;
        assert!(
            [200, 404].contains(&read.status().as_u16()),
            "round {round}: read {} {:?}",
            read.status(),
            read.text().await
        );
        if round % 2 == 0 {
            let r = app.put_auth("/api/tokens/splunk", &token, body(100 + round)).await;
            assert_eq!(r.status(), 200, "round {round}: a store racing nothing");
        }
    }
}

crate::on_all_stores!(
    stores_and_deletes_racing_leave_no_dangling_reference,
    user_ids_that_would_share_a_secret_name_are_refused,
    every_provider_stores_and_reads_back,
    validation_errors_name_the_field,
    users_cannot_reach_each_other,
    replace_keeps_versions_and_delete_destroys,
    concurrent_writers_lose_nothing,
    cookie_sessions_get_no_secrets,
    unauthenticated_token_routes_are_401,
);

/// The read cache never serves a replaced or deleted secret, on this instance or another, and the
/// other instances drop their copies (PostgreSQL NOTIFY).
/// Several instances: PostgreSQL and a shared Vault (OpenBao).
async fn cache_is_dropped_everywhere_on_write_and_delete(db: Db) {
    let secrets = Secrets::OpenBao;
    let Some(cfg) = TestConfig::default().secrets(secrets).await else {
        return;
    };
    let a = spawn_app(db, cfg).await.unwrap();
    let b = crate::support::app::spawn_sibling(&a, TestConfig::default().secrets(secrets).await.unwrap()).await;
    let (_, token) = a.user("cache@example.com").await;
    let v1 = json!({"api_key": "glsa_cached_version_one", "base_url": "https://g.example.com"});
    let v2 = json!({"api_key": "glsa_cached_version_two", "base_url": "https://g.example.com"});
    assert_eq!(a.put_auth("/api/tokens/grafana", &token, v1).await.status(), 200);
    // The store's own announcement reaches both instances (A too) and drops their entry: wait for it,
    // or it could drop the entries cached below and the drop asserted later would prove nothing.
    announced(&a, 1).await;
    announced(&b, 1).await;
    assert_eq!(read(&a, &token).await, (200, json!("glsa_cached_version_one")));
    assert_eq!(read(&b, &token).await, (200, json!("glsa_cached_version_one")));
    assert_eq!(a.services.credentials.cached_entries(), 1);
    assert_eq!(b.services.credentials.cached_entries(), 1);

    // Replaced on B: A must not serve its cached copy, and drops it.
    assert_eq!(b.put_auth("/api/tokens/grafana", &token, v2).await.status(), 200);
    announced(&a, 2).await;
    assert_eq!(
        a.services.credentials.cached_entries(),
        0,
        "instance A kept a replaced secret in memory"
    );
    assert_eq!(read(&a, &token).await, (200, json!("glsa_cached_version_two")));
    // Deleted on B: A answers 404 and drops its copy.
    assert_eq!(b.delete_auth("/api/tokens/grafana", &token).await.status(), 200);
    // Announced, not yet applied: the window in which A may still serve its copy (milliseconds).
    announced(&a, 3).await;
    assert_eq!(
        a.services.credentials.cached_entries(),
        0,
        "instance A kept a deleted secret in memory"
    );
    assert_eq!(read(&a, &token).await.0, 404);
}

/// Waits until `app`'s read cache has applied `n` change announcements.
async fn announced(app: &TestApp, n: u64) {
    crate::support::wait::until(&format!("{n} change announcements applied"), || async {
        app.services.credentials.cache_announcements() >= n
    })
    .await;
}

/// PostgreSQL announces every change to a connection row from a trigger, in the transaction that makes
/// it: even a row deleted by hand (psql) leaves no instance serving its cached copy.
async fn a_change_made_by_hand_in_sql_is_announced(db: Db) {
    use sqlx::Connection as _;
    let Some(app) = app(db, Secrets::Embedded).await else {
        return;
    };
    let (uid, token) = app.user("by-hand@example.com").await;
    let body = json!({"api_key": "glsa_deleted_by_hand", "base_url": "https://g.example.com"});
    assert_eq!(app.put_auth("/api/tokens/grafana", &token, body).await.status(), 200);
    // The store's own announcement arrives asynchronously: wait for it, or it could drop the entry cached
    // below (the test then failed under load with 0 cached entries before the SQL delete).
    announced(&app, 1).await;
    assert_eq!(read(&app, &token).await, (200, json!("glsa_deleted_by_hand")));
    assert_eq!(app.services.credentials.cached_entries(), 1);
    let mut conn = sqlx::PgConnection::connect(&app.database_url).await.unwrap();
    sqlx::query("DELETE FROM connections WHERE user_id = $1")
        .bind(&uid)
        .execute(&mut conn)
        .await
        .unwrap();
    announced(&app, 2).await;
    assert_eq!(
        app.services.credentials.cached_entries(),
        0,
        "a row deleted in SQL stayed in the read cache"
    );
    assert_eq!(read(&app, &token).await.0, 404);
}

mod cache {
    use super::{a_change_made_by_hand_in_sql_is_announced, cache_is_dropped_everywhere_on_write_and_delete};
    crate::on_postgres!(
        cache_is_dropped_everywhere_on_write_and_delete,
        a_change_made_by_hand_in_sql_is_announced
    );

    /// SQLite: another process writing the same file (the CLI, here a second instance) replaces or
    /// deletes a credential and bumps the shared change counter; the next read already sees it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_reads_see_another_process_changes_at_once() {
        use crate::support::app::{Db, Secrets, TestConfig, spawn_app, spawn_sibling};
        use serde_json::json;
        let Some(cfg) = TestConfig::default().secrets(Secrets::OpenBao).await else {
            return;
        };
        let a = spawn_app(Db::Sqlite, cfg).await.unwrap();
        let b = spawn_sibling(&a, TestConfig::default().secrets(Secrets::OpenBao).await.unwrap()).await;
        let (_, token) = a.user("sqlite-cache@example.com").await;
        let body = |key: &str| json!({"api_key": key, "base_url": "https://g.example.com"});
        assert_eq!(
            a.put_auth("/api/tokens/grafana", &token, body("glsa_sqlite_one"))
                .await
                .status(),
            200
        );
        assert_eq!(super::read(&a, &token).await, (200, json!("glsa_sqlite_one")));
        assert_eq!(a.services.credentials.cached_entries(), 1);

        // Deleted by the other process: 404 at once.
        assert_eq!(b.delete_auth("/api/tokens/grafana", &token).await.status(), 200);
        assert_eq!(super::read(&a, &token).await.0, 404);
        // Stored again from scratch: its secret restarts at version 1, like the copy A still holds.
        a.clock.advance_secs(1);
        assert_eq!(
            b.put_auth("/api/tokens/grafana", &token, body("glsa_sqlite_two"))
                .await
                .status(),
            200
        );
        assert_eq!(super::read(&a, &token).await, (200, json!("glsa_sqlite_two")));
        // Replaced by the other process (version 2): the new version at once.
        assert_eq!(
            b.put_auth("/api/tokens/grafana", &token, body("glsa_sqlite_three"))
                .await
                .status(),
            200
        );
        assert_eq!(super::read(&a, &token).await, (200, json!("glsa_sqlite_three")));
    }
}

async fn read(app: &TestApp, token: &str) -> (u16, Value) {
    let r = app.get_auth("/api/tokens/grafana/credentials", token).await;
    let status = r.status().as_u16();
    (status, r.json::<Value>().await.unwrap()["tokenData"]["api_key"].clone())
}

/// The storage contract, read directly: the SQL row holds exactly the reference (and no secret), and the
/// raw OpenBao entry at `{mount}/data/{base}/{name}` is exactly `{"value": "<token data as JSON text>"}`.
async fn storage_contract_read_directly(db: Db, secrets: Secrets) {
    let Some(app) = app(db, secrets).await else { return };
    let (uid, token) = app.user("contract@example.com").await;
    let body =
        json!({"api_key": "dd-contract-api-key-0001", "app_key": "dd-contract-app-key-0001", "site": "datadoghq.eu"});
    assert_eq!(app.put_auth("/api/tokens/datadog", &token, body).await.status(), 200);
    let name = format!("aurora-dev-{uid}-datadog-token");
    let prefix = if secrets == Secrets::OpenBao { "vault" } else { "local" };

    let (secret_ref, version, metadata): (String, i64, String) = {
        use sqlx::Connection as _;
        let q =
            "SELECT secret_ref, secret_version, metadata FROM connections WHERE user_id = $1 AND provider = 'datadog'";
        if app.database_url.starts_with("postgres") {
            let mut c = sqlx::PgConnection::connect(&app.database_url).await.unwrap();
            sqlx::query_as(q).bind(&uid).fetch_one(&mut c).await.unwrap()
        } else {
            let mut c = sqlx::SqliteConnection::connect(&app.database_url).await.unwrap();
            sqlx::query_as(q).bind(&uid).fetch_one(&mut c).await.unwrap()
        }
    };
    assert_eq!(secret_ref, format!("{prefix}:kv/data/aurora/users/{name}"));
    assert_eq!(version, 1);
    assert_eq!(
        serde_json::from_str::<Value>(&metadata).unwrap(),
        json!({"site": "datadoghq.eu"})
    );

    if secrets == Secrets::OpenBao {
        let bao = crate::support::openbao::OpenBao::shared().await.unwrap();
        let (status, raw) = bao.root("GET", &format!("aurora/data/users/{name}"), None).await;
        assert_eq!(status, 200);
        let payload = raw["data"]["data"].as_object().unwrap();
        assert_eq!(
            payload.keys().collect::<Vec<_>>(),
            ["value"],
            "the payload is exactly {{\"value\": ...}}"
        );
        let inner: Value = serde_json::from_str(payload["value"].as_str().unwrap()).unwrap();
        assert_eq!(
            inner,
            json!({"api_key": "dd-contract-api-key-0001", "app_key": "dd-contract-app-key-0001", "site": "datadoghq.eu"})
        );
    }
}

mod contract {
    use super::storage_contract_read_directly;
    crate::on_all_stores!(storage_contract_read_directly);
}

/// The reference write is a check-and-set on the row read before it: a writer whose read is outdated (the
/// row moved on meanwhile) writes nothing, whether it expected that row or no row at all.
async fn a_reference_write_on_an_outdated_read_does_not_land(db: Db, secrets: Secrets) {
    let Some(app) = app(db, secrets).await else { return };
    let (uid, token) = app.user("stale@example.com").await;
    let body = |k: &str| json!({"api_token": k, "base_url": "https://s.example.com"});
    assert_eq!(
        app.put_auth("/api/tokens/splunk", &token, body("splunk-first-token"))
            .await
            .status(),
        200
    );
    let store = &app.services.store;
    let stale = store.get_connection(&uid, "splunk", "default").await.unwrap().unwrap();
    assert_eq!(
        app.put_auth("/api/tokens/splunk", &token, body("splunk-second-token"))
            .await
            .status(),
        200
    );
    assert!(
        !store.put_connection(&stale, Some(1)).await.unwrap(),
        "the row moved on to version 2"
    );
    assert!(!store.put_connection(&stale, None).await.unwrap(), "there is a row");
    let row = store.get_connection(&uid, "splunk", "default").await.unwrap().unwrap();
    assert_eq!(row.secret_version, 2);
    // On the row as it is, it lands.
    let degraded = tokenkeeper::db::Connection {
        status: tokenkeeper::db::ConnectionStatus::Degraded,
        ..row
    };
    assert!(store.put_connection(&degraded, Some(2)).await.unwrap());
    assert_eq!(
        store
            .get_connection(&uid, "splunk", "default")
            .await
            .unwrap()
            .unwrap()
            .status,
        tokenkeeper::db::ConnectionStatus::Degraded
    );
    // Where there is no row, only a write expecting none lands.
    store.delete_connection(&uid, "splunk", "default").await.unwrap();
    assert!(!store.put_connection(&degraded, Some(2)).await.unwrap());
    assert!(store.get_connection(&uid, "splunk", "default").await.unwrap().is_none());
    assert!(store.put_connection(&degraded, None).await.unwrap());
    assert_eq!(
        store.get_connection(&uid, "splunk", "default").await.unwrap(),
        Some(degraded)
    );
}

mod stale {
    use super::a_reference_write_on_an_outdated_read_does_not_land;
    crate::on_all_stores!(a_reference_write_on_an_outdated_read_does_not_land);
}

/// The secret destroyed outside Tokenkeeper (every version and the metadata, e.g. `vault kv metadata
/// delete`) while its reference stayed: storing again starts the secret over at version 1, and the
/// reference must follow it down instead of keeping a version that no longer exists.
async fn storing_after_the_secret_was_destroyed_elsewhere_moves_the_reference(db: Db, secrets: Secrets) {
    let Some(app) = app(db, secrets).await else { return };
    let (uid, token) = app.user("destroyed@example.com").await;
    let body = |k: &str| json!({"api_token": k, "base_url": "https://s.example.com"});
    for i in 1..=3 {
        let r = app
            .put_auth(
                "/api/tokens/splunk",
                &token,
                body(&format!("splunk-before-destroy-{i}")),
            )
            .await;
        assert_eq!(r.status(), 200);
    }
    let name = format!("aurora-dev-{uid}-splunk-token");
    app.services.secrets.delete(&name).await.unwrap();

    let r = app
        .put_auth("/api/tokens/splunk", &token, body("splunk-after-destroy"))
        .await;
    assert_eq!(r.status(), 200);
    let data = app.credentials("splunk", &token).await;
    assert_eq!(data["tokenData"]["api_token"], "splunk-after-destroy");
    let row = app.row(&uid, "splunk").await;
    assert_eq!(row.secret_version, 1, "the reference names the secret's only version");
    // And it goes on from there.
    let r = app.put_auth("/api/tokens/splunk", &token, body("splunk-next")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["secretVersion"], 2);
    let data = app.credentials("splunk", &token).await;
    assert_eq!(data["tokenData"]["api_token"], "splunk-next");
}

mod destroyed_elsewhere {
    use super::storing_after_the_secret_was_destroyed_elsewhere_moves_the_reference;
    crate::on_all_stores!(storing_after_the_secret_was_destroyed_elsewhere_moves_the_reference);
}

/// KV v2 soft delete of the current version (`DELETE {mount}/data/{path}`, e.g. `vault kv delete`): its
/// data is gone but the metadata and its version count stay, so storing again must check-and-set against
/// the metadata's current version (a cas of 0 would conflict forever).
async fn storing_after_a_soft_delete_in_vault_works(db: Db) {
    use crate::support::openbao::{BASE_PATH, MOUNT, OpenBao};
    let Some(app) = app(db, Secrets::OpenBao).await else {
        return;
    };
    let bao = OpenBao::shared().await.unwrap();
    let (uid, token) = app.user("soft-deleted@example.com").await;
    let body = |k: &str| json!({"api_key": k, "base_url": "https://g.example.com"});
    for i in 1..=2 {
        let r = app
            .put_auth(
                "/api/tokens/grafana",
                &token,
                body(&format!("glsa_before_soft_delete_{i}")),
            )
            .await;
        assert_eq!(r.status(), 200);
    }
    let name = format!("aurora-dev-{uid}-grafana-token");
    let (status, _) = bao
        .root("DELETE", &format!("{MOUNT}/data/{BASE_PATH}/{name}"), None)
        .await;
    assert_eq!(status, 204);

    let r = app
        .put_auth("/api/tokens/grafana", &token, body("glsa_after_soft_delete"))
        .await;
    let status = r.status();
    let view: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["secretVersion"], 3);
    let data = app.credentials("grafana", &token).await;
    assert_eq!(data["tokenData"]["api_key"], "glsa_after_soft_delete");
    let row = app.row(&uid, "grafana").await;
    assert_eq!(row.secret_version, 3);
}

mod soft_deleted {
    use super::storing_after_a_soft_delete_in_vault_works;
    crate::on_both_backends!(storing_after_a_soft_delete_in_vault_works);
}
