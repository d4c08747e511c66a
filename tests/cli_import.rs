//! `tokenkeeper import aurora` through the binary, as an operator runs it: a dry run, the import, a second
//! run, against an Aurora-shaped database (`support::aurora`) whose secrets are in a real OpenBao, into
//! Tokenkeeper on SQLite and on PostgreSQL. The report is what the operator reads: its counts, the
//! moved secret named, and no secret value anywhere in the output.

mod support;

use std::process::{Command, Output};

use support::aurora::Aurora;
use support::openbao::OpenBao;

struct Run {
    dir: tempfile::TempDir,
    database_url: Option<String>,
    bao: &'static OpenBao,
}

impl Run {
    fn import(&self, from: &str, extra: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tokenkeeper"));
        cmd.args(["import", "aurora", "--from", from])
            .args(extra)
            .env("TOKENKEEPER_DATA_DIR", self.dir.path())
            .env("VAULT_ADDR", &self.bao.addr)
            .env("VAULT_TOKEN", &self.bao.limited_token)
            .env_remove("DATABASE_URL");
        if let Some(url) = &self.database_url {
            cmd.env("DATABASE_URL", url);
        }
        cmd.output().unwrap()
    }
}

/// stdout of a successful run; panics with stderr otherwise.
fn printed(o: &Output) -> String {
    assert!(o.status.success(), "failed: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn line(table: &str, verb: &str, counts: (u64, u64, u64)) -> String {
    format!(
        "  {table:<28} {verb} {:>5}  unchanged {:>5}  skipped {:>5}",
        counts.0, counts.1, counts.2
    )
}

/// Every secret value of the fixture, and the users' password hashes' common start.
fn secret_values(aurora: &Aurora) -> Vec<String> {
    let mut values = vec![
        support::fake_provider::AZURE_CLIENT_SECRET.to_string(),
        "0123456789abcdef0123456789abcdef01234567".to_string(),
        "$2b$".to_string(),
    ];
    for (_, stored) in &aurora.stored {
        for field in ["access_token", "refresh_token", "client_secret"] {
            if let Some(v) = stored[field].as_str() {
                values.push(v.to_string());
            }
        }
    }
    values
}

async fn import_through_the_binary(postgres: bool) {
    let Some(admin) = support::postgres::admin_url() else {
        return;
    };
    let Some(bao) = OpenBao::shared().await else {
        return;
    };
    let aurora = Aurora::create(&admin, bao, 4_102_444_800).await;
    let database_url = if postgres {
        Some(support::postgres::fresh_database(&admin).await)
    } else {
        None
    };
    let run = Run {
        dir: tempfile::tempdir().unwrap(),
        database_url,
        bao,
    };
    let no_secret = |o: &Output| {
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        for secret in secret_values(&aurora) {
            assert!(!all.contains(&secret), "{secret:?} printed:\n{all}");
        }
    };

    let dry = run.import(&aurora.url, &["--dry-run"]);
    no_secret(&dry);
    let text = printed(&dry);
    assert!(text.starts_with("Dry run: nothing written.\n"), "{text}");
    for (table, counts) in [
        ("users", (5, 0, 0)),
        ("organizations", (1, 0, 0)),
        ("memberships (casbin_rule g)", (4, 0, 0)),
        ("user_tokens", (6, 0, 5)),
        ("user_connections", (2, 0, 0)),
    ] {
        assert!(text.contains(&line(table, "would add", counts)), "{table}:\n{text}");
    }
    let moved = format!(
        "would move the secret of user_tokens {} (client_secret) out of Aurora's SQL into secret aurora-dev-{}-azure-token",
        aurora.rows.azure_in_sql, aurora.org
    );
    assert!(text.contains(&moved), "{text}");
    assert!(text.contains("skipped user_tokens"), "{text}");
    let (status, _) = bao
        .root(
            "GET",
            &format!("aurora/data/users/aurora-dev-{}-azure-token", aurora.org),
            None,
        )
        .await;
    assert_eq!(status, 404, "a dry run moves nothing");

    // The dry run wrote nothing: the import adds the same.
    let done = run.import(&aurora.url, &[]);
    no_secret(&done);
    let text = printed(&done);
    assert!(text.starts_with("Import done.\n"), "{text}");
    assert!(text.contains(&line("users", "added", (5, 0, 0))), "{text}");
    assert!(text.contains(&line("user_connections", "added", (2, 0, 0))), "{text}");
    assert!(text.contains(&moved.replacen("would move", "moved", 1)), "{text}");
    let (status, _) = bao
        .root(
            "GET",
            &format!("aurora/data/users/aurora-dev-{}-azure-token", aurora.org),
            None,
        )
        .await;
    assert_eq!(status, 200, "the import moved the secret");

    let again = run.import(&aurora.url, &["--verify"]);
    no_secret(&again);
    let text = printed(&again);
    assert!(text.contains("Everything is unchanged."), "{text}");
    assert!(text.contains(&line("users", "added", (0, 5, 0))), "{text}");
    assert!(text.contains(&line("user_connections", "added", (0, 2, 0))), "{text}");
    assert!(text.contains("0 missing or unreadable"), "{text}");

    // Not Aurora's database: a clear failure naming what is missing.
    let wrong = run.import(&support::postgres::fresh_database(&admin).await, &[]);
    assert!(!wrong.status.success());
    let err = String::from_utf8_lossy(&wrong.stderr);
    assert!(err.contains("not an Aurora database"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_aurora_into_sqlite_through_the_binary() {
    import_through_the_binary(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_aurora_into_postgres_through_the_binary() {
    import_through_the_binary(true).await;
}
