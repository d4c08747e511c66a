//! Outbound requests to URLs users give (Grafana, Splunk, Netdata and Coroot base URLs): the ground layer
//! that decides which addresses may be reached ([`AddressPolicy`], [`is_public_ip`]) and the only client
//! that sends such requests ([`SafeFetcher`]). Knows nothing of providers or credentials.

mod fetch;
mod policy;
mod special;

pub use fetch::{FetchError, Fetched, SafeFetcher};
pub use policy::{AddressPolicy, parse_networks};
pub use special::is_public_ip;
