//! Wire formats the load generator speaks: the SignalR JSON and MessagePack hub protocols
//! (only what the benchmark needs: handshake, invocations, completions, pings, close), the
//! raw-WebSocket framing understood by the floor server and the Node `ws` server, and Socket.IO
//! (Engine.IO v4 over WebSocket, text packets) for the socket.io and socketioxide servers.
//!
//! Encoding is hand-written and decoding is a minimal scanner on purpose: the generator must
//! stay much cheaper per message than the servers it measures.

use std::fmt::Write as _;

/// The SignalR record separator that ends every JSON hub message.
pub const RS: u8 = 0x1e;

/// How a connection talks to its server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Plain WebSocket frames (the floor server): `[op, ticks u64 LE, payload…]` in binary frames.
    Raw,
    /// SignalR, JSON hub protocol over text frames.
    Json,
    /// SignalR, MessagePack hub protocol over binary frames.
    #[serde(rename = "msgpack")]
    MsgPack,
    /// Socket.IO v5 over Engine.IO v4, WebSocket transport only: events `echo` and
    /// `broadcast` with the arguments `(ticks, payload)`, answered by `echo` and `measure`.
    #[serde(rename = "socketio")]
    SocketIo,
}

impl Mode {
    /// Short name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Raw => "raw",
            Mode::Json => "json",
            Mode::MsgPack => "msgpack",
            Mode::SocketIo => "socketio",
        }
    }

    /// Whether this mode speaks SignalR (negotiate, handshake, hub methods and groups).
    pub fn is_signalr(self) -> bool {
        matches!(self, Mode::Json | Mode::MsgPack)
    }

    /// The SignalR handshake request for this mode (`None` for raw WebSockets and Socket.IO).
    pub fn handshake(self) -> Option<String> {
        match self {
            Mode::Raw | Mode::SocketIo => None,
            Mode::Json => Some("{\"protocol\":\"json\",\"version\":1}\u{1e}".to_owned()),
            Mode::MsgPack => Some("{\"protocol\":\"messagepack\",\"version\":1}\u{1e}".to_owned()),
        }
    }
}

/// Raw-mode operation byte: the server sends the frame back to its sender.
pub const RAW_ECHO: u8 = b'E';
/// Raw-mode operation byte: the server sends the frame to every connection.
pub const RAW_BROADCAST: u8 = b'B';

/// Socket.IO event the client emits to be answered by the same event on itself.
pub const SIO_ECHO: &str = "echo";
/// Socket.IO event the client emits to have `measure` emitted to every socket.
pub const SIO_BROADCAST: &str = "broadcast";
/// Socket.IO event a broadcast arrives as.
pub const SIO_MEASURE: &str = "measure";

/// An encoded outgoing message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A text frame.
    Text(String),
    /// A binary frame.
    Binary(Vec<u8>),
}

/// A decoded incoming message, reduced to what the benchmark looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// A completion carrying `[ticks, payload]` (or a raw echo); `payload_len` is the payload's length in bytes.
    Completion {
        /// The echoed time stamp.
        ticks: u64,
        /// Bytes of the echoed payload.
        payload_len: usize,
    },
    /// A completion with an error.
    CompletionError(String),
    /// An invocation of the client method `Measure(ticks, payload)` (or a raw broadcast frame).
    Measure {
        /// The time stamp the sender embedded.
        ticks: u64,
        /// Bytes of the payload.
        payload_len: usize,
    },
    /// A SignalR ping (type 6): nothing to answer.
    Ping,
    /// An Engine.IO ping (`2`) from the server: must be answered with a pong ([`Encoder::pong`]),
    /// or the server closes the connection after its ping timeout.
    EngineIoPing,
    /// A close message (type 7), with its error if any.
    Close(Option<String>),
    /// Anything else (other invocations, stream items, acks).
    Other,
}

/// Builds outgoing messages for one mode and payload size, reusing the payload text.
#[derive(Debug, Clone)]
pub struct Encoder {
    mode: Mode,
    payload: String,
}

impl Encoder {
    /// An encoder whose payloads are `payload_len` bytes of ASCII.
    pub fn new(mode: Mode, payload_len: usize) -> Self {
        let payload: String = (0..payload_len).map(|i| (b'a' + (i % 26) as u8) as char).collect();
        Self { mode, payload }
    }

    /// The mode this encoder writes.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// `Echo(ticks, payload)` as a blocking invocation with `id` (raw: an echo frame).
    pub fn echo(&self, id: u64, ticks: u64) -> Frame {
        self.invocation(Some(id), "Echo", None, ticks, RAW_ECHO)
    }

    /// `EchoMeasure(ticks, payload)` as a non-blocking invocation (raw: an echo frame).
    pub fn echo_measure(&self, ticks: u64) -> Frame {
        self.invocation(None, "EchoMeasure", None, ticks, RAW_ECHO)
    }

    /// `BroadcastMeasure(ticks, payload)` as a non-blocking invocation (raw: a broadcast frame).
    pub fn broadcast_measure(&self, ticks: u64) -> Frame {
        self.invocation(None, "BroadcastMeasure", None, ticks, RAW_BROADCAST)
    }

    /// `GroupMeasure(group, ticks, payload)` as a non-blocking invocation (raw: a broadcast frame).
    pub fn group_measure(&self, group: &str, ticks: u64) -> Frame {
        self.invocation(None, "GroupMeasure", Some(group), ticks, RAW_BROADCAST)
    }

    /// `JoinGroup(group)` as a blocking invocation with `id` (SignalR only: raw and Socket.IO
    /// modes get an empty frame).
    pub fn join_group(&self, id: u64, group: &str) -> Frame {
        match self.mode {
            Mode::Raw | Mode::SocketIo => Frame::Binary(Vec::new()),
            Mode::Json => {
                let mut s = String::with_capacity(64 + group.len());
                let _ = write!(
                    s,
                    "{{\"type\":1,\"invocationId\":\"{id}\",\"target\":\"JoinGroup\",\"arguments\":["
                );
                json_str(&mut s, group);
                s.push_str("]}\u{1e}");
                Frame::Text(s)
            }
            Mode::MsgPack => {
                let mut body = Vec::with_capacity(32 + group.len());
                body.push(0x95); // array of 5
                body.push(1);
                body.push(0x80); // no headers
                mp_str(&mut body, &id.to_string());
                mp_str(&mut body, "JoinGroup");
                body.push(0x91);
                mp_str(&mut body, group);
                Frame::Binary(length_prefixed(&body))
            }
        }
    }

    /// A keep-alive ping from the client (raw and Socket.IO modes: an empty WebSocket ping is
    /// used instead, so this returns `None`; Engine.IO pings come from the server).
    pub fn ping(&self) -> Option<Frame> {
        match self.mode {
            Mode::Raw | Mode::SocketIo => None,
            Mode::Json => Some(Frame::Text("{\"type\":6}\u{1e}".to_owned())),
            Mode::MsgPack => Some(Frame::Binary(vec![0x01, 0x91, 0x06])),
        }
    }

    /// The answer to an Engine.IO ping (`3`); `None` outside Socket.IO mode.
    pub fn pong(&self) -> Option<Frame> {
        (self.mode == Mode::SocketIo).then(|| Frame::Text("3".to_owned()))
    }

    fn invocation(&self, id: Option<u64>, target: &str, group: Option<&str>, ticks: u64, raw_op: u8) -> Frame {
        match self.mode {
            Mode::SocketIo => {
                // `42` = Engine.IO message + Socket.IO EVENT on the main namespace, no ack id
                let event = if raw_op == RAW_BROADCAST {
                    SIO_BROADCAST
                } else {
                    SIO_ECHO
                };
                let mut s = String::with_capacity(32 + self.payload.len());
                let _ = write!(s, "42[\"{event}\",{ticks},\"");
                s.push_str(&self.payload); // ASCII letters only: no escaping needed
                s.push_str("\"]");
                Frame::Text(s)
            }
            Mode::Raw => {
                let mut b = Vec::with_capacity(9 + self.payload.len());
                b.push(raw_op);
                b.extend_from_slice(&ticks.to_le_bytes());
                b.extend_from_slice(self.payload.as_bytes());
                Frame::Binary(b)
            }
            Mode::Json => {
                let mut s = String::with_capacity(96 + self.payload.len());
                s.push_str("{\"type\":1,");
                if let Some(id) = id {
                    let _ = write!(s, "\"invocationId\":\"{id}\",");
                }
                let _ = write!(s, "\"target\":\"{target}\",\"arguments\":[");
                if let Some(group) = group {
                    json_str(&mut s, group);
                    s.push(',');
                }
                let _ = write!(s, "{ticks},\"");
                s.push_str(&self.payload); // ASCII letters only: no escaping needed
                s.push_str("\"]}\u{1e}");
                Frame::Text(s)
            }
            Mode::MsgPack => {
                let mut body = Vec::with_capacity(48 + self.payload.len());
                body.push(0x95); // [1, headers, id, target, args]
                body.push(1);
                body.push(0x80);
                match id {
                    Some(id) => mp_str(&mut body, &id.to_string()),
                    None => body.push(0xc0),
                }
                mp_str(&mut body, target);
                body.push(if group.is_some() { 0x93 } else { 0x92 });
                if let Some(group) = group {
                    mp_str(&mut body, group);
                }
                mp_uint(&mut body, ticks);
                mp_str(&mut body, &self.payload);
                Frame::Binary(length_prefixed(&body))
            }
        }
    }
}

fn json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn mp_str(out: &mut Vec<u8>, s: &str) {
    let n = s.len();
    if n < 32 {
        out.push(0xa0 | n as u8);
    } else if n < 256 {
        out.push(0xd9);
        out.push(n as u8);
    } else if n < 65536 {
        out.push(0xda);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(0xdb);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
    out.extend_from_slice(s.as_bytes());
}

fn mp_uint(out: &mut Vec<u8>, v: u64) {
    if v < 128 {
        out.push(v as u8);
    } else if v < 256 {
        out.extend_from_slice(&[0xcc, v as u8]);
    } else if v < 65536 {
        out.push(0xcd);
        out.extend_from_slice(&(v as u16).to_be_bytes());
    } else if v < (1 << 32) {
        out.push(0xce);
        out.extend_from_slice(&(v as u32).to_be_bytes());
    } else {
        out.push(0xcf);
        out.extend_from_slice(&v.to_be_bytes());
    }
}

/// Prefixes a MessagePack hub message with its VarInt length.
fn length_prefixed(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 5);
    let mut n = body.len();
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    out.extend_from_slice(body);
    out
}

/// Checks a handshake response (`{}` or `{"error":…}` followed by the record separator) at the
/// start of `data`; returns the bytes after it (messages that came in the same frame).
pub fn handshake_response(data: &[u8]) -> Result<&[u8], String> {
    let end = data
        .iter()
        .position(|&b| b == RS)
        .ok_or("handshake response without separator")?;
    let text = std::str::from_utf8(&data[..end]).map_err(|_| "handshake response is not UTF-8")?;
    if text.contains("\"error\"") {
        return Err(format!("handshake refused: {text}"));
    }
    Ok(&data[end + 1..])
}

/// Decodes every message in one text frame of the JSON hub protocol.
pub fn decode_json(data: &[u8], out: &mut Vec<Incoming>) -> Result<(), String> {
    for record in data.split(|&b| b == RS) {
        if record.is_empty() {
            continue;
        }
        out.push(decode_json_record(record)?);
    }
    Ok(())
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The string value of `"key":"…"` (without unescaping: used for error texts only).
fn json_string_field(record: &[u8], key: &[u8]) -> Option<String> {
    let at = find(record, key)? + key.len();
    let rest = &record[at..];
    let start = rest.iter().position(|&b| b == b'"')? + 1;
    let mut end = start;
    while end < rest.len() && !(rest[end] == b'"' && rest[end - 1] != b'\\') {
        end += 1;
    }
    Some(String::from_utf8_lossy(&rest[start..end.min(rest.len())]).into_owned())
}

/// Parses `[ticks,"payload"` at the start of `rest` (after the opening bracket).
fn json_ticks_and_payload(rest: &[u8]) -> Result<(u64, usize), String> {
    let mut i = 0;
    while i < rest.len() && rest[i] == b' ' {
        i += 1;
    }
    let start = i;
    while i < rest.len() && rest[i].is_ascii_digit() {
        i += 1;
    }
    let ticks = std::str::from_utf8(&rest[start..i])
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| format!("bad ticks in {}", String::from_utf8_lossy(&rest[..rest.len().min(60)])))?;
    // the payload: a JSON string of ASCII letters
    let open = rest[i..].iter().position(|&b| b == b'"').ok_or("no payload")? + i + 1;
    let close = rest[open..]
        .iter()
        .position(|&b| b == b'"')
        .ok_or("unterminated payload")?
        + open;
    Ok((ticks, close - open))
}

fn decode_json_record(record: &[u8]) -> Result<Incoming, String> {
    let ty_at = find(record, b"\"type\":").ok_or_else(|| "message without type".to_owned())? + 7;
    let ty = record.get(ty_at).copied().unwrap_or(0);
    match ty {
        b'1' => {
            if find(record, b"\"target\":\"Measure\"").is_some() {
                let args = find(record, b"\"arguments\":[").ok_or("Measure without arguments")? + 13;
                let (ticks, payload_len) = json_ticks_and_payload(&record[args..])?;
                Ok(Incoming::Measure { ticks, payload_len })
            } else {
                Ok(Incoming::Other)
            }
        }
        b'3' => {
            if let Some(at) = find(record, b"\"result\":[") {
                let (ticks, payload_len) = json_ticks_and_payload(&record[at + 10..])?;
                Ok(Incoming::Completion { ticks, payload_len })
            } else if find(record, b"\"error\":").is_some() {
                Ok(Incoming::CompletionError(
                    json_string_field(record, b"\"error\":").unwrap_or_default(),
                ))
            } else {
                // a void completion (JoinGroup)
                Ok(Incoming::Completion {
                    ticks: 0,
                    payload_len: 0,
                })
            }
        }
        b'6' => Ok(Incoming::Ping),
        b'7' => Ok(Incoming::Close(json_string_field(record, b"\"error\":"))),
        _ => Ok(Incoming::Other),
    }
}

/// A cursor over MessagePack bytes with just enough decoding for hub messages.
struct Mp<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Mp<'a> {
    fn byte(&mut self) -> Result<u8, String> {
        let v = *self.b.get(self.i).ok_or("truncated MessagePack")?;
        self.i += 1;
        Ok(v)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.i + n > self.b.len() {
            return Err("truncated MessagePack".into());
        }
        let s = &self.b[self.i..self.i + n];
        self.i += n;
        Ok(s)
    }

    fn be(&mut self, n: usize) -> Result<u64, String> {
        Ok(self.take(n)?.iter().fold(0u64, |acc, &b| (acc << 8) | b as u64))
    }

    fn array_len(&mut self) -> Result<usize, String> {
        match self.byte()? {
            m @ 0x90..=0x9f => Ok((m & 0x0f) as usize),
            0xdc => Ok(self.be(2)? as usize),
            0xdd => Ok(self.be(4)? as usize),
            m => Err(format!("expected an array, found marker {m:#x}")),
        }
    }

    fn uint(&mut self) -> Result<u64, String> {
        match self.byte()? {
            m @ 0x00..=0x7f => Ok(m as u64),
            0xcc | 0xd0 => self.be(1),
            0xcd | 0xd1 => self.be(2),
            0xce | 0xd2 => self.be(4),
            0xcf | 0xd3 => self.be(8),
            m => Err(format!("expected an integer, found marker {m:#x}")),
        }
    }

    /// A string (or nil as `None`).
    fn str(&mut self) -> Result<Option<&'a [u8]>, String> {
        let n = match self.byte()? {
            0xc0 => return Ok(None),
            m @ 0xa0..=0xbf => (m & 0x1f) as usize,
            0xd9 | 0xc4 => self.be(1)? as usize,
            0xda | 0xc5 => self.be(2)? as usize,
            0xdb | 0xc6 => self.be(4)? as usize,
            m => return Err(format!("expected a string, found marker {m:#x}")),
        };
        Ok(Some(self.take(n)?))
    }

    /// Skips one value of any type.
    fn skip(&mut self) -> Result<(), String> {
        let m = self.byte()?;
        let (fixed, items): (usize, usize) = match m {
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => (0, 0),
            0x80..=0x8f => (0, 2 * (m & 0x0f) as usize),
            0x90..=0x9f => (0, (m & 0x0f) as usize),
            0xa0..=0xbf => ((m & 0x1f) as usize, 0),
            0xcc | 0xd0 => (1, 0),
            0xcd | 0xd1 => (2, 0),
            0xce | 0xd2 | 0xca => (4, 0),
            0xcf | 0xd3 | 0xcb => (8, 0),
            0xd4 => (2, 0),
            0xd5 => (3, 0),
            0xd6 => (5, 0),
            0xd7 => (9, 0),
            0xd8 => (17, 0),
            0xc4 | 0xd9 => (self.be(1)? as usize, 0),
            0xc5 | 0xda => (self.be(2)? as usize, 0),
            0xc6 | 0xdb => (self.be(4)? as usize, 0),
            0xc7 => (self.be(1)? as usize + 1, 0),
            0xc8 => (self.be(2)? as usize + 1, 0),
            0xc9 => (self.be(4)? as usize + 1, 0),
            0xdc => (0, self.be(2)? as usize),
            0xdd => (0, self.be(4)? as usize),
            0xde => (0, 2 * self.be(2)? as usize),
            0xdf => (0, 2 * self.be(4)? as usize),
            m => return Err(format!("unknown MessagePack marker {m:#x}")),
        };
        self.take(fixed)?;
        for _ in 0..items {
            self.skip()?;
        }
        Ok(())
    }

    /// `[ticks, payload]`.
    fn ticks_and_payload(&mut self) -> Result<(u64, usize), String> {
        let n = self.array_len()?;
        if n < 2 {
            return Err("expected [ticks, payload]".into());
        }
        let ticks = self.uint()?;
        let payload_len = self.str()?.map_or(0, <[u8]>::len);
        for _ in 2..n {
            self.skip()?;
        }
        Ok((ticks, payload_len))
    }
}

/// Decodes every length-prefixed message in one binary frame of the MessagePack hub protocol.
pub fn decode_msgpack(mut data: &[u8], out: &mut Vec<Incoming>) -> Result<(), String> {
    while !data.is_empty() {
        let mut len = 0usize;
        let mut shift = 0;
        let mut used = 0;
        loop {
            let b = *data.get(used).ok_or("truncated length prefix")?;
            used += 1;
            len |= ((b & 0x7f) as usize) << shift;
            if b & 0x80 == 0 {
                break;
            }
            shift += 7;
            if shift > 28 {
                return Err("length prefix too long".into());
            }
        }
        let body = data.get(used..used + len).ok_or("truncated message")?;
        out.push(decode_msgpack_body(body)?);
        data = &data[used + len..];
    }
    Ok(())
}

fn decode_msgpack_body(body: &[u8]) -> Result<Incoming, String> {
    let mut mp = Mp { b: body, i: 0 };
    let n = mp.array_len()?;
    let ty = mp.uint()?;
    match ty {
        1 if n >= 5 => {
            mp.skip()?; // headers
            mp.skip()?; // invocation id
            let target = mp.str()?.unwrap_or_default();
            if target == b"Measure" {
                let (ticks, payload_len) = mp.ticks_and_payload()?;
                Ok(Incoming::Measure { ticks, payload_len })
            } else {
                Ok(Incoming::Other)
            }
        }
        3 if n >= 4 => {
            mp.skip()?; // headers
            mp.skip()?; // invocation id
            match mp.uint()? {
                1 => Ok(Incoming::CompletionError(
                    mp.str()?
                        .map(|s| String::from_utf8_lossy(s).into_owned())
                        .unwrap_or_default(),
                )),
                2 => Ok(Incoming::Completion {
                    ticks: 0,
                    payload_len: 0,
                }),
                _ if matches!(mp.b.get(mp.i), Some(0x90..=0x9f | 0xdc | 0xdd)) => {
                    let (ticks, payload_len) = mp.ticks_and_payload()?;
                    Ok(Incoming::Completion { ticks, payload_len })
                }
                // a result that is not [ticks, payload] (JoinGroup's nil)
                _ => Ok(Incoming::Completion {
                    ticks: 0,
                    payload_len: 0,
                }),
            }
        }
        6 => Ok(Incoming::Ping),
        7 => {
            let error = if n >= 2 {
                mp.str()?.map(|s| String::from_utf8_lossy(s).into_owned())
            } else {
                None
            };
            Ok(Incoming::Close(error))
        }
        _ => Ok(Incoming::Other),
    }
}

/// Decodes one Engine.IO v4 text packet (one per WebSocket frame) carrying Socket.IO v5 on the
/// main namespace: `2` is a ping to answer, `42["echo",ticks,"payload"]` an echo answer
/// ([`Incoming::Completion`]), `42["measure",ticks,"payload"]` a broadcast delivery
/// ([`Incoming::Measure`]); `1` (close), `41` (namespace disconnect) and `44` (connect error)
/// are closes; anything else (`0` open, `40` connect ack, `3`, `6`, other events) is
/// [`Incoming::Other`].
pub fn decode_socketio(data: &[u8]) -> Result<Incoming, String> {
    match data {
        b"2" => Ok(Incoming::EngineIoPing),
        b"1" => Ok(Incoming::Close(Some("Engine.IO close packet".into()))),
        [b'4', b'1', ..] => Ok(Incoming::Close(Some("Socket.IO disconnect packet".into()))),
        [b'4', b'4', rest @ ..] => Ok(Incoming::Close(Some(format!(
            "Socket.IO connect error {}",
            String::from_utf8_lossy(rest)
        )))),
        [b'4', b'2', b'[', b'"', rest @ ..] => {
            let end = rest.iter().position(|&b| b == b'"').ok_or("unterminated event name")?;
            let event = &rest[..end];
            let args = rest.get(end + 1..).unwrap_or_default();
            let args = args.strip_prefix(b",").ok_or_else(|| {
                format!(
                    "Socket.IO event without arguments: {}",
                    String::from_utf8_lossy(&data[..data.len().min(60)])
                )
            });
            if event == SIO_ECHO.as_bytes() {
                let (ticks, payload_len) = json_ticks_and_payload(args?)?;
                Ok(Incoming::Completion { ticks, payload_len })
            } else if event == SIO_MEASURE.as_bytes() {
                let (ticks, payload_len) = json_ticks_and_payload(args?)?;
                Ok(Incoming::Measure { ticks, payload_len })
            } else {
                Ok(Incoming::Other)
            }
        }
        _ => Ok(Incoming::Other),
    }
}

/// Decodes a raw-mode frame: an echo comes back as a completion, a broadcast as a `Measure`.
pub fn decode_raw(data: &[u8]) -> Result<Incoming, String> {
    if data.len() < 9 {
        return Err(format!("raw frame of {} bytes", data.len()));
    }
    let ticks = u64::from_le_bytes(data[1..9].try_into().map_err(|_| "raw frame")?);
    let payload_len = data.len() - 9;
    match data[0] {
        RAW_ECHO => Ok(Incoming::Completion { ticks, payload_len }),
        RAW_BROADCAST => Ok(Incoming::Measure { ticks, payload_len }),
        op => Err(format!("unknown raw op {op}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip_shapes() {
        let e = Encoder::new(Mode::Json, 4);
        assert_eq!(
            e.echo(7, 42),
            Frame::Text(
                "{\"type\":1,\"invocationId\":\"7\",\"target\":\"Echo\",\"arguments\":[42,\"abcd\"]}\u{1e}".into()
            )
        );
        assert_eq!(
            e.group_measure("g\"1", 5),
            Frame::Text("{\"type\":1,\"target\":\"GroupMeasure\",\"arguments\":[\"g\\\"1\",5,\"abcd\"]}\u{1e}".into())
        );
        let mut out = Vec::new();
        decode_json(
            b"{\"type\":3,\"invocationId\":\"7\",\"result\":[42,\"abcd\"]}\x1e{\"type\":6}\x1e{\"type\":1,\"target\":\"Measure\",\"arguments\":[9,\"xy\"]}\x1e{\"type\":3,\"invocationId\":\"8\",\"error\":\"boom\"}\x1e{\"type\":7,\"error\":\"bye\"}\x1e",
            &mut out,
        )
        .unwrap();
        assert_eq!(
            out,
            vec![
                Incoming::Completion {
                    ticks: 42,
                    payload_len: 4
                },
                Incoming::Ping,
                Incoming::Measure {
                    ticks: 9,
                    payload_len: 2
                },
                Incoming::CompletionError("boom".into()),
                Incoming::Close(Some("bye".into())),
            ]
        );
    }

    #[test]
    fn msgpack_shapes() {
        let e = Encoder::new(Mode::MsgPack, 3);
        let Frame::Binary(b) = e.echo(1, 300) else { panic!() };
        assert_eq!(
            b,
            vec![
                18, 0x95, 1, 0x80, 0xa1, b'1', 0xa4, b'E', b'c', b'h', b'o', 0x92, 0xcd, 1, 44, 0xa3, b'a', b'b', b'c'
            ]
        );
        // completion [3, {}, "1", 3, [300, "abc"]] + ping + Measure invocation + close
        let mut frame = vec![
            14, 0x95, 3, 0x80, 0xa1, b'1', 3, 0x92, 0xcd, 1, 44, 0xa3, b'a', b'b', b'c',
        ];
        frame.extend_from_slice(&[2, 0x91, 6]);
        let inv = [
            0x96, 1, 0x80, 0xc0, 0xa7, b'M', b'e', b'a', b's', b'u', b'r', b'e', 0x92, 5, 0xa2, b'x', b'y', 0x90,
        ];
        frame.push(inv.len() as u8);
        frame.extend_from_slice(&inv);
        frame.extend_from_slice(&[4, 0x93, 7, 0xc0, 0xc2]);
        frame.extend_from_slice(&[7, 0x95, 3, 0x80, 0xa1, b'2', 3, 0xc0]);
        let mut out = Vec::new();
        decode_msgpack(&frame, &mut out).unwrap();
        assert_eq!(
            out,
            vec![
                Incoming::Completion {
                    ticks: 300,
                    payload_len: 3
                },
                Incoming::Ping,
                Incoming::Measure {
                    ticks: 5,
                    payload_len: 2
                },
                Incoming::Close(None),
                Incoming::Completion {
                    ticks: 0,
                    payload_len: 0
                },
            ]
        );
    }

    #[test]
    fn raw_frames() {
        let e = Encoder::new(Mode::Raw, 2);
        let Frame::Binary(b) = e.broadcast_measure(77) else {
            panic!()
        };
        assert_eq!(
            decode_raw(&b).unwrap(),
            Incoming::Measure {
                ticks: 77,
                payload_len: 2
            }
        );
        let Frame::Binary(b) = e.echo(0, 78) else { panic!() };
        assert_eq!(
            decode_raw(&b).unwrap(),
            Incoming::Completion {
                ticks: 78,
                payload_len: 2
            }
        );
    }

    #[test]
    fn socketio_packets() {
        let e = Encoder::new(Mode::SocketIo, 3);
        assert_eq!(e.echo(1, 42), Frame::Text("42[\"echo\",42,\"abc\"]".into()));
        assert_eq!(
            e.broadcast_measure(7),
            Frame::Text("42[\"broadcast\",7,\"abc\"]".into())
        );
        assert_eq!(e.pong(), Some(Frame::Text("3".into())));
        assert_eq!(Encoder::new(Mode::Json, 1).pong(), None);
        assert_eq!(e.ping(), None);
        assert_eq!(
            decode_socketio(b"42[\"echo\",42,\"abc\"]").unwrap(),
            Incoming::Completion {
                ticks: 42,
                payload_len: 3
            }
        );
        assert_eq!(
            decode_socketio(b"42[\"measure\",9007199254740991,\"xy\"]").unwrap(),
            Incoming::Measure {
                ticks: 9_007_199_254_740_991,
                payload_len: 2
            }
        );
        assert_eq!(decode_socketio(b"2").unwrap(), Incoming::EngineIoPing);
        assert_eq!(decode_socketio(b"40{\"sid\":\"x\"}").unwrap(), Incoming::Other);
        assert_eq!(decode_socketio(b"42[\"other\",1]").unwrap(), Incoming::Other);
        assert!(matches!(decode_socketio(b"41").unwrap(), Incoming::Close(_)));
        assert!(matches!(
            decode_socketio(b"44{\"message\":\"no\"}").unwrap(),
            Incoming::Close(Some(m)) if m.contains("no")
        ));
        assert!(decode_socketio(b"42[\"echo\"]").is_err());
        assert!(decode_socketio(b"42[\"echo\",x,\"a\"]").is_err());
    }

    #[test]
    fn handshake() {
        assert_eq!(handshake_response(b"{}\x1erest").unwrap(), b"rest");
        assert!(handshake_response(b"{\"error\":\"no\"}\x1e").is_err());
    }
}
