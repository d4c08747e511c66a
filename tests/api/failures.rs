//! Failure paths of storing and deleting credentials: the secret store down, the database failing between the secret
//! write and the reference write, another writer's reference landing there. Nothing half-written;
//! recovery without a restart.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

use secrecy::{ExposeSecret as _, SecretString};
use serde_json::{Value, json};
use tokenkeeper::credentials::CredentialError;
use tokenkeeper::db::{Connection, SharedStore};
use tokenkeeper::secrets::{SecretError, SecretStore};

use crate::support::app::{Db, Secrets, TestApp, TestConfig, error_of, spawn_app, spawn_app_wrapping_secrets, sql};
use crate::support::decorated::{Decorated, Hooks};
use crate::support::openbao::OpenBao;

/// Makes every insert or update of `connections` fail.
async fn break_reference_writes(app: &TestApp, on: bool) {
    let pg = app.database_url.starts_with("postgres");
    let stmt = match (pg, on) {
        (true, true) => {
            "CREATE FUNCTION tk_fail() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'injected failure'; END $$ \
             LANGUAGE plpgsql; CREATE TRIGGER tk_fail BEFORE INSERT OR UPDATE ON connections \
             FOR EACH ROW EXECUTE FUNCTION tk_fail();"
        }
        (true, false) => "DROP TRIGGER tk_fail ON connections; DROP FUNCTION tk_fail();",
        (false, true) => {
            "CREATE TRIGGER tk_fail_i BEFORE INSERT ON connections BEGIN SELECT RAISE(ABORT, 'injected'); END; \
             CREATE TRIGGER tk_fail_u BEFORE UPDATE ON connections BEGIN SELECT RAISE(ABORT, 'injected'); END;"
        }
        (false, false) => "DROP TRIGGER tk_fail_i; DROP TRIGGER tk_fail_u;",
    };
    sql(app, stmt).await;
}

async fn database_failure_after_secret_write_leaves_nothing_behind(db: Db, secrets: Secrets) {
    let Some(cfg) = TestConfig::default().secrets(secrets).await else {
        return;
    };
    let app = spawn_app(db, cfg).await.unwrap();
    let (uid, token) = app.user("inject@example.com").await;
    let v1 = json!({"api_token": "thousandeyes-token-v1", "account_group_id": "1234"});
    let v2 = json!({"api_token": "thousandeyes-token-v2", "account_group_id": "1234"});
    let name = format!("aurora-dev-{uid}-thousandeyes-token");

    // A new credential: the secret written first is destroyed again; no reference, no orphan.
    break_reference_writes(&app, true).await;
    let r = app.put_auth("/api/tokens/thousandeyes", &token, v1.clone()).await;
    assert_eq!(r.status(), 500);
    assert_eq!(error_of(r).await, "Internal server error");
    assert!(
        app.services.secrets.read(&name, None).await.unwrap().is_none(),
        "orphan secret left"
    );
    assert_eq!(app.get_auth("/api/tokens/thousandeyes", &token).await.status(), 404);

    // A replacement: the user still reads the previous credential, and so would Aurora (latest version).
    break_reference_writes(&app, false).await;
    assert_eq!(app.put_auth("/api/tokens/thousandeyes", &token, v1).await.status(), 200);
    break_reference_writes(&app, true).await;
    assert_eq!(
        app.put_auth("/api/tokens/thousandeyes", &token, v2.clone())
            .await
            .status(),
        500
    );
    let data = app.credentials("thousandeyes", &token).await;
    assert_eq!(data["tokenData"]["api_token"], "thousandeyes-token-v1");
    let latest = app.services.secrets.read(&name, None).await.unwrap().unwrap();
    assert!(secrecy::ExposeSecret::expose_secret(&latest.value).contains("thousandeyes-token-v1"));

    // Repaired: the same request now works.
    break_reference_writes(&app, false).await;
    assert_eq!(app.put_auth("/api/tokens/thousandeyes", &token, v2).await.status(), 200);
    let data = app.credentials("thousandeyes", &token).await;
    assert_eq!(data["tokenData"]["api_token"], "thousandeyes-token-v2");
}

/// OpenBao stopped mid-run: 503 "Secret store unavailable", no reference to a missing secret;
/// restarted: the same running service works again (AppRole login again).
async fn vault_down_gives_503_and_recovers(db: Db) {
    let Some(mut bao) = OpenBao::start().await else { return };
    let cfg = TestConfig::default()
        .with("VAULT_ADDR", &bao.addr)
        .with("VAULT_ROLE_ID", &bao.role_id)
        .with("VAULT_SECRET_ID", &bao.secret_id)
        .with("TOKENKEEPER_OUTBOUND_TIMEOUT_SECS", "2");
    let app = spawn_app(db, cfg).await.unwrap();
    let (_, token) = app.user("down@example.com").await;
    let grafana = json!({"api_key": "glsa_before_outage_1234", "base_url": "https://g.example.com"});
    assert_eq!(app.put_auth("/api/tokens/grafana", &token, grafana).await.status(), 200);

    assert_eq!(app.client.get(app.at("/readyz")).send().await.unwrap().status(), 200);
    bao.stop();
    let r = app.client.get(app.at("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["unavailable"], json!(["secret store"]));
    let splunk = json!({"api_token": "splunk-during-outage", "base_url": "https://s.example.com"});
    let r = app.put_auth("/api/tokens/splunk", &token, splunk.clone()).await;
    assert_eq!(r.status(), 503);
    assert_eq!(error_of(r).await, "Secret store unavailable");
    let r = app.get_auth("/api/tokens/grafana/credentials", &token).await;
    assert_eq!(r.status(), 503, "not 404: the credential exists, Vault is down");
    assert_eq!(error_of(r).await, "Secret store unavailable");
    let r = app.delete_auth("/api/tokens/grafana", &token).await;
    assert_eq!(r.status(), 503);
    // No reference was written for the failed store; the existing one is intact.
    let list: Value = app.get_auth("/api/tokens", &token).await.json().await.unwrap();
    let providers: Vec<&str> = list["connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["provider"].as_str().unwrap())
        .collect();
    assert_eq!(providers, ["grafana"]);

    bao.restart().await;
    assert_eq!(app.client.get(app.at("/readyz")).send().await.unwrap().status(), 200);
    let r = app.put_auth("/api/tokens/splunk", &token, splunk).await;
    assert_eq!(r.status(), 200, "recovered without a restart");
    let data = app.credentials("splunk", &token).await;
    assert_eq!(data["tokenData"]["api_token"], "splunk-during-outage");
}

/// Another writer of the same credential, outside this one's lock (a library caller without a refresh
/// engine, say), cut into its steps through the secret store it calls: their secret lands before this
/// store reads the current version (`theirs_first`) or right after this store's secret write, and their
/// reference right after this store's secret write.
struct Interloper {
    store: SharedStore,
    uid: String,
    theirs: String,
    theirs_first: bool,
    secret_pending: AtomicBool,
    reference_pending: AtomicBool,
}

impl Interloper {
    async fn write_their_secret(&self, inner: &dyn SecretStore, name: &str) -> u64 {
        let value = json!({"api_token": self.theirs, "base_url": "https://s.example.com"}).to_string();
        inner.write(name, &SecretString::from(value), None).await.unwrap()
    }

    async fn land_their_reference(&self, version: u64) {
        let row = self
            .store
            .get_connection(&self.uid, "splunk", "default")
            .await
            .unwrap()
            .unwrap();
        let theirs = Connection {
            secret_version: version,
            ..row.clone()
        };
        assert!(
            self.store
                .put_connection(&theirs, Some(row.secret_version))
                .await
                .unwrap()
        );
    }
}

#[async_trait::async_trait]
impl Hooks for Interloper {
    async fn current_version(&self, inner: &dyn SecretStore, name: &str) -> Result<u64, SecretError> {
        if self.secret_pending.swap(false, Ordering::SeqCst) {
            self.write_their_secret(inner, name).await;
        }
        inner.current_version(name).await
    }
    async fn write(
        &self,
        inner: &dyn SecretStore,
        name: &str,
        value: &SecretString,
        cas: Option<u64>,
    ) -> Result<u64, SecretError> {
        let ours = inner.write(name, value, cas).await?;
        if self.reference_pending.swap(false, Ordering::SeqCst) {
            let theirs = if self.theirs_first {
                ours - 1
            } else {
                self.write_their_secret(inner, name).await
            };
            self.land_their_reference(theirs).await;
        }
        Ok(ours)
    }
}

/// A reference changed by another writer between this store's secret write and its reference write: 409,
/// theirs stands in SQL, and the secret store's current version (what Aurora reads) is theirs too, put back
/// on top when this store's secret write came after theirs.
async fn a_reference_changed_meanwhile_is_a_conflict(db: Db, secrets: Secrets) {
    let Some(cfg) = TestConfig::default().secrets(secrets).await else {
        return;
    };
    let app = spawn_app(db, cfg).await.unwrap();
    let (uid, token) = app.user("interloper@example.com").await;
    let body = |k: &str| json!({"api_token": k, "base_url": "https://s.example.com"});
    assert_eq!(
        app.put_auth("/api/tokens/splunk", &token, body("splunk-first"))
            .await
            .status(),
        200
    );
    let name = format!("aurora-dev-{uid}-splunk-token");
    for theirs_first in [false, true] {
        let theirs = format!("splunk-theirs-first-{theirs_first}");
        let other = Interloper {
            store: app.services.store.clone(),
            uid: uid.clone(),
            theirs: theirs.clone(),
            theirs_first,
            secret_pending: AtomicBool::new(theirs_first),
            reference_pending: AtomicBool::new(true),
        };
        // No refresh engine, hence no credential lock: a library caller.
        let other = Decorated::around(app.services.secrets.clone(), other);
        let svc = app.library_credentials(app.services.store.clone(), other);
        let err = svc
            .store_tokens_in_db(&uid.as_str().into(), &body("splunk-ours"), "splunk", "test")
            .await
            .unwrap_err();
        assert!(
            matches!(err, CredentialError::Conflict(_)),
            "theirs first {theirs_first}: {err}"
        );
        let data = svc
            .get_token_data(&uid.as_str().into(), "splunk", "test")
            .await
            .unwrap();
        assert_eq!(data["api_token"], theirs.as_str());
        let current = app.services.secrets.read(&name, None).await.unwrap().unwrap();
        assert!(
            current.value.expose_secret().contains(&theirs),
            "theirs first {theirs_first}: the current version (v{}) is not theirs",
            current.version
        );
    }
}

/// A secret store (around the configured one) whose deletes fail while `failing` is set, and which
/// notes, each time it is asked to delete, whether the reference row was still in the database then.
#[derive(Default)]
struct DeleteProbe {
    /// The service's database and the user whose `splunk` row is looked at, set once they exist.
    rows: OnceLock<(SharedStore, String)>,
    failing: AtomicBool,
    row_present_at_delete: Mutex<Vec<bool>>,
}

#[async_trait::async_trait]
impl Hooks for DeleteProbe {
    async fn delete(&self, inner: &dyn SecretStore, name: &str) -> Result<(), SecretError> {
        let (store, uid) = self.rows.get().expect("rows set");
        let row = store.get_connection(uid, "splunk", "default").await.unwrap();
        self.row_present_at_delete.lock().unwrap().push(row.is_some());
        if self.failing.load(Ordering::SeqCst) {
            return Err(SecretError::Unavailable("injected: delete refused".into()));
        }
        inner.delete(name).await
    }
}

/// Delete order through HTTP: the reference goes first (the secret store is asked to delete only once the
/// row is gone), and when the secret delete then fails the reference is put back: 503, the credential
/// still listed and readable; the retry deletes both.
async fn a_failed_secret_delete_puts_the_reference_back(db: Db, secrets: Secrets) {
    let Some(cfg) = TestConfig::default().secrets(secrets).await else {
        return;
    };
    let probe = Decorated::new(DeleteProbe::default());
    let app = spawn_app_wrapping_secrets(db, cfg, probe.wrap()).await.unwrap();
    let (uid, token) = app.user("delete-order@example.com").await;
    probe
        .hooks
        .rows
        .set((app.services.store.clone(), uid.clone()))
        .ok()
        .expect("set once");
    let splunk = json!({"api_token": "splunk-delete-order", "base_url": "https://s.example.com"});
    assert_eq!(app.put_auth("/api/tokens/splunk", &token, splunk).await.status(), 200);

    probe.hooks.failing.store(true, Ordering::SeqCst);
    let r = app.delete_auth("/api/tokens/splunk", &token).await;
    assert_eq!(r.status(), 503);
    assert_eq!(error_of(r).await, "Secret store unavailable");
    assert_eq!(
        *probe.hooks.row_present_at_delete.lock().unwrap(),
        [false],
        "the reference is deleted before the secret"
    );
    assert_eq!(
        app.get_auth("/api/tokens/splunk", &token).await.status(),
        200,
        "the reference is back"
    );
    let data = app.credentials("splunk", &token).await;
    assert_eq!(data["tokenData"]["api_token"], "splunk-delete-order");

    probe.hooks.failing.store(false, Ordering::SeqCst);
    assert_eq!(app.delete_auth("/api/tokens/splunk", &token).await.status(), 200);
    assert_eq!(*probe.hooks.row_present_at_delete.lock().unwrap(), [false, false]);
    assert_eq!(app.get_auth("/api/tokens/splunk", &token).await.status(), 404);
    let name = app
        .services
        .credentials
        .secret_name(&tokenkeeper::credentials::ConnectionKey::of_row(&uid, "splunk", "default").unwrap());
    assert!(
        probe.inner().read(&name, None).await.unwrap().is_none(),
        "the secret is destroyed"
    );
}

/// A secret store (around the configured one) where, while `armed`, another writer's version of the
/// secret lands just before each write: the write's check-and-set fails as it would in that race.
#[derive(Default)]
struct CasRace {
    armed: AtomicBool,
}

#[async_trait::async_trait]
impl Hooks for CasRace {
    async fn write(
        &self,
        inner: &dyn SecretStore,
        name: &str,
        value: &SecretString,
        cas: Option<u64>,
    ) -> Result<u64, SecretError> {
        if self.armed.swap(false, Ordering::SeqCst) {
            let theirs = json!({"api_token": "splunk-theirs", "base_url": "https://s.example.com"}).to_string();
            inner.write(name, &SecretString::from(theirs), None).await?;
        }
        inner.write(name, value, cas).await
    }
}

/// A check-and-set conflict in the secret store (another writer's version landed between this store's
/// read of the current version and its write) is answered 409 with a JSON error over HTTP; nothing of
/// the refused write is referenced, and the retry stores it.
async fn a_check_and_set_conflict_answers_409(db: Db, secrets: Secrets) {
    let Some(cfg) = TestConfig::default().secrets(secrets).await else {
        return;
    };
    let race = Decorated::new(CasRace::default());
    let app = spawn_app_wrapping_secrets(db, cfg, race.wrap()).await.unwrap();
    let (uid, token) = app.user("cas-409@example.com").await;
    let body = |k: &str| json!({"api_token": k, "base_url": "https://s.example.com"});
    assert_eq!(
        app.put_auth("/api/tokens/splunk", &token, body("splunk-first"))
            .await
            .status(),
        200
    );

    race.hooks.armed.store(true, Ordering::SeqCst);
    let r = app.put_auth("/api/tokens/splunk", &token, body("splunk-refused")).await;
    assert_eq!(r.status(), 409);
    assert_eq!(
        error_of(r).await,
        "The splunk credential was changed at the same time; retry"
    );
    assert_eq!(
        app.row(&uid, "splunk").await.secret_version,
        1,
        "the reference did not move"
    );
    let data = app.credentials("splunk", &token).await;
    assert_eq!(data["tokenData"]["api_token"], "splunk-first");

    let r = app.put_auth("/api/tokens/splunk", &token, body("splunk-retried")).await;
    assert_eq!(r.status(), 200);
    let data = app.credentials("splunk", &token).await;
    assert_eq!(data["tokenData"]["api_token"], "splunk-retried");
}

crate::on_all_stores!(
    database_failure_after_secret_write_leaves_nothing_behind,
    a_reference_changed_meanwhile_is_a_conflict,
    a_failed_secret_delete_puts_the_reference_back,
    a_check_and_set_conflict_answers_409,
);

mod outage {
    crate::on_both_backends!(vault_down_gives_503_and_recovers);
    use super::vault_down_gives_503_and_recovers;
}

/// `VAULT_TOKEN_FILE`: when Vault refuses the token (rotated by an agent), the file is read again.
async fn vault_token_file_is_reread_after_rotation(db: Db) {
    let Some(bao) = OpenBao::shared().await else { return };
    let token_body = json!({"policies": ["tokenkeeper"], "ttl": "1h"});
    let first = bao.create_token(token_body.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("vault-token");
    std::fs::write(&file, format!("{first}\n")).unwrap();
    let cfg = TestConfig::default()
        .with("VAULT_ADDR", &bao.addr)
        .with("VAULT_TOKEN_FILE", file.to_str().unwrap());
    let app = spawn_app(db, cfg).await.unwrap();
    let (_, token) = app.user("tokenfile@example.com").await;
    let body = json!({"api_key": "glsa_token_file_rotation", "base_url": "https://g.example.com"});
    assert_eq!(app.put_auth("/api/tokens/grafana", &token, body).await.status(), 200);

    // The agent writes a new token and the old one is revoked.
    let second = bao.create_token(token_body).await;
    std::fs::write(&file, format!("{second}\n")).unwrap();
    let (status, _) = bao
        .root("POST", "auth/token/revoke", Some(json!({"token": first})))
        .await;
    assert!(status == 204 || status == 200, "revoke: {status}");
    let r = app.get_auth("/api/tokens/grafana/credentials", &token).await;
    assert_eq!(r.status(), 200, "the rotated token from the file is used");
}

mod token_file {
    use super::vault_token_file_is_reread_after_rotation;
    crate::on_both_backends!(vault_token_file_is_reread_after_rotation);
}
