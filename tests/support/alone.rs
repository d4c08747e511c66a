//! Running one test alone, in a child process of the test binary: for tests that read or install
//! process-wide state (the process-wide counters, a global log subscriber), which the other tests of the
//! binary, running in parallel, would disturb.
//!
//! ```ignore
//! async fn my_test(db: Db) {
//!     if !alone(module_path!(), db, "my_test").await { return; } // the parent ran the child, it passed
//!     // ... the test, in the child ...
//! }
//! ```
//!
//! The child inherits the environment, so a skip there follows the same rule (`support::skip`): recorded
//! in the skip log, a failure under `TOKENKEEPER_REQUIRE_ALL=1`.

use super::app::Db;

/// Set in the child process that runs one test alone.
const ALONE: &str = "TOKENKEEPER_TEST_ALONE";

/// `true` in a child process running only the test `name` of `module` (a `module_path!()`) on `db`; in
/// the parent, runs that child, asserts that the test ran there and passed, and returns `false`.
pub async fn alone(module: &str, db: Db, name: &str) -> bool {
    if std::env::var_os(ALONE).is_some() {
        return true;
    }
    // Test names leave out the crate (`api::`).
    let module = module.split_once("::").map_or(module, |(_, m)| m);
    let backend = match db {
        Db::Sqlite => "sqlite",
        Db::Postgres => "postgres",
    };
    let test = format!("{module}::{backend}::{name}");
    let out = super::wait::bounded(
        &format!("{test} alone in a child process"),
        tokio::process::Command::new(std::env::current_exe().unwrap())
            .args([test.as_str(), "--exact", "--test-threads=1", "--nocapture"])
            .env(ALONE, "1")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success() && stdout.contains("test result: ok. 1 passed"),
        "{test}, run alone in a child process: {}\n{stdout}\n{stderr}",
        out.status
    );
    false
}
