//! The JSON-lines audit log (`TOKENKEEPER_AUDIT_LOG`): every event one line, reads unaggregated, never a
//! secret; failing closed (503 `Audit log unavailable`, then recovering) when its directory is removed or
//! its disk is full, or failing open (served, the error logged at most once a minute).

use serde_json::{Value, json};

use crate::support::alone::alone;
use crate::support::app::{Db, TestApp, TestConfig, error_of, spawn_app};

const SECRET: &str = "sink-splunk-token-1";

/// An app whose audit log is `<dir>/logs/audit.log`; the path.
async fn app_with_log(db: Db, fail_open: bool) -> (TestApp, tempfile::TempDir, std::path::PathBuf) {
    let logs = tempfile::tempdir().unwrap();
    std::fs::create_dir(logs.path().join("logs")).unwrap();
    let path = logs.path().join("logs").join("audit.log");
    let cfg = TestConfig::default()
        .with("TOKENKEEPER_AUDIT_LOG", path.to_str().unwrap())
        .with(
            "TOKENKEEPER_AUDIT_LOG_FAIL_OPEN",
            if fail_open { "true" } else { "false" },
        );
    (spawn_app(db, cfg).await.unwrap(), logs, path)
}

fn lines(path: &std::path::Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object a line"))
        .collect()
}

async fn store(app: &TestApp, token: &str) {
    let creds = json!({"api_token": SECRET, "base_url": "https://s.example.com"});
    assert_eq!(app.put_auth("/api/tokens/splunk", token, creds).await.status(), 200);
}

async fn read_status(app: &TestApp, token: &str) -> u16 {
    app.get_auth("/api/tokens/splunk/credentials", token)
        .await
        .status()
        .as_u16()
}

/// Every event is a line with the documented fields; three reads are three lines (while the database keeps
/// one row with count 3); no secret in the file.
async fn every_event_is_a_json_line(db: Db) {
    let (app, _logs, path) = app_with_log(db, false).await;
    let (uid, token) = app.user("sunk@example.com").await;
    store(&app, &token).await;
    for _ in 0..3 {
        assert_eq!(read_status(&app, &token).await, 200);
    }
    assert_eq!(app.delete_auth("/api/tokens/splunk", &token).await.status(), 200);
    let got = lines(&path);
    let events: Vec<&str> = got.iter().map(|l| l["event"].as_str().unwrap()).collect();
    assert_eq!(
        events,
        [
            "register",
            "login",
            "credential_store",
            "credential_read",
            "credential_read",
            "credential_read",
            "credential_delete"
        ]
    );
    let read = &got[3];
    let keys: Vec<&str> = read.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "address",
            "connection",
            "detail",
            "event",
            "outcome",
            "provider",
            "time",
            "user"
        ]
    );
    assert_eq!(read["user"], uid.as_str());
    assert_eq!(read["provider"], "splunk");
    assert_eq!(read["connection"], "default");
    assert_eq!(read["outcome"], "ok");
    assert_eq!(read["address"], "127.0.0.1");
    assert!(read["time"].as_str().unwrap().ends_with('Z'));
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains(SECRET), "no secret in the audit log");
    let page: Value = app.get_auth("/api/audit", &token).await.json().await.unwrap();
    let counts: Vec<i64> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "credential_read")
        .map(|e| e["count"].as_i64().unwrap())
        .collect();
    assert_eq!(counts, [3], "the database aggregates what the log lists one by one");
}

/// Fail-closed: with the log's directory removed, requests that make an event answer 503 (a read does not
/// hand out the secret, a login no session); once the directory is back, they are served and logged again.
/// The same for a full disk (`/dev/full`).
async fn fail_closed_answers_503_until_it_can_write_again(db: Db) {
    let (app, logs, path) = app_with_log(db, false).await;
    let (_, token) = app.user("closed@example.com").await;
    store(&app, &token).await;

    std::fs::remove_dir_all(logs.path().join("logs")).unwrap();
    let r = app.get_auth("/api/tokens/splunk/credentials", &token).await;
    assert_eq!(r.status(), 503);
    let body = r.text().await.unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"error": "Audit log unavailable"})
    );
    let login = json!({"email": "closed@example.com", "password": "correct-horse-battery"});
    let r = app.post("/api/auth/login", login.clone()).await;
    assert_eq!(r.status(), 503);
    assert_eq!(error_of(r).await, "Audit log unavailable");
    // Requests that make no event are served.
    assert_eq!(app.get_auth("/api/tokens", &token).await.status(), 200);

    std::fs::create_dir(logs.path().join("logs")).unwrap();
    assert_eq!(read_status(&app, &token).await, 200);
    assert_eq!(app.post("/api/auth/login", login).await.status(), 200);
    let events: Vec<String> = lines(&path)
        .iter()
        .map(|l| l["event"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(events, ["credential_read", "login"], "a new file, written again");

    // Disk full: the path leads to /dev/full.
    std::fs::remove_file(&path).unwrap();
    std::os::unix::fs::symlink("/dev/full", &path).unwrap();
    assert_eq!(read_status(&app, &token).await, 503);
    assert_eq!(read_status(&app, &token).await, 503);
    std::fs::remove_file(&path).unwrap();
    assert_eq!(read_status(&app, &token).await, 200);
    assert_eq!(lines(&path).len(), 1);
}

/// Fail-open: requests are served while the log cannot be written; the error is logged once a minute
/// (by the clock), not once a request.
async fn fail_open_serves_and_logs_once_a_minute(db: Db) {
    if !alone(module_path!(), db, "fail_open_serves_and_logs_once_a_minute").await {
        return;
    }
    let capture = crate::support::logs::Capture::install("tokenkeeper=warn");
    let (app, logs, _path) = app_with_log(db, true).await;
    let (_, token) = app.user("open@example.com").await;
    store(&app, &token).await;
    std::fs::remove_dir_all(logs.path().join("logs")).unwrap();
    for _ in 0..3 {
        assert_eq!(read_status(&app, &token).await, 200);
    }
    let complaints = || capture.text().matches("cannot write the audit log").count();
    assert_eq!(complaints(), 1, "{}", capture.text());
    app.clock.advance_secs(61);
    assert_eq!(read_status(&app, &token).await, 200);
    assert_eq!(read_status(&app, &token).await, 200);
    assert_eq!(complaints(), 2, "{}", capture.text());
    assert!(!capture.text().contains(SECRET));
}

crate::on_both_backends!(
    every_event_is_a_json_line,
    fail_closed_answers_503_until_it_can_write_again,
    fail_open_serves_and_logs_once_a_minute,
);
