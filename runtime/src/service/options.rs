//! `ServiceOptions`: how an app server uses a SignalR service, with the Azure SDK's options,
//! defaults, validation texts and configuration keys.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::connection_string::{ConnectionString, ConnectionStringError};
use crate::connection::request::RequestInfo;
use crate::options::TransportType;

/// How strongly a client sticks to the app server that negotiated it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ServerStickyMode {
    /// Any app server may serve the client.
    #[default]
    Disabled,
    /// The negotiating server when it is reachable.
    Preferred,
    /// Always the negotiating server.
    Required,
}

/// What happens to clients when the app server shuts down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GracefulShutdownMode {
    /// Nothing: the service drops the clients when the server goes.
    #[default]
    Off,
    /// Stop taking new clients and wait for the current ones to leave.
    WaitForClientsClose,
    /// Move the current clients to other app servers.
    MigrateClients,
}

/// Graceful shutdown settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GracefulShutdown {
    /// The mode (default `Off`).
    pub mode: GracefulShutdownMode,
    /// How long to wait for clients (default 30 s).
    pub timeout: Duration,
}

impl Default for GracefulShutdown {
    fn default() -> Self {
        Self {
            mode: GracefulShutdownMode::Off,
            timeout: Duration::from_secs(30),
        }
    }
}

/// The algorithm that signs access tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AccessTokenAlgorithm {
    /// HMAC-SHA256 (default).
    #[default]
    HS256,
    /// HMAC-SHA512.
    HS512,
}

/// Claims for a client's access token, from the negotiate request (replaces the request's
/// own claims when set).
pub type ClaimsProvider = Arc<dyn Fn(&RequestInfo) -> Vec<(String, String)> + Send + Sync>;

/// This app server's name at the service, asked for once when the app is built (see
/// [`ServiceOptions::server_name_provider`]).
pub type ServerNameProvider = Arc<dyn Fn() -> String + Send + Sync>;

/// Called with each event the service reports about this app server's objects (as the Azure
/// SDK's `IServiceEventHandler`; without one, events are logged).
pub type ServiceEventHandler = Arc<dyn Fn(&crate::service::ServiceEvent) + Send + Sync>;

/// The transports a client may use, from the negotiate request.
pub type TransportTypeDetector = Arc<dyn Fn(&RequestInfo) -> Vec<TransportType> + Send + Sync>;

/// Options of service mode, as in the Azure SignalR SDK for ASP.NET Core.
///
/// | option | default |
/// |---|---|
/// | `connection_string` | none (required) |
/// | `initial_hub_server_connection_count` | 5 |
/// | `max_hub_server_connection_count` | none (≥ initial) |
/// | `application_name` | none (`^[a-zA-Z][a-zA-Z0-9_]*$`) |
/// | `claims_provider` | none |
/// | `access_token_lifetime` | 1 h |
/// | `access_token_algorithm` | HS256 |
/// | `server_sticky_mode` | Disabled |
/// | `graceful_shutdown` | Off, 30 s |
/// | `service_scale_timeout` | 5 min |
/// | `max_poll_interval_in_seconds` | none ([1, 300]) |
/// | `transport_type_detector` | none |
/// | `allow_stateful_reconnects` | false |
/// | `server_name` / `server_name_provider` | none: `{hostname}_{random}` |
/// | `max_server_connection_queued_bytes` | 8 MiB per server connection |
#[derive(Clone)]
pub struct ServiceOptions {
    /// The service's connection string.
    pub connection_string: Option<String>,
    /// Server connections opened per hub at start.
    pub initial_hub_server_connection_count: i64,
    /// The most server connections per hub, the service's requests for more included.
    pub max_hub_server_connection_count: Option<i64>,
    /// Prefixes hub names (`{app}_{hub}`) so apps can share a service.
    pub application_name: Option<String>,
    /// Claims for client tokens.
    pub claims_provider: Option<ClaimsProvider>,
    /// Lifetime of client and server tokens.
    pub access_token_lifetime: Duration,
    /// Token signature algorithm.
    pub access_token_algorithm: AccessTokenAlgorithm,
    /// Stickiness of clients to their negotiating server.
    pub server_sticky_mode: ServerStickyMode,
    /// Shutdown behaviour.
    pub graceful_shutdown: GracefulShutdown,
    /// How long scaling the service may take.
    pub service_scale_timeout: Duration,
    /// Long polling idle limit the service applies, in seconds.
    pub max_poll_interval_in_seconds: Option<i64>,
    /// The transports each client may use.
    pub transport_type_detector: Option<TransportTypeDetector>,
    /// Let clients of every hub reconnect statefully through the service (a hub whose own
    /// [`HubOptions::allow_stateful_reconnects`](crate::HubOptions::allow_stateful_reconnects)
    /// is set allows it regardless). The service offers it in negotiate, keeps the client
    /// across dropped WebSockets and reports each new one; this app server numbers, buffers
    /// and replays the messages, as it does self-hosted.
    pub allow_stateful_reconnects: bool,
    /// This app server's name: the `nameid` of its server connections' tokens, their
    /// `X-ASRS-Server-Id` header, and the `asrs.s.sn` claim of its clients' tokens when
    /// [`server_sticky_mode`](Self::server_sticky_mode) is on. The service routes sticky
    /// clients by it and names the servers of a migration with it, so each app server
    /// needs its own. Default: `{hostname}_{random}`, made once per app.
    pub server_name: Option<String>,
    /// Makes the server name when [`server_name`](Self::server_name) is not set (as the
    /// Azure SDK's `IServerNameProvider`).
    pub server_name_provider: Option<ServerNameProvider>,
    /// Receives the service's events (`ServiceEvent` messages).
    pub service_event_handler: Option<ServiceEventHandler>,
    /// Endpoints besides [`connection_string`](Self::connection_string) (which is an unnamed
    /// primary one), as `Azure:SignalR:ConnectionString:{Name}:{Type}` configures them.
    /// Entries for the same service address are one endpoint; at least one must be primary.
    /// Every endpoint gets server connections: strong ones to primary endpoints (which
    /// carry clients), weak ones to secondary endpoints (which only receive what the app
    /// sends). Endpoints are added and removed while the app runs with
    /// [`AppHandle::add_endpoint`](crate::AppHandle::add_endpoint) and
    /// [`AppHandle::remove_endpoint`](crate::AppHandle::remove_endpoint).
    pub endpoints: Vec<super::ServiceEndpoint>,
    /// Chooses the endpoint each negotiating client goes to and the endpoints each message
    /// goes to (as the Azure SDK's `IEndpointRouter`). Default: [`DefaultEndpointRouter`](super::DefaultEndpointRouter).
    pub endpoint_router: Option<Arc<dyn super::EndpointRouter>>,
    /// The bytes of records one server connection queues for the service before the hub's
    /// sends wait for it (one larger record waits for the queue to empty, then goes alone).
    /// Default: 8 MiB.
    pub max_server_connection_queued_bytes: usize,
}

impl fmt::Debug for ServiceOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceOptions")
            .field(
                "connection_string",
                &self.connection_string.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "initial_hub_server_connection_count",
                &self.initial_hub_server_connection_count,
            )
            .field("max_hub_server_connection_count", &self.max_hub_server_connection_count)
            .field("application_name", &self.application_name)
            .field("access_token_lifetime", &self.access_token_lifetime)
            .field("access_token_algorithm", &self.access_token_algorithm)
            .field("server_sticky_mode", &self.server_sticky_mode)
            .field("graceful_shutdown", &self.graceful_shutdown)
            .field("service_scale_timeout", &self.service_scale_timeout)
            .field("max_poll_interval_in_seconds", &self.max_poll_interval_in_seconds)
            .field("allow_stateful_reconnects", &self.allow_stateful_reconnects)
            .field("server_name", &self.server_name)
            .field("endpoints", &self.endpoints)
            .field("endpoint_router", &self.endpoint_router.as_ref().map(|_| "<custom>"))
            .field(
                "max_server_connection_queued_bytes",
                &self.max_server_connection_queued_bytes,
            )
            .finish_non_exhaustive()
    }
}

impl Default for ServiceOptions {
    fn default() -> Self {
        Self {
            connection_string: None,
            initial_hub_server_connection_count: 5,
            max_hub_server_connection_count: None,
            application_name: None,
            claims_provider: None,
            access_token_lifetime: Duration::from_secs(3600),
            access_token_algorithm: AccessTokenAlgorithm::HS256,
            server_sticky_mode: ServerStickyMode::Disabled,
            graceful_shutdown: GracefulShutdown::default(),
            service_scale_timeout: Duration::from_secs(300),
            max_poll_interval_in_seconds: None,
            transport_type_detector: None,
            allow_stateful_reconnects: false,
            server_name: None,
            server_name_provider: None,
            service_event_handler: None,
            endpoints: Vec::new(),
            max_server_connection_queued_bytes: crate::protocol::service::link::QUEUE_BYTES,
            endpoint_router: None,
        }
    }
}

/// An app server's default name: `{hostname}_{random}` (the host name as `/etc/hostname`
/// gives it, or `server`), different each time it is called.
pub fn default_server_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty() && h.len() <= 64 && h.bytes().all(|b| b.is_ascii_graphic()))
        .unwrap_or_else(|| "server".into());
    format!("{host}_{}", crate::transport::new_id())
}

/// Whether `name` can be a server name: 1 to 128 visible ASCII characters (it travels in an
/// HTTP header and in token claims).
pub(crate) fn is_server_name(name: &str) -> bool {
    (1..=128).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_graphic())
}

/// Why service options were refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceOptionsError {
    /// No connection string anywhere.
    NoEndpoint,
    /// Endpoints, but none of them primary.
    NoPrimaryEndpoint,
    /// The connection string is malformed.
    ConnectionString(ConnectionStringError),
    /// An option is out of its range.
    Invalid {
        /// The option's .NET name.
        property: &'static str,
        /// What it should be.
        scope: String,
    },
}

impl fmt::Display for ServiceOptionsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceOptionsError::NoEndpoint => f.write_str("No connection string was specified."),
            ServiceOptionsError::NoPrimaryEndpoint => f.write_str("No primary endpoint defined."),
            ServiceOptionsError::ConnectionString(error) => error.fmt(f),
            ServiceOptionsError::Invalid { property, scope } => {
                write!(f, "Property '{property}' value should be {scope}.")
            }
        }
    }
}

impl std::error::Error for ServiceOptionsError {}

fn is_app_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic()) && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The value of configuration key `key` (sections separated by `:`) among environment
/// variables, whose names separate sections by `__` or `:` and match ignoring case.
pub(crate) fn config_lookup(vars: &[(String, String)], key: &str) -> Option<String> {
    let wanted = key.to_ascii_lowercase();
    vars.iter()
        .find(|(name, _)| name.to_ascii_lowercase().replace("__", ":") == wanted)
        .map(|(_, value)| value.clone())
}

/// The named endpoints among environment variables (`__` or `:` between sections, names
/// matching ignoring case), sorted by key; the unnamed ones are `connection_string`.
pub(crate) fn named_endpoints(vars: &[(String, String)]) -> Vec<super::ServiceEndpoint> {
    let mut found: Vec<(String, super::ServiceEndpoint)> = vars
        .iter()
        .filter(|(_, value)| !value.trim().is_empty())
        .filter_map(|(name, value)| {
            let key = name.replace("__", ":");
            let endpoint = super::ServiceEndpoint::from_config_key(&key, value)?;
            (!endpoint.name().is_empty()).then_some((key, endpoint))
        })
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found.into_iter().map(|(_, endpoint)| endpoint).collect()
}

impl ServiceOptions {
    /// Checks the options and resolves the endpoints: [`connection_string`](Self::connection_string)
    /// (an unnamed primary one) and [`endpoints`](Self::endpoints), one per service address,
    /// each with its parsed connection string.
    pub fn validate(&self) -> Result<Vec<(super::ServiceEndpoint, ConnectionString)>, ServiceOptionsError> {
        if let Some(poll) = self.max_poll_interval_in_seconds
            && !(1..=300).contains(&poll)
        {
            return Err(ServiceOptionsError::Invalid {
                property: "MaxPollIntervalInSeconds",
                scope: "[1,300]".into(),
            });
        }
        if self.initial_hub_server_connection_count < 0 {
            return Err(ServiceOptionsError::Invalid {
                property: "InitialHubServerConnectionCount",
                scope: "> 0".into(),
            });
        }
        if let Some(max) = self.max_hub_server_connection_count
            && max < self.initial_hub_server_connection_count
        {
            return Err(ServiceOptionsError::Invalid {
                property: "MaxHubServerConnectionCount",
                scope: format!(">= {}", self.initial_hub_server_connection_count),
            });
        }
        if let Some(name) = self.application_name.as_deref().filter(|n| !n.is_empty())
            && !is_app_name(name)
        {
            return Err(ServiceOptionsError::Invalid {
                property: "ApplicationName",
                scope: "prefixed with alphabetic characters and only contain alpha-numeric characters or underscore"
                    .into(),
            });
        }
        if let Some(name) = &self.server_name
            && !is_server_name(name)
        {
            return Err(ServiceOptionsError::Invalid {
                property: "ServerName",
                scope: "1 to 128 visible ASCII characters".into(),
            });
        }
        let mut endpoints: Vec<super::ServiceEndpoint> = self
            .connection_string
            .iter()
            .map(|text| super::ServiceEndpoint::new(text.clone(), super::EndpointType::Primary, ""))
            .collect();
        endpoints.extend(self.endpoints.iter().cloned());
        super::endpoint::resolve(&endpoints)
    }

    /// The prefixed, lower-cased hub name the service knows a hub by.
    pub fn service_hub_name(&self, hub: &str) -> String {
        match self.application_name.as_deref().filter(|n| !n.is_empty()) {
            Some(app) => format!("{}_{}", app.to_lowercase(), hub.to_lowercase()),
            None => hub.to_lowercase(),
        }
    }

    /// Reads the options from environment variables (`Azure__SignalR__ConnectionString`,
    /// `Azure__SignalR__InitialHubServerConnectionCount`, …; `:` works in place of `__`, and
    /// names match ignoring case, as .NET configuration does).
    /// Named endpoints come from `Azure__SignalR__ConnectionString__{Name}[__{Type}]` (and the
    /// `ConnectionStrings__` form).
    pub fn from_env() -> ServiceOptions {
        let vars: Vec<(String, String)> = std::env::vars_os()
            .filter_map(|(key, value)| Some((key.into_string().ok()?, value.into_string().ok()?)))
            .collect();
        Self::from_entries(&vars)
    }

    /// Reads the options, named endpoints included, from configuration entries: keys with
    /// sections separated by `:` or `__`, matched ignoring case (as [`from_env`](Self::from_env)
    /// reads the environment). An app that re-reads its configuration passes the result to
    /// [`AppHandle::set_endpoints`](crate::AppHandle::set_endpoints).
    pub fn from_entries(entries: &[(String, String)]) -> ServiceOptions {
        let mut options = Self::from_config(|key| config_lookup(entries, key));
        options.endpoints = named_endpoints(entries);
        options
    }

    /// Reads the options from configuration keys as the Azure SDK binds them (section
    /// `Azure:SignalR`): `ConnectionString` (or `ConnectionStrings:Azure:SignalR:ConnectionString`),
    /// `ApplicationName`, `ServerStickyMode`, `InitialHubServerConnectionCount`,
    /// `MaxHubServerConnectionCount`, `AccessTokenAlgorithm`, `AccessTokenLifetimeInSeconds`,
    /// `ServiceScaleTimeoutInSeconds`, `MaxPollIntervalInSeconds`, `GracefulShutdown:Mode`,
    /// `GracefulShutdown:TimeoutInSeconds`, `AllowStatefulReconnects`. Enums ignore case;
    /// values that do not parse keep the default.
    pub fn from_config(lookup: impl Fn(&str) -> Option<String>) -> ServiceOptions {
        let get = |key: &str| {
            lookup(&format!("Azure:SignalR:{key}"))
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let number = |key: &str| get(key).and_then(|v| v.parse::<i64>().ok());
        let seconds = |key: &str| number(key).filter(|s| *s >= 0).map(|s| Duration::from_secs(s as u64));
        let mut options = ServiceOptions {
            connection_string: get("ConnectionString")
                .or_else(|| lookup("ConnectionStrings:Azure:SignalR:ConnectionString")),
            application_name: get("ApplicationName"),
            ..ServiceOptions::default()
        };
        if let Some(count) = number("InitialHubServerConnectionCount") {
            options.initial_hub_server_connection_count = count;
        }
        options.max_hub_server_connection_count = number("MaxHubServerConnectionCount");
        options.max_poll_interval_in_seconds = number("MaxPollIntervalInSeconds");
        if let Some(lifetime) = seconds("AccessTokenLifetimeInSeconds") {
            options.access_token_lifetime = lifetime;
        }
        if let Some(timeout) = seconds("ServiceScaleTimeoutInSeconds") {
            options.service_scale_timeout = timeout;
        }
        if let Some(timeout) = seconds("GracefulShutdown:TimeoutInSeconds") {
            options.graceful_shutdown.timeout = timeout;
        }
        match get("ServerStickyMode").map(|v| v.to_ascii_lowercase()).as_deref() {
            Some("preferred") => options.server_sticky_mode = ServerStickyMode::Preferred,
            Some("required") => options.server_sticky_mode = ServerStickyMode::Required,
            _ => {}
        }
        if get("AccessTokenAlgorithm").is_some_and(|v| v.eq_ignore_ascii_case("hs512")) {
            options.access_token_algorithm = AccessTokenAlgorithm::HS512;
        }
        match get("GracefulShutdown:Mode").map(|v| v.to_ascii_lowercase()).as_deref() {
            Some("waitforclientsclose") => options.graceful_shutdown.mode = GracefulShutdownMode::WaitForClientsClose,
            Some("migrateclients") => options.graceful_shutdown.mode = GracefulShutdownMode::MigrateClients,
            _ => {}
        }
        if let Some(allow) = get("AllowStatefulReconnects").and_then(|v| v.to_ascii_lowercase().parse::<bool>().ok()) {
            options.allow_stateful_reconnects = allow;
        }
        options
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn environment_names_match_ignoring_case_with_either_separator() {
        let vars = vec![
            ("AZURE__SIGNALR__SERVERSTICKYMODE".to_owned(), "Required".to_owned()),
            (
                "azure__signalr__gracefulshutdown__mode".to_owned(),
                "MigrateClients".to_owned(),
            ),
            (
                "Azure:SignalR:GracefulShutdown:TimeoutInSeconds".to_owned(),
                "10".to_owned(),
            ),
            ("Azure__SignalR__Other".to_owned(), "x".to_owned()),
        ];
        let options = ServiceOptions::from_config(|key| config_lookup(&vars, key));
        assert_eq!(options.server_sticky_mode, ServerStickyMode::Required);
        assert_eq!(options.graceful_shutdown.mode, GracefulShutdownMode::MigrateClients);
        assert_eq!(options.graceful_shutdown.timeout, Duration::from_secs(10));
        assert_eq!(config_lookup(&vars, "Azure:SignalR:Missing"), None);
    }

    #[test]
    fn named_endpoints_from_the_environment_and_their_errors() {
        let a = "Endpoint=http://a.local;AccessKey=abc;Version=1.0;";
        let b = "Endpoint=http://b.local;AccessKey=abc;Version=1.0;";
        let vars = vec![
            (
                "Azure__SignalR__ConnectionString__east__primary".to_owned(),
                a.to_owned(),
            ),
            (
                "AZURE__SIGNALR__CONNECTIONSTRING__west__Secondary".to_owned(),
                b.to_owned(),
            ),
            ("Azure__SignalR__ConnectionString".to_owned(), a.to_owned()),
            ("Azure__SignalR__ConnectionString__empty".to_owned(), " ".to_owned()),
        ];
        let endpoints = named_endpoints(&vars);
        let names: Vec<(&str, super::super::EndpointType)> =
            endpoints.iter().map(|e| (e.name(), e.endpoint_type())).collect();
        assert_eq!(
            names,
            [
                ("west", super::super::EndpointType::Secondary),
                ("east", super::super::EndpointType::Primary)
            ]
        );
        let options = ServiceOptions {
            connection_string: Some(a.into()),
            endpoints,
            ..ServiceOptions::default()
        };
        // The unnamed one and east name one address: two endpoints, the primary entry kept.
        let kept = |options: &ServiceOptions| -> Vec<(String, super::super::EndpointType)> {
            let resolved = options.validate().unwrap();
            resolved
                .iter()
                .map(|(e, _)| (e.name().to_owned(), e.endpoint_type()))
                .collect()
        };
        let pairs = |list: &[(&str, super::super::EndpointType)]| -> Vec<(String, super::super::EndpointType)> {
            list.iter().map(|(name, kind)| ((*name).to_owned(), *kind)).collect()
        };
        assert_eq!(
            kept(&options),
            pairs(&[
                ("", super::super::EndpointType::Primary),
                ("west", super::super::EndpointType::Secondary)
            ])
        );
        // As the Azure SDK: a type it does not know is part of the name (a primary endpoint
        // named `north:tertiary`), and two endpoints may share a name; neither is an error.
        let c = "Endpoint=http://c.local;AccessKey=abc;Version=1.0;";
        let vars = vec![
            (
                "Azure__SignalR__ConnectionString__north__tertiary".to_owned(),
                b.to_owned(),
            ),
            (
                "Azure__SignalR__ConnectionString__dup__primary".to_owned(),
                a.to_owned(),
            ),
            (
                "Azure__SignalR__ConnectionString__dup__secondary".to_owned(),
                c.to_owned(),
            ),
        ];
        let options = ServiceOptions {
            endpoints: named_endpoints(&vars),
            ..ServiceOptions::default()
        };
        assert_eq!(
            kept(&options),
            pairs(&[
                ("dup", super::super::EndpointType::Primary),
                ("dup", super::super::EndpointType::Secondary),
                ("north:tertiary", super::super::EndpointType::Primary)
            ])
        );
        let none = ServiceOptions::default();
        assert_eq!(
            none.validate().unwrap_err().to_string(),
            "No connection string was specified."
        );
        let only_secondary = ServiceOptions {
            endpoints: vec![super::super::ServiceEndpoint::new(
                b,
                super::super::EndpointType::Secondary,
                "west",
            )],
            ..ServiceOptions::default()
        };
        assert_eq!(
            only_secondary.validate().unwrap_err().to_string(),
            "No primary endpoint defined."
        );
        // The same address twice is one endpoint.
        let same = ServiceOptions {
            connection_string: Some(a.into()),
            endpoints: vec![super::super::ServiceEndpoint::new(
                a,
                super::super::EndpointType::Primary,
                "east",
            )],
            ..ServiceOptions::default()
        };
        assert!(same.validate().is_ok());
    }

    #[test]
    fn server_names_are_visible_ascii() {
        let with = |name: &str| ServiceOptions {
            connection_string: Some("Endpoint=http://localhost;AccessKey=abc;Version=1.0;".into()),
            server_name: Some(name.into()),
            ..ServiceOptions::default()
        };
        assert!(with("host-1_abc").validate().is_ok());
        for bad in ["", "two words", "tab\t", "é", &"x".repeat(129)] {
            assert_eq!(
                with(bad).validate().unwrap_err().to_string(),
                "Property 'ServerName' value should be 1 to 128 visible ASCII characters.",
                "{bad:?}"
            );
        }
    }

    const CS: &str = "Endpoint=http://localhost;Port=8080;AccessKey=abcdefghijklmnopqrstuvwxyz0123456789;Version=1.0;";

    fn with(f: impl FnOnce(&mut ServiceOptions)) -> Result<ConnectionString, String> {
        let mut options = ServiceOptions {
            connection_string: Some(CS.into()),
            ..ServiceOptions::default()
        };
        f(&mut options);
        options
            .validate()
            .map(|mut endpoints| endpoints.remove(0).1)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn service_options_defaults_match_azure() {
        let options = ServiceOptions::default();
        assert_eq!(options.initial_hub_server_connection_count, 5);
        assert_eq!(options.max_hub_server_connection_count, None);
        assert_eq!(options.access_token_lifetime, Duration::from_secs(3600));
        assert_eq!(options.access_token_algorithm, AccessTokenAlgorithm::HS256);
        assert_eq!(options.server_sticky_mode, ServerStickyMode::Disabled);
        assert_eq!(
            options.graceful_shutdown,
            GracefulShutdown {
                mode: GracefulShutdownMode::Off,
                timeout: Duration::from_secs(30)
            }
        );
        assert_eq!(options.service_scale_timeout, Duration::from_secs(300));
        assert!(!options.allow_stateful_reconnects);
        assert!(with(|_| {}).is_ok());
    }

    #[test]
    fn service_options_error_texts() {
        assert_eq!(
            with(|o| o.connection_string = None).unwrap_err(),
            "No connection string was specified."
        );
        assert_eq!(
            with(|o| o.max_poll_interval_in_seconds = Some(0)).unwrap_err(),
            "Property 'MaxPollIntervalInSeconds' value should be [1,300]."
        );
        assert_eq!(
            with(|o| o.max_poll_interval_in_seconds = Some(301)).unwrap_err(),
            "Property 'MaxPollIntervalInSeconds' value should be [1,300]."
        );
        assert!(with(|o| o.max_poll_interval_in_seconds = Some(300)).is_ok());
        assert_eq!(
            with(|o| o.initial_hub_server_connection_count = -1).unwrap_err(),
            "Property 'InitialHubServerConnectionCount' value should be > 0."
        );
        assert!(
            with(|o| o.initial_hub_server_connection_count = 0).is_ok(),
            "0 means negotiate only"
        );
        assert_eq!(
            with(|o| o.max_hub_server_connection_count = Some(4)).unwrap_err(),
            "Property 'MaxHubServerConnectionCount' value should be >= 5."
        );
        for bad in ["1app", "app-name", "app name", "_app"] {
            assert_eq!(
                with(|o| o.application_name = Some(bad.into())).unwrap_err(),
                "Property 'ApplicationName' value should be prefixed with alphabetic characters and only contain alpha-numeric characters or underscore."
            );
        }
        assert!(with(|o| o.application_name = Some("App_1".into())).is_ok());
        assert_eq!(
            with(|o| o.connection_string = Some("Endpoint=http://a".into())).unwrap_err(),
            "Connection string missing required properties endpoint."
        );
    }

    #[test]
    fn service_options_bind_from_configuration_keys() {
        let config: HashMap<&str, &str> = [
            ("Azure:SignalR:ConnectionString", CS),
            ("Azure:SignalR:ApplicationName", "Shop"),
            ("Azure:SignalR:ServerStickyMode", "required"),
            ("Azure:SignalR:InitialHubServerConnectionCount", "2"),
            ("Azure:SignalR:MaxHubServerConnectionCount", "4"),
            ("Azure:SignalR:AccessTokenAlgorithm", "HS512"),
            ("Azure:SignalR:AccessTokenLifetimeInSeconds", "60"),
            ("Azure:SignalR:MaxPollIntervalInSeconds", "20"),
            ("Azure:SignalR:GracefulShutdown:Mode", "MigrateClients"),
            ("Azure:SignalR:GracefulShutdown:TimeoutInSeconds", "10"),
            ("Azure:SignalR:AllowStatefulReconnects", "true"),
        ]
        .into_iter()
        .collect();
        let options = ServiceOptions::from_config(|key| config.get(key).map(|v| v.to_string()));
        assert_eq!(options.application_name.as_deref(), Some("Shop"));
        assert_eq!(options.server_sticky_mode, ServerStickyMode::Required);
        assert_eq!(
            (
                options.initial_hub_server_connection_count,
                options.max_hub_server_connection_count
            ),
            (2, Some(4))
        );
        assert_eq!(options.access_token_algorithm, AccessTokenAlgorithm::HS512);
        assert_eq!(options.access_token_lifetime, Duration::from_secs(60));
        assert_eq!(options.max_poll_interval_in_seconds, Some(20));
        assert_eq!(
            options.graceful_shutdown,
            GracefulShutdown {
                mode: GracefulShutdownMode::MigrateClients,
                timeout: Duration::from_secs(10)
            }
        );
        assert!(options.allow_stateful_reconnects);
        assert_eq!(options.service_hub_name("ChatHub"), "shop_chathub");
        assert!(options.validate().is_ok());
        // Unparsable values keep the defaults; the fallback connection string key works.
        let options = ServiceOptions::from_config(|key| match key {
            "ConnectionStrings:Azure:SignalR:ConnectionString" => Some(CS.into()),
            "Azure:SignalR:ServerStickyMode" => Some("sometimes".into()),
            "Azure:SignalR:InitialHubServerConnectionCount" => Some("many".into()),
            _ => None,
        });
        assert_eq!(options.server_sticky_mode, ServerStickyMode::Disabled);
        assert_eq!(options.initial_hub_server_connection_count, 5);
        assert_eq!(options.connection_string.as_deref(), Some(CS));
        assert!(!format!("{options:?}").contains("abcdefghij"), "no key in Debug output");
    }
}
