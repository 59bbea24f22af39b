//! What the service reports about itself: fatal errors and events.

/// `ServiceError` (type 15): the service rejects the server connection. The reference SDK
/// stops writing on it (and keeps reading).
///
/// Wire: `[15, errorMessage]` (no extension map).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceError {
    /// What went wrong.
    pub error_message: Option<String>,
}

/// `ServiceEvent` (type 22): something happened to an object the server sent messages about.
///
/// Wire: `[22, objectType, id, kind, message, {ext}]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceEvent {
    /// What kind of object the event is about.
    pub object_type: ServiceEventObjectType,
    /// The object's id (connection id, user id, group name, …).
    pub id: Option<String>,
    /// What happened.
    pub kind: ServiceEventKind,
    /// A description.
    pub message: Option<String>,
}

/// The object a [`ServiceEvent`] is about.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum ServiceEventObjectType {
    /// The service instance (0).
    #[default]
    ServiceInstance,
    /// A client connection (1).
    Connection,
    /// A user (2).
    User,
    /// A group (3).
    Group,
    /// A server connection (4).
    ServerConnection,
    /// A value this implementation does not know, kept as it is.
    Other(i32),
}

impl ServiceEventObjectType {
    /// The number on the wire.
    pub fn code(self) -> i32 {
        match self {
            ServiceEventObjectType::ServiceInstance => 0,
            ServiceEventObjectType::Connection => 1,
            ServiceEventObjectType::User => 2,
            ServiceEventObjectType::Group => 3,
            ServiceEventObjectType::ServerConnection => 4,
            ServiceEventObjectType::Other(code) => code,
        }
    }

    /// The object type for a number on the wire.
    pub fn from_code(code: i32) -> Self {
        match code {
            0 => ServiceEventObjectType::ServiceInstance,
            1 => ServiceEventObjectType::Connection,
            2 => ServiceEventObjectType::User,
            3 => ServiceEventObjectType::Group,
            4 => ServiceEventObjectType::ServerConnection,
            code => ServiceEventObjectType::Other(code),
        }
    }
}

/// What a [`ServiceEvent`] reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum ServiceEventKind {
    /// The service is about to reload (0).
    #[default]
    Reloading,
    /// The id is not valid (1).
    Invalid,
    /// The object does not exist, for example an empty group (2).
    NotExisted,
    /// The server sends faster than the service can forward; it is being back-pressured (3).
    BufferFull,
    /// A value this implementation does not know, kept as it is.
    Other(i32),
}

impl ServiceEventKind {
    /// The number on the wire.
    pub fn code(self) -> i32 {
        match self {
            ServiceEventKind::Reloading => 0,
            ServiceEventKind::Invalid => 1,
            ServiceEventKind::NotExisted => 2,
            ServiceEventKind::BufferFull => 3,
            ServiceEventKind::Other(code) => code,
        }
    }

    /// The kind for a number on the wire.
    pub fn from_code(code: i32) -> Self {
        match code {
            0 => ServiceEventKind::Reloading,
            1 => ServiceEventKind::Invalid,
            2 => ServiceEventKind::NotExisted,
            3 => ServiceEventKind::BufferFull,
            code => ServiceEventKind::Other(code),
        }
    }
}
