//! The `tokenkeeper` binary: migrate, user create / set-password (password on stdin, never argv),
//! vault-policy, tokens list / get / delete, connect: the same library calls as the HTTP API.

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

fn run(dir: &std::path::Path, args: &[&str], stdin: Option<&str>) -> Output {
    run_with(dir, args, stdin, &[])
}

/// [`run`] with more environment.
fn run_with(dir: &std::path::Path, args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tokenkeeper"))
        .args(args)
        .envs(env.iter().copied())
        .env("TOKENKEEPER_DATA_DIR", dir)
        .env("TOKENKEEPER_BCRYPT_COST", "10")
        .env_remove("DATABASE_URL")
        .env_remove("VAULT_ADDR")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    } else {
        drop(child.stdin.take());
    }
    child.wait_with_output().unwrap()
}

/// The library's services on the data directory `d` (as `serve` builds them): a second process's view.
async fn services_on(d: &std::path::Path) -> tokenkeeper::app::Services {
    // Stored without asking the provider (the example hosts do not exist).
    let env = std::collections::HashMap::from([
        ("TOKENKEEPER_DATA_DIR".to_string(), d.display().to_string()),
        ("TOKENKEEPER_CHECK_ON_STORE".to_string(), "false".to_string()),
    ]);
    let settings = tokenkeeper::config::Settings::from_lookup(&|k| env.get(k).cloned()).unwrap();
    let clock = std::sync::Arc::new(tokenkeeper::clock::SystemClock);
    tokenkeeper::app::Services::build(settings, clock).await.unwrap()
}

fn stdout(o: &Output) -> String {
    assert!(o.status.success(), "failed: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).to_string()
}

#[test]
fn operator_commands_work_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert!(stdout(&run(d, &["migrate"], None)).contains("up to date"));
    let out = stdout(&run(
        d,
        &["user", "create", "--email", "op@example.com", "--name", "Op"],
        Some("first-password\n"),
    ));
    let user_id = out.split_whitespace().nth(2).unwrap().to_string();
    // The library on the same database file, to check what set-password did: a session from before it,
    // and which password logs in after it.
    let pw_rt = tokio::runtime::Runtime::new().unwrap();
    let pw_svc = pw_rt.block_on(services_on(d));
    let login = |password: &str| {
        let caller = tokenkeeper::passwords::Caller {
            client_addr: "cli-test",
        };
        let password = secrecy::SecretString::from(password.to_string());
        pw_rt.block_on(pw_svc.passwords.login("op@example.com", password, &caller))
    };
    let session_live = |token_hash: &str| {
        use tokenkeeper::clock::Clock as _;
        let now = tokenkeeper::clock::SystemClock.now_ms();
        pw_rt
            .block_on(pw_svc.store.session_user(token_hash, now))
            .unwrap()
            .is_some()
    };
    let before = login("first-password").expect("the first password logs in");
    assert_eq!(before.user.id, user_id);
    assert!(session_live(&before.session.token_hash));
    // No password on stdin: a clear failure, nothing created.
    let o = run(d, &["user", "create", "--email", "nopw@example.com"], Some(""));
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("no password"));
    // Too short: refused with the policy's message.
    let o = run(
        d,
        &["user", "set-password", "--email", "op@example.com"],
        Some("short\n"),
    );
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("at least 8"));
    // Refused attempts changed nothing.
    assert!(login("first-password").is_ok());
    stdout(&run(
        d,
        &["user", "set-password", "--email", "op@example.com"],
        Some("second-password\n"),
    ));
    // The new password logs in, the old one no longer does, and the session from before is revoked.
    assert!(matches!(
        login("first-password"),
        Err(tokenkeeper::passwords::PasswordError::InvalidCredentials)
    ));
    let after = login("second-password").expect("the new password logs in");
    assert_eq!(after.user.id, user_id);
    assert!(after.user.password_changed_at.is_some());
    assert!(
        !session_live(&before.session.token_hash),
        "sessions from before are revoked"
    );
    assert!(session_live(&after.session.token_hash));
    let o = run(
        d,
        &["user", "set-password", "--email", "ghost@example.com"],
        Some("second-password\n"),
    );
    assert!(!o.status.success(), "an unknown user is a failure: {}", o.status);
    assert!(String::from_utf8_lossy(&o.stderr).contains("User not found"));

    // The policy printed is the one shipped.
    let policy = stdout(&run(d, &["vault-policy"], None));
    assert_eq!(policy, include_str!("../deploy/vault-policy.hcl"));

    // Connections: none yet, then one stored through the library, read and deleted by the CLI.
    assert_eq!(
        stdout(&run(d, &["tokens", "list", "--user", &user_id], None)).trim(),
        "[]"
    );
    // A running service (the library, as `serve` builds it) on the same database file.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let svc = rt.block_on(services_on(d));
    let creds = &svc.credentials;
    let read = |creds: &tokenkeeper::credentials::CredentialService| {
        rt.block_on(creds.get_token_data(&user_id.as_str().into(), "splunk", "test"))
            .map(|d| d["api_token"].clone())
    };
    let body = serde_json::json!({"api_token": "cli-splunk-token-123", "base_url": "https://splunk.example.com"});
    rt.block_on(creds.store_tokens_in_db(&user_id.as_str().into(), &body, "splunk", "test"))
        .unwrap();
    let list = stdout(&run(d, &["tokens", "list", "--user", &user_id], None));
    assert!(list.contains("\"splunk\"") && !list.contains("cli-splunk-token-123"));
    let got = stdout(&run(
        d,
        &["tokens", "get", "--user", &user_id, "--provider", "splunk"],
        None,
    ));
    assert!(got.contains("cli-splunk-token-123"));
    // The service has it in its read cache (hits need no SQL)...
    assert_eq!(read(creds).unwrap(), "cli-splunk-token-123");
    assert_eq!(creds.cached_entries(), 1);
    // ...and the CLI, another process, deletes it: the service's very next read no longer finds it.
    stdout(&run(
        d,
        &["tokens", "delete", "--user", &user_id, "--provider", "splunk"],
        None,
    ));
    assert!(matches!(
        read(creds),
        Err(tokenkeeper::credentials::CredentialError::NotConnected(_))
    ));
    let o = run(d, &["tokens", "get", "--user", &user_id, "--provider", "splunk"], None);
    assert!(!o.status.success());
    // Stored again in the service: the next read caches it again.
    rt.block_on(creds.store_tokens_in_db(&user_id.as_str().into(), &body, "splunk", "test"))
        .unwrap();
    assert_eq!(read(creds).unwrap(), "cli-splunk-token-123");
    assert_eq!(creds.cached_entries(), 1);

    // A named connection beside it: `--name` lists, reads and deletes that one only.
    let prod = serde_json::json!({"api_token": "cli-splunk-prod-456", "base_url": "https://splunk.example.com"});
    let prod_name = tokenkeeper::credentials::ConnectionName::parse("prod").unwrap();
    let target = tokenkeeper::credentials::Target::new("splunk", prod_name);
    rt.block_on(creds.store_tokens_in_db(&user_id.as_str().into(), &prod, &target, "test"))
        .unwrap();
    let named = |cmd: &str, name: &str| {
        let mut args = vec!["tokens", cmd, "--user", &user_id, "--name", name];
        if cmd != "list" {
            args.extend(["--provider", "splunk"]);
        }
        run(d, &args, None)
    };
    let listed: serde_json::Value = serde_json::from_str(&stdout(&named("list", "prod"))).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["name"], "prod");
    assert!(stdout(&named("get", "prod")).contains("cli-splunk-prod-456"));
    stdout(&named("delete", "prod"));
    assert!(!named("get", "prod").status.success());
    assert_eq!(
        read(creds).unwrap(),
        "cli-splunk-token-123",
        "the default connection stays"
    );
    // A name outside the pattern is refused before anything runs.
    let o = named("get", "Prod");
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("lowercase letters"));
}

/// A retention of zero, a negative or a non-numeric number of days: start-up refuses, naming the
/// variable, and nothing is opened.
#[test]
fn audit_retention_must_be_a_positive_number_of_days() {
    for bad in ["0", "-3", "ninety", "36501"] {
        let dir = tempfile::tempdir().unwrap();
        let o = Command::new(env!("CARGO_BIN_EXE_tokenkeeper"))
            .arg("migrate")
            .env("TOKENKEEPER_DATA_DIR", dir.path())
            .env("TOKENKEEPER_AUDIT_RETENTION_DAYS", bad)
            .env_remove("DATABASE_URL")
            .env_remove("VAULT_ADDR")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{bad}: started");
        assert!(err.contains("TOKENKEEPER_AUDIT_RETENTION_DAYS"), "{bad}: {err}");
        assert!(
            !dir.path().join("tokenkeeper.db").exists(),
            "{bad}: the database was opened"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_tokenkeeper"))
        .arg("migrate")
        .env("TOKENKEEPER_DATA_DIR", dir.path())
        .env("TOKENKEEPER_AUDIT_RETENTION_DAYS", "1")
        .env_remove("DATABASE_URL")
        .env_remove("VAULT_ADDR")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// `serve` with an invalid HTTP limit exits non-zero before listening, naming the variable. (Were a value
/// accepted, the server would start: its first line on stdout then fails the test.)
#[test]
fn a_bad_http_limit_refuses_start_up_naming_the_variable() {
    use std::io::BufRead as _;
    let dir = tempfile::tempdir().unwrap();
    for (var, value) in [
        ("TOKENKEEPER_HTTP_HEADER_TIMEOUT_SECS", "0"),
        ("TOKENKEEPER_HTTP_REQUEST_TIMEOUT_SECS", "soon"),
        ("TOKENKEEPER_MAX_CONNECTIONS", "0"),
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tokenkeeper"))
            .arg("serve")
            .env("TOKENKEEPER_DATA_DIR", dir.path())
            .env("TOKENKEEPER_LISTEN", "127.0.0.1:0")
            .env_remove("DATABASE_URL")
            .env_remove("VAULT_ADDR")
            .env(var, value)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first_line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first_line)
            .unwrap();
        if !first_line.is_empty() {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{var}={value}: the server started: {first_line}");
        }
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{var}={value}");
        assert!(stderr.contains(var), "{var}={value}: {stderr}");
    }
}

/// `org create`, `org add-member`, `org list`, and `tokens list/get/delete --org`: a member's role decides.
#[test]
fn org_commands_and_tokens_in_an_org() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let create = |email: &str| {
        let out = stdout(&run(d, &["user", "create", "--email", email], Some("first-password\n")));
        out.split_whitespace().nth(2).unwrap().to_string()
    };
    let (ada, bob) = (create("ada@example.com"), create("bob@example.com"));
    let org = stdout(&run(
        d,
        &[
            "org",
            "create",
            "--name",
            "Platform",
            "--admin-email",
            "ada@example.com",
        ],
        None,
    ))
    .trim()
    .to_string();
    assert!(org.starts_with("org-"), "{org}");
    let added = [
        "org",
        "add-member",
        "--org",
        &org,
        "--email",
        "bob@example.com",
        "--role",
        "viewer",
    ];
    assert!(stdout(&run(d, &added, None)).contains("as viewer"));
    // Bad input fails clearly: an unknown role, a member twice, an unknown org.
    for (args, error) in [
        (
            vec!["--email", "ada@example.com", "--role", "owner", "--org", &org],
            "role must be one of",
        ),
        (
            vec!["--email", "bob@example.com", "--role", "viewer", "--org", &org],
            "already a member",
        ),
        (
            vec!["--email", "bob@example.com", "--role", "viewer", "--org", "org-none"],
            "Organization not found",
        ),
    ] {
        let o = run(d, &[&["org", "add-member"][..], &args].concat(), None);
        assert!(!o.status.success());
        assert!(
            String::from_utf8_lossy(&o.stderr).contains(error),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let listed: serde_json::Value =
        serde_json::from_str(&stdout(&run(d, &["org", "list", "--user", &bob], None))).unwrap();
    assert_eq!(listed[0]["id"], bob.as_str());
    assert_eq!(
        (listed[1]["id"].as_str(), listed[1]["role"].as_str()),
        (Some(org.as_str()), Some("viewer"))
    );

    // Ada stores a credential in the org through the library; Bob (viewer) lists and reads it (the operator
    // reads as the platform's backend does) but may not delete it; it is not in Bob's personal org.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let svc = rt.block_on(services_on(d));
    let caller = tokenkeeper::credentials::Caller::new(ada.as_str().into(), tokenkeeper::ids::OrgId::from_stored(&org));
    let body = serde_json::json!({"api_token": "cli-org-splunk-123", "base_url": "https://splunk.example.com"});
    rt.block_on(svc.credentials.store_tokens_in_db(&caller, &body, "splunk", "test"))
        .unwrap();
    let in_org = |cmd: &str| {
        run(
            d,
            &["tokens", cmd, "--user", &bob, "--org", &org, "--provider", "splunk"],
            None,
        )
    };
    assert!(stdout(&run(d, &["tokens", "list", "--user", &bob, "--org", &org], None)).contains("\"splunk\""));
    assert!(stdout(&in_org("get")).contains("cli-org-splunk-123"));
    let o = in_org("delete");
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("editor role"));
    assert_eq!(stdout(&run(d, &["tokens", "list", "--user", &bob], None)).trim(), "[]");
    // Not a member: the org is not found.
    let o = run(d, &["tokens", "list", "--user", "stranger", "--org", &org], None);
    assert!(String::from_utf8_lossy(&o.stderr).contains("Organization not found"));
    assert!(stdout(&run(d, &["tokens", "list", "--user", &ada, "--org", &org], None)).contains("\"splunk\""));
}

/// A running service keeps sessions in memory; an operator's password reset from the CLI (another process
/// on the same SQLite file) bumps the identity change counter, and the service's next request already
/// refuses the sessions from before it.
#[test]
fn a_password_reset_by_the_cli_ends_a_running_service_sessions_at_once() {
    use secrecy::ExposeSecret as _;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = stdout(&run(
        d,
        &["user", "create", "--email", "op@example.com"],
        Some("first-password\n"),
    ));
    let user_id = out.split_whitespace().nth(2).unwrap().to_string();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let svc = rt.block_on(services_on(d));
    let caller = tokenkeeper::passwords::Caller {
        client_addr: "cli-test",
    };
    let password = secrecy::SecretString::from("first-password".to_string());
    let login = rt
        .block_on(svc.passwords.login("op@example.com", password, &caller))
        .unwrap();
    let mut headers = axum::http::HeaderMap::new();
    let bearer = format!("Bearer {}", login.session.token.expose_secret());
    headers.insert("authorization", bearer.parse().unwrap());
    let authenticated = || rt.block_on(svc.authenticator.authenticate(&headers)).ok();
    // Twice: the second answer comes from memory.
    for _ in 0..2 {
        assert_eq!(authenticated().map(|who| who.user_id), Some(user_id.clone()));
    }
    assert!(!svc.identity.is_empty(), "the session is cached");
    stdout(&run(
        d,
        &["user", "set-password", "--email", "op@example.com"],
        Some("second-password\n"),
    ));
    assert_eq!(
        authenticated(),
        None,
        "the session the CLI revoked is refused at the service's next request"
    );
}

/// `tokenkeeper webhooks verify` accepts a request signed the Standard Webhooks way and refuses a
/// changed body; `serve` refuses a `whsec_` secret that is not base64, naming the variable.
#[test]
fn webhooks_verify_checks_signatures_and_serve_refuses_a_bad_secret() {
    use base64::Engine as _;
    use hmac::Mac as _;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let key = b"cli-test-webhook-key";
    let secret = format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(key));
    let body = r#"{"type":"connection.created","timestamp":"2026-01-01T00:00:00.000Z","data":{}}"#;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    mac.update(format!("msg_1.1700000000.{body}").as_bytes());
    let signature = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    let body_file = d.join("body.json");
    std::fs::write(&body_file, body).unwrap();
    let verify = |body: &std::path::Path| {
        let mut args = vec!["webhooks", "verify", "--id", "msg_1", "--timestamp", "1700000000"];
        args.extend(["--signature", &signature, "--body-file", body.to_str().unwrap()]);
        Command::new(env!("CARGO_BIN_EXE_tokenkeeper"))
            .args(&args)
            .env("TOKENKEEPER_WEBHOOK_SECRET", &secret)
            .output()
            .unwrap()
    };
    let ok = verify(&body_file);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert_eq!(String::from_utf8_lossy(&ok.stdout).trim(), "signature valid");
    let changed = d.join("changed.json");
    std::fs::write(&changed, body.replace("created", "deleted")).unwrap();
    let bad = verify(&changed);
    assert_eq!(bad.status.code(), Some(1));

    let mut serve = Command::new(env!("CARGO_BIN_EXE_tokenkeeper"));
    serve
        .arg("serve")
        .env("TOKENKEEPER_DATA_DIR", d)
        .env("TOKENKEEPER_WEBHOOK_URL", "http://127.0.0.1:9/hook")
        .env("TOKENKEEPER_WEBHOOK_SECRET", "whsec_%%%")
        .env("TOKENKEEPER_LISTEN", "127.0.0.1:0");
    let refused = serve.output().unwrap();
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("TOKENKEEPER_WEBHOOK_SECRET") && err.contains("base64"),
        "{err}"
    );
}

/// `connect` starts the flow `POST /api/connect/{provider}` starts (the same service call): the printed
/// URL carries the flow's state, which the service then claims for that user and finishes at the given
/// return URL; bad input fails clearly and starts nothing.
#[test]
fn connect_prints_the_authorization_url_of_a_flow_for_the_user() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let create = |email: &str| {
        let out = stdout(&run(d, &["user", "create", "--email", email], Some("first-password\n")));
        out.split_whitespace().nth(2).unwrap().to_string()
    };
    let (ada, bob) = (create("ada@example.com"), create("bob@example.com"));
    let env = [
        ("TOKENKEEPER_PUBLIC_URL", "https://tk.example.com"),
        ("TOKENKEEPER_CONNECT_RETURN_URLS", "https://app.example.com/"),
        ("TOKENKEEPER_GCP_CLIENT_ID", "gcp-cli-client"),
    ];
    let connect = |args: &[&str]| run_with(d, &[&["connect"][..], args].concat(), None, &env);
    let o = connect(&[
        "--user",
        &ada,
        "--provider",
        "gcp",
        "--name",
        "from-cli",
        "--return-url",
        "https://app.example.com/settings",
    ]);
    let out = stdout(&o);
    assert_eq!(out.lines().count(), 1, "the URL alone on stdout: {out}");
    let url = url::Url::parse(out.trim()).unwrap();
    assert_eq!(url.host_str(), Some("accounts.google.com"));
    let q: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(q["client_id"], "gcp-cli-client");
    assert_eq!(q["redirect_uri"], "https://tk.example.com/api/connect/callback");
    assert_eq!(
        (q["response_type"].as_str(), q["code_challenge_method"].as_str()),
        ("code", "S256")
    );
    assert_eq!(q["access_type"], "offline");
    assert!(String::from_utf8_lossy(&o.stderr).contains("open this URL"));

    // The service holds the flow: its state is Ada's, in her personal org, back to the return URL.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let services = rt.block_on(services_on(d));
    let claimed = rt
        .block_on(services.connect.claim(Some(&q["state"])))
        .expect("the flow");
    assert_eq!(claimed.caller().user.as_str(), ada);
    assert_eq!(claimed.org(), ada);
    let finished = rt
        .block_on(
            services
                .connect
                .finish(claimed, None, Some("access_denied"), "cli-test"),
        )
        .unwrap();
    assert_eq!(
        finished.redirect_to,
        "https://app.example.com/settings?error=access_denied&provider=gcp"
    );

    // Bad input: nothing started.
    let org = stdout(&run(
        d,
        &["org", "create", "--name", "Team", "--admin-email", "ada@example.com"],
        None,
    ))
    .trim()
    .to_string();
    let add = [
        "org",
        "add-member",
        "--org",
        &org,
        "--email",
        "bob@example.com",
        "--role",
        "viewer",
    ];
    stdout(&run(d, &add, None));
    for (args, error) in [
        (vec!["--user", &ada, "--provider", "nosuch"], "Unknown provider"),
        (vec!["--user", &ada, "--provider", "azure"], "azure has no connect flow"),
        (
            vec!["--user", &ada, "--provider", "slack"],
            "TOKENKEEPER_SLACK_CLIENT_ID is not set",
        ),
        (
            vec![
                "--user",
                &ada,
                "--provider",
                "gcp",
                "--return-url",
                "https://evil.test/",
            ],
            "returnUrl is not allowed",
        ),
        (
            vec!["--user", &ada, "--provider", "gcp", "--name", "Not Valid"],
            "lowercase letters",
        ),
        (vec!["--user", &bob, "--provider", "gcp", "--org", &org], "editor"),
    ] {
        let o = connect(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?}");
        assert!(err.contains(error), "{args:?}: {err}");
        assert!(o.stdout.is_empty(), "{args:?}");
    }
}
