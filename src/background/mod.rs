//! Drivers that run beside the HTTP server, on their own schedule, and call the services like a
//! request handler would.

pub mod audit_pruner;
pub mod refresher;

pub use audit_pruner::AuditPruner;
pub use refresher::{Refresher, RefresherSettings};
