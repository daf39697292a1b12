//! Ephemeral payloads as automerge-repo writes them: CBOR (its cbor-x
//! `Encoder` with `tagUint8Array: false, useRecords: false`), so presence
//! and cursor messages pass between automerge-repo and holdfast clients.
//!
//! JS to CBOR: `undefined` and `null` as the simple values, booleans,
//! numbers (32-bit integers as integers, others as 64-bit floats), strings,
//! `Uint8Array`s as byte strings, arrays, `Map`s and plain objects as maps,
//! `Date`s as tag 1 (seconds since the epoch). CBOR to JS: the same back;
//! a map whose keys are all strings becomes a plain object, any other a
//! `Map`; integers beyond 2^53 become `BigInt`s; other tags give their
//! content. Nesting is bounded both ways ([`MAX_DEPTH`]): a cyclic object
//! or a crafted payload gets an error, not a stack overflow.

use js_sys::{Array, Date, Map, Object, Uint8Array};
use minicbor::data::{Tag, Type};
use minicbor::{Decoder, Encoder};
use wasm_bindgen::{JsCast, JsValue};

/// How deeply arrays and maps may nest.
pub const MAX_DEPTH: usize = 64;

/// `value` as CBOR.
pub fn encode(value: &JsValue) -> Result<Vec<u8>, String> {
    let mut e = Encoder::new(Vec::new());
    put(&mut e, value, 0)?;
    Ok(e.into_writer())
}

/// CBOR `bytes` as a JS value; the whole input must be one value.
pub fn decode(bytes: &[u8]) -> Result<JsValue, String> {
    let mut d = Decoder::new(bytes);
    let v = get(&mut d, 0)?;
    if d.position() != bytes.len() {
        return Err(format!(
            "{} bytes after the CBOR value",
            bytes.len() - d.position()
        ));
    }
    Ok(v)
}

fn put(e: &mut Encoder<Vec<u8>>, v: &JsValue, depth: usize) -> Result<(), String> {
    let w = |r: Result<
        &mut Encoder<Vec<u8>>,
        minicbor::encode::Error<std::convert::Infallible>,
    >| { r.map(drop).map_err(|e| e.to_string()) };
    if depth > MAX_DEPTH {
        return Err(format!("nested more than {MAX_DEPTH} deep (or cyclic)"));
    }
    if v.is_undefined() {
        return w(e.undefined());
    }
    if v.is_null() {
        return w(e.null());
    }
    if let Some(b) = v.as_bool() {
        return w(e.bool(b));
    }
    if let Some(n) = v.as_f64() {
        // As cbor-x writes numbers: integers in 32 bits (unsigned, or
        // negative signed) as integers, every other number as a 64-bit
        // float. (cbor-x reads a 64-bit integer back as a BigInt.)
        return if n.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&n) {
            w(e.u32(n as u32))
        } else if n.fract() == 0.0 && (f64::from(i32::MIN)..0.0).contains(&n) {
            w(e.i32(n as i32))
        } else {
            w(e.f64(n))
        };
    }
    if let Some(s) = v.as_string() {
        return w(e.str(&s));
    }
    if v.is_bigint() {
        let b = js_sys::BigInt::from(v.clone());
        let i = i64::try_from(b.clone()).map(|i| w(e.i64(i)));
        let u = u64::try_from(b).map(|u| w(e.u64(u)));
        return i
            .or(u)
            .unwrap_or_else(|_| Err("a BigInt beyond 64 bits".into()));
    }
    if let Some(b) = v.dyn_ref::<Uint8Array>() {
        return w(e.bytes(&b.to_vec()));
    }
    if let Some(d) = v.dyn_ref::<Date>() {
        w(e.tag(Tag::new(1)))?;
        return w(e.f64(d.get_time() / 1000.0));
    }
    if Array::is_array(v) {
        let a: &Array = v.unchecked_ref();
        w(e.array(u64::from(a.length())))?;
        for x in a.iter() {
            put(e, &x, depth + 1)?;
        }
        return Ok(());
    }
    if let Some(m) = v.dyn_ref::<Map>() {
        w(e.map(u64::from(m.size())))?;
        let mut r = Ok(());
        m.for_each(&mut |val, key| {
            if r.is_ok() {
                r = put(e, &key, depth + 1).and_then(|()| put(e, &val, depth + 1));
            }
        });
        return r;
    }
    if v.is_function() || v.is_symbol() {
        return Err("a function or symbol has no CBOR form".into());
    }
    let entries = Object::entries(v.unchecked_ref());
    w(e.map(u64::from(entries.length())))?;
    for kv in entries.iter() {
        let kv: Array = kv.unchecked_into();
        put(e, &kv.get(0), depth + 1)?;
        put(e, &kv.get(1), depth + 1)?;
    }
    Ok(())
}

fn get(d: &mut Decoder<'_>, depth: usize) -> Result<JsValue, String> {
    let err = |e: minicbor::decode::Error| e.to_string();
    if depth > MAX_DEPTH {
        return Err(format!("nested more than {MAX_DEPTH} deep"));
    }
    Ok(match d.datatype().map_err(err)? {
        Type::Bool => d.bool().map_err(err)?.into(),
        Type::Null => d.null().map(|()| JsValue::NULL).map_err(err)?,
        Type::Undefined => d.undefined().map(|()| JsValue::UNDEFINED).map_err(err)?,
        Type::U8 | Type::U16 | Type::U32 | Type::U64 => number_u(d.u64().map_err(err)?),
        Type::I8 | Type::I16 | Type::I32 | Type::I64 => number_i(d.i64().map_err(err)?),
        Type::Int => {
            let i = d.int().map_err(err)?;
            match i64::try_from(i) {
                Ok(n) => number_i(n),
                Err(_) => js_sys::BigInt::from(i128::from(i)).into(),
            }
        }
        Type::F16 | Type::F32 | Type::F64 => d.f64().map_err(err)?.into(),
        Type::String => d.str().map_err(err)?.into(),
        Type::StringIndef => {
            let mut s = String::new();
            for part in d.str_iter().map_err(err)? {
                s.push_str(part.map_err(err)?);
            }
            s.into()
        }
        Type::Bytes => Uint8Array::from(d.bytes().map_err(err)?).into(),
        Type::BytesIndef => {
            let mut b = Vec::new();
            for part in d.bytes_iter().map_err(err)? {
                b.extend_from_slice(part.map_err(err)?);
            }
            Uint8Array::from(&b[..]).into()
        }
        Type::Array | Type::ArrayIndef => {
            let len = d.array().map_err(err)?;
            let out = Array::new();
            let mut i = 0u64;
            while len.is_none_or(|n| i < n) {
                if len.is_none() && d.datatype().map_err(err)? == Type::Break {
                    d.skip().map_err(err)?;
                    break;
                }
                out.push(&get(d, depth + 1)?);
                i += 1;
            }
            out.into()
        }
        Type::Map | Type::MapIndef => {
            let len = d.map().map_err(err)?;
            let mut pairs = Vec::new();
            let mut i = 0u64;
            while len.is_none_or(|n| i < n) {
                if len.is_none() && d.datatype().map_err(err)? == Type::Break {
                    d.skip().map_err(err)?;
                    break;
                }
                let k = get(d, depth + 1)?;
                pairs.push((k, get(d, depth + 1)?));
                i += 1;
            }
            if pairs.iter().all(|(k, _)| k.is_string()) {
                let o = Object::new();
                for (k, v) in pairs {
                    js_sys::Reflect::define_property(&o, &k, &data_property(&v))
                        .map_err(|e| format!("{e:?}"))?;
                }
                o.into()
            } else {
                let m = Map::new();
                for (k, v) in pairs {
                    m.set(&k, &v);
                }
                m.into()
            }
        }
        Type::Tag => {
            let tag = d.tag().map_err(err)?;
            let v = get(d, depth + 1)?;
            match (tag.as_u64(), v.as_f64()) {
                (1, Some(secs)) => Date::new(&JsValue::from(secs * 1000.0)).into(),
                _ => v,
            }
        }
        Type::Simple => {
            d.simple().map_err(err)?;
            JsValue::UNDEFINED
        }
        t => return Err(format!("unexpected CBOR {t:?}")),
    })
}

/// A plain, writable, enumerable property (so that a `__proto__` key is a
/// key, not the prototype).
fn data_property(v: &JsValue) -> Object {
    let d = Object::new();
    for (k, val) in [
        ("value", v.clone()),
        ("writable", true.into()),
        ("enumerable", true.into()),
        ("configurable", true.into()),
    ] {
        let _ = js_sys::Reflect::set(&d, &k.into(), &val);
    }
    d
}

fn number_u(n: u64) -> JsValue {
    if n <= 1 << 53 {
        JsValue::from(n as f64)
    } else {
        js_sys::BigInt::from(n).into()
    }
}

fn number_i(n: i64) -> JsValue {
    if n.unsigned_abs() <= 1 << 53 {
        JsValue::from(n as f64)
    } else {
        js_sys::BigInt::from(n).into()
    }
}
