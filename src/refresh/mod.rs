//! The stateless parts of keeping credentials fresh (`docs/REFRESH.md`): [`grants`], the one outbound
//! call per refresh kind that turns a stored credential into a fresh one, with its failures sorted into
//! [`grants::GrantError`] ([`grants::classify`]); and [`timing`], when a credential is due and how long to
//! back off after a failure.
//!
//! No SQL, no secret store, no locks: the refresh workflow (single flight, persistence, audit) belongs to
//! the credential service (`crate::credentials::refresh`), which calls in here; nothing here calls back.

pub mod grants;
pub mod timing;

pub use grants::{GrantContext, GrantError, Refreshed, http_client, refresh, refresh_kind_for};
