//! The JS edge of documents: recorded edits in, plain JS values and patches
//! out.
//!
//! # Op list (what `pkg/index.js` records and `WasmRepo.create/change` take)
//!
//! A JS array of op objects, applied in order in one transaction:
//!
//! ```text
//! {op: "put",    path, key, value}          map key = value, or list[key] = value (key < length)
//! {op: "del",    path, key, count?}         delete map key (absent key: no-op),
//!                                           or `count` (default 1) list elements from index key
//! {op: "insert", path, index, values: [..]} insert into a list at index (0..=length)
//! {op: "splice", path, index, del, text}    text object at path: delete `del` UTF-16 units
//!                                           at `index`, insert `text` (default "")
//! {op: "inc",    path, key, by}             add integer `by` to the counter at key
//! ```
//!
//! `path` (default `[]`, the root) is an array of map keys (strings) and list
//! indices (numbers) leading to an existing map, list or (for `splice`) text
//! object. `key` is a string for maps and a number for lists. Text positions
//! are in UTF-16 code units, as in JS strings, whatever the document's text
//! encoding.
//!
//! # Values
//!
//! Values (`value`, `values[i]`) are converted to new Automerge values:
//! array → list, string → string, number → int when it is a safe integer
//! (|n| ≤ 2^53-1) else f64, bigint → int, boolean, null, `Uint8Array` →
//! bytes, `Date` → timestamp (ms), a typed value (below) → its type, and any
//! other object → map of its own enumerable string keys, whatever they are
//! (`"$holdfast"`, `"value"`, `"__proto__"`: all plain keys). `undefined`,
//! functions, symbols and invalid dates are rejected.
//!
//! **Typed values** (text, counters: values JSON cannot tell from strings and
//! numbers) travel out of band, under a key no stored data can have: the
//! registered symbol [`TYPE_SYMBOL`] (`Symbol.for("holdfast.type")`). An
//! object whose `[Symbol.for("holdfast.type")]` is a string is a typed value
//! of that kind, its payload in `value`:
//!
//! ```text
//! {[TYPE]: "text",    value: "…"}                 Text
//! {[TYPE]: "counter", value: n}                   Counter (n a safe integer)
//! {[TYPE]: "unknown", typeCode, bytes}            a value of a type this engine cannot
//!                                                 read (see below); rejected as input
//! ```
//!
//! Maps are taken from the string keys only (`Object.keys`), so user data can
//! never carry the tag into a document, and a map can never turn into a
//! typed value. `pkg/draft.js` builds these objects from its `Text` and
//! `Counter` instances; the check costs one symbol-keyed property read per
//! object, no per-value serialization.
//!
//! # Materialization
//!
//! [`to_js`] gives plain JS (maps → objects, lists → arrays, text → string,
//! counter → number, bytes → `Uint8Array`, timestamp → `Date`, ints and
//! floats → number). [`to_js_draft`] is the same except that text and
//! counters come out as the typed values above, so that `pkg/draft.js` can
//! turn them into `Text` / `Counter` instances offering `splice` /
//! `increment`. In both, a scalar of a type this engine does not know (a
//! newer automerge's) comes out as `{typeCode, bytes}` tagged
//! `[Symbol.for("holdfast.type")]: "unknown"`. Map keys are own enumerable
//! properties, `"__proto__"` included.
//!
//! # Patches
//!
//! [`patches_to_js`] follows automerge JS's shapes; `path` ends with the key
//! or index the patch is about:
//! `{action:"put", path, value, conflict?}`, `{action:"insert", path, values}`,
//! `{action:"splice", path, value, marks?}` (text), `{action:"del", path,
//! length?}`, `{action:"inc", path, value}`, `{action:"conflict", path}`,
//! `{action:"mark", path, marks:[{name, value, start, end}]}`. A new object
//! appears as `{}`, `[]` or `""` (text). Text indices in patches are in the
//! document's text encoding (code points unless automerge's `utf16-indexing`
//! feature is on).

use automerge::transaction::Transaction;
use automerge::{
    Automerge, ChangeHash, ObjId, ObjType, Patch, PatchAction, Prop, ReadDoc, ScalarValue, Value,
    ROOT,
};
use js_sys::{Array, Date, Object, Reflect, Symbol, Uint8Array};
use serde::Deserialize;
use wasm_bindgen::{JsCast, JsValue};

pub use holdfast_core::edit::OpError;
use holdfast_core::edit::{self, NewValue, Op, Seg};

/// The registry key of the symbol that tags typed values (module docs):
/// `Symbol.for(TYPE_SYMBOL)` in JS.
pub const TYPE_SYMBOL: &str = "holdfast.type";

thread_local! {
    static TYPE_KEY: JsValue = Symbol::for_(TYPE_SYMBOL).into();
}

/// The kind of a typed value (`v[Symbol.for("holdfast.type")]`), if `v` is
/// one. `v` must be an object.
fn type_tag(v: &JsValue) -> Result<Option<String>, OpError> {
    TYPE_KEY
        .with(|k| Reflect::get(v, k))
        .map(|t| t.as_string())
        .map_err(|_| bad("cannot read a value's type tag"))
}

/// A fresh typed value `{[TYPE]: kind}` (module docs).
fn typed(kind: &str) -> Object {
    let o = Object::new();
    TYPE_KEY.with(|k| {
        // Setting a property of a fresh plain object cannot fail.
        let _ = Reflect::set(&o, k, &JsValue::from_str(kind));
    });
    o
}

/// Values nested deeper than this are rejected (guards against cycles).
const MAX_DEPTH: usize = 200;
const MAX_SAFE: f64 = 9_007_199_254_740_991.0;

/// Decode `ops` (the op list above) and apply them to `tx`. On `Err` the
/// transaction holds a partial edit and must be rolled back.
pub fn apply_ops(tx: &mut Transaction<'_>, ops: &JsValue) -> Result<(), OpError> {
    let ops = decode_ops(ops)?;
    edit::apply(tx, &ops)
}

/// The JS `Error` for a rejected op list: `name` is `ChangeRejectedError`.
pub fn op_error_to_js(e: &OpError) -> JsValue {
    let err = js_sys::Error::new(&e.to_string());
    err.set_name("ChangeRejectedError");
    err.into()
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

fn js_err(e: impl std::fmt::Display) -> JsValue {
    js_sys::Error::new(&e.to_string()).into()
}

/// A typed value `{[TYPE]: kind, value}` for the draft (module docs).
fn typed_value(kind: &str, value: &JsValue) -> JsValue {
    let o = typed(kind);
    set(&o, "value", value);
    o.into()
}

/// Set an own enumerable property, also for the key `__proto__`.
fn set(obj: &Object, key: &str, value: &JsValue) {
    let k = JsValue::from_str(key);
    if key == "__proto__" {
        let desc = Object::new();
        set(&desc, "value", value);
        for f in ["writable", "enumerable", "configurable"] {
            set(&desc, f, &JsValue::TRUE);
        }
        Object::define_property(obj, &k, &desc);
    } else {
        // Setting a property of a fresh plain object cannot fail.
        let _ = Reflect::set(obj, &k, value);
    }
}

fn scalar_to_js(s: &ScalarValue, draft: bool) -> JsValue {
    match s {
        ScalarValue::Bytes(b) => Uint8Array::from(b.as_slice()).into(),
        ScalarValue::Str(s) => JsValue::from_str(s),
        ScalarValue::Int(n) => JsValue::from_f64(*n as f64),
        ScalarValue::Uint(n) => JsValue::from_f64(*n as f64),
        ScalarValue::F64(f) => JsValue::from_f64(*f),
        ScalarValue::Counter(c) => {
            let n = JsValue::from_f64(i64::from(c) as f64);
            if draft {
                typed_value("counter", &n)
            } else {
                n
            }
        }
        ScalarValue::Timestamp(t) => Date::new(&JsValue::from_f64(*t as f64)).into(),
        ScalarValue::Boolean(b) => JsValue::from_bool(*b),
        ScalarValue::Null => JsValue::NULL,
        ScalarValue::Unknown { type_code, bytes } => {
            let o = typed("unknown");
            set(&o, "typeCode", &JsValue::from_f64(f64::from(*type_code)));
            set(&o, "bytes", &Uint8Array::from(bytes.as_slice()).into());
            o.into()
        }
    }
}

struct Reader<'a, D> {
    doc: &'a D,
    heads: Option<&'a [ChangeHash]>,
    draft: bool,
}

impl<D: ReadDoc> Reader<'_, D> {
    fn value(&self, id: ObjId, v: Value<'_>) -> Result<JsValue, JsValue> {
        match v {
            Value::Object(t) => self.obj(&id, t),
            Value::Scalar(s) => Ok(scalar_to_js(&s, self.draft)),
        }
    }

    fn obj(&self, id: &ObjId, t: ObjType) -> Result<JsValue, JsValue> {
        match t {
            ObjType::Map | ObjType::Table => {
                let o = Object::new();
                let range = match self.heads {
                    Some(h) => self.doc.map_range_at(id, .., h),
                    None => self.doc.map_range(id, ..),
                };
                for item in range {
                    let v = self.value(item.id(), item.value.into_value())?;
                    set(&o, &item.key, &v);
                }
                Ok(o.into())
            }
            ObjType::List => {
                let a = Array::new();
                let range = match self.heads {
                    Some(h) => self.doc.list_range_at(id, .., h),
                    None => self.doc.list_range(id, ..),
                };
                for item in range {
                    a.push(&self.value(item.id(), item.value.into_value())?);
                }
                Ok(a.into())
            }
            ObjType::Text => {
                let s = match self.heads {
                    Some(h) => self.doc.text_at(id, h),
                    None => self.doc.text(id),
                }
                .map_err(js_err)?;
                let s = JsValue::from_str(&s);
                Ok(if self.draft {
                    typed_value("text", &s)
                } else {
                    s
                })
            }
        }
    }
}

/// The document (at `heads`, or its current state) as plain JS.
pub fn to_js(doc: &Automerge, heads: Option<&[ChangeHash]>) -> Result<JsValue, JsValue> {
    read_to_js(doc, heads)
}

/// [`to_js`] for anything readable (e.g. an open transaction).
pub fn read_to_js<D: ReadDoc>(doc: &D, heads: Option<&[ChangeHash]>) -> Result<JsValue, JsValue> {
    Reader {
        doc,
        heads,
        draft: false,
    }
    .obj(&ROOT, ObjType::Map)
}

/// The current document for the JS change proxy: text and counters as
/// typed values (module docs).
pub fn to_js_draft(doc: &Automerge) -> Result<JsValue, JsValue> {
    Reader {
        doc,
        heads: None,
        draft: true,
    }
    .obj(&ROOT, ObjType::Map)
}

fn prop_to_js(p: &Prop) -> JsValue {
    match p {
        Prop::Map(k) => JsValue::from_str(k),
        Prop::Seq(i) => JsValue::from_f64(*i as f64),
    }
}

fn new_value_to_js(v: &Value<'_>) -> JsValue {
    match v {
        Value::Object(ObjType::Map | ObjType::Table) => Object::new().into(),
        Value::Object(ObjType::List) => Array::new().into(),
        Value::Object(ObjType::Text) => JsValue::from_str(""),
        Value::Scalar(s) => scalar_to_js(s, false),
    }
}

/// Automerge patches as automerge-JS-shaped plain objects (module docs).
pub fn patches_to_js(patches: &[Patch]) -> JsValue {
    let out = Array::new();
    for p in patches {
        let path = Array::new();
        for (_, prop) in &p.path {
            path.push(&prop_to_js(prop));
        }
        let o = Object::new();
        let action = |name: &str, last: Option<JsValue>| {
            set(&o, "action", &JsValue::from_str(name));
            if let Some(l) = last {
                path.push(&l);
            }
            set(&o, "path", &path);
        };
        match &p.action {
            PatchAction::PutMap {
                key,
                value,
                conflict,
            } => {
                action("put", Some(JsValue::from_str(key)));
                set(&o, "value", &new_value_to_js(&value.0));
                if *conflict {
                    set(&o, "conflict", &JsValue::TRUE);
                }
            }
            PatchAction::PutSeq {
                index,
                value,
                conflict,
            } => {
                action("put", Some(JsValue::from_f64(*index as f64)));
                set(&o, "value", &new_value_to_js(&value.0));
                if *conflict {
                    set(&o, "conflict", &JsValue::TRUE);
                }
            }
            PatchAction::Insert { index, values } => {
                action("insert", Some(JsValue::from_f64(*index as f64)));
                let vs = Array::new();
                for (v, _, _) in values.iter() {
                    vs.push(&new_value_to_js(v));
                }
                set(&o, "values", &vs);
            }
            PatchAction::SpliceText {
                index,
                value,
                marks,
            } => {
                action("splice", Some(JsValue::from_f64(*index as f64)));
                set(&o, "value", &JsValue::from_str(&value.make_string()));
                if let Some(m) = marks.as_ref().filter(|m| m.num_marks() > 0) {
                    let mo = Object::new();
                    for (name, v) in m.iter() {
                        set(&mo, name, &scalar_to_js(v, false));
                    }
                    set(&o, "marks", &mo);
                }
            }
            PatchAction::Increment { prop, value } => {
                action("inc", Some(prop_to_js(prop)));
                set(&o, "value", &JsValue::from_f64(*value as f64));
            }
            PatchAction::Conflict { prop } => action("conflict", Some(prop_to_js(prop))),
            PatchAction::DeleteMap { key } => action("del", Some(JsValue::from_str(key))),
            PatchAction::DeleteSeq { index, length } => {
                action("del", Some(JsValue::from_f64(*index as f64)));
                if *length > 1 {
                    set(&o, "length", &JsValue::from_f64(*length as f64));
                }
            }
            PatchAction::Mark { marks } => {
                action("mark", None);
                let ms = Array::new();
                for m in marks {
                    let mo = Object::new();
                    set(&mo, "name", &JsValue::from_str(m.name()));
                    set(&mo, "value", &scalar_to_js(m.value(), false));
                    set(&mo, "start", &JsValue::from_f64(m.start as f64));
                    set(&mo, "end", &JsValue::from_f64(m.end as f64));
                    ms.push(&mo);
                }
                set(&o, "marks", &ms);
            }
        }
        out.push(&o);
    }
    out.into()
}
