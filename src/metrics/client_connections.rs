//! Open client connections by state: `waiting` (between requests: the socket and a task, no HTTP
//! buffers) and `serving` (hyper reads or answers a request). The accept loop moves each connection
//! between the two with [`ClientConnections::waiting`] and [`ClientConnections::serving`].

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

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

/// Counts one connection in a state until dropped.
pub struct InState(Gauge);

impl Drop for InState {
    fn drop(&mut self) {
        self.0.dec();
    }
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

    pub fn waiting(&self) -> InState {
        Self::enter(&self.waiting)
    }

    pub fn serving(&self) -> InState {
        Self::enter(&self.serving)
    }

    fn enter(gauge: &Gauge) -> InState {
        gauge.inc();
        InState(gauge.clone())
    }
}
