//! One contract, two secret stores: the embedded AES-256-GCM store and Vault KV v2 (a real OpenBao dev
//! server, see `tests/support/openbao.rs`), plus what only one of them can show.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret as _, SecretString};
use serde_json::json;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};
use support::openbao::{BASE_PATH, MOUNT, OpenBao};
use support::vault_proxy::VaultProxy;
use tokenkeeper::secrets::embedded::{EmbeddedKey, EmbeddedStore};
use tokenkeeper::secrets::vault::{VaultAuth, VaultConfig, VaultStore};
use tokenkeeper::secrets::{SecretError, SecretStore};

fn s(v: &str) -> SecretString {
    SecretString::from(v)
}

fn unique(tag: &str) -> String {
    format!("aurora-test-{}-{tag}", uuid::Uuid::new_v4().simple())
}

async fn value_of(store: &dyn SecretStore, name: &str, version: Option<u64>) -> Option<(String, u64)> {
    store
        .read(name, version)
        .await
        .expect("read")
        .map(|v| (v.value.expose_secret().to_string(), v.version))
}

/// The behaviour every [`SecretStore`] must have. `scheme` is `vault` or `local`.
async fn contract(store: Arc<dyn SecretStore>, scheme: &str) {
    let st = store.as_ref();
    st.check().await.expect("check");

    // reference() shape (the storage contract).
    assert_eq!(
        st.reference("aurora-dev-user123-gcp-token"),
        format!("{scheme}:kv/data/aurora/users/aurora-dev-user123-gcp-token")
    );

    // Missing secrets.
    let name = unique("roundtrip");
    assert!(st.read(&name, None).await.unwrap().is_none());
    assert!(st.read(&name, Some(1)).await.unwrap().is_none());
    assert_eq!(st.current_version(&name).await.unwrap(), 0);

    // Round trip, with JSON text and non-ASCII.
    let v1 = r#"{"access_token":"ya29.a\"b","expires_at":1700000000,"name":"Zoë ✓"}"#;
    assert_eq!(st.write(&name, &s(v1), None).await.unwrap(), 1);
    assert_eq!(value_of(st, &name, None).await, Some((v1.into(), 1)));
    assert_eq!(st.current_version(&name).await.unwrap(), 1);

    // Versions increment; old versions stay readable by number.
    assert_eq!(st.write(&name, &s("second"), None).await.unwrap(), 2);
    assert_eq!(value_of(st, &name, None).await, Some(("second".into(), 2)));
    assert_eq!(value_of(st, &name, Some(1)).await, Some((v1.into(), 1)));
    assert_eq!(value_of(st, &name, Some(2)).await, Some(("second".into(), 2)));
    assert!(st.read(&name, Some(3)).await.unwrap().is_none());

    // Check-and-set.
    assert!(matches!(
        st.write(&name, &s("x"), Some(0)).await,
        Err(SecretError::CasMismatch)
    ));
    assert!(matches!(
        st.write(&name, &s("x"), Some(1)).await,
        Err(SecretError::CasMismatch)
    ));
    assert!(matches!(
        st.write(&name, &s("x"), Some(7)).await,
        Err(SecretError::CasMismatch)
    ));
    assert_eq!(value_of(st, &name, None).await, Some(("second".into(), 2)));
    assert_eq!(
        st.current_version(&name).await.unwrap(),
        2,
        "failed writes make no version"
    );
    assert_eq!(st.write(&name, &s("third"), Some(2)).await.unwrap(), 3);
    assert_eq!(value_of(st, &name, None).await, Some(("third".into(), 3)));
    assert_eq!(st.current_version(&name).await.unwrap(), 3);

    // A cas other than 0 on a missing secret fails.
    let fresh = unique("fresh");
    assert!(matches!(
        st.write(&fresh, &s("x"), Some(1)).await,
        Err(SecretError::CasMismatch)
    ));
    assert_eq!(st.write(&fresh, &s("x"), Some(0)).await.unwrap(), 1);

    // Delete destroys every version; deleting a missing secret is fine.
    st.delete(&name).await.unwrap();
    assert!(st.read(&name, None).await.unwrap().is_none());
    assert_eq!(st.current_version(&name).await.unwrap(), 0);
    for v in 1..=3 {
        assert!(st.read(&name, Some(v)).await.unwrap().is_none(), "version {v}");
    }
    st.delete(&name).await.unwrap();
    st.delete(&unique("never-written")).await.unwrap();

    // After a delete the secret starts over: cas 0 works.
    assert_eq!(st.write(&name, &s("reborn"), Some(0)).await.unwrap(), 1);
    assert_eq!(value_of(st, &name, None).await, Some(("reborn".into(), 1)));
    assert_eq!(st.current_version(&name).await.unwrap(), 1);

    // Like KV v2's default max_versions: the last 10 versions are kept.
    let many = unique("many");
    for i in 1..=12u64 {
        assert_eq!(st.write(&many, &s(&format!("v{i}")), None).await.unwrap(), i);
    }
    assert!(st.read(&many, Some(1)).await.unwrap().is_none());
    assert!(st.read(&many, Some(2)).await.unwrap().is_none());
    assert_eq!(value_of(st, &many, Some(3)).await, Some(("v3".into(), 3)));
    assert_eq!(value_of(st, &many, None).await, Some(("v12".into(), 12)));
    assert_eq!(st.current_version(&many).await.unwrap(), 12);

    // Names that would escape the base path are refused, and never read.
    assert!(st.write("../escape", &s("x"), None).await.is_err());
    assert!(st.write("a/b", &s("x"), None).await.is_err());
    assert!(st.read("../escape", None).await.unwrap().is_none());
    assert_eq!(st.current_version("../escape").await.unwrap(), 0);

    // 20 concurrent writers with the same cas: exactly one wins (on create and on update).
    for cas in [0u64, 1] {
        let name = unique("race");
        if cas == 1 {
            st.write(&name, &s("base"), Some(0)).await.unwrap();
        }
        let tasks: Vec<_> = (0..20)
            .map(|i| {
                let store = store.clone();
                let name = name.clone();
                tokio::spawn(async move {
                    let value = format!("writer-{i}");
                    (store.write(&name, &s(&value), Some(cas)).await, value)
                })
            })
            .collect();
        let mut winners = Vec::new();
        for t in tasks {
            match t.await.unwrap() {
                (Ok(v), value) => winners.push((value, v)),
                (Err(SecretError::CasMismatch), _) => {}
                (Err(e), _) => panic!("unexpected error from a concurrent writer: {e}"),
            }
        }
        assert_eq!(winners.len(), 1, "cas {cas}: exactly one writer wins: {winners:?}");
        let (value, version) = winners.pop().unwrap();
        assert_eq!(version, cas + 1);
        assert_eq!(value_of(st, &name, None).await, Some((value, cas + 1)));
    }
}

// ---------------------------------------------------------------------------------------------
// Embedded store

async fn open_embedded(dir: &std::path::Path, key: EmbeddedKey) -> EmbeddedStore {
    EmbeddedStore::open(&dir.join("secrets.sqlite"), key, MOUNT, BASE_PATH)
        .await
        .expect("open embedded store")
}

async fn raw_sqlite(dir: &std::path::Path) -> SqlitePool {
    SqlitePool::connect_with(SqliteConnectOptions::new().filename(dir.join("secrets.sqlite")))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn embedded_store_contract() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_embedded(dir.path(), EmbeddedKey::generate()).await;
    contract(Arc::new(store), "local").await;
}

#[tokio::test]
async fn embedded_tampered_ciphertext_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_embedded(dir.path(), EmbeddedKey::generate()).await;
    let name = unique("tamper");
    store.write(&name, &s("secret"), None).await.unwrap();
    let db = raw_sqlite(dir.path()).await;
    let ct: Vec<u8> = sqlx::query_scalar("SELECT ciphertext FROM secret_versions WHERE path LIKE ?")
        .bind(format!("%/{name}"))
        .fetch_one(&db)
        .await
        .unwrap();
    let mut bad = ct.clone();
    bad[0] ^= 0x01;
    sqlx::query("UPDATE secret_versions SET ciphertext = ? WHERE path LIKE ?")
        .bind(&bad)
        .bind(format!("%/{name}"))
        .execute(&db)
        .await
        .unwrap();
    assert!(matches!(store.read(&name, None).await, Err(SecretError::Corrupt(_))));
    // A tampered nonce too.
    sqlx::query("UPDATE secret_versions SET ciphertext = ?, nonce = zeroblob(12) WHERE path LIKE ?")
        .bind(&ct)
        .bind(format!("%/{name}"))
        .execute(&db)
        .await
        .unwrap();
    assert!(matches!(store.read(&name, None).await, Err(SecretError::Corrupt(_))));
}

#[tokio::test]
async fn embedded_wrong_key_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let name = unique("wrongkey");
    {
        let store = open_embedded(dir.path(), EmbeddedKey::generate()).await;
        store.write(&name, &s("secret"), None).await.unwrap();
    }
    let other = open_embedded(dir.path(), EmbeddedKey::generate()).await;
    assert!(matches!(other.read(&name, None).await, Err(SecretError::Corrupt(_))));
}

#[tokio::test]
async fn embedded_ciphertext_moved_to_another_name_or_version_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_embedded(dir.path(), EmbeddedKey::generate()).await;
    let (a, b) = (unique("a"), unique("b"));
    store.write(&a, &s("secret of a"), None).await.unwrap();
    store.write(&b, &s("secret of b"), None).await.unwrap();
    store.write(&b, &s("secret of b, v2"), None).await.unwrap();
    let db = raw_sqlite(dir.path()).await;

    // a's v1 ciphertext and nonce copied over b's v1: same version, other name.
    sqlx::query(
        "UPDATE secret_versions SET (nonce, ciphertext) =
           (SELECT nonce, ciphertext FROM secret_versions WHERE path LIKE ?1 AND version = 1)
         WHERE path LIKE ?2 AND version = 1",
    )
    .bind(format!("%/{a}"))
    .bind(format!("%/{b}"))
    .execute(&db)
    .await
    .unwrap();
    assert!(matches!(store.read(&b, Some(1)).await, Err(SecretError::Corrupt(_))));
    assert_eq!(value_of(&store, &a, None).await, Some(("secret of a".into(), 1)));

    // b's v1 (now a's) copied over b's v2: same name, other version.
    let c = unique("c");
    store.write(&c, &s("one"), None).await.unwrap();
    store.write(&c, &s("two"), None).await.unwrap();
    sqlx::query(
        "UPDATE secret_versions SET (nonce, ciphertext) =
           (SELECT nonce, ciphertext FROM secret_versions WHERE path LIKE ?1 AND version = 1)
         WHERE path LIKE ?1 AND version = 2",
    )
    .bind(format!("%/{c}"))
    .execute(&db)
    .await
    .unwrap();
    assert!(matches!(store.read(&c, None).await, Err(SecretError::Corrupt(_))));
    assert_eq!(value_of(&store, &c, Some(1)).await, Some(("one".into(), 1)));
}

#[tokio::test]
async fn embedded_key_file_is_0600_and_reused() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join("nested").join("secrets.key");
    let key = EmbeddedKey::load_or_generate(&key_path).unwrap();
    let mode = std::fs::metadata(&key_path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "key file mode {mode:o}");
    let text = std::fs::read_to_string(&key_path).unwrap();
    assert!(
        EmbeddedKey::from_base64(&text).is_ok(),
        "key file holds base64 of 32 bytes"
    );
    assert!(!format!("{key:?}").contains(text.trim()));

    let name = unique("keyfile");
    {
        let store = open_embedded(dir.path(), key).await;
        store.write(&name, &s("kept"), None).await.unwrap();
        assert!(!format!("{store:?}").contains(text.trim()));
    }
    // Reopen: the same key is read back, not regenerated.
    let again = EmbeddedKey::load_or_generate(&key_path).unwrap();
    assert_eq!(std::fs::read_to_string(&key_path).unwrap(), text);
    let store = open_embedded(dir.path(), again).await;
    assert_eq!(value_of(&store, &name, None).await, Some(("kept".into(), 1)));

    // A group/world-readable key file still works (with a warning).
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(EmbeddedKey::load_or_generate(&key_path).is_ok());
    // A garbled key file is refused rather than replaced.
    std::fs::write(&key_path, "not a key").unwrap();
    assert!(EmbeddedKey::load_or_generate(&key_path).is_err());
}

// ---------------------------------------------------------------------------------------------
// Vault (OpenBao)

fn vault_config(bao: &OpenBao, auth: VaultAuth) -> VaultConfig {
    let mut cfg = VaultConfig::new(bao.addr.clone(), auth);
    cfg.timeout = Duration::from_secs(5);
    cfg
}

fn approle(bao: &OpenBao) -> VaultAuth {
    VaultAuth::AppRole {
        role_id: bao.role_id.clone(),
        secret_id: s(&bao.secret_id),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn vault_store_contract_with_limited_token() {
    let Some(bao) = OpenBao::shared().await else {
        return;
    };
    let cfg = vault_config(bao, VaultAuth::Token(s(&bao.limited_token)));
    let store = VaultStore::connect(cfg).await.unwrap();
    contract(Arc::new(store), "vault").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn vault_store_contract_with_approle() {
    let Some(bao) = OpenBao::shared().await else {
        return;
    };
    let store = VaultStore::connect(vault_config(bao, approle(bao))).await.unwrap();
    contract(Arc::new(store), "vault").await;
}

#[tokio::test]
async fn vault_raw_entry_is_exactly_value_field() {
    let Some(bao) = OpenBao::shared().await else {
        return;
    };
    let store = VaultStore::connect(vault_config(bao, VaultAuth::Token(s(&bao.limited_token))))
        .await
        .unwrap();
    let name = unique("raw");
    let text = r#"{"api_key":"k","site":"datadoghq.eu"}"#;
    store.write(&name, &s(text), Some(0)).await.unwrap();
    let (status, body) = bao.root("GET", &format!("{MOUNT}/data/{BASE_PATH}/{name}"), None).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["data"], json!({ "value": text }));
    assert_eq!(body["data"]["metadata"]["version"], json!(1));

    // What another KV v2 client (Aurora) writes is read back as well.
    let (status, _) = bao
        .root(
            "POST",
            &format!("{MOUNT}/data/{BASE_PATH}/{name}"),
            Some(json!({"data": {"value": "from aurora"}})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(value_of(&store, &name, None).await, Some(("from aurora".into(), 2)));

    // A soft-deleted version (KV v2 "delete", not destroy) reads as missing.
    let (status, _) = bao
        .root("DELETE", &format!("{MOUNT}/data/{BASE_PATH}/{name}"), None)
        .await;
    assert_eq!(status, 204);
    assert!(store.read(&name, None).await.unwrap().is_none());
    assert_eq!(value_of(&store, &name, Some(1)).await, Some((text.into(), 1)));
    // Its version still counts: a check-and-set write names it (the metadata's current version).
    assert_eq!(store.current_version(&name).await.unwrap(), 2);
    assert_eq!(store.write(&name, &s("after delete"), Some(2)).await.unwrap(), 3);
    assert_eq!(value_of(&store, &name, None).await, Some(("after delete".into(), 3)));
}

#[tokio::test]
async fn vault_refusal_is_unavailable() {
    let Some(bao) = OpenBao::shared().await else {
        return;
    };
    // A token without the tokenkeeper policy: Vault answers 403.
    let token = bao.create_token(json!({"policies": ["default"], "ttl": "1h"})).await;
    let store = VaultStore::connect(vault_config(bao, VaultAuth::Token(s(&token))))
        .await
        .unwrap();
    let name = unique("refused");
    assert!(matches!(
        store.write(&name, &s("x"), None).await,
        Err(SecretError::Unavailable(_))
    ));
    assert!(matches!(
        store.read(&name, None).await,
        Err(SecretError::Unavailable(_))
    ));
    assert!(matches!(
        store.current_version(&name).await,
        Err(SecretError::Unavailable(_))
    ));
    // A bogus token: check() reports it.
    let bogus = VaultStore::connect(vault_config(bao, VaultAuth::Token(s("s.bogus"))))
        .await
        .unwrap();
    assert!(matches!(bogus.check().await, Err(SecretError::Unavailable(_))));
    let err = bogus.read(&name, None).await.unwrap_err().to_string();
    assert!(!err.contains("s.bogus"), "{err}");
}

#[tokio::test]
async fn vault_down_is_unavailable_and_recovers() {
    let Some(mut bao) = OpenBao::start().await else {
        return;
    };
    let mut cfg = vault_config(&bao, approle(&bao));
    cfg.timeout = Duration::from_secs(2);
    let store = VaultStore::connect(cfg.clone()).await.unwrap();
    let name = unique("outage");
    store.write(&name, &s("before"), Some(0)).await.unwrap();
    store.check().await.unwrap();

    bao.stop();
    // Every call answers (Unavailable) rather than hang; the bound only turns a hang into a failure.
    support::wait::bounded("the store's calls while Vault is down", async {
        assert!(matches!(
            store.read(&name, None).await,
            Err(SecretError::Unavailable(_))
        ));
        assert!(matches!(
            store.write(&name, &s("during"), None).await,
            Err(SecretError::Unavailable(_))
        ));
        assert!(matches!(
            store.current_version(&name).await,
            Err(SecretError::Unavailable(_))
        ));
        assert!(matches!(store.check().await, Err(SecretError::Unavailable(_))));
    })
    .await;

    // Starting while Vault is down works too; it logs in later.
    let late = VaultStore::connect(cfg)
        .await
        .expect("connect must not fail while Vault is down");

    bao.restart().await; // a new dev server: old data and tokens are gone, same AppRole credentials
    store.check().await.expect("same instance recovers after restart");
    assert!(store.read(&name, None).await.unwrap().is_none());
    assert_eq!(store.write(&name, &s("after"), Some(0)).await.unwrap(), 1);
    assert_eq!(value_of(&store, &name, None).await, Some(("after".into(), 1)));
    late.check().await.expect("store created while Vault was down recovers");
    assert_eq!(value_of(&late, &name, None).await, Some(("after".into(), 1)));
}

/// A renewable token with a short TTL is kept alive by renewals: three renewals, each at two thirds of the
/// TTL after the last, take it past its first TTL, and nothing was ever refused. Counted at a proxy in
/// front of OpenBao, not guessed from the time that passed.
#[tokio::test]
async fn vault_short_lived_token_is_renewed() {
    let Some(bao) = OpenBao::shared().await else {
        return;
    };
    let token = bao
        .create_token(json!({
            "policies": ["tokenkeeper"],
            "ttl": "3s",
            "explicit_max_ttl": "120s",
            "renewable": true,
        }))
        .await;
    let proxy = VaultProxy::start(&bao.addr).await;
    let mut cfg = VaultConfig::new(proxy.addr.clone(), VaultAuth::Token(s(&token)));
    cfg.timeout = Duration::from_secs(5);
    let store = VaultStore::connect(cfg).await.unwrap();
    let name = unique("renew");
    store.write(&name, &s("v"), Some(0)).await.unwrap();
    proxy.wait_for("auth/token/renew-self", 3).await;
    assert_eq!(value_of(&store, &name, None).await, Some(("v".into(), 1)));
    store.check().await.unwrap();
    let (status, body) = bao.call("GET", "auth/token/lookup-self", None, Some(&token)).await;
    assert_eq!(status, 200, "token still valid past its first TTL: {body}");
    assert!(proxy.refusals().is_empty(), "refused: {:?}", proxy.refusals());
}

/// An AppRole token whose renewals approach its max TTL is replaced by a new login before it ends:
/// a second login, and no request ever refused (a store that only logs in again after a 403 would show
/// one). Logins and refusals are counted at a proxy in front of OpenBao.
#[tokio::test]
async fn vault_approle_token_near_max_ttl_is_replaced() {
    let Some(bao) = OpenBao::shared().await else {
        return;
    };
    // A role whose tokens live 3 s and can be renewed up to 6 s only.
    let role = format!("short-{}", uuid::Uuid::new_v4().simple());
    let (status, body) = bao
        .root(
            "POST",
            &format!("auth/approle/role/{role}"),
            Some(json!({"token_policies": ["tokenkeeper"], "token_ttl": "3s", "token_max_ttl": "6s"})),
        )
        .await;
    assert!(status < 300, "{status} {body}");
    let (_, body) = bao
        .root("GET", &format!("auth/approle/role/{role}/role-id"), None)
        .await;
    let role_id = body["data"]["role_id"].as_str().unwrap().to_string();
    let (_, body) = bao
        .root("POST", &format!("auth/approle/role/{role}/secret-id"), None)
        .await;
    let secret_id = body["data"]["secret_id"].as_str().unwrap().to_string();

    let proxy = VaultProxy::start(&bao.addr).await;
    let mut cfg = VaultConfig::new(
        proxy.addr.clone(),
        VaultAuth::AppRole {
            role_id,
            secret_id: s(&secret_id),
        },
    );
    cfg.timeout = Duration::from_secs(5);
    let store = VaultStore::connect(cfg).await.unwrap();
    let name = unique("approle-renew");
    store.write(&name, &s("v"), Some(0)).await.unwrap();
    // Reading all along, so that a token left to expire would be refused on the data path.
    support::wait::until("a second AppRole login", || async {
        assert_eq!(value_of(&store, &name, None).await, Some(("v".into(), 1)));
        proxy.succeeded("auth/approle/login") >= 2
    })
    .await;
    assert!(
        proxy.succeeded("auth/token/renew-self") >= 1,
        "renewed before the max TTL came near: {:?}",
        proxy.seen()
    );
    assert!(proxy.refusals().is_empty(), "refused: {:?}", proxy.refusals());
    assert_eq!(value_of(&store, &name, None).await, Some(("v".into(), 1)));
}

#[tokio::test]
async fn vault_policy_file_is_what_the_harness_applies() {
    let Some(bao) = OpenBao::shared().await else {
        return;
    };
    let (status, body) = bao.root("GET", "sys/policies/acl/tokenkeeper", None).await;
    assert_eq!(status, 200);
    let shipped = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/vault-policy.hcl")).unwrap();
    assert_eq!(body["data"]["policy"].as_str().unwrap(), shipped);
    // The limited token cannot reach anything else.
    let (status, _) = bao.call("GET", "sys/mounts", None, Some(&bao.limited_token)).await;
    assert_eq!(status, 403);
    let (status, _) = bao
        .call(
            "POST",
            &format!("{MOUNT}/data/other/x"),
            Some(json!({"data": {"value": "x"}})),
            Some(&bao.limited_token),
        )
        .await;
    assert_eq!(status, 403);
}

/// `VAULT_CACERT`: a Vault served over TLS with a private CA is trusted with that CA, and refused
/// (503-class `Unavailable`, never a silent success) without it.
#[tokio::test]
async fn vault_over_tls_needs_its_ca() {
    let Some(binary) = support::openbao::binary_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = support::process::free_port_pair();
    let mut cmd = std::process::Command::new(binary);
    cmd.args(["server", "-dev", "-dev-tls", "-dev-root-token-id=root"])
        .arg(format!("-dev-tls-cert-dir={}", dir.path().display()))
        .arg(format!("-dev-listen-address=127.0.0.1:{port}"))
        .env("HOME", dir.path());
    let _bao = support::process::ExternalProcess::spawn(cmd, &dir.path().join("bao.log"));
    let addr = format!("https://127.0.0.1:{port}");
    let ca_path = dir.path().join("vault-ca.pem");
    // Wait for the CA file and the TLS listener.
    let deadline = Instant::now() + Duration::from_secs(30);
    let client = loop {
        assert!(Instant::now() < deadline, "OpenBao with TLS did not start");
        if let Ok(pem) = std::fs::read(&ca_path)
            && let Ok(cert) = reqwest::Certificate::from_pem(&pem)
        {
            let c = reqwest::Client::builder().tls_certs_only([cert]).build().unwrap();
            if c.get(format!("{addr}/v1/sys/health"))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
            {
                break c;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let r = client
        .post(format!("{addr}/v1/sys/mounts/{MOUNT}"))
        .header("X-Vault-Token", "root")
        .json(&json!({"type": "kv", "options": {"version": "2"}}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "mount: {}", r.status());

    let config = |ca: Option<Vec<u8>>| {
        let mut c = VaultConfig::new(addr.clone(), VaultAuth::Token(SecretString::from("root".to_string())));
        c.base_path = BASE_PATH.into();
        c.ca_cert_pem = ca;
        c.timeout = Duration::from_secs(3);
        c
    };
    let trusted = VaultStore::connect(config(Some(std::fs::read(&ca_path).unwrap())))
        .await
        .unwrap();
    let v = trusted
        .write("tls-secret", &SecretString::from(r#"{"k":"v"}"#.to_string()), Some(0))
        .await
        .unwrap();
    let read = trusted.read("tls-secret", None).await.unwrap().unwrap();
    assert_eq!((read.version, read.value.expose_secret()), (v, r#"{"k":"v"}"#));

    let untrusted = VaultStore::connect(config(None)).await.unwrap();
    assert!(matches!(
        untrusted.read("tls-secret", None).await,
        Err(SecretError::Unavailable(_))
    ));
}
