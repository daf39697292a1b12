//! web::ops in headless Chromium:
//! op lists decoded from real JS values, materialization and patches.
#![cfg(target_arch = "wasm32")]

use automerge::{Automerge, ReadDoc};
use holdfast::ops::{apply_ops, patches_to_js, to_js, to_js_draft, OpError, TYPE_SYMBOL};
use js_sys::{Array, Date, Object, Reflect, Symbol, Uint8Array, JSON};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_test::wasm_bindgen_test;

wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

fn parse(s: &str) -> JsValue {
    JSON::parse(s).expect("valid JSON")
}

fn json(v: &JsValue) -> String {
    JSON::stringify(v).unwrap().as_string().unwrap()
}

fn type_key() -> JsValue {
    Symbol::for_(TYPE_SYMBOL).into()
}

/// `s` parsed, with every object holding the key `"$type"` turned into a
/// typed value: `{"$type":"text","value":"x"}` → `{[TYPE]:"text",value:"x"}`.
/// (`"$type"` is only this test's shorthand: to the engine it is a plain key.)
fn parse_typed(s: &str) -> JsValue {
    fn walk(v: &JsValue) {
        if Array::is_array(v) {
            Array::from(v).iter().for_each(|x| walk(&x));
        } else if v.is_object() {
            let kind = Reflect::get(v, &"$type".into()).unwrap();
            if !kind.is_undefined() {
                Reflect::delete_property(v.unchecked_ref::<Object>(), &"$type".into()).unwrap();
                Reflect::set(v, &type_key(), &kind).unwrap();
            }
            for k in Object::keys(v.unchecked_ref::<Object>()).iter() {
                walk(&Reflect::get(v, &k).unwrap());
            }
        }
    }
    let v = parse(s);
    walk(&v);
    v
}

/// `v` as JSON, typed values written `{"$type":kind,...}` (see parse_typed).
fn json_typed(v: &JsValue) -> String {
    fn walk(v: &JsValue) -> JsValue {
        if Array::is_array(v) {
            return Array::from(v)
                .iter()
                .map(|x| walk(&x))
                .collect::<Array>()
                .into();
        }
        if !v.is_object() || v.is_instance_of::<Uint8Array>() || v.is_instance_of::<Date>() {
            return v.clone();
        }
        let out = Object::new();
        let kind = Reflect::get(v, &type_key()).unwrap();
        if !kind.is_undefined() {
            Reflect::set(&out, &"$type".into(), &kind).unwrap();
        }
        for k in Object::keys(v.unchecked_ref::<Object>()).iter() {
            Reflect::set(&out, &k, &walk(&Reflect::get(v, &k).unwrap())).unwrap();
        }
        out.into()
    }
    json(&walk(v))
}

fn change(doc: &mut Automerge, ops: &JsValue) -> Result<(), OpError> {
    let mut tx = doc.transaction();
    match apply_ops(&mut tx, ops) {
        Ok(()) => {
            tx.commit();
            Ok(())
        }
        Err(e) => {
            tx.rollback();
            Err(e)
        }
    }
}

#[wasm_bindgen_test]
fn ops_round_trip_through_js_values() {
    let mut doc = Automerge::new();
    change(
        &mut doc,
        &parse_typed(
            r#"[
            {"op":"put","path":[],"key":"title","value":"hi"},
            {"op":"put","path":[],"key":"n","value":1.5},
            {"op":"put","path":[],"key":"i","value":42},
            {"op":"put","path":[],"key":"items","value":[1,{"a":null}]},
            {"op":"put","path":[],"key":"body","value":{"$type":"text","value":"hello"}},
            {"op":"put","path":[],"key":"c","value":{"$type":"counter","value":3}},
            {"op":"insert","path":["items"],"index":2,"values":[true]},
            {"op":"put","path":["items",1],"key":"b","value":"x"},
            {"op":"splice","path":["body"],"index":5,"del":0,"text":" world"},
            {"op":"inc","path":[],"key":"c","by":-1},
            {"op":"del","path":["items"],"key":0}
        ]"#,
        ),
    )
    .unwrap();
    assert_eq!(
        json(&to_js(&doc, None).unwrap()),
        r#"{"body":"hello world","c":2,"i":42,"items":[{"a":null,"b":"x"},true],"n":1.5,"title":"hi"}"#
    );
    assert_eq!(
        json_typed(&to_js_draft(&doc).unwrap()),
        r#"{"body":{"$type":"text","value":"hello world"},"c":{"$type":"counter","value":2},"i":42,"items":[{"a":null,"b":"x"},true],"n":1.5,"title":"hi"}"#
    );
}

#[wasm_bindgen_test]
fn objects_shaped_like_old_markers_are_plain_maps() {
    let mut doc = Automerge::new();
    let user = r#"{"m":{"$holdfast":"text","value":"hi"},"c":{"$holdfast":"counter","value":5},"d":{"$holdfast":"date","value":1000},"u":{"$holdfast":"unknown","typeCode":9,"bytes":[1]},"b":{"$holdfast":"bogus","value":{"$holdfast":"counter"}},"s":{"$type":"text","value":"x"}}"#;
    let ops = Array::new();
    let value = parse(user);
    for k in Object::keys(value.unchecked_ref::<Object>()).iter() {
        let op = parse(r#"{"op":"put","path":[]}"#);
        Reflect::set(&op, &"key".into(), &k).unwrap();
        Reflect::set(&op, &"value".into(), &Reflect::get(&value, &k).unwrap()).unwrap();
        ops.push(&op);
    }
    change(&mut doc, &ops).unwrap();
    let keys: Vec<String> = doc.keys(automerge::ROOT).collect();
    assert_eq!(keys, ["b", "c", "d", "m", "s", "u"]);
    for k in keys {
        let (v, _) = doc.get(automerge::ROOT, k.as_str()).unwrap().unwrap();
        assert!(
            matches!(v, automerge::Value::Object(automerge::ObjType::Map)),
            "{k} is {v:?}, not a map"
        );
    }
    // Plain and draft: the same plain maps, no typed values.
    let sorted = r#"{"b":{"$holdfast":"bogus","value":{"$holdfast":"counter"}},"c":{"$holdfast":"counter","value":5},"d":{"$holdfast":"date","value":1000},"m":{"$holdfast":"text","value":"hi"},"s":{"$type":"text","value":"x"},"u":{"$holdfast":"unknown","bytes":[1],"typeCode":9}}"#;
    assert_eq!(json(&to_js(&doc, None).unwrap()), sorted);
    let draft = to_js_draft(&doc).unwrap();
    assert_eq!(json(&draft), sorted);
    for k in ["b", "c", "d", "m", "s", "u"] {
        let v = Reflect::get(&draft, &k.into()).unwrap();
        assert!(
            Reflect::get(&v, &type_key()).unwrap().is_undefined(),
            "{k} is typed"
        );
    }
}

#[wasm_bindgen_test]
fn unknown_scalars_are_tagged_and_cannot_be_written() {
    use automerge::transaction::Transactable;
    let mut doc = Automerge::new();
    let mut tx = doc.transaction();
    tx.put(
        automerge::ROOT,
        "u",
        automerge::ScalarValue::Unknown {
            type_code: 13,
            bytes: vec![7, 8],
        },
    )
    .unwrap();
    tx.commit();
    for v in [to_js(&doc, None).unwrap(), to_js_draft(&doc).unwrap()] {
        let u = Reflect::get(&v, &"u".into()).unwrap();
        assert_eq!(Reflect::get(&u, &type_key()).unwrap(), "unknown");
        assert_eq!(
            json_typed(&v),
            r#"{"u":{"$type":"unknown","typeCode":13,"bytes":{"0":7,"1":8}}}"#
        );
        let bytes: Uint8Array = Reflect::get(&u, &"bytes".into()).unwrap().unchecked_into();
        assert_eq!(bytes.to_vec(), vec![7, 8]);
    }
    // Writing one back (JS copies an UnknownValue as this) is rejected.
    let ops =
        parse_typed(r#"[{"op":"put","key":"copy","value":{"$type":"unknown","typeCode":13}}]"#);
    let e = change(&mut doc, &ops).unwrap_err();
    assert!(e.to_string().contains("type code 13"), "{e}");
}

#[wasm_bindgen_test]
fn bytes_dates_and_old_heads() {
    let mut doc = Automerge::new();
    let ops = parse(
        r#"[{"op":"put","path":[],"key":"b","value":0},{"op":"put","path":[],"key":"d","value":0}]"#,
    );
    let ops: Array = ops.unchecked_into();
    Reflect::set(
        &ops.get(0),
        &"value".into(),
        &Uint8Array::from(&[1u8, 2, 3][..]),
    )
    .unwrap();
    Reflect::set(
        &ops.get(1),
        &"value".into(),
        &Date::new(&JsValue::from_f64(1234.0)),
    )
    .unwrap();
    change(&mut doc, &ops).unwrap();
    let heads = doc.get_heads();
    change(&mut doc, &parse(r#"[{"op":"del","key":"b"}]"#)).unwrap();

    let now = to_js(&doc, None).unwrap();
    assert!(Reflect::get(&now, &"b".into()).unwrap().is_undefined());
    let then = to_js(&doc, Some(&heads)).unwrap();
    let b: Uint8Array = Reflect::get(&then, &"b".into()).unwrap().unchecked_into();
    assert_eq!(b.to_vec(), vec![1, 2, 3]);
    let d: Date = Reflect::get(&then, &"d".into()).unwrap().unchecked_into();
    assert_eq!(d.get_time(), 1234.0);
}

#[wasm_bindgen_test]
fn bad_ops_are_errors_and_roll_back() {
    let mut doc = Automerge::new();
    change(&mut doc, &parse(r#"[{"op":"put","key":"a","value":1}]"#)).unwrap();
    for bad in [
        r#"{"op":"put"}"#,
        r#"[{"op":"nope"}]"#,
        r#"[{"op":"put","key":"a"}]"#,
        r#"[{"op":"put","path":[-1],"key":"a","value":1}]"#,
        r#"[{"op":"put","path":[1.5],"key":"a","value":1}]"#,
        r#"[{"op":"put","path":[{}],"key":"a","value":1}]"#,
        r#"[{"op":"put","key":"x","value":2},{"op":"put","path":["zz"],"key":"a","value":1}]"#,
        r#"[{"op":"inc","key":"a","by":1}]"#,
        r#"[{"op":"inc","key":"a","by":0.5}]"#,
        r#"[{"op":"insert","path":[],"index":0,"values":[1]}]"#,
        r#"[{"op":"put","key":"a","value":{"$type":"bogus","value":1}}]"#,
        r#"[{"op":"put","key":"a","value":{"$type":"counter","value":"x"}}]"#,
        r#"[{"op":"put","key":"a","value":{"$type":"counter","value":0.5}}]"#,
        r#"[{"op":"put","key":"a","value":{"$type":"text","value":1}}]"#,
        r#"[{"op":"splice","path":["a"],"index":0,"text":"x"}]"#,
    ] {
        let r = change(&mut doc, &parse_typed(bad));
        assert!(r.is_err(), "{bad} was accepted");
        assert_eq!(json(&to_js(&doc, None).unwrap()), r#"{"a":1}"#, "{bad}");
    }
    // A cycle is rejected, not a stack overflow.
    let cyc = js_sys::Object::new();
    Reflect::set(&cyc, &"self".into(), &cyc).unwrap();
    let ops = parse(r#"[{"op":"put","key":"c","value":0}]"#);
    Reflect::set(&Array::from(&ops).get(0), &"value".into(), &cyc).unwrap();
    assert!(matches!(change(&mut doc, &ops), Err(OpError::BadOp(_))));
    // undefined inside a value is rejected.
    let ops = parse(r#"[{"op":"put","key":"u","value":{}}]"#);
    let v = Reflect::get(&Array::from(&ops).get(0), &"value".into()).unwrap();
    Reflect::set(&v, &"x".into(), &JsValue::UNDEFINED).unwrap();
    assert!(change(&mut doc, &ops).is_err());
}

#[wasm_bindgen_test]
fn proto_key_is_an_own_property() {
    let mut doc = Automerge::new();
    change(
        &mut doc,
        &parse(r#"[{"op":"put","key":"__proto__","value":{"polluted":true}}]"#),
    )
    .unwrap();
    let v = to_js(&doc, None).unwrap();
    assert!(Reflect::get(&v, &"polluted".into()).unwrap().is_undefined());
    let obj: &js_sys::Object = v.unchecked_ref();
    assert_eq!(json(&js_sys::Object::keys(obj).into()), r#"["__proto__"]"#);
}

#[wasm_bindgen_test]
fn patches_have_automerge_js_shapes() {
    let mut doc = Automerge::new();
    change(
        &mut doc,
        &parse_typed(r#"[{"op":"put","key":"l","value":[]},{"op":"put","key":"t","value":{"$type":"text","value":""}},{"op":"put","key":"c","value":{"$type":"counter","value":0}},{"op":"put","key":"gone","value":1}]"#),
    )
    .unwrap();
    let before = doc.get_heads();
    change(
        &mut doc,
        &parse(r#"[{"op":"insert","path":["l"],"index":0,"values":["a",{"x":1}]},{"op":"splice","path":["t"],"index":0,"text":"hi"},{"op":"inc","key":"c","by":2},{"op":"del","key":"gone"},{"op":"put","key":"s","value":"v"}]"#),
    )
    .unwrap();
    let after = doc.get_heads();
    let patches = doc.diff(&before, &after);
    let js = json(&patches_to_js(&patches));
    for want in [
        r#"{"action":"inc","path":["c"],"value":2}"#,
        r#"{"action":"del","path":["gone"]}"#,
        r#"{"action":"insert","path":["l",0],"values":["a",{}]}"#,
        r#"{"action":"put","path":["l",1,"x"],"value":1}"#,
        r#"{"action":"put","path":["s"],"value":"v"}"#,
        r#"{"action":"splice","path":["t",0],"value":"hi"}"#,
    ] {
        assert!(js.contains(want), "{want} missing from {js}");
    }
    assert!(doc.get(automerge::ROOT, "s").unwrap().is_some());
}
