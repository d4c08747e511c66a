//! The embedded default's files: a bare `tokenkeeper serve` under the common umask 022 keeps its data
//! directory 0700 and every file in it 0600, including the files SQLite makes later (`-wal`, `-shm`) and
//! the embedded secret store's.

mod support;

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};
use support::process::{ExternalProcess, free_port};

fn mode(path: &Path) -> String {
    format!("{:o}", std::fs::metadata(path).unwrap().permissions().mode() & 0o777)
}

#[tokio::test]
async fn data_directory_is_0700_and_every_file_0600() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("tokenkeeper-data");
    let port = free_port();
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(r#"umask 022 && exec "$0" serve"#)
        .arg(env!("CARGO_BIN_EXE_tokenkeeper"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("TOKENKEEPER_LISTEN", format!("127.0.0.1:{port}"))
        .env("TOKENKEEPER_DATA_DIR", &data)
        .env("TOKENKEEPER_BCRYPT_COST", "10");
    let _server = ExternalProcess::spawn(cmd, &tmp.path().join("serve.log"));
    let url = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    support::wait::until("the server answers (see serve.log)", || async {
        client.get(format!("{url}/healthz")).send().await.is_ok()
    })
    .await;

    // Writes to both databases: a user and a session (tokenkeeper.db), a credential (secrets.sqlite).
    let user = json!({"email": "files@example.com", "password": "correct-horse-battery"});
    let r = client
        .post(format!("{url}/api/auth/register"))
        .json(&user)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = client
        .post(format!("{url}/api/auth/login"))
        .json(&user)
        .send()
        .await
        .unwrap();
    let token = r.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_string();
    let splunk = json!({"api_token": "splunk-token", "base_url": "https://s.example.com"});
    let r = client
        .put(format!("{url}/api/tokens/splunk?check=false"))
        .bearer_auth(&token)
        .json(&splunk)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    assert_eq!(mode(&data), "700", "the data directory");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&data).unwrap() {
        let path = entry.unwrap().path();
        names.push(path.file_name().unwrap().to_string_lossy().to_string());
        assert_eq!(mode(&path), "600", "{}", path.display());
    }
    names.sort();
    // The files the check must have seen (SQLite's are there while the server runs).
    for expected in [
        "tokenkeeper.db",
        "tokenkeeper.db-wal",
        "tokenkeeper.db-shm",
        "secrets.sqlite-wal",
        "secret.key",
    ] {
        assert!(names.iter().any(|n| n == expected), "{expected} in {names:?}");
    }
}
