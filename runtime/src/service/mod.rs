//! Service mode, the app server's side, as the Azure SignalR SDK does it: the app keeps
//! server connections to a SignalR service (such as `switchboard-service`) per hub; the
//! service holds the clients and tunnels each to one server connection; negotiate sends
//! clients to the service with a token; sends become service messages the service fans out.
//! Hub code is the same as self-hosted; [`SwitchboardBuilder::with_service`](crate::SwitchboardBuilder::with_service)
//! switches.

mod connection_string;
mod endpoint;
pub(crate) mod hub;
pub(crate) mod hub_endpoints;
pub(crate) mod lifetime;
// The relay writes its server connections with the same writer (feature `relay`).
#[cfg(feature = "relay")]
pub mod link_writer;
#[cfg(not(feature = "relay"))]
pub(crate) mod link_writer;
pub(crate) mod negotiate;
mod options;
mod router;
pub(crate) use options::is_server_name;
pub(crate) mod server_connection;
mod tokens;
pub(crate) mod virtual_connection;

/// What the service reports in a `ServiceEvent` (see [`ServiceOptions::service_event_handler`]).
pub use crate::protocol::service::{ServiceEvent, ServiceEventKind, ServiceEventObjectType};
pub use connection_string::{ConnectionString, ConnectionStringError, Url};
pub use endpoint::{EndpointType, ServiceEndpoint};
pub use hub_endpoints::ScaleError;
pub use options::{
    AccessTokenAlgorithm, ClaimsProvider, GracefulShutdown, GracefulShutdownMode, ServerNameProvider, ServerStickyMode,
    ServiceEventHandler, ServiceOptions, ServiceOptionsError, TransportTypeDetector, default_server_name,
};
pub use router::{
    DefaultEndpointRouter, EndpointMetrics, EndpointRouter, EndpointStatus, default_negotiate_endpoint,
    online_endpoints,
};
