//! Service mode, the app server's side: the options and connection strings of the Azure
//! SignalR SDK. (The server connections, the negotiate redirect and the service lifetime
//! manager build on these.)

mod connection_string;
mod options;

pub use connection_string::{ConnectionString, ConnectionStringError, Url};
pub use options::{
    AccessTokenAlgorithm, ClaimsProvider, GracefulShutdown, GracefulShutdownMode, ServerStickyMode, ServiceOptions,
    ServiceOptionsError, TransportTypeDetector,
};
