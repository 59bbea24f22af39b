//! The state both faces share: every hub ([`hubs`]), one hub's server connections, clients
//! and memberships ([`hub`]), one app-server connection as the hubs see it
//! ([`server_link`]), a client's pending move to another app server ([`mover`]), and
//! [`Shared`], what every connection of a relay holds.
//!
//! Neither face is imported here: the client face (`client_face`) and the server face
//! (`server_face`) meet only through this state.

pub(crate) mod hub;
pub(crate) mod hubs;
pub(crate) mod mover;
pub(crate) mod server_link;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::auth::Keys;
use crate::cluster::Cluster;
use crate::config::Config;
use crate::metrics::Metrics;
use hub::Selection;
use hubs::Hubs;

/// What every connection of a relay shares.
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) keys: Arc<Keys>,
    pub(crate) hubs: Hubs,
    pub(crate) shutdown: CancellationToken,
    /// This relay's name in `ServiceMapping` messages, `target` and `offline` pings and the
    /// `Asrs-Instance-Id` header (in a cluster, its node id).
    pub(crate) instance_id: String,
    /// The cluster this relay is a node of (`--redis`).
    pub(crate) cluster: Option<Arc<Cluster>>,
    /// The limits on clients, and their counts.
    pub(crate) admission: Arc<crate::limits::Admission>,
}

impl Shared {
    pub(crate) fn metrics(&self) -> &Arc<Metrics> {
        self.hubs.metrics()
    }

    /// Stops everything: the listener, every server connection, every client.
    pub(crate) fn stop(&self) {
        self.shutdown.cancel();
        for hub in self.hubs.all() {
            hub.close(Selection::All, &[]);
        }
    }
}
