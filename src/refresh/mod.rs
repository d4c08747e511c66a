//! Keeping credentials fresh (SPEC §5).
//!
//! [`grants`] is the stateless layer: given a provider spec and a credential's token data, it performs the one
//! outbound call that yields a fresh credential and sorts failures into [`grants::GrantError`]. Single flight,
//! locking, scheduling and persistence build on it: [`engine`] (one refresh, in a task of its own that
//! also records its audit event: `detach`; under the per-credential lock: `lock`; its writes: `persist`),
//! [`scheduler`] (the background refresher), [`timing`] (margins, planned refreshes, backoff).

mod detach;
pub mod engine;
pub mod grants;
mod lock;
mod persist;
pub mod scheduler;
pub mod timing;

pub use grants::{GrantContext, GrantError, Refreshed, http_client, refresh, refresh_kind_for};
