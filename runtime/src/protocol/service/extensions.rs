//! The extension map that most messages carry as one of their items: `{key: value}` with
//! integer keys, each member written only when it is set.
//!
//! | key | member | value |
//! |---|---|---|
//! | 1 | tracing id | `UInt64` |
//! | 2 | TTL (seconds, user-group membership) | `Int32` |
//! | 3 | hub protocol name | `String` |
//! | 4 | subscriber filter | `String` |
//! | 5 | data message type | `Int32` ([`DataMessageType`]) |
//! | 6 | is partial | `Boolean` |
//!
//! Each message type carries only some members; the writer writes the members of its type in
//! key order. Unknown keys are skipped when reading, as the reference reader does. A known key
//! on a type that does not carry it is skipped too (the reference reader would lose its place
//! in the record there; skipping is the only reading that keeps the rest of the record usable).

use super::connection::DataMessageType;
use super::fields::Reader;
use super::writer;
use crate::protocol::ProtocolError;

const TRACING_ID: i32 = 1;
const TTL: i32 = 2;
const PROTOCOL: i32 = 3;
const FILTER: i32 = 4;
const DATA_MESSAGE_TYPE: i32 = 5;
const IS_PARTIAL: i32 = 6;

/// The members a message type carries.
#[derive(Clone, Copy, Default)]
pub(super) struct Carries {
    pub(super) tracing_id: bool,
    pub(super) ttl: bool,
    pub(super) protocol: bool,
    pub(super) filter: bool,
    pub(super) data: bool,
}

impl Carries {
    /// Nothing (handshakes, acks, service events, …): the map is written empty.
    pub(super) const NONE: Carries = Carries {
        tracing_id: false,
        ttl: false,
        protocol: false,
        filter: false,
        data: false,
    };
    /// A tracing id only.
    pub(super) const TRACING: Carries = Carries {
        tracing_id: true,
        ..Carries::NONE
    };
    /// A tracing id and a TTL (user-group joins).
    pub(super) const TRACING_TTL: Carries = Carries {
        ttl: true,
        ..Carries::TRACING
    };
    /// A tracing id and a protocol name (OpenConnection, ClientCompletion).
    pub(super) const TRACING_PROTOCOL: Carries = Carries {
        protocol: true,
        ..Carries::TRACING
    };
    /// A tracing id and a subscriber filter (the multicast data messages).
    pub(super) const MULTICAST: Carries = Carries {
        filter: true,
        ..Carries::TRACING
    };
    /// A tracing id, a data message type and the partial flag (ConnectionData).
    pub(super) const CONNECTION_DATA: Carries = Carries {
        data: true,
        ..Carries::TRACING
    };
}

/// The members of one extension map, read or to be written.
#[derive(Default)]
pub(super) struct Extensions {
    pub(super) tracing_id: Option<u64>,
    pub(super) ttl: Option<i32>,
    pub(super) protocol: Option<String>,
    pub(super) filter: Option<String>,
    pub(super) data_type: DataMessageType,
    pub(super) is_partial: bool,
}

impl Extensions {
    /// Just a tracing id.
    pub(super) fn tracing(tracing_id: Option<u64>) -> Self {
        Extensions {
            tracing_id,
            ..Extensions::default()
        }
    }

    /// Reads an extension map, keeping the members `carries` names.
    pub(super) fn read(r: &mut Reader, carries: Carries) -> Result<Self, ProtocolError> {
        let mut ext = Extensions::default();
        let count = r.map_len("extensionMembers")?;
        for _ in 0..count {
            match r.i32("extensionMembers.key")? {
                TRACING_ID if carries.tracing_id => ext.tracing_id = Some(r.u64("tracingId")?),
                TTL if carries.ttl => ext.ttl = Some(r.i32("ttl")?),
                PROTOCOL if carries.protocol => ext.protocol = r.string_or_nil("protocol")?,
                FILTER if carries.filter => ext.filter = r.string_or_nil("filter")?,
                DATA_MESSAGE_TYPE if carries.data => ext.data_type = DataMessageType::from_code(r.i32("type")?),
                IS_PARTIAL if carries.data => ext.is_partial = r.bool("isPartial")?,
                _ => r.skip()?,
            }
        }
        Ok(ext)
    }

    /// Reads an extension map if the record has one more item, as optional trailing maps are.
    pub(super) fn read_optional(r: &mut Reader, present: bool, carries: Carries) -> Result<Self, ProtocolError> {
        if present {
            Extensions::read(r, carries)
        } else {
            Ok(Extensions::default())
        }
    }

    /// Writes the members set here, in key order.
    pub(super) fn write(&self, out: &mut Vec<u8>) {
        let data_type = (self.data_type != DataMessageType::Unknown).then_some(self.data_type);
        let count = usize::from(self.tracing_id.is_some())
            + usize::from(self.ttl.is_some())
            + usize::from(self.protocol.is_some())
            + usize::from(self.filter.is_some())
            + usize::from(data_type.is_some())
            + usize::from(self.is_partial);
        writer::map(out, count);
        if let Some(tracing_id) = self.tracing_id {
            writer::int(out, TRACING_ID);
            writer::uint(out, tracing_id);
        }
        if let Some(ttl) = self.ttl {
            writer::int(out, TTL);
            writer::int(out, ttl);
        }
        if let Some(protocol) = &self.protocol {
            writer::int(out, PROTOCOL);
            writer::str(out, protocol);
        }
        if let Some(filter) = &self.filter {
            writer::int(out, FILTER);
            writer::str(out, filter);
        }
        if let Some(data_type) = data_type {
            writer::int(out, DATA_MESSAGE_TYPE);
            writer::int(out, data_type.code());
        }
        if self.is_partial {
            writer::int(out, IS_PARTIAL);
            writer::bool(out, true);
        }
    }

    /// Writes an empty map, for message types that carry no members.
    pub(super) fn write_empty(out: &mut Vec<u8>) {
        writer::map(out, 0);
    }
}
