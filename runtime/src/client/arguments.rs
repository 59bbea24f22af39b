//! How a tuple of arguments maps to the `arguments` array of an invocation, both ways.
//!
//! - Outgoing: [`ArgumentList`] makes any `Serialize + Send` value the protocol's
//!   [`Arguments`]: a tuple serializes as a sequence already; `()` (which serde writes as a
//!   unit, `null`) becomes an empty sequence, so `invoke("M", ())` sends `"arguments":[]`.
//! - Incoming: [`decode_arguments`] hands the raw values of an invocation to a tuple type, one
//!   per element, decoding each straight from its protocol's bytes. `()` takes any arguments
//!   (as a TypeScript handler that declares no parameters does); extra arguments are ignored;
//!   missing ones are an error.

use std::sync::Mutex;

use serde::de::{self, DeserializeOwned, DeserializeSeed, Deserializer, SeqAccess, Visitor};
use serde::ser::{self, Serialize, SerializeTuple, Serializer};

use crate::protocol::{Arguments as InvocationArguments, Protocol, ProtocolError, RawValue};

/// The arguments of an outgoing invocation: a tuple (or `()`, written as an empty sequence).
///
/// [`InvocationArguments`] must be `Sync`; the client's API asks only for `Send`, so the
/// value sits behind a mutex, locked once, to be serialized.
pub(crate) struct ArgumentList<A>(Mutex<A>);

impl<A> ArgumentList<A> {
    pub(crate) fn new(arguments: A) -> Self {
        Self(Mutex::new(arguments))
    }
}

impl<A: Serialize + Send + 'static> InvocationArguments for ArgumentList<A> {
    fn serialize_arguments<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let arguments = self.0.lock().unwrap_or_else(|e| e.into_inner());
        arguments.serialize(UnitAsEmpty(serializer))
    }
}

/// A serializer that passes everything through, but a top-level unit becomes `[]`.
struct UnitAsEmpty<S>(S);

macro_rules! forward {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {
        $(
            fn $method(self, $($arg: $ty),*) -> Result<S::Ok, S::Error> {
                self.0.$method($($arg),*)
            }
        )*
    };
}

impl<S: Serializer> Serializer for UnitAsEmpty<S> {
    type Ok = S::Ok;
    type Error = S::Error;
    type SerializeSeq = S::SerializeSeq;
    type SerializeTuple = S::SerializeTuple;
    type SerializeTupleStruct = S::SerializeTupleStruct;
    type SerializeTupleVariant = S::SerializeTupleVariant;
    type SerializeMap = S::SerializeMap;
    type SerializeStruct = S::SerializeStruct;
    type SerializeStructVariant = S::SerializeStructVariant;

    forward! {
        serialize_bool(v: bool);
        serialize_i8(v: i8);
        serialize_i16(v: i16);
        serialize_i32(v: i32);
        serialize_i64(v: i64);
        serialize_i128(v: i128);
        serialize_u8(v: u8);
        serialize_u16(v: u16);
        serialize_u32(v: u32);
        serialize_u64(v: u64);
        serialize_u128(v: u128);
        serialize_f32(v: f32);
        serialize_f64(v: f64);
        serialize_char(v: char);
        serialize_str(v: &str);
        serialize_bytes(v: &[u8]);
        serialize_none();
        serialize_unit_variant(name: &'static str, index: u32, variant: &'static str);
    }

    fn serialize_unit(self) -> Result<S::Ok, S::Error> {
        self.0.serialize_tuple(0)?.end()
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result<S::Ok, S::Error> {
        self.0.serialize_tuple(0)?.end()
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<S::Ok, S::Error> {
        self.0.serialize_some(value)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, name: &'static str, value: &T) -> Result<S::Ok, S::Error> {
        self.0.serialize_newtype_struct(name, value)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        self.0.serialize_newtype_variant(name, index, variant, value)
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<S::SerializeSeq, S::Error> {
        self.0.serialize_seq(len)
    }

    fn serialize_tuple(self, len: usize) -> Result<S::SerializeTuple, S::Error> {
        self.0.serialize_tuple(len)
    }

    fn serialize_tuple_struct(self, name: &'static str, len: usize) -> Result<S::SerializeTupleStruct, S::Error> {
        self.0.serialize_tuple_struct(name, len)
    }

    fn serialize_tuple_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<S::SerializeTupleVariant, S::Error> {
        self.0.serialize_tuple_variant(name, index, variant, len)
    }

    fn serialize_map(self, len: Option<usize>) -> Result<S::SerializeMap, S::Error> {
        self.0.serialize_map(len)
    }

    fn serialize_struct(self, name: &'static str, len: usize) -> Result<S::SerializeStruct, S::Error> {
        self.0.serialize_struct(name, len)
    }

    fn serialize_struct_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<S::SerializeStructVariant, S::Error> {
        self.0.serialize_struct_variant(name, index, variant, len)
    }

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }
}

/// Decodes the arguments of an invocation into the tuple type `A`.
pub(crate) fn decode_arguments<A: DeserializeOwned>(arguments: Vec<RawValue>) -> Result<A, ProtocolError> {
    let human_readable = arguments.first().is_none_or(|a| a.protocol() == Protocol::Json);
    A::deserialize(Arguments {
        values: arguments.into_iter(),
        human_readable,
    })
    .map_err(|e| ProtocolError::InvalidData(e.0))
}

/// Decodes one raw value through a seed (the element type of the tuple being built).
fn decode_seed<'de, T: DeserializeSeed<'de>>(raw: &RawValue, seed: T) -> Result<T::Value, ArgumentError> {
    // Readers over the bytes, not slices: the seed's lifetime is not the local borrow's.
    let bytes: &[u8] = raw.bytes();
    match raw.protocol() {
        Protocol::Json => {
            let mut de = serde_json::Deserializer::from_reader(bytes);
            let value = seed.deserialize(&mut de).map_err(de::Error::custom)?;
            de.end().map_err(de::Error::custom)?;
            Ok(value)
        }
        Protocol::MessagePack => {
            let mut de = rmp_serde::Deserializer::new(bytes);
            seed.deserialize(&mut de).map_err(de::Error::custom)
        }
    }
}

#[derive(Debug)]
struct ArgumentError(String);

impl std::fmt::Display for ArgumentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ArgumentError {}

impl de::Error for ArgumentError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        ArgumentError(msg.to_string())
    }
}

impl ser::Error for ArgumentError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        ArgumentError(msg.to_string())
    }
}

/// The arguments of an invocation, as a deserializer of a sequence.
struct Arguments {
    values: std::vec::IntoIter<RawValue>,
    human_readable: bool,
}

impl<'de> Deserializer<'de> for Arguments {
    type Error = ArgumentError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ArgumentError> {
        visitor.visit_seq(self)
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ArgumentError> {
        visitor.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ArgumentError> {
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ArgumentError> {
        visitor.visit_newtype_struct(self)
    }

    fn is_human_readable(&self) -> bool {
        self.human_readable
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option
        seq tuple tuple_struct map struct enum identifier ignored_any
    }
}

impl<'de> SeqAccess<'de> for Arguments {
    type Error = ArgumentError;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, ArgumentError> {
        match self.values.next() {
            Some(raw) => decode_seed(&raw, seed).map(Some),
            None => Ok(None),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.values.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(protocol: Protocol, value: impl Serialize) -> RawValue {
        RawValue::encode(protocol, &value).unwrap()
    }

    #[test]
    fn arguments_unit_is_an_empty_array() {
        let mut out = Vec::new();
        Protocol::Json
            .write_invocation(&mut out, false, Some("0"), "M", &ArgumentList::new(()), &[])
            .unwrap();
        assert_eq!(
            out,
            b"{\"type\":1,\"invocationId\":\"0\",\"target\":\"M\",\"arguments\":[]}\x1e"
        );
        let mut out = Vec::new();
        Protocol::Json
            .write_invocation(&mut out, false, None, "M", &ArgumentList::new(("a", 1)), &[])
            .unwrap();
        assert_eq!(out, b"{\"type\":1,\"target\":\"M\",\"arguments\":[\"a\",1]}\x1e");
    }

    #[test]
    fn arguments_decode_into_tuples_in_both_protocols() {
        for protocol in Protocol::ALL {
            let args = vec![raw(protocol, "x"), raw(protocol, 7), raw(protocol, vec![1, 2])];
            let (s, n, v): (String, i32, Vec<u8>) = decode_arguments(args.clone()).unwrap();
            assert_eq!((s.as_str(), n, v), ("x", 7, vec![1, 2]));
            // Extra arguments are ignored; `()` takes anything.
            let (s,): (String,) = decode_arguments(args.clone()).unwrap();
            assert_eq!(s, "x");
            let () = decode_arguments(args.clone()).unwrap();
            let () = decode_arguments(Vec::new()).unwrap();
            // Missing or mistyped arguments are errors.
            assert!(decode_arguments::<(String, i32)>(Vec::new()).is_err());
            assert!(decode_arguments::<(i32,)>(args).is_err());
        }
    }

    #[test]
    fn arguments_keep_protocol_specific_types() {
        use crate::values::Binary;
        for protocol in Protocol::ALL {
            let (b,): (Binary,) = decode_arguments(vec![raw(protocol, Binary(vec![1, 2, 3]))]).unwrap();
            assert_eq!(b, Binary(vec![1, 2, 3]));
        }
    }
}
