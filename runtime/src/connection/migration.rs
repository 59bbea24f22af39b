//! A connection that moved between app servers in service mode: the service moved its client
//! from one app server to another when the first shut down gracefully with
//! `GracefulShutdownMode::MigrateClients` (as the Azure SDK's `IConnectionMigrationFeature`).

use std::sync::Arc;

/// Where a connection moved from and to, by app server name. The old server's hub sees it in
/// `on_disconnected` (`from` is itself), the new server's in `on_connected` and after (`to`
/// is itself); the connection id stays the same.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    from: Arc<str>,
    to: Arc<str>,
}

impl Migration {
    /// A move from app server `from` to app server `to`.
    pub fn new(from: &str, to: &str) -> Self {
        Self {
            from: Arc::from(from),
            to: Arc::from(to),
        }
    }

    /// The app server the connection moved from.
    pub fn from(&self) -> &str {
        &self.from
    }

    /// The app server the connection moved (or is moving) to.
    pub fn to(&self) -> &str {
        &self.to
    }
}
