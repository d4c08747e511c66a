//! Tokenkeeper: keeps a platform's user passwords and the provider credentials its users connect.
//!
//! Secrets live in a [`secrets::SecretStore`] (HashiCorp Vault KV v2, or the embedded AES-256-GCM store);
//! SQL ([`db::Store`]) holds only references and non-secret metadata. See `docs/ARCHITECTURE.md`.

// `unsafe` is forbidden in the whole crate (`[lints]` in Cargo.toml). A panic outside tests needs its reason
// written next to it, `expect("why this cannot fail")`, never a bare `unwrap()` (unit tests may: clippy.toml).
#![deny(clippy::unwrap_used)]

pub mod app;
pub mod audit;
pub mod background;
pub mod cli;
pub mod clock;
pub mod config;
pub mod credentials;
pub mod db;
pub mod http;
pub mod identity;
pub mod metrics;
pub mod net;
pub mod passwords;
pub mod providers;
pub mod refresh;
pub mod secrets;
pub mod telemetry;
