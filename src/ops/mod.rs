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
//!
//! Files: `decode.rs` takes op lists and values in, `read.rs` materializes
//! documents, `patch.rs` converts patches; this one holds what they share
//! (the typed-value tag, setting properties).

use js_sys::{Object, Reflect, Symbol};
use wasm_bindgen::JsValue;

mod decode;
mod patch;
mod read;

pub use decode::{apply_ops, decode_ops, decode_path, decode_value};
pub use holdfast_core::edit::OpError;
pub use patch::{marks_to_js, patches_to_js};
pub use read::{read_to_js, to_js, to_js_draft};

/// The registry key of the symbol that tags typed values (module docs):
/// `Symbol.for(TYPE_SYMBOL)` in JS.
pub const TYPE_SYMBOL: &str = "holdfast.type";

thread_local! {
    static TYPE_KEY: JsValue = Symbol::for_(TYPE_SYMBOL).into();
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
