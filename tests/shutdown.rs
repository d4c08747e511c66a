//! Graceful shutdown of the real binary: SIGTERM while a burst of slow requests (bcrypt) is being
//! handled. Every request the server had accepted gets its full response, the process exits 0, and
//! each request left exactly one JSON log line carrying its request id.
//!
//! What is asserted, precisely: the signal is sent only once every request of the burst is either
//! answered or in a handler (the server's `tokenkeeper_http_requests_in_flight` gauge plus the answers
//! counted here add up to the burst), and at least one is still in a handler. Requests that would
//! connect after the signal are out of scope: the listener is closed then, so they are refused.
//!
//! Also the audit log's signals and streams: SIGHUP reopens its file (logrotate's move, then HUP), and
//! `TOKENKEEPER_AUDIT_LOG=stdout` leaves stdout to its JSON lines (journald).

mod support;

use std::fs::File;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::process::free_port;

const BURST: usize = 50;

struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        // Only if the test failed before the process exited.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn start(dir: &Path, log: &Path) -> Server {
    start_with(dir, log, &[], Stdio::null())
}

/// [`start`] with more variables, and stdout sent to `stdout`.
fn start_with(dir: &Path, log: &Path, env: &[(&str, &str)], stdout: Stdio) -> Server {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_tokenkeeper"))
        .arg("serve")
        .env_clear()
        .envs(env.iter().copied())
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("TOKENKEEPER_LISTEN", format!("127.0.0.1:{port}"))
        .env("TOKENKEEPER_DATA_DIR", dir)
        .env("TOKENKEEPER_BCRYPT_COST", "10")
        // The burst logs in to one account from one address 25 times at once; the brute-force limit lets
        // 5 of those be checked at a time and refuses an attempt that waited 10 s, which a slow machine
        // reaches. The limit has its own tests (tests/api/rate_limit.rs); here it would only add timing.
        .env("TOKENKEEPER_RATE_LIMIT_MAX_FAILURES", "1000")
        // 25 registrations from one address, 50 hashes waiting at once: neither limit is the point here.
        .env("TOKENKEEPER_REGISTER_LIMIT", "1000")
        .env("TOKENKEEPER_HASH_QUEUE", "1000")
        .env("TOKENKEEPER_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(File::create(log).unwrap())
        .spawn()
        .expect("start tokenkeeper serve");
    Server {
        child,
        url: format!("http://127.0.0.1:{port}"),
    }
}

/// A client that never reuses a connection: each request of the burst has its own.
fn fresh_client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

async fn wait_healthy(server: &mut Server) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(status)) = server.child.try_wait() {
            panic!("tokenkeeper exited early with {status}");
        }
        if let Ok(r) = fresh_client().get(format!("{}/healthz", server.url)).send().await
            && r.status() == 200
        {
            return;
        }
        assert!(Instant::now() < deadline, "tokenkeeper did not become healthy");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `POST /api/auth/{route}` (register, login) for `email`: the status.
async fn auth(url: &str, route: &str, email: &str) -> u16 {
    let body = json!({"email": email, "password": "correct-horse-battery"});
    let r = fresh_client()
        .post(format!("{url}/api/auth/{route}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    r.status().as_u16()
}

async fn register(url: &str, email: &str) -> u16 {
    auth(url, "register", email).await
}

/// The server's in-flight gauge, minus the scrape itself.
async fn in_flight(url: &str) -> usize {
    let metrics = format!("{url}/metrics");
    support::app::scraped::<usize>(&fresh_client(), &metrics, "tokenkeeper_http_requests_in_flight").await - 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_lets_in_flight_requests_finish() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("stderr.log");
    let mut server = start(&dir.path().join("data"), &log);
    wait_healthy(&mut server).await;
    let url = server.url.clone();
    assert_eq!(register(&url, "burst-login@example.com").await, 201);

    // The burst: half registrations, half logins; each hashes or verifies a bcrypt password.
    let answered = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..BURST {
        let (url, answered) = (url.clone(), answered.clone());
        tasks.push(tokio::spawn(async move {
            let (path, body, expect) = if i % 2 == 0 {
                let email = format!("burst-{i}@example.com");
                (
                    "register",
                    json!({"email": email, "password": "correct-horse-battery"}),
                    201,
                )
            } else {
                let body = json!({"email": "burst-login@example.com", "password": "correct-horse-battery"});
                ("login", body, 200)
            };
            let id = format!("burst-{i}");
            let res = fresh_client()
                .post(format!("{url}/api/auth/{path}"))
                .header("X-Request-Id", &id)
                .json(&body)
                .send()
                .await;
            let outcome = match res {
                Ok(r) => {
                    let status = r.status().as_u16();
                    let header = r.headers().get("x-request-id").map(|v| v.to_str().unwrap().to_string());
                    // The whole body, not only the head: a reset mid-body would fail here.
                    let body = r.bytes().await.map_err(|e| format!("{id}: body: {e:?}"));
                    body.and_then(|b| {
                        if status != expect {
                            return Err(format!("{id}: {path} answered {status}, expected {expect}"));
                        }
                        serde_json::from_slice::<Value>(&b).map_err(|e| format!("{id}: body is not JSON: {e}"))?;
                        if header.as_deref() != Some(id.as_str()) {
                            return Err(format!("{id}: X-Request-Id {header:?}"));
                        }
                        Ok(())
                    })
                }
                Err(e) => Err(format!("{id}: request failed: {e:?}")),
            };
            answered.fetch_add(1, Ordering::SeqCst);
            (id, Instant::now(), outcome)
        }));
    }

    // Every request of the burst accepted (answered, or in a handler), and some still in a handler.
    let deadline = Instant::now() + Duration::from_secs(30);
    let in_flight_at_signal = loop {
        let done = answered.load(Ordering::SeqCst);
        let busy = in_flight(&url).await;
        if done + busy >= BURST {
            assert!(
                busy > 0,
                "the burst finished before the signal ({done} answered): nothing was in flight"
            );
            break busy;
        }
        assert!(
            Instant::now() < deadline,
            "the burst was never fully accepted ({done} answered, {busy} busy)"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let signalled = Instant::now();
    let kill = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());

    let mut failures = Vec::new();
    let mut after_signal = 0;
    let mut ids = Vec::new();
    for t in tasks {
        let (id, at, outcome) = t.await.unwrap();
        if at > signalled {
            after_signal += 1;
        }
        if let Err(e) = outcome {
            failures.push(e);
        }
        ids.push(id);
    }
    assert!(
        failures.is_empty(),
        "requests failed across SIGTERM:\n{}",
        failures.join("\n")
    );
    assert!(
        after_signal > 0,
        "no request was answered after the signal ({in_flight_at_signal} were in flight)"
    );

    // The process exits, successfully, soon after the last answer.
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = server.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "tokenkeeper still running 15 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exit status after SIGTERM: {status}");

    // The listener is closed: new connections are refused.
    let refused = fresh_client().get(format!("{url}/healthz")).send().await;
    assert!(refused.is_err(), "still answering after exit");

    // Logs: JSON, one `response` line per request of the burst, carrying its request id.
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("log line is not JSON ({e}): {l}")))
        .collect();
    for id in &ids {
        let n = lines
            .iter()
            .filter(|l| l["fields"]["message"] == "response" && l["span"]["request_id"] == id.as_str())
            .count();
        assert_eq!(n, 1, "response log lines for {id}");
    }
    let line = lines
        .iter()
        .find(|l| l["fields"]["message"] == "response" && l["span"]["request_id"] == "burst-0")
        .unwrap();
    assert_eq!(line["span"]["route"], "/api/auth/register");
    assert_eq!(line["fields"]["status"], 201);
    assert!(lines.iter().any(|l| {
        l["fields"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("shutting down"))
    }));
    // No password of the burst reached the logs.
    assert!(!text.contains("correct-horse-battery"));
}

fn audit_lines(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("audit line is not JSON ({e}): {l}")))
        .collect()
}

async fn login(url: &str) -> u16 {
    auth(url, "login", "rotated@example.com").await
}

/// logrotate's "move, then HUP": after the move the events still go to the moved file (the process holds
/// it open); after SIGHUP they go to a new file at the configured path, and the moved one stops growing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reopens_the_audit_log_after_it_was_moved() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let moved = dir.path().join("audit.log.1");
    let env = [("TOKENKEEPER_AUDIT_LOG", path.to_str().unwrap())];
    let mut server = start_with(
        &dir.path().join("data"),
        &dir.path().join("stderr.log"),
        &env,
        Stdio::null(),
    );
    wait_healthy(&mut server).await;
    let url = server.url.clone();
    assert_eq!(register(&url, "rotated@example.com").await, 201);
    assert_eq!(audit_lines(&path).len(), 1);

    std::fs::rename(&path, &moved).unwrap();
    assert_eq!(login(&url).await, 200);
    assert_eq!(
        audit_lines(&moved).len(),
        2,
        "the moved file, still open, gets the event"
    );
    assert!(!path.exists());

    let hup = Command::new("kill")
        .args(["-HUP", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    // The signal is handled asynchronously: log in until an event lands in a new file (bounded).
    let deadline = Instant::now() + Duration::from_secs(30);
    while !path.exists() {
        assert!(Instant::now() < deadline, "no new audit log after SIGHUP");
        assert_eq!(login(&url).await, 200);
    }
    let in_moved = audit_lines(&moved).len();
    assert_eq!(login(&url).await, 200);
    assert_eq!(audit_lines(&moved).len(), in_moved, "the moved file no longer grows");
    let new = audit_lines(&path);
    assert!(new.len() >= 2 && new.iter().all(|l| l["event"] == "login"), "{new:?}");
}

/// `TOKENKEEPER_AUDIT_LOG=stdout` (journald): stdout carries the events as JSON lines, and nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_on_stdout_is_json_lines_only() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("stdout");
    let stdout = Stdio::from(File::create(&out).unwrap());
    let env = [("TOKENKEEPER_AUDIT_LOG", "stdout")];
    let mut server = start_with(&dir.path().join("data"), &dir.path().join("stderr.log"), &env, stdout);
    wait_healthy(&mut server).await;
    assert_eq!(register(&server.url, "journald@example.com").await, 201);
    let lines = audit_lines(&out);
    let events: Vec<&str> = lines.iter().map(|l| l["event"].as_str().unwrap()).collect();
    assert_eq!(events, ["register"]);
}
