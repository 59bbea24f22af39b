//! Messages about connections: the server connection's handshake and access keys, and the
//! client connections it carries (open, close, data, reconnect, flow control).

use bytes::Bytes;

/// `HandshakeRequest` (type 1), the first message an app server sends on a server connection.
///
/// Wire: `[1, version, connectionType, target, migrationLevel, {ext}, allowStatefulReconnects]`.
/// Older peers send only the first two to five items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeRequest {
    /// The service protocol version, [`SERVICE_PROTOCOL_VERSION`](super::SERVICE_PROTOCOL_VERSION).
    pub version: i32,
    /// 0 Default (carries clients), 1 OnDemand (opened at the service's request, may be
    /// refused), 2 Weak (sends messages, carries no clients).
    pub connection_type: i32,
    /// The service instance an OnDemand connection is for (the `target` ping's value). The
    /// writer sends an empty string for Default connections, as the reference SDK does.
    pub target: String,
    /// 0 Off, 1 ShutdownOnly (clients may move to another server on graceful shutdown),
    /// 2 Any.
    pub migration_level: i32,
    /// Whether the app server lets clients use stateful reconnect.
    pub allow_stateful_reconnects: bool,
}

impl HandshakeRequest {
    /// `connection_type` of a connection that carries clients.
    pub const DEFAULT_CONNECTION: i32 = 0;
    /// `connection_type` of a connection opened at the service's request (a `target` ping).
    pub const ON_DEMAND_CONNECTION: i32 = 1;
    /// `connection_type` of a connection that sends messages and carries no clients.
    pub const WEAK_CONNECTION: i32 = 2;
    /// `migration_level` when clients stay with the server that shuts down.
    pub const MIGRATION_OFF: i32 = 0;
    /// `migration_level` when clients may move to another server on a graceful shutdown.
    pub const MIGRATION_SHUTDOWN_ONLY: i32 = 1;

    /// A request for a Default connection of the current protocol version.
    pub fn new() -> Self {
        HandshakeRequest {
            version: super::SERVICE_PROTOCOL_VERSION,
            connection_type: HandshakeRequest::DEFAULT_CONNECTION,
            target: String::new(),
            migration_level: HandshakeRequest::MIGRATION_OFF,
            allow_stateful_reconnects: false,
        }
    }
}

impl Default for HandshakeRequest {
    fn default() -> Self {
        HandshakeRequest::new()
    }
}

/// `HandshakeResponse` (type 2), the service's answer to [`HandshakeRequest`].
///
/// Wire: `[2, errorMessage, {ext}, connectionId]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HandshakeResponse {
    /// Why the handshake failed; nil or empty means it succeeded. The reference SDK writes an
    /// empty string on success.
    pub error_message: Option<String>,
    /// The id the service gave this server connection.
    pub connection_id: Option<String>,
}

impl HandshakeResponse {
    /// Whether the handshake succeeded (no error message, or an empty one).
    pub fn is_success(&self) -> bool {
        self.error_message.as_deref().is_none_or(str::is_empty)
    }
}

/// `AccessKeyRequest` (type 28): the app server, signed in with Microsoft Entra ID, asks for
/// the key to sign client tokens with.
///
/// Wire: `[28, token, kid, {ext}]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessKeyRequest {
    /// The Entra ID access token.
    pub token: Option<String>,
    /// The id of the key the server holds, if any.
    pub kid: Option<String>,
}

/// `AccessKeyResponse` (type 29), the answer to [`AccessKeyRequest`].
///
/// Wire: `[29, kid, accessKey, errorType, errorMessage, {ext}]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessKeyResponse {
    /// The key id.
    pub kid: Option<String>,
    /// The access key.
    pub access_key: Option<String>,
    /// The name of the error type when the request failed.
    pub error_type: Option<String>,
    /// The error text when the request failed.
    pub error_message: Option<String>,
}

/// `OpenConnection` (type 4): a client connected to the service and is assigned to this
/// server connection.
///
/// Wire: `[4, connectionId, {claims}, {headers}, queryString, {ext: tracing id, protocol}]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenConnection {
    /// The client connection's id.
    pub connection_id: String,
    /// The client's claims, in order; a claim type may repeat.
    pub claims: Vec<(String, String)>,
    /// The client request's headers, each with its values (`Asrs-Migrate-From`,
    /// `Asrs-Instance-Id`, … included).
    pub headers: Vec<(String, Vec<String>)>,
    /// The client request's query string (`asrs.op`, `asrs_lang`, … and the client's own
    /// parameters).
    pub query_string: Option<String>,
    /// The tracing id (extension member 1).
    pub tracing_id: Option<u64>,
    /// The hub protocol the client chose, when the service knows it (extension member 3).
    pub protocol: Option<String>,
}

/// `CloseConnection` (type 5): either side closes one client connection.
///
/// Wire: `[5, connectionId, errorMessage, {headers}, {ext: tracing id}]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CloseConnection {
    /// The client connection's id.
    pub connection_id: String,
    /// Why it closed. The reference SDK writes an empty string when there is no error.
    pub error_message: Option<String>,
    /// Headers such as `Asrs-Migrate-To`.
    pub headers: Vec<(String, Vec<String>)>,
    /// The tracing id (extension member 1).
    pub tracing_id: Option<u64>,
}

/// The OpenConnection header of a client that moves here from another app server; its value
/// is that server's name.
pub const MIGRATE_FROM: &str = "Asrs-Migrate-From";

/// The CloseConnection header of a client that moves to another app server; its value is
/// that server's name.
pub const MIGRATE_TO: &str = "Asrs-Migrate-To";

/// The OpenConnection header naming the service instance that holds the client: when that
/// instance goes (an `["offline", instanceId]` ping), the app server drops its clients.
pub const INSTANCE_ID: &str = "Asrs-Instance-Id";

/// `ConnectionData` (type 6): bytes to or from one client connection.
///
/// Wire: `[6, connectionId, payload, {ext: tracing id, data type, is partial}]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectionData {
    /// The client connection's id.
    pub connection_id: String,
    /// The bytes, in the client's hub protocol (sliced from the record when read).
    pub payload: Bytes,
    /// The tracing id (extension member 1).
    pub tracing_id: Option<u64>,
    /// What the payload holds, for stateful reconnect (extension member 5).
    pub data_type: DataMessageType,
    /// Whether the payload is a part of a message that continues in the next ConnectionData
    /// (extension member 6).
    pub is_partial: bool,
}

/// What a [`ConnectionData`] payload holds (extension member 5).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum DataMessageType {
    /// Not said (0); never written.
    #[default]
    Unknown,
    /// A handshake request or response (1).
    Handshake,
    /// Any kind of invocation (2).
    Invocation,
    /// Anything else: ping, ack, sequence (3).
    Other,
    /// A close message (4).
    Close,
    /// A value this implementation does not know, kept as it is.
    Unrecognized(i32),
}

impl DataMessageType {
    /// The number on the wire.
    pub fn code(self) -> i32 {
        match self {
            DataMessageType::Unknown => 0,
            DataMessageType::Handshake => 1,
            DataMessageType::Invocation => 2,
            DataMessageType::Other => 3,
            DataMessageType::Close => 4,
            DataMessageType::Unrecognized(code) => code,
        }
    }

    /// The type for a number on the wire.
    pub fn from_code(code: i32) -> Self {
        match code {
            0 => DataMessageType::Unknown,
            1 => DataMessageType::Handshake,
            2 => DataMessageType::Invocation,
            3 => DataMessageType::Other,
            4 => DataMessageType::Close,
            code => DataMessageType::Unrecognized(code),
        }
    }
}

/// `ConnectionReconnect` (type 38): the service tells the server that a client reconnected
/// statefully.
///
/// Wire: `[38, connectionId, {ext}]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectionReconnect {
    /// The client connection's id.
    pub connection_id: String,
}

/// `ConnectionFlowControl` (type 39): the service pauses, resumes or moves the traffic of one
/// connection, for example while it migrates a client between servers.
///
/// Wire: `[39, connectionId, connectionType, operation, {ext}]`; both numbers are written as
/// fixed five-byte `Int32`s, and the reader rejects values outside the enumerations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionFlowControl {
    /// The connection's id.
    pub connection_id: String,
    /// Whether the id is a client or a server connection's.
    pub connection_type: FlowControlConnectionType,
    /// What to do.
    pub operation: FlowControlOperation,
}

/// The kind of connection a [`ConnectionFlowControl`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FlowControlConnectionType {
    /// A client connection (1).
    Client,
    /// A server connection (2).
    Server,
}

impl FlowControlConnectionType {
    /// The number on the wire.
    pub fn code(self) -> i32 {
        match self {
            FlowControlConnectionType::Client => 1,
            FlowControlConnectionType::Server => 2,
        }
    }

    /// The type for a number on the wire, if it is one.
    pub fn from_code(code: i32) -> Option<Self> {
        match code {
            1 => Some(FlowControlConnectionType::Client),
            2 => Some(FlowControlConnectionType::Server),
            _ => None,
        }
    }
}

/// The operation of a [`ConnectionFlowControl`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FlowControlOperation {
    /// Service to server: stop sending for this connection (1).
    Pause,
    /// Server to service: sending has stopped (2).
    PauseAck,
    /// Service to server: sending may go on (3).
    Resume,
    /// Service to server: send through other server connections (4).
    Offline,
}

impl FlowControlOperation {
    /// The number on the wire.
    pub fn code(self) -> i32 {
        match self {
            FlowControlOperation::Pause => 1,
            FlowControlOperation::PauseAck => 2,
            FlowControlOperation::Resume => 3,
            FlowControlOperation::Offline => 4,
        }
    }

    /// The operation for a number on the wire, if it is one.
    pub fn from_code(code: i32) -> Option<Self> {
        match code {
            1 => Some(FlowControlOperation::Pause),
            2 => Some(FlowControlOperation::PauseAck),
            3 => Some(FlowControlOperation::Resume),
            4 => Some(FlowControlOperation::Offline),
            _ => None,
        }
    }
}
