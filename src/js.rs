//! Small helpers over the JS globals every adapter uses: the clock, timers,
//! randomness for jitter, and errors with a stable `name`.

use js_sys::{Function, Reflect};
use wasm_bindgen::prelude::*;

use holdfast_core::error::ErrorKind;
use holdfast_core::repo::Timestamp;
use holdfast_core::storage::StorageError;

/// The time the core is given: `Date.now()`.
pub fn now() -> Timestamp {
    Timestamp(js_sys::Date::now() as u64)
}

/// A uniformly random `u32` (`Math.random()`: jitter, not secrets).
pub fn random_u32() -> u32 {
    (js_sys::Math::random() * 4_294_967_296.0) as u32
}

/// A JS `Error` whose `name` is `kind`'s stable name (the error table,
/// `holdfast_core::error`).
pub fn js_error(kind: ErrorKind, message: &str) -> JsValue {
    let e = js_sys::Error::new(message);
    e.set_name(kind.name());
    e.into()
}

/// A storage error for JS: named by its kind; when it came from a native
/// error (IndexedDB's `DOMException`), that error's name and message become
/// the `cause` (an `Error` with the same `name`).
pub fn storage_error(e: &StorageError) -> JsValue {
    let error = js_error(e.kind(), &e.to_string());
    let cause = e.detail().and_then(|d| d.cause());
    if let Some(cause) = cause {
        let name = match cause.downcast_ref::<DomError>() {
            Some(dom) => dom.name.as_str(),
            None => "Error",
        };
        let c = js_sys::Error::new(&cause.to_string());
        c.set_name(name);
        let _ = Reflect::set(&error, &"cause".into(), &c);
    }
    error
}

/// A `DOMException` (or other thrown value) as a Rust error: its `name`
/// ("QuotaExceededError", "VersionError", ...) and message. Kept as a
/// [`StorageError`]'s source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomError {
    pub name: String,
    pub message: String,
}

impl std::fmt::Display for DomError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.name, self.message)
    }
}

impl std::error::Error for DomError {}

/// An ISO 8601 time for messages.
pub fn iso_time(ms: u64) -> String {
    js_sys::Date::new(&JsValue::from_f64(ms as f64))
        .to_iso_string()
        .into()
}

fn global_fn(name: &str) -> Option<Function> {
    Reflect::get(&js_sys::global(), &name.into())
        .ok()?
        .dyn_into::<Function>()
        .ok()
}

/// `setTimeout(f, ms)` on whatever global there is (window or worker); the
/// timer's id, to clear it.
pub fn set_timeout(f: &JsValue, ms: f64) -> Option<JsValue> {
    global_fn("setTimeout")?
        .call2(&js_sys::global(), f, &ms.into())
        .ok()
}

pub fn clear_timeout(id: &JsValue) {
    if let Some(clear) = global_fn("clearTimeout") {
        let _ = clear.call1(&js_sys::global(), id);
    }
}
