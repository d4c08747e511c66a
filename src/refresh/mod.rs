//! Keeping credentials fresh (SPEC §5).
//!
//! [`grants`] is the stateless layer: given a provider spec and a credential's token data, it performs the one
//! outbound call that yields a fresh credential and sorts failures into [`grants::GrantError`]. Single flight,
//! locking, scheduling and persistence build on it.

pub mod engine;
pub mod grants;
pub mod scheduler;

pub use grants::{GrantContext, GrantError, Refreshed, http_client, refresh, refresh_kind_for};
