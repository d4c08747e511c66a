//! Several connections per provider (`?name=`): each named connection has its own row, id, secret (named
//! as Aurora expects), refresh, cache entry and audit events; bad names are refused; a database of the
//! previous release keeps every connection as `default`.

use secrecy::ExposeSecret;
use serde_json::{Value, json};
use tokenkeeper::clock::Clock as _;
use tokenkeeper::credentials::DueBatch;

use crate::support::app::{Db, Secrets, TestApp, TestConfig, error_of, spawn_app, spawn_on_database, spawn_sibling};
use crate::support::token_endpoint::TokenEndpoint;

const INTERNAL: &str = "s3cret-internal";

fn grafana(key: &str) -> Value {
    json!({"api_key": format!("glsa_{key}_0123456789"), "base_url": "https://g.example.com"})
}

/// The newest value of the secret `name`, from the store itself (`None`: no live version).
async fn secret(app: &TestApp, name: &str) -> Option<Value> {
    let v = app.services.secrets.read(name, None).await.unwrap()?;
    Some(serde_json::from_str(v.value.expose_secret()).unwrap())
}

async fn status_and_body(r: reqwest::Response) -> (u16, Value) {
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn named_connections_are_independent(db: Db, secrets: Secrets) {
    let Some(cfg) = TestConfig::default().secrets(secrets).await else {
        return;
    };
    let app = spawn_app(db, cfg).await.unwrap();
    let (uid, token) = app
        .user(&format!("names-{}@example.com", uuid::Uuid::new_v4().simple()))
        .await;

    // Two connections of one provider: the default one and "prod".
    let r = app.put_auth("/api/tokens/grafana", &token, grafana("one")).await;
    assert_eq!(r.status(), 200);
    let (status, prod) = status_and_body(
        app.put_auth("/api/tokens/grafana?name=prod", &token, grafana("two"))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{prod}");
    assert_eq!(prod["name"], "prod");

    // Listed with their names and distinct ids.
    let listed: Value = app.get_auth("/api/tokens", &token).await.json().await.unwrap();
    let conns = listed["connections"].as_array().unwrap();
    let names: Vec<&str> = conns.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["default", "prod"], "{listed}");
    let ids: Vec<&str> = conns.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert!(ids.iter().all(|id| id.len() == 32), "{ids:?}");
    assert_ne!(ids[0], ids[1]);
    assert_eq!(prod["id"], ids[1]);
    // `?name=` on the listing: only that name.
    let only: Value = app
        .get_auth("/api/tokens?name=prod", &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(only["connections"].as_array().unwrap().len(), 1, "{only}");
    assert_eq!(only["connections"][0]["id"], ids[1]);

    // Each read on its own.
    let one: Value = app
        .get_auth("/api/tokens/grafana?name=prod", &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!((one["name"].as_str(), one["id"].as_str()), (Some("prod"), Some(ids[1])));
    let value = |v: &Value| v["tokenData"]["api_key"].as_str().unwrap().to_string();
    assert_eq!(value(&app.credentials("grafana", &token).await), "glsa_one_0123456789");
    let (status, body) = status_and_body(app.get_auth("/api/tokens/grafana/credentials?name=prod", &token).await).await;
    assert_eq!((status, value(&body)), (200, "glsa_two_0123456789".to_string()));
    assert_eq!(body["name"], "prod");

    // Each has its own secret, named as Aurora expects, holding its own value.
    let (default_name, prod_name) = (
        format!("aurora-dev-{uid}-grafana-token"),
        format!("aurora-dev-{uid}-grafana-prod-token"),
    );
    assert_eq!(
        app.row(&uid, "grafana").await.secret_ref,
        app.services.secrets.reference(&default_name)
    );
    assert_eq!(
        app.named_row(&uid, "grafana", "prod").await.secret_ref,
        app.services.secrets.reference(&prod_name)
    );
    assert_eq!(
        secret(&app, &prod_name).await.unwrap()["api_key"],
        "glsa_two_0123456789"
    );

    // Replacing one writes a new version of its own secret; the other is untouched.
    let r = app
        .put_auth("/api/tokens/grafana?name=prod", &token, grafana("three"))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(app.services.secrets.current_version(&prod_name).await.unwrap(), 2);
    assert_eq!(app.services.secrets.current_version(&default_name).await.unwrap(), 1);
    assert_eq!(app.named_row(&uid, "grafana", "prod").await.id, ids[1], "the id stays");
    assert_eq!(value(&app.credentials("grafana", &token).await), "glsa_one_0123456789");

    // Deleting one leaves the other: its row, its secret and its reads.
    assert_eq!(
        app.delete_auth("/api/tokens/grafana?name=prod", &token).await.status(),
        200
    );
    assert!(secret(&app, &prod_name).await.is_none());
    assert_eq!(
        secret(&app, &default_name).await.unwrap()["api_key"],
        "glsa_one_0123456789"
    );
    assert_eq!(value(&app.credentials("grafana", &token).await), "glsa_one_0123456789");
    let r = app.get_auth("/api/tokens/grafana/credentials?name=prod", &token).await;
    assert_eq!(r.status(), 404);
    assert_eq!(error_of(r).await, "No grafana \"prod\" credential is stored");
    let listed: Value = app.get_auth("/api/tokens", &token).await.json().await.unwrap();
    assert_eq!(listed["connections"].as_array().unwrap().len(), 1);
    assert_eq!(listed["connections"][0]["name"], "default");

    // The audit trail names the connection of each event.
    let audit: Value = app.get_auth("/api/audit?limit=100", &token).await.json().await.unwrap();
    let seen: Vec<(&str, &str)> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["kind"].as_str().unwrap(), e["name"].as_str().unwrap_or("-")))
        .collect();
    for expected in [
        ("credential_delete", "prod"),
        ("credential_store", "prod"),
        ("credential_store", "default"),
        ("credential_read", "prod"),
        ("credential_read", "default"),
    ] {
        assert!(seen.contains(&expected), "{expected:?} in {seen:?}");
    }
}

async fn named_connections_refresh_on_their_own(db: Db) {
    let endpoint = TokenEndpoint::start().await;
    let app = spawn_app(db, endpoint.config(TestConfig::default())).await.unwrap();
    let (uid, token) = app.user("refresh-names@example.com").await;
    // The default connection is far from expiry; "prod" expires within the margin (due).
    endpoint.store_gcp(&app, &token, 3600, "rt-default").await;
    endpoint.issue("rt-prod");
    let expires_at = app.clock.now_secs() + 60;
    let body = json!({"access_token": "access-0", "refresh_token": "rt-prod", "expires_at": expires_at});
    assert_eq!(
        app.put_auth("/api/tokens/gcp?name=prod", &token, body).await.status(),
        200
    );
    let prod_secret = format!("aurora-dev-{uid}-gcp-prod-token");
    let default_secret = format!("aurora-dev-{uid}-gcp-token");

    // A read of "prod" refreshes it, and only it.
    let (status, body) = status_and_body(app.get_auth("/api/tokens/gcp/credentials?name=prod", &token).await).await;
    assert_eq!(
        (status, body["tokenData"]["access_token"].as_str()),
        (200, Some("access-1")),
        "{body}"
    );
    assert_eq!(endpoint.calls(), 1);
    assert!(
        endpoint.is_live("rt-default"),
        "the default connection's refresh token was not used"
    );
    assert_eq!(app.services.secrets.current_version(&prod_secret).await.unwrap(), 2);
    assert_eq!(app.services.secrets.current_version(&default_secret).await.unwrap(), 1);
    assert_eq!(
        app.credentials("gcp", &token).await["tokenData"]["access_token"],
        "access-0"
    );

    // `POST .../refresh?name=` forces a refresh of the one named.
    let (status, view) = status_and_body(
        app.post_auth("/api/tokens/gcp/refresh?name=prod", &token, json!({}))
            .await,
    )
    .await;
    assert_eq!((status, view["name"].as_str()), (200, Some("prod")), "{view}");
    assert_eq!(app.services.secrets.current_version(&prod_secret).await.unwrap(), 3);
    assert_eq!(app.services.secrets.current_version(&default_secret).await.unwrap(), 1);

    // The background refresher claims each connection on its own: only the due one is refreshed.
    app.clock.advance_secs(3600 - 120);
    let due_at = app.clock.now_secs() + 60;
    let body = json!({"access_token": "access-x", "refresh_token": "rt-prod-2", "expires_at": due_at});
    endpoint.issue("rt-prod-2");
    assert_eq!(
        app.put_auth("/api/tokens/gcp?name=prod", &token, body).await.status(),
        200
    );
    let never = || false;
    let report = app
        .services
        .credentials
        .refresh_due(app.clock.now(), &DueBatch::default(), &never)
        .await
        .unwrap();
    // Both are due by now (the default one expires within the margin too): each refreshed once.
    assert_eq!((report.claimed, report.refreshed, report.failed), (2, 2, 0));
    assert!(!endpoint.is_live("rt-default") && !endpoint.is_live("rt-prod-2"));
    assert_eq!(app.services.secrets.current_version(&default_secret).await.unwrap(), 2);
    assert_eq!(app.services.secrets.current_version(&prod_secret).await.unwrap(), 5);
    assert_eq!(endpoint.reused(), 0);
}

async fn bad_names_are_refused_and_change_nothing(db: Db) {
    let app = spawn_app(db, TestConfig::default()).await.unwrap();
    let (uid, token) = app.user("bad-names@example.com").await;
    assert_eq!(
        app.put_auth("/api/tokens/grafana", &token, grafana("one"))
            .await
            .status(),
        200
    );
    let before = app.row(&uid, "grafana").await;
    let long = "a".repeat(41);
    for bad in [
        "Prod",
        "-prod",
        "a_b",
        "a.b",
        "a%2Fb",
        "a%3Ab",
        "",
        long.as_str(),
        "%C3%A9",
    ] {
        let q = format!("?name={bad}");
        let routes = [
            ("PUT", format!("/api/tokens/grafana{q}")),
            ("GET", format!("/api/tokens{q}")),
            ("GET", format!("/api/tokens/grafana{q}")),
            ("GET", format!("/api/tokens/grafana/credentials{q}")),
            ("POST", format!("/api/tokens/grafana/refresh{q}")),
            ("DELETE", format!("/api/tokens/grafana{q}")),
        ];
        for (method, path) in routes {
            let req = app
                .client
                .request(method.parse().unwrap(), app.at(&path))
                .bearer_auth(&token);
            let req = if method == "PUT" {
                req.json(&grafana("evil"))
            } else {
                req
            };
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), 400, "{method} {path}");
            assert!(
                error_of(r).await.starts_with("Invalid connection name"),
                "{method} {path}"
            );
        }
    }
    // Two names at once are refused too.
    let r = app.get_auth("/api/tokens/grafana?name=a&name=b", &token).await;
    assert_eq!(r.status(), 400);
    // Nothing changed: the one connection, its secret at version 1.
    assert_eq!(app.row(&uid, "grafana").await, before);
    let listed: Value = app.get_auth("/api/tokens", &token).await.json().await.unwrap();
    assert_eq!(listed["connections"].as_array().unwrap().len(), 1);
    let name = format!("aurora-dev-{uid}-grafana-token");
    assert_eq!(app.services.secrets.current_version(&name).await.unwrap(), 1);
}

/// A shared org's connections carry the org's id in their secret names, and the name when not default;
/// whoever replaces one writes a new version of the same secret.
async fn shared_org_connections_are_named_after_the_org(db: Db) {
    let app = spawn_app(db, TestConfig::default()).await.unwrap();
    let (_, alice) = app.user("alice-names@example.com").await;
    let (_, bob) = app.user("bob-names@example.com").await;
    let org: Value = app
        .post_auth("/api/orgs", &alice, json!({"name": "Team"}))
        .await
        .json()
        .await
        .unwrap();
    let org = org["id"].as_str().unwrap().to_string();
    let r = app
        .post_auth(
            &format!("/api/orgs/{org}/members"),
            &alice,
            json!({"email": "bob-names@example.com", "role": "editor"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let put = |token: &str, path: &str, key: &str| {
        app.client
            .put(app.at(path))
            .bearer_auth(token)
            .header("X-Org-ID", &org)
            .json(&grafana(key))
            .send()
    };
    assert_eq!(
        put(&alice, "/api/tokens/grafana?name=prod", "a")
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(put(&alice, "/api/tokens/grafana", "b").await.unwrap().status(), 200);
    let prod = format!("aurora-dev-{org}-grafana-prod-token");
    let default = format!("aurora-dev-{org}-grafana-token");
    assert_eq!(secret(&app, &prod).await.unwrap()["api_key"], "glsa_a_0123456789");
    assert_eq!(secret(&app, &default).await.unwrap()["api_key"], "glsa_b_0123456789");
    // Bob replaces the prod connection: version 2 of the same secret, the creator kept.
    assert_eq!(
        put(&bob, "/api/tokens/grafana?name=prod", "c").await.unwrap().status(),
        200
    );
    assert_eq!(app.services.secrets.current_version(&prod).await.unwrap(), 2);
    assert_eq!(secret(&app, &prod).await.unwrap()["api_key"], "glsa_c_0123456789");
    let row = app.named_row(&org, "grafana", "prod").await;
    assert_eq!(row.secret_ref, app.services.secrets.reference(&prod));
}

/// Aurora's names join their parts with `-`, so user `u` and connection `splunk` of grafana give the name
/// of user `u-grafana`'s default splunk connection: the second is refused and the first's secret kept.
async fn a_secret_name_taken_by_another_connection_is_refused(db: Db) {
    let app = spawn_app(db, TestConfig::default().with("TOKENKEEPER_INTERNAL_SECRET", INTERNAL))
        .await
        .unwrap();
    let u = format!("u{}", uuid::Uuid::new_v4().simple());
    let put = |user: String, path: &'static str, body: Value| {
        app.client
            .put(app.at(path))
            .header("X-User-ID", user)
            .header("X-Internal-Secret", INTERNAL)
            .json(&body)
            .send()
    };
    let r = put(u.clone(), "/api/tokens/grafana?name=splunk", grafana("mine"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let shared = format!("aurora-dev-{u}-grafana-splunk-token");
    let splunk = json!({"api_token": "splunk-token-theirs-01", "base_url": "https://splunk.example.com"});
    let r = put(format!("{u}-grafana"), "/api/tokens/splunk", splunk).await.unwrap();
    assert_eq!(r.status(), 409);
    assert!(error_of(r).await.contains("share a secret name"));
    assert_eq!(app.services.secrets.current_version(&shared).await.unwrap(), 1);
    assert_eq!(secret(&app, &shared).await.unwrap()["api_key"], "glsa_mine_0123456789");
}

/// PostgreSQL announces a change to a named connection (from its trigger) so that other instances drop
/// exactly that connection from their read caches: the default connection's entry stays.
async fn other_instances_drop_only_the_changed_connection(db: Db) {
    if db == Db::Sqlite {
        return; // SQLite's shared counter drops everything: nothing per connection to show
    }
    let Some(cfg) = TestConfig::default().secrets(Secrets::OpenBao).await else {
        return;
    };
    let a = spawn_app(db, cfg).await.unwrap();
    let b = spawn_sibling(&a, TestConfig::default().secrets(Secrets::OpenBao).await.unwrap()).await;
    let (_, token) = a.user("cache-names@example.com").await;
    assert_eq!(
        a.put_auth("/api/tokens/grafana", &token, grafana("one")).await.status(),
        200
    );
    assert_eq!(
        a.put_auth("/api/tokens/grafana?name=prod", &token, grafana("two"))
            .await
            .status(),
        200
    );
    announced(&a, 2).await;
    let key = |v: Value| v["tokenData"]["api_key"].as_str().unwrap().to_string();
    for query in ["", "?name=prod"] {
        let path = format!("/api/tokens/grafana/credentials{query}");
        key(a.get_auth(&path, &token).await.json().await.unwrap());
    }
    assert_eq!(a.services.credentials.cached_entries(), 2);

    // Replaced on B: A drops the prod entry only, and reads the new value.
    assert_eq!(
        b.put_auth("/api/tokens/grafana?name=prod", &token, grafana("three"))
            .await
            .status(),
        200
    );
    announced(&a, 3).await;
    assert_eq!(
        a.services.credentials.cached_entries(),
        1,
        "only the changed connection is dropped"
    );
    let path = "/api/tokens/grafana/credentials?name=prod";
    assert_eq!(
        key(a.get_auth(path, &token).await.json().await.unwrap()),
        "glsa_three_0123456789"
    );
    let path = "/api/tokens/grafana/credentials";
    assert_eq!(
        key(a.get_auth(path, &token).await.json().await.unwrap()),
        "glsa_one_0123456789"
    );
}

/// Waits until `app`'s read cache has applied `n` change announcements.
async fn announced(app: &TestApp, n: u64) {
    crate::support::wait::until(&format!("{n} change announcements applied"), || async {
        app.services.credentials.cache_announcements() >= n
    })
    .await;
}

/// The API description gives every `/api/tokens` operation (the per-provider copies too) the `name` query
/// parameter with its pattern, and listings their `id` and `name` (schemathesis fuzzes from it).
async fn the_api_description_names_connections(db: Db) {
    let app = spawn_app(db, TestConfig::default()).await.unwrap();
    let r = app.client.get(app.at("/openapi.json")).send().await.unwrap();
    let doc: Value = r.json().await.unwrap();
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        if !path.starts_with("/api/tokens") {
            continue;
        }
        for (method, op) in item.as_object().unwrap() {
            let name = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|p| p["name"] == "name" && p["in"] == "query");
            let name = name.unwrap_or_else(|| panic!("{method} {path} has no ?name="));
            assert_eq!(
                name["schema"]["pattern"], "^[a-z0-9][a-z0-9-]{0,39}$",
                "{method} {path}"
            );
            operations += 1;
        }
    }
    assert!(operations > 6, "every tokens operation was checked: {operations}");
    let schemas = &doc["components"]["schemas"];
    for (schema, fields) in [
        ("ConnectionView", vec!["id", "name"]),
        ("TokenDataResponse", vec!["name"]),
    ] {
        let required: Vec<&str> = schemas[schema]["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        for field in fields {
            assert!(required.contains(&field), "{schema}.{field} in {required:?}");
        }
    }
}

crate::on_all_stores!(named_connections_are_independent);

crate::on_both_backends!(
    named_connections_refresh_on_their_own,
    bad_names_are_refused_and_change_nothing,
    shared_org_connections_are_named_after_the_org,
    a_secret_name_taken_by_another_connection_is_refused,
    previous_release_keeps_every_connection_as_default,
    other_instances_drop_only_the_changed_connection,
    the_api_description_names_connections,
);

/// The last migration of the release before connection names.
const BEFORE_NAMES: i64 = 6;

/// A database of the release before names (migrations up to 0006) with a user's grafana connection and
/// an audit event is upgraded in place: the connection is `default`, with an id, read as before; a named
/// connection can join it.
async fn previous_release_keeps_every_connection_as_default(db: Db) {
    let user = format!("old{}", uuid::Uuid::new_v4().simple());
    let secret_name = format!("aurora-dev-{user}-grafana-token");
    let rows = format!(
        "INSERT INTO orgs (id, name, personal, created_by, created_at) VALUES ('{user}', '{user}', TRUE, '{user}', 1000);
         INSERT INTO memberships (org_id, user_id, role, created_at) VALUES ('{user}', '{user}', 'admin', 1000);
         INSERT INTO connections (org_id, user_id, provider, secret_ref, secret_version, metadata, status, created_at, \
         updated_at) VALUES ('{user}', '{user}', 'grafana', 'local:kv/data/aurora/users/{secret_name}', 1, \
         '{{\"base_url\":\"https://g.example.com\"}}', 'active', 1000, 2000);
         INSERT INTO audit_events (user_id, org_id, kind, provider, outcome, at) VALUES ('{user}', '{user}', \
         'credential_store', 'grafana', 'ok', 1500);"
    );
    let Some((url, _dir)) = crate::support::upgrade::database_at(db, BEFORE_NAMES, rows).await else {
        return;
    };
    let app = spawn_on_database(url, TestConfig::default().with("TOKENKEEPER_INTERNAL_SECRET", INTERNAL)).await;
    let value = grafana("old").to_string();
    let written = app
        .services
        .secrets
        .write(&secret_name, &secrecy::SecretString::from(value), Some(0))
        .await
        .unwrap();
    assert_eq!(written, 1);
    let internal = |method: reqwest::Method, path: &str| {
        app.client
            .request(method, app.at(path))
            .header("X-User-ID", user.as_str())
            .header("X-Internal-Secret", INTERNAL)
    };

    let list = || async {
        let r = internal(reqwest::Method::GET, "/api/tokens").send().await.unwrap();
        r.json::<Value>().await.unwrap()
    };

    // The old connection is the default one, with an id, and reads as before.
    let listed = list().await;
    let conns = listed["connections"].as_array().unwrap();
    assert_eq!(conns.len(), 1, "{listed}");
    assert_eq!(conns[0]["name"], "default");
    let old_id = conns[0]["id"].as_str().unwrap().to_string();
    assert!(
        old_id.len() == 32 && old_id.chars().all(|c| c.is_ascii_hexdigit()),
        "{old_id}"
    );
    let r = internal(reqwest::Method::GET, "/api/tokens/grafana/credentials")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap()["tokenData"]["api_key"],
        "glsa_old_0123456789"
    );
    let row = app.row(&user, "grafana").await;
    assert_eq!((row.name.as_str(), row.created_at.as_millis()), ("default", 1000));
    assert!(row.secret_ref.ends_with(&secret_name), "{}", row.secret_ref);

    // A named connection joins it; the old one keeps its id and secret.
    let r = internal(reqwest::Method::PUT, "/api/tokens/grafana?name=staging")
        .json(&grafana("new"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let listed = list().await;
    let got: Vec<(&str, &str)> = listed["connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["id"].as_str().unwrap()))
        .collect();
    assert_eq!(got.len(), 2, "{listed}");
    assert_eq!(got[0], ("default", old_id.as_str()));
    assert_eq!(got[1].0, "staging");
    assert_eq!(app.services.secrets.current_version(&secret_name).await.unwrap(), 1);
}
