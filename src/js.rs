//! Small helpers over the JS globals every adapter uses: the clock, timers,
//! randomness for jitter, and errors with a stable `name`.

use js_sys::{Function, Reflect};
use wasm_bindgen::prelude::*;

use holdfast_core::repo::Timestamp;

/// The time the core is given: `Date.now()`.
pub fn now() -> Timestamp {
    Timestamp(js_sys::Date::now() as u64)
}

/// A uniformly random `u32` (`Math.random()`: jitter, not secrets).
pub fn random_u32() -> u32 {
    (js_sys::Math::random() * 4_294_967_296.0) as u32
}

/// A JS `Error` with a stable `name` users can switch on.
pub fn js_error(name: &str, message: &str) -> JsValue {
    let e = js_sys::Error::new(message);
    e.set_name(name);
    e.into()
}

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
