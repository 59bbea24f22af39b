//! MessagePack encoding as MessagePack-CSharp does it for the service protocol: the smallest
//! form for every integer, length and header, `str8` for 32–255 byte strings, `bin` for
//! payloads, nil for absent strings. Writing to a `Vec` cannot fail.
//!
//! MessagePack lengths are 32-bit. Nothing this large is sent (a peer rejects any record over
//! 2 GiB), so a longer value is written with its length clamped rather than with a panic.

use bytes::Bytes;
use rmp::Marker;

fn len32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

fn marker(out: &mut Vec<u8>, marker: Marker) {
    out.push(marker.to_u8());
}

/// A header with a fix form for small lengths, then 16-bit and 32-bit forms.
fn header(out: &mut Vec<u8>, len: usize, fix_limit: usize, fix: Marker, m16: Marker, m32: Marker) {
    if len < fix_limit {
        marker(out, fix);
    } else if let Ok(len) = u16::try_from(len) {
        marker(out, m16);
        out.extend_from_slice(&len.to_be_bytes());
    } else {
        marker(out, m32);
        out.extend_from_slice(&len32(len).to_be_bytes());
    }
}

pub(super) fn array(out: &mut Vec<u8>, len: usize) {
    let fix = Marker::FixArray(len.min(15) as u8);
    header(out, len, 16, fix, Marker::Array16, Marker::Array32);
}

pub(super) fn map(out: &mut Vec<u8>, len: usize) {
    let fix = Marker::FixMap(len.min(15) as u8);
    header(out, len, 16, fix, Marker::Map16, Marker::Map32);
}

pub(super) fn nil(out: &mut Vec<u8>) {
    marker(out, Marker::Null);
}

pub(super) fn bool(out: &mut Vec<u8>, value: bool) {
    marker(out, if value { Marker::True } else { Marker::False });
}

/// An unsigned integer in its smallest form.
pub(super) fn uint(out: &mut Vec<u8>, value: u64) {
    if value < 128 {
        out.push(value as u8);
    } else if let Ok(v) = u8::try_from(value) {
        marker(out, Marker::U8);
        out.push(v);
    } else if let Ok(v) = u16::try_from(value) {
        marker(out, Marker::U16);
        out.extend_from_slice(&v.to_be_bytes());
    } else if let Ok(v) = u32::try_from(value) {
        marker(out, Marker::U32);
        out.extend_from_slice(&v.to_be_bytes());
    } else {
        marker(out, Marker::U64);
        out.extend_from_slice(&value.to_be_bytes());
    }
}

/// A signed integer in its smallest form: non-negative values as unsigned, as
/// MessagePack-CSharp's `Write(int)` does.
pub(super) fn int(out: &mut Vec<u8>, value: i32) {
    if let Ok(v) = u64::try_from(value) {
        uint(out, v);
    } else if value >= -32 {
        out.push(value as i8 as u8);
    } else if let Ok(v) = i8::try_from(value) {
        marker(out, Marker::I8);
        out.push(v as u8);
    } else if let Ok(v) = i16::try_from(value) {
        marker(out, Marker::I16);
        out.extend_from_slice(&v.to_be_bytes());
    } else {
        marker(out, Marker::I32);
        out.extend_from_slice(&value.to_be_bytes());
    }
}

/// An `Int32` in its fixed five-byte form (MessagePack-CSharp's `WriteInt32`).
pub(super) fn int32_fixed(out: &mut Vec<u8>, value: i32) {
    marker(out, Marker::I32);
    out.extend_from_slice(&value.to_be_bytes());
}

pub(super) fn str(out: &mut Vec<u8>, value: &str) {
    let len = value.len();
    if len < 32 {
        marker(out, Marker::FixStr(len as u8));
    } else if let Ok(len) = u8::try_from(len) {
        marker(out, Marker::Str8);
        out.push(len);
    } else {
        header(out, len, 0, Marker::Str16, Marker::Str16, Marker::Str32);
    }
    out.extend_from_slice(value.as_bytes());
}

/// A string, or nil for `None`.
pub(super) fn opt_str(out: &mut Vec<u8>, value: Option<&str>) {
    match value {
        Some(value) => str(out, value),
        None => nil(out),
    }
}

pub(super) fn bin(out: &mut Vec<u8>, value: &[u8]) {
    let len = value.len();
    if let Ok(len) = u8::try_from(len) {
        marker(out, Marker::Bin8);
        out.push(len);
    } else {
        header(out, len, 0, Marker::Bin16, Marker::Bin16, Marker::Bin32);
    }
    out.extend_from_slice(value);
}

pub(super) fn str_array(out: &mut Vec<u8>, items: &[String]) {
    array(out, items.len());
    for item in items {
        str(out, item);
    }
}

/// A map of protocol names to payloads.
pub(super) fn payloads(out: &mut Vec<u8>, payloads: &[(String, Bytes)]) {
    map(out, payloads.len());
    for (protocol, payload) in payloads {
        str(out, protocol);
        bin(out, payload);
    }
}

pub(super) fn claims(out: &mut Vec<u8>, claims: &[(String, String)]) {
    map(out, claims.len());
    for (kind, value) in claims {
        str(out, kind);
        str(out, value);
    }
}

pub(super) fn headers(out: &mut Vec<u8>, headers: &[(String, Vec<String>)]) {
    map(out, headers.len());
    for (name, values) in headers {
        str(out, name);
        str_array(out, values);
    }
}
