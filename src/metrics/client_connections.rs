//! Open client connections by state: `waiting` (between requests: the socket and a task, no HTTP
//! buffers) and `serving` (hyper reads or answers a request). The accept loop moves each connection
//! between the two with [`ClientConnections::waiting`] and [`ClientConnections::serving`] (each a
//! [`Counted`] guard).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use super::Counted;

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct StateLabels {
    state: &'static str,
}

/// The two gauges of `tokenkeeper_http_connections`. Cheap to clone (shared).
#[derive(Clone)]
pub struct ClientConnections {
    waiting: Gauge,
    serving: Gauge,
}

impl ClientConnections {
    /// The gauges, as series of `family` (both from zero).
    pub(super) fn of(family: &Family<StateLabels, Gauge>) -> Self {
        let gauge = |state| family.get_or_create(&StateLabels { state }).clone();
        Self {
            waiting: gauge("waiting"),
            serving: gauge("serving"),
        }
    }

    /// Counts one connection as waiting until the guard drops.
    pub fn waiting(&self) -> Counted {
        Counted::enter(&self.waiting)
    }

    /// Counts one connection as served by hyper until the guard drops.
    pub fn serving(&self) -> Counted {
        Counted::enter(&self.serving)
    }
}
