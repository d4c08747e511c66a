//! Drivers that run beside the HTTP server, on their own schedule, and call the services like a
//! request handler would.

pub mod audit_pruner;
pub mod checker;
pub mod refresher;
pub mod webhooks;

pub use audit_pruner::AuditPruner;
pub use checker::Checker;
pub use refresher::{Refresher, RefresherSettings};
pub use webhooks::WebhookDriver;

/// Waits `interval`, give or take a fifth (so that instances do not beat in step), or until `stop` turns
/// true; returns whether it did.
pub(crate) async fn pause_or_stop(
    interval: std::time::Duration,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) -> bool {
    use rand::Rng as _;
    let pause = interval.mul_f64(rand::thread_rng().gen_range(0.8..1.2));
    tokio::select! {
        _ = tokio::time::sleep(pause) => {}
        _ = stop.changed() => {}
    }
    *stop.borrow()
}
