//! One background-refresher pass over 100,000 stored connections of which 1,000 are due, against a local
//! OAuth2 token endpoint, compared with refreshing the same 1,000 credentials "directly" (bare grant calls,
//! same concurrency) (issue 4). A benchmark, not a test: it prints figures and PASS/FAIL against the goal
//! and exits 0 either way (set `BENCH_STRICT=1` to exit 1 on FAIL).
//!
//! Goals:
//! - the refresher's due query (`PgStore::claim_due`) uses `connections_due_idx` (plan printed);
//! - one `run_pass` refreshes exactly the 1,000 due credentials and the endpoint sees exactly 1,000 calls;
//! - pass time <= 1.5 x the time of the 1,000 bare `grants::refresh` calls at the same concurrency (16).
//!
//! Set-up: a fresh PostgreSQL database (created on `TOKENKEEPER_BENCH_DATABASE_URL`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`, dropped at the end), the service built in-process with
//! the embedded secret store in a temp dir and the refresher disabled (the bench drives `run_pass`), and a
//! local axum token endpoint (single-use rotating refresh tokens; it counts calls and any reuse).
//!
//! Population: the 1,000 due credentials (`expires_at` = now + 60 s, inside the 5-minute margin) are
//! stored through `CredentialService::store_tokens_in_db`. The other 99,000 (not due: expiring in 30 days)
//! go through the service too when that is projected to take at most `BENCH_MAX_POPULATE_SECS` (180);
//! otherwise they are bulk-inserted into `connections` with SQL (the bench says which it did).
//!
//! Environment: `TOKENKEEPER_BENCH_DATABASE_URL`, `BENCH_TOTAL` (100000), `BENCH_DUE` (1000),
//! `BENCH_TOKEN_DELAY_MS` (latency the token endpoint adds to every answer, default 0),
//! `BENCH_POPULATE` (`auto`, `service` or `bulk`), `BENCH_MAX_POPULATE_SECS` (180), `BENCH_REPEATS`
//! (passes and direct runs after the first of each, default 2), `BENCH_STRICT`.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::{Form, Json, Router, routing};
use futures::StreamExt as _;
use serde_json::{Value, json};
use sqlx::{Connection as _, PgConnection, PgPool, Row as _};
use tokenkeeper::app::Services;
use tokenkeeper::background::{Refresher, RefresherSettings};
use tokenkeeper::clock::SystemClock;
use tokenkeeper::config::Settings;
use tokenkeeper::credentials::{ConnectionKey, DueBatch, PassReport, TokenData};
use tokenkeeper::db::postgres::CLAIM_DUE_SQL as CLAIM_SQL;
use tokenkeeper::db::{AuditRecord, Connection};
use tokenkeeper::refresh::grants::{self, GrantContext};

fn env_num<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn now_secs() -> i64 {
    tokenkeeper::clock::secs_i64(SystemTime::now().duration_since(UNIX_EPOCH).unwrap())
}

fn now_ms() -> i64 {
    tokenkeeper::clock::millis_i64(SystemTime::now().duration_since(UNIX_EPOCH).unwrap())
}

fn user(i: usize) -> String {
    format!("bench-user-{i}")
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

// ---------------------------------------------------------------------------------------------------------
// The token endpoint.

#[derive(Default)]
struct Endpoint {
    calls: AtomicU64,
    /// Presented refresh tokens that were not live (a reuse or an unknown token): answered `invalid_grant`.
    reused: AtomicU64,
    bad_client: AtomicU64,
    live: Mutex<HashSet<String>>,
    delay: Duration,
}

async fn token(
    State(p): State<Arc<Endpoint>>,
    Form(f): Form<HashMap<String, String>>,
) -> (axum::http::StatusCode, Json<Value>) {
    let n = p.calls.fetch_add(1, Ordering::SeqCst) + 1;
    if !p.delay.is_zero() {
        tokio::time::sleep(p.delay).await;
    }
    if f.get("grant_type").map(String::as_str) != Some("refresh_token")
        || f.get("client_id").map(String::as_str) != Some("bench-client")
        || f.get("client_secret").map(String::as_str) != Some("bench-client-secret")
    {
        p.bad_client.fetch_add(1, Ordering::SeqCst);
        return (
            axum::http::StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client"})),
        );
    }
    let presented = f.get("refresh_token").cloned().unwrap_or_default();
    let next = format!("{}~{n}", presented.split('~').next().unwrap_or_default());
    {
        let mut live = p.live.lock().unwrap();
        if !live.remove(&presented) {
            p.reused.fetch_add(1, Ordering::SeqCst);
            return (
                axum::http::StatusCode::BAD_REQUEST,
                Json(json!({"error": "invalid_grant"})),
            );
        }
        live.insert(next.clone());
    }
    (
        axum::http::StatusCode::OK,
        Json(json!({
            "access_token": format!("access-{n}"),
            "expires_in": 3600,
            "refresh_token": next,
            "token_type": "Bearer",
        })),
    )
}

async fn start_endpoint(delay: Duration) -> (Arc<Endpoint>, String) {
    let p = Arc::new(Endpoint {
        delay,
        ..Default::default()
    });
    let app = Router::new()
        .route("/token", routing::post(token))
        .with_state(p.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/token", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (p, url)
}

// ---------------------------------------------------------------------------------------------------------

fn main() {
    let admin = std::env::var("TOKENKEEPER_BENCH_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let strict = std::env::var("BENCH_STRICT").is_ok_and(|v| v == "1" || v == "true");
    // Like the binary's `#[tokio::main]`: one worker per core.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let db_name = format!("tk_bench_refresh_{}", std::process::id());
    let db_url = rt.block_on(create_database(&admin, &db_name));
    // The bench body runs in a task, so that a panic still lets the database be dropped below.
    let res = rt.block_on(async {
        let url = db_url.clone();
        tokio::spawn(async move { bench(url).await }).await
    });
    rt.block_on(drop_database(&admin, &db_name));
    println!("dropped database {db_name}");
    match res {
        Ok(passed) => {
            if strict && !passed {
                std::process::exit(1);
            }
        }
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

async fn create_database(admin: &str, name: &str) -> String {
    let mut c = PgConnection::connect(admin)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {admin} (set TOKENKEEPER_BENCH_DATABASE_URL): {e}"));
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut c)
    .await
    .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut c)
        .await
        .unwrap();
    let mut u = url::Url::parse(admin).expect("database URL");
    u.set_path(&format!("/{name}"));
    u.to_string()
}

async fn drop_database(admin: &str, name: &str) {
    match PgConnection::connect(admin).await {
        Ok(mut c) => {
            if let Err(e) = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .execute(&mut c)
            .await
            {
                eprintln!("could not drop database {name}: {e}");
            }
        }
        Err(e) => eprintln!("could not drop database {name}: {e}"),
    }
}

async fn bench(db_url: String) -> bool {
    let total: usize = env_num("BENCH_TOTAL", 100_000);
    let due_n: usize = env_num("BENCH_DUE", 1_000);
    let delay_ms: u64 = env_num("BENCH_TOKEN_DELAY_MS", 0);
    let populate = std::env::var("BENCH_POPULATE").unwrap_or_else(|_| "auto".into());
    let max_populate: f64 = env_num("BENCH_MAX_POPULATE_SECS", 180.0);
    let repeats: usize = env_num("BENCH_REPEATS", 2);
    let sched = DueBatch::default();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    // Every 100th user is due: due rows are spread over the table, as they would be.
    let stride = (total / due_n).max(1);
    let due_users: Vec<String> = (0..due_n).map(|k| user(k * stride)).collect();
    let due_set: HashSet<usize> = (0..due_n).map(|k| k * stride).collect();

    println!(
        "refresh_pass bench: {total} connections, {due_n} due, scheduler batch {} concurrency {}, \
         token endpoint delay {delay_ms} ms, {cores} cores",
        sched.limit, sched.concurrency
    );

    let (endpoint, token_url) = start_endpoint(Duration::from_millis(delay_ms)).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut env: HashMap<String, String> = HashMap::new();
    env.insert("DATABASE_URL".into(), db_url.clone());
    env.insert("TOKENKEEPER_DATA_DIR".into(), dir.path().display().to_string());
    env.insert("TOKENKEEPER_REFRESHER_DISABLED".into(), "true".into());
    // Stored without asking Google: the bench's only provider is its token endpoint.
    env.insert("TOKENKEEPER_CHECK_ON_STORE".into(), "false".into());
    env.insert("TOKENKEEPER_GCP_TOKEN_URL".into(), token_url);
    env.insert("TOKENKEEPER_GCP_CLIENT_ID".into(), "bench-client".into());
    env.insert("TOKENKEEPER_GCP_CLIENT_SECRET".into(), "bench-client-secret".into());
    let settings = Settings::from_lookup(&|k| env.get(k).cloned()).expect("settings");
    let services = Services::build(settings, Arc::new(SystemClock))
        .await
        .expect("build services");
    // A separate pool for the bench's own SQL (the service's pool is its own business).
    let pool = PgPool::connect(&db_url).await.expect("bench pool");

    // ---- Populate.
    let t0 = Instant::now();
    let now = now_secs();
    let store_one = |i: usize, expires_at: i64| {
        let svc = services.credentials.clone();
        let ep = endpoint.clone();
        async move {
            let rt = format!("rt-{i}");
            ep.live.lock().unwrap().insert(rt.clone());
            let body = json!({
                "access_token": "access-0",
                "refresh_token": rt,
                "expires_at": expires_at,
                "email": format!("bench{i}@example.com"),
            });
            svc.store_tokens_in_db(&user(i).into(), &body, "gcp", "bench")
                .await
                .expect("store_tokens_in_db");
        }
    };
    futures::stream::iter(due_set.iter().copied())
        .map(|i| store_one(i, now + 60))
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
    let t_due = t0.elapsed().as_secs_f64();
    let rest = total - due_n;
    let projected = t_due / due_n as f64 * rest as f64;
    println!(
        "populate: {due_n} due stored through store_tokens_in_db in {t_due:.1} s ({:.0}/s); \
         the other {rest} through the service would take ~{projected:.0} s",
        due_n as f64 / t_due
    );
    let far = now + 30 * 86_400;
    let through_service = match populate.as_str() {
        "service" => true,
        "bulk" => false,
        _ => projected <= max_populate,
    };
    let t1 = Instant::now();
    let not_due = (0..total).filter(|i| !due_set.contains(i));
    if through_service {
        futures::stream::iter(not_due)
            .map(|i| store_one(i, far))
            .buffer_unordered(16)
            .collect::<Vec<()>>()
            .await;
        println!(
            "populate: {rest} not-due stored through store_tokens_in_db in {:.1} s",
            t1.elapsed().as_secs_f64()
        );
    } else {
        // Rows shaped exactly like the service's (a sample of a stored one), next_refresh_at far ahead.
        // Their secrets are not written: nothing reads them during the bench.
        let sample: (String, String) =
            sqlx::query_as("SELECT secret_ref, metadata FROM connections WHERE user_id = $1")
                .bind(&due_users[0])
                .fetch_one(&pool)
                .await
                .unwrap();
        let ids: Vec<usize> = not_due.collect();
        let ts = now_ms();
        for chunk in ids.chunks(10_000) {
            let users: Vec<String> = chunk.iter().map(|&i| user(i)).collect();
            let refs: Vec<String> = users.iter().map(|u| sample.0.replace(&due_users[0], u)).collect();
            let metas: Vec<String> = chunk
                .iter()
                .map(|&i| json!({"email": format!("bench{i}@example.com")}).to_string())
                .collect();
            // Each user's personal org first (its id: the user's), as the service makes it.
            sqlx::query(
                "INSERT INTO orgs (id, name, personal, created_by, created_at) \
                 SELECT u, u, TRUE, u, $2 FROM UNNEST($1::text[]) AS t(u)",
            )
            .bind(&users)
            .bind(ts)
            .execute(&pool)
            .await
            .unwrap();
            sqlx::query(
                "INSERT INTO connections (org_id, user_id, provider, secret_ref, secret_version, metadata, status, \
                 expires_at, next_refresh_at, refresh_failures, created_at, updated_at) \
                 SELECT u, u, 'gcp', r, 1, m, 'active', $4, $5, 0, $6, $6 \
                 FROM UNNEST($1::text[], $2::text[], $3::text[]) AS t(u, r, m)",
            )
            .bind(&users)
            .bind(&refs)
            .bind(&metas)
            .bind(far)
            .bind(far - 300)
            .bind(ts)
            .execute(&pool)
            .await
            .unwrap();
        }
        println!(
            "populate: {rest} not-due rows bulk-inserted into connections with SQL (UNNEST, 10,000 a statement) \
             in {:.1} s (secret_ref/metadata shaped like the service's; no secrets written for them)",
            t1.elapsed().as_secs_f64()
        );
    }
    let (count, due_now): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(*) FILTER (WHERE next_refresh_at <= $1) FROM connections")
            .bind(now_secs())
            .fetch_one(&pool)
            .await
            .unwrap();
    println!("connections: {count} rows, {due_now} due now");
    assert_eq!(
        (usize::try_from(count).unwrap(), usize::try_from(due_now).unwrap()),
        (total, due_n)
    );

    // ---- (1) The due query's plan.
    sqlx::query("ANALYZE connections").execute(&pool).await.unwrap();
    let now = now_secs();
    let lease = now + tokenkeeper::clock::secs_i64(sched.lease);
    let literal = CLAIM_SQL
        .replace("$1", &lease.to_string())
        .replace("$2", &now.to_string())
        .replace("$3", &sched.limit.to_string());
    let plan = explain(&pool, &format!("EXPLAIN (ANALYZE, BUFFERS) {literal}")).await;
    println!("\nEXPLAIN (ANALYZE, BUFFERS) of the claim query (custom plan, values of a pass; rolled back):");
    for l in &plan {
        println!("    {l}");
    }
    // sqlx keeps statements prepared; after five executions PostgreSQL may switch to a generic plan.
    let generic = {
        let mut tx = pool.begin().await.unwrap();
        sqlx::query("SET LOCAL plan_cache_mode = force_generic_plan")
            .execute(&mut *tx)
            .await
            .unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "PREPARE bench_claim(bigint, bigint, bigint) AS {CLAIM_SQL}"
        )))
        .execute(&mut *tx)
        .await
        .unwrap();
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "EXPLAIN (ANALYZE, BUFFERS) EXECUTE bench_claim({lease}, {now}, {})",
            sched.limit
        )))
        .fetch_all(&mut *tx)
        .await
        .unwrap();
        tx.rollback().await.unwrap();
        rows.iter().map(|r| r.get::<String, _>(0)).collect::<Vec<_>>()
    };
    println!("EXPLAIN (ANALYZE, BUFFERS) EXECUTE, plan_cache_mode = force_generic_plan (rolled back):");
    for l in &generic {
        println!("    {l}");
    }
    let uses_index = |p: &[String]| p.iter().any(|l| l.contains("connections_due_idx"));
    // The custom plan is what runs (its cost is far below the generic plan's); the generic one is shown for
    // information.
    let plan_ok = uses_index(&plan) && !plan.iter().any(|l| l.contains("Seq Scan"));
    println!(
        "plan uses connections_due_idx: custom {}, generic {}",
        uses_index(&plan),
        uses_index(&generic)
    );

    // Claim query alone, as the pass runs it (batch 200 of 1,000 due), rolled back each time.
    let mut claim_ms = Vec::new();
    for _ in 0..7 {
        let mut tx = pool.begin().await.unwrap();
        let t = Instant::now();
        let rows: Vec<(String, String)> = sqlx::query_as(CLAIM_SQL)
            .bind(lease)
            .bind(now_secs())
            .bind(sched.limit)
            .fetch_all(&mut *tx)
            .await
            .unwrap();
        claim_ms.push(t.elapsed().as_secs_f64() * 1e3);
        assert_eq!(rows.len(), usize::try_from(sched.limit).unwrap());
        tx.rollback().await.unwrap();
    }
    let claim_med = median(&claim_ms[1..]);
    let claims_per_pass = due_n.div_ceil(usize::try_from(sched.limit).unwrap()) + 1;
    println!(
        "claim query (batch {}, alone): median {claim_med:.2} ms; a pass runs {claims_per_pass} of them \
         (~{:.1} ms)",
        sched.limit,
        claim_med * claims_per_pass as f64
    );

    // ---- (2) One refresher pass, default settings. Cut after BENCH_PASS_TIMEOUT_SECS (stop signal: the
    // pass stops between credentials), so that a stalled pass is reported instead of hanging the bench.
    let pass_timeout: u64 = env_num("BENCH_PASS_TIMEOUT_SECS", 60);
    let (p1, report, calls, stopped) = timed_pass(&services, &sched, &endpoint, pass_timeout).await;
    println!(
        "\npass 1 (concurrency {}): {p1:.3} s{}  claimed {} refreshed {} failed {}; endpoint calls {calls}, \
         reused tokens {}",
        sched.concurrency,
        if stopped { " (STOPPED at the time limit)" } else { "" },
        report.claimed,
        report.refreshed,
        report.failed,
        endpoint.reused.load(Ordering::SeqCst)
    );
    let exact = !stopped && report.refreshed == due_n && report.failed == 0 && calls == due_n as u64;
    let (refreshed_rows, still_due): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE expires_at BETWEEN $1 + 3000 AND $1 + 4000), \
         count(*) FILTER (WHERE next_refresh_at <= $1) FROM connections",
    )
    .bind(now_secs())
    .fetch_one(&pool)
    .await
    .unwrap();
    println!("  after the pass: {refreshed_rows} rows hold a fresh 1-hour token, {still_due} still due");

    // ---- (3) The same 1,000 refreshed directly: bare grant calls, same concurrency.
    let mut direct16 = Vec::new();
    for round in 0..=repeats {
        let s = direct(&services, &endpoint, &due_users, sched.concurrency, round).await;
        println!("direct {} (concurrency {}): {s:.3} s", round + 1, sched.concurrency);
        direct16.push(s);
    }
    let d16 = median(&direct16);

    // ---- (3b) The same 1,000 refreshed directly ("engine direct"), one `refresh_now` each (the path of
    // `POST /api/tokens/{provider}/refresh`: lock, re-read, grant, secret write, row update, audit), same
    // concurrency. The pass must not add much to this: that is what the goal measures.
    let mut engine16 = Vec::new();
    for round in 0..=repeats {
        make_due(&pool, &due_users).await;
        let calls0 = endpoint.calls.load(Ordering::SeqCst);
        let t = Instant::now();
        let results: Vec<bool> = futures::stream::iter(due_users.clone())
            .map(|u| {
                let svc = services.credentials.clone();
                async move { svc.refresh_now(&u.as_str().into(), "gcp", "bench").await.is_ok() }
            })
            .buffer_unordered(sched.concurrency)
            .collect()
            .await;
        let ok = results.iter().filter(|r| **r).count();
        let s = t.elapsed().as_secs_f64();
        let calls = endpoint.calls.load(Ordering::SeqCst) - calls0;
        assert_eq!((ok, calls), (due_n, due_n as u64), "engine refreshes");
        println!("engine {} (concurrency {}): {s:.3} s", round + 1, sched.concurrency);
        engine16.push(s);
    }
    let e16 = median(&engine16);

    // ---- More passes on the same 1,000 made due again (their stored, rotated refresh tokens are live). If
    // the default pass stalled, these run at a concurrency that cannot exhaust the pool (diagnostic).
    let diag_c: usize = if exact {
        sched.concurrency
    } else {
        env_num("BENCH_DIAG_CONCURRENCY", 7)
    };
    let diag = DueBatch {
        concurrency: diag_c,
        ..sched.clone()
    };
    if !exact {
        println!(
            "\npass 1 did not complete cleanly: diagnostic passes at concurrency {diag_c} (each refresh holds one \
             pool connection for the advisory lock and needs a second for its queries)"
        );
    }
    let mut passes = vec![p1];
    let mut diag_passes = Vec::new();
    let mut diag_exact = true;
    for round in 0..repeats.max(1) {
        make_due(&pool, &due_users).await;
        let (s, r, calls, stopped) = timed_pass(&services, &diag, &endpoint, pass_timeout).await;
        println!(
            "pass {} (concurrency {diag_c}): {s:.3} s{}  claimed {} refreshed {} failed {}; endpoint calls {calls}",
            round + 2,
            if stopped { " (STOPPED)" } else { "" },
            r.claimed,
            r.refreshed,
            r.failed
        );
        diag_exact &= !stopped && r.refreshed == due_n && r.failed == 0 && calls == due_n as u64;
        if exact {
            passes.push(s);
        } else {
            diag_passes.push(s);
        }
    }
    let mut direct_diag = Vec::new();
    if !exact {
        for round in 0..=repeats {
            let s = direct(&services, &endpoint, &due_users, diag_c, 100 + round).await;
            println!("direct (concurrency {diag_c}): {s:.3} s");
            direct_diag.push(s);
        }
    }

    // ---- Where a pass's time goes: each per-credential step of a refresh alone, sequentially.
    println!("\nper-credential steps of a refresh (CredentialService), each alone, sequential (mean of 200):");
    let steps = step_costs(&services, &due_users[..200.min(due_users.len())]).await;
    let mut serial = 0.0;
    for (name, ms) in &steps {
        println!("    {name:<56} {ms:>7.3} ms");
        serial += ms;
    }
    println!(
        "    {:<56} {serial:>7.3} ms",
        "sum (one credential, excluding the grant call)"
    );

    let list = |v: &[f64]| v.iter().map(|s| format!("{s:.3} s")).collect::<Vec<_>>().join(", ");
    let ratio1 = p1 / e16;
    let reuse = endpoint.reused.load(Ordering::SeqCst);
    let bad_client = endpoint.bad_client.load(Ordering::SeqCst);
    let goal_ok = exact && ratio1 <= 1.5;
    println!("\nresults");
    println!(
        "  populate                 {}",
        if through_service {
            "all 100,000 through store_tokens_in_db"
        } else {
            "1,000 due through store_tokens_in_db, 99,000 bulk SQL"
        }
    );
    println!("  plan uses the index      {}", pass(plan_ok));
    println!(
        "  pass 1 exact             refreshed {} of {due_n}, endpoint calls {calls}   {}",
        report.refreshed,
        pass(exact)
    );
    println!("  passes (concurrency {})  {}", sched.concurrency, list(&passes));
    println!(
        "  bare grants (conc. {})   {}   (the endpoint alone, for scale)",
        sched.concurrency,
        list(&direct16)
    );
    println!("  engine direct (conc. {}) {}", sched.concurrency, list(&engine16));
    println!(
        "  claim queries in a pass  ~{:.1} ms ({:.2} % of pass 1)",
        claim_med * claims_per_pass as f64,
        claim_med * claims_per_pass as f64 / 1e3 / p1 * 100.0
    );
    println!(
        "  ratio pass 1 / engine direct  {ratio1:.2}   (median pass / median engine: {:.2}; pass / bare grants: {:.1})   goal <= 1.5   {}",
        median(&passes) / e16,
        median(&passes) / d16,
        pass(goal_ok)
    );
    if !exact {
        let dd = median(&direct_diag);
        println!(
            "  diagnostic concurrency {diag_c}: passes {}  direct {}",
            list(&diag_passes),
            list(&direct_diag)
        );
        println!(
            "  diagnostic ratio         {:.2} (median pass / median direct at {diag_c}); pass / direct at 16: {:.2}; \
             passes exact: {}",
            median(&diag_passes) / dd,
            median(&diag_passes) / d16,
            diag_exact
        );
    }
    println!("  endpoint reuse / bad client {reuse} / {bad_client}");
    let all = plan_ok && exact && goal_ok && reuse == 0 && bad_client == 0;
    println!("overall: {}", pass(all));
    drop(services);
    pool.close().await;
    all
}

/// One `run_pass`, stopped after `timeout_secs`: (seconds, report, token-endpoint calls, stopped).
async fn timed_pass(
    services: &Services,
    s: &DueBatch,
    endpoint: &Endpoint,
    timeout_secs: u64,
) -> (f64, PassReport, u64, bool) {
    let refresher = Refresher::new(
        services.credentials.clone(),
        services.clock.clone(),
        RefresherSettings {
            batch: s.clone(),
            ..RefresherSettings::default()
        },
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let timer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(timeout_secs)).await;
        let _ = stop_tx.send(true);
    });
    let calls0 = endpoint.calls.load(Ordering::SeqCst);
    let t = Instant::now();
    let report = refresher.run_pass(&stop_rx).await;
    let secs = t.elapsed().as_secs_f64();
    let stopped = *stop_rx.borrow();
    timer.abort();
    (secs, report, endpoint.calls.load(Ordering::SeqCst) - calls0, stopped)
}

/// The due credentials made due again: expiring in 60 s, `next_refresh_at` passed.
async fn make_due(pool: &PgPool, due_users: &[String]) {
    sqlx::query("UPDATE connections SET next_refresh_at = $1 - 1, expires_at = $1 + 60 WHERE user_id = ANY($2)")
        .bind(now_secs())
        .bind(due_users)
        .execute(pool)
        .await
        .unwrap();
}

/// The bare grant calls for `due_users`, `concurrency` at a time, token data constructed (a fresh live
/// refresh token each): seconds.
async fn direct(
    services: &Services,
    endpoint: &Endpoint,
    due_users: &[String],
    concurrency: usize,
    round: usize,
) -> f64 {
    let spec = tokenkeeper::providers::find("gcp").expect("gcp in the catalog");
    let http = grants::http_client(services.settings.outbound_timeout);
    let now = now_secs();
    let data: Vec<(String, TokenData)> = due_users
        .iter()
        .enumerate()
        .map(|(k, u)| {
            let rt = format!("rt-direct{round}-{k}");
            endpoint.live.lock().unwrap().insert(rt.clone());
            let m = json!({
                "access_token": "access-0",
                "refresh_token": rt,
                "expires_at": now + 60,
                "email": format!("bench{k}@example.com"),
            });
            (u.clone(), TokenData::new(m.as_object().unwrap().clone()))
        })
        .collect();
    let calls0 = endpoint.calls.load(Ordering::SeqCst);
    let t = Instant::now();
    let results: Vec<bool> = futures::stream::iter(data)
        .map(|(u, td)| {
            let http = http.clone();
            let settings = &services.settings.grants;
            async move {
                let ctx = GrantContext {
                    http: &http,
                    settings,
                    now,
                    user_id: &u,
                };
                grants::refresh(spec, &td, &ctx).await.is_ok()
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let s = t.elapsed().as_secs_f64();
    let ok = results.iter().filter(|r| **r).count();
    let calls = endpoint.calls.load(Ordering::SeqCst) - calls0;
    assert_eq!(
        (ok, calls),
        (due_users.len(), due_users.len() as u64),
        "direct refreshes"
    );
    s
}

fn pass(ok: bool) -> &'static str {
    if ok { "PASS" } else { "FAIL" }
}

async fn explain(pool: &PgPool, sql: &str) -> Vec<String> {
    let mut tx = pool.begin().await.unwrap();
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    rows.iter().map(|r| r.get::<String, _>(0)).collect()
}

/// The mean time of each database / secret-store step a refresh takes per credential, run one at a time.
async fn step_costs(services: &Services, users: &[String]) -> Vec<(&'static str, f64)> {
    let store = &services.store;
    let secrets = &services.secrets;
    let n = users.len() as f64;
    let mut out = Vec::new();
    macro_rules! step {
        ($name:expr, |$u:ident| $body:expr) => {{
            let t = Instant::now();
            for $u in users {
                $body;
            }
            out.push(($name, t.elapsed().as_secs_f64() * 1e3 / n));
        }};
    }
    let name = |u: &str| {
        services
            .credentials
            .secret_name(&ConnectionKey::of_row(u, "gcp", "default").expect("gcp"))
    };
    step!("refresh_lock: lease row taken and released (refresh_locks)", |u| {
        let l = store.refresh_lock(&format!("{u}\u{0}gcp")).await.unwrap();
        drop(l);
    });
    step!("get_connection (row re-read)", |u| {
        store.get_connection(u, "gcp", "default").await.unwrap().unwrap();
    });
    step!("secrets.read (latest version, embedded store)", |u| {
        secrets.read(&name(u), None).await.unwrap().unwrap();
    });
    step!("secrets.write (check-and-set, embedded store)", |u| {
        let cur = secrets.read(&name(u), None).await.unwrap().unwrap();
        secrets.write(&name(u), &cur.value, Some(cur.version)).await.unwrap();
    });
    // secrets.write above includes one read; take it out.
    let read_ms = out[2].1;
    out[3].1 -= read_ms;
    let rows: Vec<Connection> = {
        let mut v = Vec::new();
        for u in users {
            v.push(store.get_connection(u, "gcp", "default").await.unwrap().unwrap());
        }
        v
    };
    let t = Instant::now();
    for r in &rows {
        assert!(store.update_connection(r).await.unwrap());
    }
    out.push(("update_connection", t.elapsed().as_secs_f64() * 1e3 / n));
    step!("insert_audit", |u| {
        store
            .insert_audit(&AuditRecord {
                id: 0,
                user_id: Some(u.clone()),
                org_id: Some(u.clone()),
                kind: "bench".into(),
                provider: Some("gcp".into()),
                connection: Some("default".into()),
                outcome: "ok".into(),
                client_addr: Some("bench".into()),
                detail: None,
                at: now_ms(),
                count: 1,
                read_key: None,
            })
            .await
            .unwrap();
    });
    step!("notify_changed (none: a trigger notifies)", |u| {
        store.notify_changed(&format!("gcp:{u}")).await.unwrap();
    });
    out
}
