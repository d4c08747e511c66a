//! Outbound requests to URLs users give (Grafana, Splunk, Netdata and Coroot base URLs): the ground layer
//! that decides which addresses may be reached ([`AddressPolicy`], [`is_public_ip`]) and the only client
//! that sends such requests ([`SafeFetcher`]); and, inbound, who the client is behind trusted proxies
//! ([`TrustedProxies`]) and how client addresses are counted ([`address_group`]). Knows nothing of
//! providers or credentials.

mod fetch;
mod forwarded;
mod policy;
mod special;

pub use fetch::{FetchError, Fetched, SafeFetcher};
pub use forwarded::{TrustedProxies, address_group};
pub use policy::{AddressPolicy, parse_networks};
pub use special::is_public_ip;
