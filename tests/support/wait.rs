//! Bounded waits: a test waits for an event (a condition it can observe), never for a fixed time, and
//! never forever. The bound only turns a hang into a failure that names what did not happen; it is
//! generous because a loaded 2-core machine is slow, and reaching it is always a failure.

use std::future::Future;
use std::time::Duration;

/// The default bound of [`until`].
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Polls `check` (every 10 ms) until it is true; panics naming `what` after [`PATIENCE`].
pub async fn until<F, Fut>(what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    until_within(what, PATIENCE, check).await
}

/// [`until`] with another bound.
pub async fn until_within<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "waited {limit:?} for: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `fut`, or a panic naming `what` if it has not finished after [`PATIENCE`].
pub async fn bounded<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, fut)
        .await
        .unwrap_or_else(|_| panic!("waited {PATIENCE:?} for: {what}"))
}
