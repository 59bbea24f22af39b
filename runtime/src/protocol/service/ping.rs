//! `Ping` (type 3): keep-alive, and a small command channel of string key/value pairs.
//!
//! Wire: `[3, key1, value1, key2, value2, …]`, every item a string. The vocabulary, as the
//! reference SDK's code uses it (the published spec is stale in places: it calls the shutdown
//! key `offline` and gives the status request an empty value):
//!
//! | items | direction | meaning |
//! |---|---|---|
//! | none | both | keep-alive |
//! | `#clientInHub`, n, `#client`, m | server → service | keep-alive with the server's client counts |
//! | `target`, instanceId | service → server | open an OnDemand connection to that instance |
//! | `status`, `1` | server → service | does the service have clients? (sent every 10 s) |
//! | `status`, `0`/`1`, `clientcount`, n, `servercount`, n, `capacity`, n | service → server | the answer, with optional metrics |
//! | `shutdown`, `fin:0`/`fin:1`/`fin:2` | server → service | going offline: drop, migrate, or keep the clients |
//! | `shutdown`, `finack` | service → server | the offline request was received |
//! | `offline`, instanceId | service → server | a service instance died; drop its clients |
//! | `servers`, `` | server → service | which servers are connected? |
//! | `servers`, `ticks:id1;id2` | service → server | the answer |
//! | `echo`, token | both | latency probe, echoed back unchanged |
//! | `d-m`, `1`/`0` | service → server | turn message tracing logs on or off |

const CLIENTS_IN_HUB: &str = "#clientInHub";
const CLIENTS_IN_CONNECTION: &str = "#client";
const TARGET: &str = "target";
const STATUS: &str = "status";
const CLIENT_COUNT: &str = "clientcount";
const SERVER_COUNT: &str = "servercount";
const CAPACITY: &str = "capacity";
const SHUTDOWN: &str = "shutdown";
const FIN_ACK: &str = "finack";
const OFFLINE: &str = "offline";
const SERVERS: &str = "servers";
const ECHO: &str = "echo";
const MESSAGE_LOGS: &str = "d-m";

/// A `Ping` message: its items after the type, a flat list of keys and values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ping {
    /// The items (a nil item reads as an empty string).
    pub messages: Vec<String>,
}

/// What a [`Ping`] says, judged by its first key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PingKind<'a> {
    /// A keep-alive: no items, or only the server's `#clientInHub`/`#client` counts.
    KeepAlive,
    /// Open an OnDemand server connection to this service instance.
    Target(&'a str),
    /// A status request (server to service, always active) or answer (service to server).
    Status(ServiceStatus),
    /// The server goes offline; what the service should do with its clients.
    Shutdown(ShutdownMode),
    /// The service received the shutdown ping.
    FinAck,
    /// This service instance died.
    Offline(&'a str),
    /// Which servers are connected?
    ServersRequest,
    /// The connected servers.
    Servers {
        /// When the list last changed, in .NET ticks.
        updated_ticks: i64,
        /// The server ids, separated by `;`.
        servers: &'a str,
    },
    /// A latency probe, to be echoed back unchanged.
    Echo(&'a str),
    /// Turn message tracing logs on (`true`) or off.
    MessageLogs(bool),
    /// Anything else.
    Unknown,
}

/// The `status` ping's values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ServiceStatus {
    /// Whether the service has clients (value `1`).
    pub active: bool,
    /// `clientcount`, when sent.
    pub client_count: Option<i32>,
    /// `servercount`, when sent.
    pub server_count: Option<i32>,
    /// `capacity`, when sent.
    pub capacity: Option<i32>,
}

/// What the service should do with a server's clients when it shuts down (`fin:N`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ShutdownMode {
    /// `fin:0`: drop them.
    DropClients,
    /// `fin:1`: move them to other servers.
    MigrateClients,
    /// `fin:2`: keep them connected until they close.
    WaitForClientsClose,
}

impl ShutdownMode {
    fn value(self) -> &'static str {
        match self {
            ShutdownMode::DropClients => "fin:0",
            ShutdownMode::MigrateClients => "fin:1",
            ShutdownMode::WaitForClientsClose => "fin:2",
        }
    }
}

fn pair(key: &str, value: impl Into<String>) -> Ping {
    Ping {
        messages: vec![key.to_owned(), value.into()],
    }
}

impl Ping {
    /// A ping with these items.
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(items: I) -> Self {
        Ping {
            messages: items.into_iter().map(Into::into).collect(),
        }
    }

    /// The bare keep-alive, `[3]`.
    pub fn keep_alive() -> Self {
        Ping::default()
    }

    /// The keep-alive an app server sends: its client count in the hub and on this server
    /// connection.
    pub fn keep_alive_with_counts(clients_in_hub: usize, clients_in_connection: usize) -> Self {
        Ping::new([
            CLIENTS_IN_HUB.to_owned(),
            clients_in_hub.to_string(),
            CLIENTS_IN_CONNECTION.to_owned(),
            clients_in_connection.to_string(),
        ])
    }

    /// `["target", instanceId]`.
    pub fn target(instance_id: impl Into<String>) -> Self {
        pair(TARGET, instance_id)
    }

    /// `["status", "0"/"1"]`: the server's status request is `status(true)`.
    pub fn status(active: bool) -> Self {
        pair(STATUS, if active { "1" } else { "0" })
    }

    /// The service's status answer, with the metrics that are set.
    pub fn service_status(status: ServiceStatus) -> Self {
        let mut ping = Ping::status(status.active);
        for (key, value) in [
            (CLIENT_COUNT, status.client_count),
            (SERVER_COUNT, status.server_count),
            (CAPACITY, status.capacity),
        ] {
            if let Some(value) = value {
                ping.messages.push(key.to_owned());
                ping.messages.push(value.to_string());
            }
        }
        ping
    }

    /// `["shutdown", "fin:N"]`.
    pub fn shutdown(mode: ShutdownMode) -> Self {
        pair(SHUTDOWN, mode.value())
    }

    /// `["shutdown", "finack"]`.
    pub fn fin_ack() -> Self {
        pair(SHUTDOWN, FIN_ACK)
    }

    /// `["offline", instanceId]`.
    pub fn offline(instance_id: impl Into<String>) -> Self {
        pair(OFFLINE, instance_id)
    }

    /// `["servers", ""]`.
    pub fn servers_request() -> Self {
        pair(SERVERS, "")
    }

    /// `["servers", "ticks:id1;id2"]`.
    pub fn servers<S: AsRef<str>>(updated_ticks: i64, server_ids: &[S]) -> Self {
        let ids: Vec<&str> = server_ids.iter().map(AsRef::as_ref).collect();
        pair(SERVERS, format!("{updated_ticks}:{}", ids.join(";")))
    }

    /// `["echo", token]`.
    pub fn echo(token: impl Into<String>) -> Self {
        pair(ECHO, token)
    }

    /// `["d-m", "1"/"0"]`.
    pub fn message_logs(enable: bool) -> Self {
        pair(MESSAGE_LOGS, if enable { "1" } else { "0" })
    }

    /// The value after the first `key` at a key position, as the reference SDK looks them up.
    pub fn value(&self, key: &str) -> Option<&str> {
        self.messages
            .chunks_exact(2)
            .find(|pair| pair[0] == key)
            .map(|pair| pair[1].as_str())
    }

    fn count(&self, key: &str) -> Option<i32> {
        self.value(key)?.parse().ok()
    }

    /// What the ping says.
    pub fn kind(&self) -> PingKind<'_> {
        let Some(key) = self.messages.first() else {
            return PingKind::KeepAlive;
        };
        let value = self.messages.get(1).map_or("", String::as_str);
        match key.as_str() {
            CLIENTS_IN_HUB | CLIENTS_IN_CONNECTION => PingKind::KeepAlive,
            TARGET => PingKind::Target(value),
            STATUS => PingKind::Status(ServiceStatus {
                active: value == "1",
                client_count: self.count(CLIENT_COUNT),
                server_count: self.count(SERVER_COUNT),
                capacity: self.count(CAPACITY),
            }),
            SHUTDOWN => match value {
                "fin:0" => PingKind::Shutdown(ShutdownMode::DropClients),
                "fin:1" => PingKind::Shutdown(ShutdownMode::MigrateClients),
                "fin:2" => PingKind::Shutdown(ShutdownMode::WaitForClientsClose),
                FIN_ACK => PingKind::FinAck,
                _ => PingKind::Unknown,
            },
            OFFLINE => PingKind::Offline(value),
            SERVERS if value.is_empty() => PingKind::ServersRequest,
            SERVERS => match value.split_once(':').map(|(ticks, servers)| (ticks.parse(), servers)) {
                Some((Ok(updated_ticks), servers)) => PingKind::Servers { updated_ticks, servers },
                _ => PingKind::Unknown,
            },
            ECHO => PingKind::Echo(value),
            MESSAGE_LOGS => PingKind::MessageLogs(value == "1"),
            _ => PingKind::Unknown,
        }
    }
}
