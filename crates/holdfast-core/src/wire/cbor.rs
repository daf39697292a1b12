//! A bounded CBOR reader: any value into a [`Val`], or skipped, whatever its
//! length encoding, with nesting ([`MAX_NESTING`]) and item count
//! ([`MAX_ITEMS`]) bounded and no panic on any input.

use minicbor::data::Type;
use minicbor::Decoder;

use super::error::DecodeError;
use super::limits::{MAX_ITEMS, MAX_NESTING};

/// A decoded CBOR value of a field holdfast reads.
#[derive(Debug)]
pub(super) enum Val {
    Uint(u64),
    NegInt,
    Float(f64),
    Bytes(Vec<u8>),
    Text(String),
    Array(Vec<Val>),
    Map(Vec<(Val, Val)>),
    Bool(bool),
    /// `null` or `undefined`: treated as an absent field.
    Absent,
    /// Anything else (simple values, unknown tags): only ever a type error.
    Other,
}

impl Val {
    pub(super) fn is_absent(&self) -> bool {
        matches!(self, Val::Absent)
    }
}

/// Tag cbor-x uses for a `Uint8Array` when `tagUint8Array` is on (RFC 8746).
const TAG_UINT8_ARRAY: u64 = 64;
/// RFC 8949 self-described CBOR: a no-op wrapper.
pub(super) const TAG_SELF_DESCRIBED: u64 = 55799;

fn check_depth(depth: usize) -> Result<(), DecodeError> {
    if depth > MAX_NESTING {
        Err(DecodeError::TooDeep { max: MAX_NESTING })
    } else {
        Ok(())
    }
}

/// Consumes a `break` (0xff) if it is next; used to end indefinite items.
fn at_break(d: &mut Decoder<'_>) -> Result<bool, DecodeError> {
    if d.datatype()? == Type::Break {
        d.set_position(d.position() + 1);
        Ok(true)
    } else {
        Ok(false)
    }
}

/// Calls `item` for each element of an array or each key/value pair of a map
/// (`pairs`) whose header is next, definite or indefinite length.
pub(super) fn for_each_item<'b>(
    d: &mut Decoder<'b>,
    len: Option<u64>,
    mut item: impl FnMut(&mut Decoder<'b>) -> Result<(), DecodeError>,
) -> Result<(), DecodeError> {
    match len {
        // Each item consumes at least one byte, so a huge declared length
        // runs into the end of the frame rather than looping for long.
        Some(n) => {
            for _ in 0..n {
                item(d)?;
            }
        }
        None => {
            while !at_break(d)? {
                item(d)?;
            }
        }
    }
    Ok(())
}

pub(super) fn read_text(d: &mut Decoder<'_>) -> Result<String, DecodeError> {
    let mut s = String::new();
    for chunk in d.str_iter()? {
        s.push_str(chunk?);
    }
    Ok(s)
}

fn read_bytes(d: &mut Decoder<'_>) -> Result<Vec<u8>, DecodeError> {
    let mut v = Vec::new();
    for chunk in d.bytes_iter()? {
        v.extend_from_slice(chunk?);
    }
    Ok(v)
}

/// Reads any value into a [`Val`]; `budget` counts down [`MAX_ITEMS`].
pub(super) fn read_val(
    d: &mut Decoder<'_>,
    depth: usize,
    budget: &mut usize,
) -> Result<Val, DecodeError> {
    check_depth(depth)?;
    *budget = budget
        .checked_sub(1)
        .ok_or(DecodeError::TooManyItems { max: MAX_ITEMS })?;
    Ok(match d.datatype()? {
        Type::Bool => Val::Bool(d.bool()?),
        Type::Null => {
            d.null()?;
            Val::Absent
        }
        Type::Undefined => {
            d.undefined()?;
            Val::Absent
        }
        Type::U8 | Type::U16 | Type::U32 | Type::U64 => Val::Uint(d.u64()?),
        Type::I8 | Type::I16 | Type::I32 | Type::I64 | Type::Int => {
            d.int()?;
            Val::NegInt
        }
        Type::F16 | Type::F32 | Type::F64 => Val::Float(d.f64()?),
        Type::Bytes | Type::BytesIndef => Val::Bytes(read_bytes(d)?),
        Type::String | Type::StringIndef => Val::Text(read_text(d)?),
        Type::Array | Type::ArrayIndef => {
            let len = d.array()?;
            let mut items = Vec::new();
            for_each_item(d, len, |d| {
                items.push(read_val(d, depth + 1, budget)?);
                Ok(())
            })?;
            Val::Array(items)
        }
        Type::Map | Type::MapIndef => {
            let len = d.map()?;
            let mut entries = Vec::new();
            for_each_item(d, len, |d| {
                let k = read_val(d, depth + 1, budget)?;
                let v = read_val(d, depth + 1, budget)?;
                entries.push((k, v));
                Ok(())
            })?;
            Val::Map(entries)
        }
        Type::Tag => {
            let tag = d.tag()?.as_u64();
            let inner = read_val(d, depth + 1, budget)?;
            match (tag, inner) {
                (TAG_UINT8_ARRAY, b @ Val::Bytes(_)) => b,
                (TAG_SELF_DESCRIBED, v) => v,
                _ => Val::Other,
            }
        }
        Type::Simple => {
            d.simple()?;
            Val::Other
        }
        Type::Break => return Err(DecodeError::Cbor("unexpected break".into())),
        Type::Unknown(b) => {
            return Err(DecodeError::Cbor(format!(
                "reserved initial byte {b:#04x} at {}",
                d.position()
            )))
        }
    })
}

/// Skips any value without keeping it.
pub(super) fn skip_val(d: &mut Decoder<'_>, depth: usize) -> Result<(), DecodeError> {
    check_depth(depth)?;
    match d.datatype()? {
        Type::Array | Type::ArrayIndef => {
            let len = d.array()?;
            for_each_item(d, len, |d| skip_val(d, depth + 1))
        }
        Type::Map | Type::MapIndef => {
            let len = d.map()?;
            for_each_item(d, len, |d| {
                skip_val(d, depth + 1)?;
                skip_val(d, depth + 1)
            })
        }
        Type::Tag => {
            d.tag()?;
            skip_val(d, depth + 1)
        }
        Type::Bytes | Type::BytesIndef => {
            for chunk in d.bytes_iter()? {
                chunk?;
            }
            Ok(())
        }
        Type::String | Type::StringIndef => {
            for chunk in d.str_iter()? {
                chunk?;
            }
            Ok(())
        }
        Type::Break => Err(DecodeError::Cbor("unexpected break".into())),
        Type::Unknown(b) => Err(DecodeError::Cbor(format!(
            "reserved initial byte {b:#04x} at {}",
            d.position()
        ))),
        // Scalars: minicbor skips them without recursion.
        _ => Ok(d.skip()?),
    }
}
