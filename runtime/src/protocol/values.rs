//! Value types that each hub protocol represents in its own way, as .NET SignalR does.
//!
//! | type | JSON | MessagePack |
//! |---|---|---|
//! | [`Binary`] (`byte[]`) | base64 string | `bin` |
//! | [`Timestamp`] (`DateTime`, UTC) | ISO-8601 string | timestamp extension (type −1) |
//! | [`Dynamic`] (any value) | the JSON as it came | the MessagePack value as it came |

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::de::{self, Deserializer, Visitor};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};

/// Bytes: a base64 string in JSON, `bin` in MessagePack (like .NET's `byte[]`).
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Binary(pub Vec<u8>);

impl fmt::Debug for Binary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Binary({:02x?})", self.0)
    }
}

impl From<Vec<u8>> for Binary {
    fn from(bytes: Vec<u8>) -> Self {
        Binary(bytes)
    }
}

impl Serialize for Binary {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&BASE64.encode(&self.0))
        } else {
            serializer.serialize_bytes(&self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Binary {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BinaryVisitor;
        impl<'de> Visitor<'de> for BinaryVisitor {
            type Value = Binary;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("bytes or a base64 string")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Binary, E> {
                Ok(Binary(v.to_vec()))
            }
            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Binary, E> {
                Ok(Binary(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Binary, E> {
                BASE64
                    .decode(v)
                    .map(Binary)
                    .map_err(|_| E::custom("invalid base64 string"))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Binary, A::Error> {
                let mut bytes = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
                while let Some(b) = seq.next_element::<u8>()? {
                    bytes.push(b);
                }
                Ok(Binary(bytes))
            }
        }
        if deserializer.is_human_readable() {
            deserializer.deserialize_any(BinaryVisitor)
        } else {
            deserializer.deserialize_byte_buf(BinaryVisitor)
        }
    }
}

/// A UTC instant: an ISO-8601 string in JSON (`2000-01-01T00:00:00Z`), the timestamp
/// extension type −1 in MessagePack (like .NET's `DateTime`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    seconds: i64,
    nanos: u32,
}

impl Timestamp {
    /// The instant `seconds` (and `nanos`) after 1970-01-01T00:00:00Z.
    pub fn from_unix(seconds: i64, nanos: u32) -> Option<Self> {
        (nanos < 1_000_000_000).then_some(Self { seconds, nanos })
    }

    /// Seconds since 1970-01-01T00:00:00Z.
    pub fn unix_seconds(self) -> i64 {
        self.seconds
    }

    /// Nanoseconds within the second.
    pub fn subsec_nanos(self) -> u32 {
        self.nanos
    }

    /// The current time.
    pub fn now() -> Self {
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Self {
            seconds: since.as_secs() as i64,
            nanos: since.subsec_nanos(),
        }
    }

    /// Formats as ISO-8601 in UTC the way .NET writes a UTC `DateTime`: seconds always,
    /// a fraction only when there is one, without trailing zeros, and `Z`.
    pub fn to_iso8601(self) -> String {
        let days = self.seconds.div_euclid(86_400);
        let secs = self.seconds.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        let mut out = format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
            secs / 3600,
            secs % 3600 / 60,
            secs % 60
        );
        if self.nanos > 0 {
            let fraction = format!("{:09}", self.nanos);
            out.push('.');
            out.push_str(fraction.trim_end_matches('0'));
        }
        out.push('Z');
        out
    }

    /// Parses an ISO-8601 date-time: `YYYY-MM-DDTHH:MM:SS[.fraction][Z|±HH:MM]` (no offset
    /// means UTC) or a bare date.
    pub fn parse_iso8601(text: &str) -> Option<Self> {
        let b = text.as_bytes();
        let num = |range: std::ops::Range<usize>| -> Option<i64> {
            let s = text.get(range)?;
            s.bytes().all(|c| c.is_ascii_digit()).then(|| s.parse().ok())?
        };
        let year = num(0..4)?;
        if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
            return None;
        }
        let (month, day) = (num(5..7)?, num(8..10)?);
        if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
            return None;
        }
        let mut seconds = days_from_civil(year, month, day) * 86_400;
        let mut nanos = 0u32;
        if b.len() > 10 {
            if !matches!(b[10], b'T' | b't' | b' ') || b.get(13) != Some(&b':') {
                return None;
            }
            let (h, mi) = (num(11..13)?, num(14..16)?);
            let mut pos = 16;
            let mut s = 0;
            if b.get(16) == Some(&b':') {
                s = num(17..19)?;
                pos = 19;
            }
            if h > 23 || mi > 59 || s > 59 {
                return None;
            }
            seconds += h * 3600 + mi * 60 + s;
            if b.get(pos) == Some(&b'.') {
                let start = pos + 1;
                let mut end = start;
                while end < b.len() && b[end].is_ascii_digit() {
                    end += 1;
                }
                if end == start {
                    return None;
                }
                let digits = &text[start..end.min(start + 9)];
                nanos = digits.parse::<u32>().ok()? * 10u32.pow(9 - digits.len() as u32);
                pos = end;
            }
            match &text[pos..] {
                "" | "Z" | "z" => {}
                offset => {
                    let sign = match offset.as_bytes()[0] {
                        b'+' => 1,
                        b'-' => -1,
                        _ => return None,
                    };
                    let o = offset.as_bytes();
                    if o.len() != 6 || o[3] != b':' {
                        return None;
                    }
                    let oh: i64 = offset[1..3].parse().ok()?;
                    let om: i64 = offset[4..6].parse().ok()?;
                    seconds -= sign * (oh * 3600 + om * 60);
                }
            }
        }
        Some(Self { seconds, nanos })
    }

    /// The MessagePack timestamp extension payload (4, 8 or 12 bytes).
    fn to_ext(self) -> Vec<u8> {
        if self.seconds >= 0 && self.seconds >> 34 == 0 {
            let packed = (u64::from(self.nanos) << 34) | self.seconds as u64;
            if packed >> 32 == 0 {
                (packed as u32).to_be_bytes().to_vec()
            } else {
                packed.to_be_bytes().to_vec()
            }
        } else {
            let mut out = self.nanos.to_be_bytes().to_vec();
            out.extend_from_slice(&self.seconds.to_be_bytes());
            out
        }
    }

    fn from_ext(data: &[u8]) -> Option<Self> {
        match data.len() {
            4 => Some(Self {
                seconds: i64::from(u32::from_be_bytes(data.try_into().ok()?)),
                nanos: 0,
            }),
            8 => {
                let packed = u64::from_be_bytes(data.try_into().ok()?);
                Self::from_unix((packed & ((1 << 34) - 1)) as i64, (packed >> 34) as u32)
            }
            12 => Self::from_unix(
                i64::from_be_bytes(data[4..].try_into().ok()?),
                u32::from_be_bytes(data[..4].try_into().ok()?),
            ),
            _ => None,
        }
    }
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// rmp-serde's name for a MessagePack extension value, serialized as `(type, bytes)`.
const EXT: &str = "_ExtStruct";
const TIMESTAMP_EXT: i8 = -1;

struct ExtBytes<'a>(&'a [u8]);

impl Serialize for ExtBytes<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&self.to_iso8601())
        } else {
            let data = self.to_ext();
            serializer.serialize_newtype_struct(EXT, &(TIMESTAMP_EXT, ExtBytes(&data)))
        }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TimestampVisitor;
        impl<'de> Visitor<'de> for TimestampVisitor {
            type Value = Timestamp;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an ISO-8601 date-time or a MessagePack timestamp")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Timestamp, E> {
                Timestamp::parse_iso8601(v).ok_or_else(|| E::custom("invalid ISO-8601 date-time"))
            }
            fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Timestamp, D::Error> {
                let (tag, data): (i8, ExtData) = Deserialize::deserialize(d)?;
                if tag != TIMESTAMP_EXT {
                    return Err(de::Error::custom(format!("extension type {tag} is not a timestamp")));
                }
                Timestamp::from_ext(&data.0).ok_or_else(|| de::Error::custom("invalid timestamp extension"))
            }
        }
        if deserializer.is_human_readable() {
            deserializer.deserialize_str(TimestampVisitor)
        } else {
            deserializer.deserialize_newtype_struct(EXT, TimestampVisitor)
        }
    }
}

struct ExtData(Vec<u8>);

impl<'de> Deserialize<'de> for ExtData {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Binary::deserialize(deserializer).map(|b| ExtData(b.0))
    }
}

/// Any value, kept in the form it arrived in, so that echoing or forwarding it loses nothing
/// (MessagePack `bin` and timestamps stay what they are; JSON text stays as written).
///
/// When a value crosses protocols (a JSON client's argument broadcast to MessagePack
/// clients), it is converted: `bin` becomes base64 and timestamps ISO-8601 strings in JSON.
#[derive(Clone)]
pub enum Dynamic {
    /// JSON text.
    Json(Box<serde_json::value::RawValue>),
    /// A MessagePack value.
    MessagePack(rmpv::Value),
}

impl fmt::Debug for Dynamic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dynamic::Json(raw) => write!(f, "Json({})", raw.get()),
            Dynamic::MessagePack(value) => write!(f, "MessagePack({value})"),
        }
    }
}

impl PartialEq for Dynamic {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Dynamic::Json(a), Dynamic::Json(b)) => a.get() == b.get(),
            (Dynamic::MessagePack(a), Dynamic::MessagePack(b)) => a == b,
            _ => self.to_json() == other.to_json(),
        }
    }
}

impl Dynamic {
    /// The value as a `serde_json::Value` (MessagePack `bin` as base64, timestamps as
    /// ISO-8601 strings).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Dynamic::Json(raw) => serde_json::from_str(raw.get()).unwrap_or(serde_json::Value::Null),
            Dynamic::MessagePack(value) => msgpack_to_json(value),
        }
    }
}

fn msgpack_to_json(value: &rmpv::Value) -> serde_json::Value {
    use serde_json::Value as J;
    match value {
        rmpv::Value::Nil => J::Null,
        rmpv::Value::Boolean(b) => J::Bool(*b),
        rmpv::Value::Integer(i) => i
            .as_i64()
            .map(J::from)
            .or_else(|| i.as_u64().map(J::from))
            .unwrap_or(J::Null),
        rmpv::Value::F32(f) => serde_json::Number::from_f64(f64::from(*f)).map_or(J::Null, J::Number),
        rmpv::Value::F64(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
        rmpv::Value::String(s) => J::String(
            s.as_str()
                .map_or_else(|| String::from_utf8_lossy(s.as_bytes()).into_owned(), str::to_owned),
        ),
        rmpv::Value::Binary(b) => J::String(BASE64.encode(b)),
        rmpv::Value::Array(items) => J::Array(items.iter().map(msgpack_to_json).collect()),
        rmpv::Value::Map(entries) => J::Object(
            entries
                .iter()
                .map(|(k, v)| {
                    let key = match k {
                        rmpv::Value::String(s) => s.as_str().unwrap_or_default().to_owned(),
                        other => other.to_string(),
                    };
                    (key, msgpack_to_json(v))
                })
                .collect(),
        ),
        rmpv::Value::Ext(TIMESTAMP_EXT, data) => {
            Timestamp::from_ext(data).map_or(J::Null, |t| J::String(t.to_iso8601()))
        }
        rmpv::Value::Ext(_, data) => J::String(BASE64.encode(data)),
    }
}

impl Serialize for Dynamic {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match (self, serializer.is_human_readable()) {
            (Dynamic::Json(raw), true) => raw.serialize(serializer),
            (Dynamic::MessagePack(value), false) => value.serialize(serializer),
            (Dynamic::Json(raw), false) => {
                let value: serde_json::Value = serde_json::from_str(raw.get()).map_err(serde::ser::Error::custom)?;
                value.serialize(serializer)
            }
            (Dynamic::MessagePack(value), true) => msgpack_to_json(value).serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Dynamic {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            Box::<serde_json::value::RawValue>::deserialize(deserializer).map(Dynamic::Json)
        } else {
            rmpv::Value::deserialize(deserializer).map(Dynamic::MessagePack)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_formats_like_dotnet() {
        let t = Timestamp::parse_iso8601("2000-01-01T00:00:00Z").unwrap();
        assert_eq!(t.unix_seconds(), 946_684_800);
        assert_eq!(t.to_iso8601(), "2000-01-01T00:00:00Z");
        let t = Timestamp::parse_iso8601("2024-02-29T23:59:58.120+01:00").unwrap();
        assert_eq!(t.to_iso8601(), "2024-02-29T22:59:58.12Z");
        assert!(Timestamp::parse_iso8601("2023-02-29T00:00:00Z").is_none());
        assert!(Timestamp::parse_iso8601("nonsense").is_none());
        assert!(Timestamp::parse_iso8601("2000-01-01T00:00:00.Z").is_none());
    }

    #[test]
    fn timestamp_msgpack_extension_round_trips() {
        for (s, n) in [(0, 0), (946_684_800, 0), (946_684_800, 5), (1 << 35, 1), (-5, 7)] {
            let t = Timestamp::from_unix(s, n).unwrap();
            let bytes = rmp_serde::to_vec_named(&t).unwrap();
            assert!(
                matches!(bytes[0], 0xd6 | 0xd7 | 0xc7),
                "timestamp ext marker for {s}: {bytes:02x?}"
            );
            let back: Timestamp = rmp_serde::from_slice(&bytes).unwrap();
            assert_eq!(back, t);
            let dynamic: Dynamic = rmp_serde::from_slice(&bytes).unwrap();
            assert_eq!(rmp_serde::to_vec_named(&dynamic).unwrap(), bytes);
        }
        // 2000-01-01T00:00:00Z as the 4-byte form: d6 ff 38 6d 43 80
        let bytes = rmp_serde::to_vec_named(&Timestamp::from_unix(946_684_800, 0).unwrap()).unwrap();
        assert_eq!(bytes, [0xd6, 0xff, 0x38, 0x6d, 0x43, 0x80]);
    }

    #[test]
    fn binary_is_base64_in_json_and_bin_in_msgpack() {
        let b = Binary(vec![1, 2, 3]);
        assert_eq!(serde_json::to_string(&b).unwrap(), "\"AQID\"");
        assert_eq!(rmp_serde::to_vec_named(&b).unwrap(), [0xc4, 3, 1, 2, 3]);
        assert_eq!(serde_json::from_str::<Binary>("\"AQID\"").unwrap(), b);
        assert_eq!(rmp_serde::from_slice::<Binary>(&[0xc4, 3, 1, 2, 3]).unwrap(), b);
    }

    #[test]
    fn dynamic_converts_across_protocols() {
        let bytes = rmp_serde::to_vec_named(&(Binary(vec![1, 2, 3]), Timestamp::from_unix(0, 0).unwrap())).unwrap();
        let d: Dynamic = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(serde_json::to_string(&d).unwrap(), r#"["AQID","1970-01-01T00:00:00Z"]"#);
        let j: Dynamic = serde_json::from_str(r#"{"a": [1, "x"]}"#).unwrap();
        assert_eq!(serde_json::to_string(&j).unwrap(), r#"{"a": [1, "x"]}"#);
        let back: rmpv::Value = rmp_serde::from_slice(&rmp_serde::to_vec_named(&j).unwrap()).unwrap();
        assert_eq!(back.to_string(), r#"{"a": [1, "x"]}"#);
    }
}
