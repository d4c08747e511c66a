//! Logging: `tracing`, human-readable by default, JSON with `TOKENKEEPER_LOG_FORMAT=json`,
//! filtered by `RUST_LOG` (default `info`). Secret values are never logged: they travel in `secrecy`
//! types whose `Debug` is redacted, and request logs carry the path only, never query strings or bodies.
//!
//! Every request leaves one line, `response` (ERROR for a 5xx, else INFO), with `status` and
//! `latency_ms`, inside the `request` span: `method`, `route` (the matched template), `path` and
//! `request_id` (the `X-Request-Id` the caller sent, else a fresh UUID; also returned in the response).
//! In JSON the span's fields are under `"span"`, e.g.
//! `{"timestamp":..,"level":"INFO","fields":{"message":"response","status":200,"latency_ms":1},
//! "target":"tokenkeeper::http","span":{"method":"GET","route":"/healthz","path":"/healthz",
//! "request_id":"5f0c..","name":"request"},"spans":[..]}`.

use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let json = std::env::var("TOKENKEEPER_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let res = if json {
        // The current span (with the request id) and the span list are included (the defaults, made explicit).
        builder.json().with_current_span(true).with_span_list(true).try_init()
    } else {
        builder.try_init()
    };
    // Already initialised (tests, embedding): keep the existing subscriber.
    let _ = res;
}
