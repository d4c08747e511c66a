//! Logging: `tracing`, human-readable by default, JSON with `TOKENKEEPER_LOG_FORMAT=json`,
//! filtered by `RUST_LOG` (default `info`). Secret values are never logged: they travel in `secrecy`
//! types whose `Debug` is redacted, and request logs carry the path only, never query strings or bodies.

use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let json =
        std::env::var("TOKENKEEPER_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let res = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    // Already initialised (tests, embedding): keep the existing subscriber.
    let _ = res;
}
