//! What relay nodes publish to one another on Redis: a small binary header (kind, query id,
//! origin node, hub key) in front of a body that is, for messages and queries, the service
//! message an app server sent, in the service protocol's own framing. A node thus re-applies
//! what an app server asked of another node with the code that applies it locally.
//!
//! ```text
//! version (1) · kind (1) · query id (u64, big-endian) · origin length (1) · origin
//!             · hub length (u16, big-endian) · hub · body
//! ```
//!
//! Decoding never panics: anything short, of another version or kind, or not UTF-8 is an
//! error, and its message is dropped.

use bytes::{Bytes, BytesMut};
use switchboard::protocol::framing::split_binary_record;
use switchboard::protocol::service::{self, ServiceMessage};

const VERSION: u8 = 1;

/// What a published envelope is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A service message for every node to apply to its own clients (a broadcast, a group
    /// change for a connection elsewhere); nobody answers.
    Message = 0,
    /// A service message every node answers (an existence check, a group change with ack, a
    /// member query, a client invocation, a close with ack).
    Query = 1,
    /// A node's answer to a query, on the asker's own channel: an `Ack` message.
    Answer = 2,
    /// On a node's own channel: ask app server `body` (its server id) of `hub` for a server
    /// connection to node `origin`.
    Target = 3,
}

impl Kind {
    fn from_byte(byte: u8) -> Option<Kind> {
        Some(match byte {
            0 => Kind::Message,
            1 => Kind::Query,
            2 => Kind::Answer,
            3 => Kind::Target,
            _ => return None,
        })
    }
}

/// One envelope, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Envelope {
    pub(crate) kind: Kind,
    /// The asker's query id (queries and answers), else 0.
    pub(crate) query: u64,
    /// The node that published it.
    pub(crate) origin: String,
    /// The hub key it is about.
    pub(crate) hub: String,
    pub(crate) body: Bytes,
}

/// Why an envelope was dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EnvelopeError(pub(crate) &'static str);

impl std::fmt::Display for EnvelopeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl Envelope {
    /// An envelope whose body is `message`, framed as on a server connection.
    pub(crate) fn with_message(kind: Kind, query: u64, origin: &str, hub: &str, message: &ServiceMessage) -> Bytes {
        let mut body = Vec::new();
        service::write(message, &mut body);
        Self::encode(kind, query, origin, hub, &body)
    }

    /// The bytes of an envelope.
    pub(crate) fn encode(kind: Kind, query: u64, origin: &str, hub: &str, body: &[u8]) -> Bytes {
        // Node ids are checked to fit when the relay starts; hub keys come from URLs.
        let origin = &origin.as_bytes()[..origin.len().min(u8::MAX as usize)];
        let hub = &hub.as_bytes()[..hub.len().min(u16::MAX as usize)];
        let mut out = Vec::with_capacity(13 + origin.len() + hub.len() + body.len());
        out.push(VERSION);
        out.push(kind as u8);
        out.extend_from_slice(&query.to_be_bytes());
        out.push(origin.len() as u8);
        out.extend_from_slice(origin);
        out.extend_from_slice(&(hub.len() as u16).to_be_bytes());
        out.extend_from_slice(hub);
        out.extend_from_slice(body);
        Bytes::from(out)
    }

    /// Reads an envelope.
    pub(crate) fn decode(bytes: Bytes) -> Result<Envelope, EnvelopeError> {
        let short = EnvelopeError("a cluster message cut short");
        let header = bytes.get(..11).ok_or(short.clone())?;
        if header[0] != VERSION {
            return Err(EnvelopeError("a cluster message of another version"));
        }
        let kind = Kind::from_byte(header[1]).ok_or(EnvelopeError("a cluster message of an unknown kind"))?;
        let query = u64::from_be_bytes(header[2..10].try_into().map_err(|_| short.clone())?);
        let origin_len = usize::from(header[10]);
        let origin_end = 11 + origin_len;
        let origin = bytes.get(11..origin_end).ok_or(short.clone())?;
        let hub_len = bytes.get(origin_end..origin_end + 2).ok_or(short.clone())?;
        let hub_len = usize::from(u16::from_be_bytes([hub_len[0], hub_len[1]]));
        let hub_start = origin_end + 2;
        let hub = bytes.get(hub_start..hub_start + hub_len).ok_or(short)?;
        let text = |raw: &[u8]| {
            std::str::from_utf8(raw)
                .map(str::to_owned)
                .map_err(|_| EnvelopeError("a cluster message with a name that is not UTF-8"))
        };
        Ok(Envelope {
            kind,
            query,
            origin: text(origin)?,
            hub: text(hub)?,
            body: bytes.slice(hub_start + hub_len..),
        })
    }

    /// The service message in the body.
    pub(crate) fn message(&self) -> Result<ServiceMessage, EnvelopeError> {
        let mut buffer = BytesMut::from(&self.body[..]);
        let record = split_binary_record(&mut buffer, None)
            .map_err(|_| EnvelopeError("a cluster message whose body is not a service record"))?
            .ok_or(EnvelopeError("a cluster message whose record is cut short"))?;
        service::parse(record)
            .map_err(|_| EnvelopeError("a cluster message whose service message does not parse"))?
            .ok_or(EnvelopeError("a cluster message of an unknown service message type"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard::protocol::service::{BroadcastData, Payloads};

    #[test]
    fn an_envelope_round_trips_with_its_service_message() {
        let payloads: Payloads = vec![("json".to_owned(), Bytes::from_static(b"{\"type\":1}\x1e"))];
        let message = ServiceMessage::BroadcastData(BroadcastData {
            excluded: vec!["c1".to_owned()],
            payloads,
            ..BroadcastData::default()
        });
        let bytes = Envelope::with_message(Kind::Query, 7, "node-a", "app_chat", &message);
        let envelope = Envelope::decode(bytes).unwrap();
        assert_eq!(
            (
                envelope.kind,
                envelope.query,
                envelope.origin.as_str(),
                envelope.hub.as_str()
            ),
            (Kind::Query, 7, "node-a", "app_chat")
        );
        assert_eq!(envelope.message().unwrap(), message);
    }

    #[test]
    fn garbage_is_an_error_never_a_panic() {
        let good = Envelope::encode(Kind::Target, 0, "n", "hub", b"server-1");
        for end in 0..good.len() - b"server-1".len() {
            assert!(Envelope::decode(good.slice(..end)).is_err(), "cut at {end}");
        }
        let mut other_version = good.to_vec();
        other_version[0] = 9;
        assert!(Envelope::decode(Bytes::from(other_version)).is_err());
        let mut other_kind = good.to_vec();
        other_kind[1] = 200;
        assert!(Envelope::decode(Bytes::from(other_kind)).is_err());
        let not_utf8 = Envelope::encode(Kind::Message, 0, "n", "hub", b"");
        let mut not_utf8 = not_utf8.to_vec();
        not_utf8[11] = 0xff;
        assert!(Envelope::decode(Bytes::from(not_utf8)).is_err());
        // A body that is not a service record.
        let envelope = Envelope::decode(Envelope::encode(Kind::Message, 0, "n", "hub", b"\x05ab")).unwrap();
        assert!(envelope.message().is_err());
        let envelope = Envelope::decode(Envelope::encode(Kind::Message, 0, "n", "hub", b"\x02\xc1\xc1")).unwrap();
        assert!(envelope.message().is_err());
        for seed in 0u32..2000 {
            let bytes: Vec<u8> = (0..(seed % 40))
                .map(|i| (seed.wrapping_mul(31).wrapping_add(i * 7)) as u8)
                .collect();
            if let Ok(envelope) = Envelope::decode(Bytes::from(bytes)) {
                let _ = envelope.message();
            }
        }
    }
}
