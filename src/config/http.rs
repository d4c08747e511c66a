//! The HTTP server's limits: how long a client may take to send its headers and a whole exchange, and
//! how many connections are served at once.

use std::time::Duration;

use super::{ConfigError, Env, MAX_SECS, err, parsed, secs};

pub const HEADER_TIMEOUT_VAR: &str = "TOKENKEEPER_HTTP_HEADER_TIMEOUT_SECS";
pub const REQUEST_TIMEOUT_VAR: &str = "TOKENKEEPER_HTTP_REQUEST_TIMEOUT_SECS";
pub const MAX_CONNECTIONS_VAR: &str = "TOKENKEEPER_MAX_CONNECTIONS";

/// The upper bound of [`MAX_CONNECTIONS_VAR`] (each connection is at least one file descriptor).
const MAX_MAX_CONNECTIONS: usize = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// A connection whose request headers are not complete this long after it started waiting for
    /// them (a new connection, or a kept-alive one between requests) is closed (default 10 s).
    pub header_timeout: Duration,
    /// A request not answered this long after its headers arrived gets 503 (default 30 s).
    pub request_timeout: Duration,
    /// Connections served at once (default 10,000); further ones wait in the listen queue.
    pub max_connections: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_connections: 10_000,
        }
    }
}

impl HttpLimits {
    pub(super) fn from_lookup(env: Env) -> Result<Self, ConfigError> {
        let d = Self::default();
        let max_connections = parsed(env, MAX_CONNECTIONS_VAR, d.max_connections)?;
        if !(1..=MAX_MAX_CONNECTIONS).contains(&max_connections) {
            return Err(err(
                MAX_CONNECTIONS_VAR,
                format!("{max_connections} is outside 1..={MAX_MAX_CONNECTIONS}"),
            ));
        }
        Ok(Self {
            header_timeout: secs(env, HEADER_TIMEOUT_VAR, d.header_timeout.as_secs(), 1, MAX_SECS)?,
            request_timeout: secs(env, REQUEST_TIMEOUT_VAR, d.request_timeout.as_secs(), 1, MAX_SECS)?,
            max_connections,
        })
    }
}
