//! Documents out: an Automerge document (or anything readable) as plain
//! JS values, or as the draft the JS change proxy edits (module docs of
//! [`super`]).

use automerge::{Automerge, ChangeHash, ObjId, ObjType, ReadDoc, ScalarValue, Value, ROOT};
use js_sys::{Array, Date, Object, Uint8Array};
use wasm_bindgen::JsValue;

use super::{set, typed, typed_value};

fn js_err(e: impl std::fmt::Display) -> JsValue {
    js_sys::Error::new(&e.to_string()).into()
}

pub(super) fn scalar_to_js(s: &ScalarValue, draft: bool) -> JsValue {
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
