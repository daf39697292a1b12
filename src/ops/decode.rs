//! Recorded edits in: the op list and its values (module docs of
//! [`super`]) decoded into the core's [`Op`]s and [`NewValue`]s.

use automerge::transaction::Transaction;
use js_sys::{Array, Date, Object, Reflect, Uint8Array};
use serde::Deserialize;
use wasm_bindgen::{JsCast, JsValue};

use super::{OpError, TYPE_KEY};
use holdfast_core::edit::{self, NewValue, Op, Seg};

/// Values nested deeper than this are rejected (guards against cycles).
const MAX_DEPTH: usize = 200;
const MAX_SAFE: f64 = 9_007_199_254_740_991.0;

/// Decode `ops` (the op list above) and apply them to `tx`. On `Err` the
/// transaction holds a partial edit and must be rolled back.
pub fn apply_ops(tx: &mut Transaction<'_>, ops: &JsValue) -> Result<(), OpError> {
    let ops = decode_ops(ops)?;
    edit::apply(tx, &ops)
}

/// The kind of a typed value (`v[Symbol.for("holdfast.type")]`), if `v` is
/// one. `v` must be an object.
fn type_tag(v: &JsValue) -> Result<Option<String>, OpError> {
    TYPE_KEY
        .with(|k| Reflect::get(v, k))
        .map(|t| t.as_string())
        .map_err(|_| bad("cannot read a value's type tag"))
}

/// A path segment: a map key (string) or a list index (number). Decoded
/// with one visitor (serde's `untagged` would try the number first and
/// build a JS `Error` for every string key it then rejects).
enum RawSeg {
    Num(f64),
    Str(String),
}

impl<'de> Deserialize<'de> for RawSeg {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = RawSeg;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a map key (string) or a list index (number)")
            }
            fn visit_f64<E>(self, n: f64) -> Result<RawSeg, E> {
                Ok(RawSeg::Num(n))
            }
            fn visit_i64<E>(self, n: i64) -> Result<RawSeg, E> {
                Ok(RawSeg::Num(n as f64))
            }
            fn visit_u64<E>(self, n: u64) -> Result<RawSeg, E> {
                Ok(RawSeg::Num(n as f64))
            }
            fn visit_str<E>(self, s: &str) -> Result<RawSeg, E> {
                Ok(RawSeg::Str(s.to_owned()))
            }
            fn visit_string<E>(self, s: String) -> Result<RawSeg, E> {
                Ok(RawSeg::Str(s))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize)]
struct RawOp {
    op: String,
    #[serde(default)]
    path: Vec<RawSeg>,
    #[serde(default)]
    key: Option<RawSeg>,
    #[serde(default)]
    index: Option<f64>,
    #[serde(default)]
    del: Option<f64>,
    #[serde(default)]
    count: Option<f64>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    by: Option<f64>,
    #[serde(default)]
    start: Option<f64>,
    #[serde(default)]
    end: Option<f64>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    expand: Option<String>,
    #[serde(default, with = "serde_wasm_bindgen::preserve")]
    value: JsValue,
    #[serde(default, with = "serde_wasm_bindgen::preserve")]
    values: JsValue,
}

fn bad(msg: impl Into<String>) -> OpError {
    OpError::BadOp(msg.into())
}

/// Decode the op list into [`Op`]s.
pub fn decode_ops(ops: &JsValue) -> Result<Vec<Op>, OpError> {
    if !Array::is_array(ops) {
        return Err(bad("the op list must be an array"));
    }
    let raw: Vec<RawOp> =
        serde_wasm_bindgen::from_value(ops.clone()).map_err(|e| bad(e.to_string()))?;
    raw.into_iter()
        .enumerate()
        .map(|(n, r)| decode_op(r).map_err(|e| prefix(n, e)))
        .collect()
}

/// A path from JS: an array of map keys (strings) and list indices.
pub fn decode_path(path: &JsValue) -> Result<Vec<Seg>, OpError> {
    if !Array::is_array(path) {
        return Err(bad("a path must be an array of keys and indices"));
    }
    let raw: Vec<RawSeg> =
        serde_wasm_bindgen::from_value(path.clone()).map_err(|e| bad(e.to_string()))?;
    raw.into_iter().map(seg).collect()
}

fn prefix(n: usize, e: OpError) -> OpError {
    match e {
        OpError::BadOp(m) => OpError::BadOp(format!("op {n}: {m}")),
        other => other,
    }
}

fn index(n: f64, what: &str) -> Result<usize, OpError> {
    if n.is_finite() && n >= 0.0 && n.fract() == 0.0 && n <= MAX_SAFE {
        usize::try_from(n as u64).map_err(|_| bad(format!("{what} {n} is too large")))
    } else {
        Err(bad(format!(
            "{what} must be a non-negative integer, got {n}"
        )))
    }
}

fn seg(s: RawSeg) -> Result<Seg, OpError> {
    match s {
        RawSeg::Str(k) => Ok(Seg::Key(k)),
        RawSeg::Num(n) => Ok(Seg::Index(index(n, "list index")?)),
    }
}

fn decode_op(r: RawOp) -> Result<Op, OpError> {
    let path = r.path.into_iter().map(seg).collect::<Result<Vec<_>, _>>()?;
    let key = || -> Result<Seg, OpError> {
        seg(r
            .key
            .ok_or_else(|| bad(format!("{:?} needs a key", r.op)))?)
    };
    let num = |v: Option<f64>, what: &str| -> Result<usize, OpError> {
        index(
            v.ok_or_else(|| bad(format!("{:?} needs {what}", r.op)))?,
            what,
        )
    };
    Ok(match r.op.as_str() {
        "put" => {
            let key = key()?;
            if r.value.is_undefined() {
                return Err(bad("put needs a value (undefined cannot be stored)"));
            }
            Op::Put {
                path,
                key,
                value: decode_value(&r.value, 0)?,
            }
        }
        "del" => Op::Del {
            path,
            key: key()?,
            count: match r.count {
                None => 1,
                Some(c) => index(c, "count")?,
            },
        },
        "insert" => {
            if !Array::is_array(&r.values) {
                return Err(bad("insert needs an array of values"));
            }
            let values = Array::from(&r.values)
                .iter()
                .map(|v| decode_value(&v, 0))
                .collect::<Result<Vec<_>, _>>()?;
            Op::Insert {
                path,
                index: num(r.index, "index")?,
                values,
            }
        }
        "splice" => Op::Splice {
            path,
            index: num(r.index, "index")?,
            del: match r.del {
                None => 0,
                Some(d) => index(d, "del")?,
            },
            text: r.text.unwrap_or_default(),
        },
        "inc" => {
            let by = r.by.ok_or_else(|| bad("inc needs by"))?;
            if !(by.is_finite() && by.fract() == 0.0 && by.abs() <= MAX_SAFE) {
                return Err(bad(format!("inc by must be a safe integer, got {by}")));
            }
            Op::Inc {
                path,
                key: key()?,
                by: by as i64,
            }
        }
        "mark" | "unmark" => {
            let name = r
                .name
                .clone()
                .ok_or_else(|| bad(format!("{} needs a name", r.op)))?;
            let value = match r.op.as_str() {
                "unmark" => None,
                _ if r.value.is_undefined() => return Err(bad("mark needs a value")),
                _ => Some(decode_value(&r.value, 0)?),
            };
            let expand = match r.expand.as_deref() {
                None | Some("after") => edit::ExpandMark::After,
                Some("before") => edit::ExpandMark::Before,
                Some("both") => edit::ExpandMark::Both,
                Some("none") => edit::ExpandMark::None,
                Some(x) => {
                    return Err(bad(format!(
                        "expand must be \"before\", \"after\", \"both\" or \"none\", got {x:?}"
                    )))
                }
            };
            Op::Mark {
                path,
                start: num(r.start, "start")?,
                end: num(r.end, "end")?,
                name,
                value,
                expand,
            }
        }
        other => return Err(bad(format!("unknown op {other:?}"))),
    })
}

fn number(n: f64) -> NewValue {
    if n.fract() == 0.0 && n.abs() <= MAX_SAFE {
        NewValue::Int(n as i64)
    } else {
        NewValue::F64(n)
    }
}

fn ms(n: f64) -> Result<NewValue, OpError> {
    if n.is_finite() && n.abs() <= MAX_SAFE {
        Ok(NewValue::Timestamp(n as i64))
    } else {
        Err(bad("invalid date"))
    }
}

fn get(obj: &JsValue, key: &str) -> Result<JsValue, OpError> {
    Reflect::get(obj, &JsValue::from_str(key)).map_err(|_| bad(format!("cannot read {key:?}")))
}

/// Convert a JS value to a new Automerge value (see the module docs).
pub fn decode_value(v: &JsValue, depth: usize) -> Result<NewValue, OpError> {
    if depth > MAX_DEPTH {
        return Err(bad("value nested too deeply (a cycle?)"));
    }
    if v.is_null() {
        return Ok(NewValue::Null);
    }
    if v.is_undefined() {
        return Err(bad(
            "undefined cannot be stored (use null or delete the key)",
        ));
    }
    if let Some(b) = v.as_bool() {
        return Ok(NewValue::Bool(b));
    }
    if let Some(s) = v.as_string() {
        return Ok(NewValue::Str(s));
    }
    if let Some(n) = v.as_f64() {
        return Ok(number(n));
    }
    if v.is_bigint() {
        return i64::try_from(v.clone())
            .map(NewValue::Int)
            .map_err(|_| bad("bigint out of the i64 range"));
    }
    if let Some(bytes) = v.dyn_ref::<Uint8Array>() {
        return Ok(NewValue::Bytes(bytes.to_vec()));
    }
    if let Some(d) = v.dyn_ref::<Date>() {
        return ms(d.get_time());
    }
    if Array::is_array(v) {
        return Array::from(v)
            .iter()
            .map(|x| decode_value(&x, depth + 1))
            .collect::<Result<Vec<_>, _>>()
            .map(NewValue::List);
    }
    if !v.is_object() || v.is_function() {
        return Err(bad(format!(
            "cannot store a value of type {}",
            v.js_typeof().as_string().unwrap_or_default()
        )));
    }
    if let Some(kind) = type_tag(v)? {
        return decode_typed(v, &kind);
    }
    let obj: &Object = v.unchecked_ref();
    let mut entries = Vec::new();
    for k in Object::keys(obj).iter() {
        let key = k.as_string().unwrap_or_default();
        let val = Reflect::get(v, &k).map_err(|_| bad(format!("cannot read {key:?}")))?;
        let decoded = decode_value(&val, depth + 1).map_err(|e| match e {
            OpError::BadOp(m) => bad(format!("at key {key:?}: {m}")),
            other => other,
        })?;
        entries.push((key, decoded));
    }
    Ok(NewValue::Map(entries))
}

/// A typed value's payload (module docs).
fn decode_typed(v: &JsValue, kind: &str) -> Result<NewValue, OpError> {
    match kind {
        "text" => get(v, "value")?
            .as_string()
            .map(NewValue::Text)
            .ok_or_else(|| bad("a text's value must be a string")),
        "counter" => match get(v, "value")?.as_f64() {
            Some(n) if n.fract() == 0.0 && n.abs() <= MAX_SAFE => Ok(NewValue::Counter(n as i64)),
            _ => Err(bad("a counter's value must be a safe integer")),
        },
        "unknown" => Err(bad(format!(
            "values of an unknown type (automerge type code {}) cannot be written",
            get(v, "typeCode")?.as_f64().unwrap_or(f64::NAN)
        ))),
        other => Err(bad(format!("unknown typed value kind {other:?}"))),
    }
}
