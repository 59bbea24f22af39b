//! The backplane's messages on Redis, byte for byte those of ASP.NET Core's Redis backplane
//! (`Microsoft.AspNetCore.SignalR.StackExchangeRedis`), so a Switchboard app server and an
//! ASP.NET Core one can share a backplane. Each is a MessagePack array; its type is known
//! from the channel it travels on; readers take at least the items they know and ignore any
//! after them.
//!
//! | message | items |
//! |---|---|
//! | invocation | excluded connection ids (array of str), the message once per protocol (map str → bin), and for a client result the invocation id (str) and the return channel (str) |
//! | group command | id (int), the sending server's name (str), action (int: 1 add, 2 remove), group (str), connection id (str) |
//! | ack | id (int) |
//! | completion | protocol name (str), the framed Completion in that protocol (bin) |

use bytes::Bytes;

use crate::protocol::Protocol;

/// Why bytes from Redis were not a backplane message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvelopeError(String);

impl std::fmt::Display for EnvelopeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for EnvelopeError {}

impl EnvelopeError {
    pub(crate) fn from_text(text: &str) -> Self {
        Self(text.to_owned())
    }
}

fn invalid(what: impl Into<String>) -> EnvelopeError {
    EnvelopeError(what.into())
}

/// A message for connections, serialized once per protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// Connections that must not get it.
    pub excluded: Vec<String>,
    /// The framed message, by protocol name (`json`, `messagepack`).
    pub payloads: Vec<(String, Bytes)>,
    /// For a client result: the invocation id and the channel the completion goes back on.
    pub result: Option<(String, String)>,
}

impl Invocation {
    /// The framed bytes for `protocol`, if the sender serialized it.
    pub fn payload(&self, protocol: Protocol) -> Option<&Bytes> {
        let name = protocol_name(protocol);
        self.payloads
            .iter()
            .find(|(known, _)| known == name)
            .map(|(_, bytes)| bytes)
    }
}

/// Add a connection to a group, or remove it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupAction {
    /// `1`.
    Add,
    /// `2`.
    Remove,
}

/// A group change for a connection another server may hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupCommand {
    /// The id its ack carries.
    pub id: i32,
    /// The server that asks (its ack channel).
    pub server_name: String,
    /// Add or remove.
    pub action: GroupAction,
    /// The group.
    pub group: String,
    /// The connection.
    pub connection_id: String,
}

/// A client's Completion, back to the server that asked for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteCompletion {
    /// The protocol it is serialized in.
    pub protocol: String,
    /// The framed Completion.
    pub message: Bytes,
}

/// The name ASP.NET Core gives a hub protocol.
pub fn protocol_name(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Json => "json",
        Protocol::MessagePack => "messagepack",
    }
}

/// The protocol of an ASP.NET Core protocol name.
pub fn protocol_of(name: &str) -> Option<Protocol> {
    match name {
        "json" => Some(Protocol::Json),
        "messagepack" => Some(Protocol::MessagePack),
        _ => None,
    }
}

// Writing into a Vec cannot fail.
fn array(out: &mut Vec<u8>, len: usize) {
    let _ = rmp::encode::write_array_len(out, u32::try_from(len).unwrap_or(u32::MAX));
}

fn string(out: &mut Vec<u8>, text: &str) {
    let _ = rmp::encode::write_str(out, text);
}

fn binary(out: &mut Vec<u8>, bytes: &[u8]) {
    let _ = rmp::encode::write_bin(out, bytes);
}

fn int(out: &mut Vec<u8>, value: i32) {
    let _ = rmp::encode::write_sint(out, i64::from(value));
}

impl Invocation {
    /// The envelope's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let size: usize = self
            .payloads
            .iter()
            .map(|(name, bytes)| name.len() + bytes.len() + 10)
            .sum();
        let mut out = Vec::with_capacity(size + 16 + self.excluded.iter().map(|id| id.len() + 2).sum::<usize>());
        array(&mut out, if self.result.is_some() { 4 } else { 2 });
        array(&mut out, self.excluded.len());
        for id in &self.excluded {
            string(&mut out, id);
        }
        let _ = rmp::encode::write_map_len(&mut out, u32::try_from(self.payloads.len()).unwrap_or(u32::MAX));
        for (name, bytes) in &self.payloads {
            string(&mut out, name);
            binary(&mut out, bytes);
        }
        if let Some((invocation_id, return_channel)) = &self.result {
            string(&mut out, invocation_id);
            string(&mut out, return_channel);
        }
        out
    }

    /// Reads an envelope (the payloads are slices of `data`).
    pub fn decode(data: &Bytes) -> Result<Self, EnvelopeError> {
        let mut reader = Reader::new(data);
        let items = reader.array(2, "Invocation")?;
        let excluded_count = reader.array(0, "excluded ids")?;
        let excluded = (0..excluded_count)
            .map(|_| reader.string())
            .collect::<Result<Vec<_>, _>>()?;
        let protocols = reader.map()?;
        let payloads = (0..protocols)
            .map(|_| Ok((reader.string()?, reader.binary()?)))
            .collect::<Result<Vec<_>, EnvelopeError>>()?;
        let result = if items > 3 {
            Some((reader.string()?, reader.string()?))
        } else {
            None
        };
        Ok(Self {
            excluded,
            payloads,
            result,
        })
    }
}

impl GroupCommand {
    /// The command's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.server_name.len() + self.group.len() + self.connection_id.len());
        array(&mut out, 5);
        int(&mut out, self.id);
        string(&mut out, &self.server_name);
        int(
            &mut out,
            match self.action {
                GroupAction::Add => 1,
                GroupAction::Remove => 2,
            },
        );
        string(&mut out, &self.group);
        string(&mut out, &self.connection_id);
        out
    }

    /// Reads a command.
    pub fn decode(data: &Bytes) -> Result<Self, EnvelopeError> {
        let mut reader = Reader::new(data);
        reader.array(5, "GroupCommand")?;
        let id = reader.int()?;
        let server_name = reader.string()?;
        let action = match reader.int()? {
            1 => GroupAction::Add,
            2 => GroupAction::Remove,
            other => return Err(invalid(format!("unknown group action {other}"))),
        };
        Ok(Self {
            id,
            server_name,
            action,
            group: reader.string()?,
            connection_id: reader.string()?,
        })
    }
}

/// An ack's bytes.
pub fn encode_ack(id: i32) -> Vec<u8> {
    let mut out = Vec::with_capacity(6);
    array(&mut out, 1);
    int(&mut out, id);
    out
}

/// Reads an ack.
pub fn decode_ack(data: &Bytes) -> Result<i32, EnvelopeError> {
    let mut reader = Reader::new(data);
    reader.array(1, "Ack")?;
    reader.int()
}

impl RemoteCompletion {
    /// The completion's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.message.len() + self.protocol.len() + 8);
        array(&mut out, 2);
        string(&mut out, &self.protocol);
        binary(&mut out, &self.message);
        out
    }

    /// Reads a completion (its message is a slice of `data`).
    pub fn decode(data: &Bytes) -> Result<Self, EnvelopeError> {
        let mut reader = Reader::new(data);
        reader.array(2, "CompletionMessage")?;
        Ok(Self {
            protocol: reader.string()?,
            message: reader.binary()?,
        })
    }
}

/// Reads MessagePack items off the front of a buffer, lengths checked against what is left.
struct Reader<'a> {
    data: &'a Bytes,
    at: usize,
}

impl<'a> Reader<'a> {
    fn new(data: &'a Bytes) -> Self {
        Self { data, at: 0 }
    }

    fn rest(&self) -> &'a [u8] {
        &self.data[self.at..]
    }

    /// Runs an rmp reader on what is left and moves past what it read.
    fn read<T, E: std::fmt::Debug>(
        &mut self,
        what: &str,
        f: impl FnOnce(&mut &[u8]) -> Result<T, E>,
    ) -> Result<T, EnvelopeError> {
        let mut rest = self.rest();
        let before = rest.len();
        let value = f(&mut rest).map_err(|e| invalid(format!("{what}: {e:?}")))?;
        self.at += before - rest.len();
        Ok(value)
    }

    /// An array header of at least `minimum` items, no more than the bytes left could hold.
    fn array(&mut self, minimum: u32, what: &str) -> Result<u32, EnvelopeError> {
        let len = self.read(what, |r| rmp::decode::read_array_len(r))?;
        if len < minimum {
            return Err(invalid(format!("Insufficient items in {what} array.")));
        }
        if len as usize > self.rest().len() {
            return Err(invalid(format!("{what}: more items than bytes")));
        }
        Ok(len)
    }

    fn map(&mut self) -> Result<u32, EnvelopeError> {
        let len = self.read("payloads", |r| rmp::decode::read_map_len(r))?;
        if len as usize > self.rest().len() {
            return Err(invalid("payloads: more entries than bytes"));
        }
        Ok(len)
    }

    fn take(&mut self, len: u32, what: &str) -> Result<Bytes, EnvelopeError> {
        let len = len as usize;
        if len > self.rest().len() {
            return Err(invalid(format!("{what}: truncated")));
        }
        let bytes = self.data.slice(self.at..self.at + len);
        self.at += len;
        Ok(bytes)
    }

    fn string(&mut self) -> Result<String, EnvelopeError> {
        let len = self.read("string", |r| rmp::decode::read_str_len(r))?;
        let bytes = self.take(len, "string")?;
        String::from_utf8(bytes.to_vec()).map_err(|_| invalid("a string that is not UTF-8"))
    }

    fn binary(&mut self) -> Result<Bytes, EnvelopeError> {
        let len = self.read("bin", |r| rmp::decode::read_bin_len(r))?;
        self.take(len, "bin")
    }

    fn int(&mut self) -> Result<i32, EnvelopeError> {
        self.read("int", |r| rmp::decode::read_int::<i32, _>(r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Golden bytes from ASP.NET Core's RedisProtocolTests (the same messages, the same bytes).

    #[test]
    fn acks_match_aspnetcore() {
        let cases: [(i32, &[u8]); 5] = [
            (0, &[0x91, 0x00]),
            (42, &[0x91, 0x2A]),
            (180, &[0x91, 0xCC, 0xB4]),
            (384, &[0x91, 0xCD, 0x01, 0x80]),
            (70_000, &[0x91, 0xCE, 0x00, 0x01, 0x11, 0x70]),
        ];
        for (id, bytes) in cases {
            assert_eq!(encode_ack(id), bytes, "{id}");
            assert_eq!(decode_ack(&Bytes::from_static(bytes)).unwrap(), id);
        }
    }

    #[test]
    fn group_commands_match_aspnetcore() {
        for (action, code) in [(GroupAction::Add, 0x01), (GroupAction::Remove, 0x02)] {
            let command = GroupCommand {
                id: 42,
                server_name: "S".into(),
                action,
                group: "G".into(),
                connection_id: "C".into(),
            };
            let bytes = [0x95, 0x2A, 0xA1, b'S', code, 0xA1, b'G', 0xA1, b'C'];
            assert_eq!(command.encode(), bytes);
            assert_eq!(GroupCommand::decode(&Bytes::copy_from_slice(&bytes)).unwrap(), command);
        }
    }

    #[test]
    fn invocations_match_aspnetcore() {
        let payloads = vec![
            ("p1".to_owned(), Bytes::from_static(&[0x2A])),
            ("p2".to_owned(), Bytes::from_static(&[0x2A])),
        ];
        let body = [
            0x82, 0xA2, b'p', b'1', 0xC4, 0x01, 0x2A, 0xA2, b'p', b'2', 0xC4, 0x01, 0x2A,
        ];
        let cases: [(&[&str], Vec<u8>); 3] = [
            (&[], [&[0x92, 0x90][..], &body].concat()),
            (&["a"], [&[0x92, 0x91, 0xA1, b'a'][..], &body].concat()),
            (
                &["a", "b", "c", "d", "e", "f"],
                [
                    &[
                        0x92, 0x96, 0xA1, b'a', 0xA1, b'b', 0xA1, b'c', 0xA1, b'd', 0xA1, b'e', 0xA1, b'f',
                    ][..],
                    &body,
                ]
                .concat(),
            ),
        ];
        for (excluded, bytes) in cases {
            let invocation = Invocation {
                excluded: excluded.iter().map(|s| (*s).to_owned()).collect(),
                payloads: payloads.clone(),
                result: None,
            };
            assert_eq!(invocation.encode(), bytes, "{excluded:?}");
            assert_eq!(Invocation::decode(&Bytes::from(bytes)).unwrap(), invocation);
        }
    }

    #[test]
    fn client_result_invocations_and_completions_carry_their_extra_items() {
        let invocation = Invocation {
            excluded: vec![],
            payloads: vec![("json".into(), Bytes::from_static(b"{}\x1e"))],
            result: Some(("abc".into(), "Hub:internal:return:s1".into())),
        };
        let bytes = invocation.encode();
        assert_eq!(&bytes[..2], &[0x94, 0x90], "four items, no exclusions");
        assert_eq!(Invocation::decode(&Bytes::from(bytes)).unwrap(), invocation);
        let completion = RemoteCompletion {
            protocol: "messagepack".into(),
            message: Bytes::from_static(&[0x01, 0x93]),
        };
        let bytes = completion.encode();
        assert_eq!(
            bytes,
            [&[0x92, 0xAB][..], b"messagepack", &[0xC4, 0x02, 0x01, 0x93]].concat()
        );
        assert_eq!(RemoteCompletion::decode(&Bytes::from(bytes)).unwrap(), completion);
        // Readers ignore items they do not know (a newer sender).
        let mut longer = encode_ack(7);
        longer[0] = 0x92;
        longer.push(0xC0);
        assert_eq!(decode_ack(&Bytes::from(longer)).unwrap(), 7);
    }

    #[test]
    fn garbage_is_an_error_never_a_panic() {
        let cases: [&[u8]; 9] = [
            &[],
            &[0xC1],
            &[0x90],
            &[0x92, 0x9F],
            &[0x92, 0x91, 0xDB, 0xFF, 0xFF, 0xFF, 0xFF],
            &[0x92, 0x90, 0x81, 0xA1, b'j', 0xC6, 0x7F, 0xFF, 0xFF, 0xFF],
            &[0x95, 0x2A, 0xA1, b'S', 0x07, 0xA1, b'G', 0xA1, b'C'],
            &[0x91, 0xA1, b'x'],
            &[0xDD, 0xFF, 0xFF, 0xFF, 0xFF],
        ];
        for bytes in cases {
            let data = Bytes::from_static(bytes);
            assert!(Invocation::decode(&data).is_err(), "{bytes:?}");
            assert!(GroupCommand::decode(&data).is_err(), "{bytes:?}");
            assert!(RemoteCompletion::decode(&data).is_err() || bytes.len() > 3, "{bytes:?}");
            let _ = decode_ack(&data);
        }
    }
}
