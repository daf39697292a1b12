//! Automerge patches out, in automerge JS's shapes (module docs of
//! [`super`]).

use automerge::{ObjType, Patch, PatchAction, Prop, Value};
use js_sys::{Array, Object};
use wasm_bindgen::JsValue;

use super::read::scalar_to_js;
use super::set;

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

/// Marks as automerge JS gives them: `[{name, value, start, end}]`.
pub fn marks_to_js(marks: &[automerge::marks::Mark]) -> JsValue {
    let ms = Array::new();
    for m in marks {
        let mo = Object::new();
        set(&mo, "name", &JsValue::from_str(m.name()));
        set(&mo, "value", &scalar_to_js(m.value(), false));
        set(&mo, "start", &JsValue::from_f64(m.start as f64));
        set(&mo, "end", &JsValue::from_f64(m.end as f64));
        ms.push(&mo);
    }
    ms.into()
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
                set(&o, "marks", &marks_to_js(marks));
            }
        }
        out.push(&o);
    }
    out.into()
}
