//! The JS side of the IndexedDB adapter: promises settled by requests and
//! transactions (their `resolve`/`reject` installed directly as the event
//! handlers, so no Rust closure per call), key and record conversion, and
//! the mapping of `DOMException`s onto [`StorageError`]s.

use js_sys::{Array, Object, Promise, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{Event, IdbKeyRange, IdbRequest, IdbTransaction};

use crate::js::DomError;
use holdfast_core::storage::{Detail, StorageError, StorageKey};

#[wasm_bindgen]
extern "C" {
    /// `IDBDatabase`, seen through the one method web-sys lacks.
    #[wasm_bindgen(js_name = IDBDatabase)]
    pub(super) type DatabaseWithOptions;

    /// `IDBDatabase.transaction(storeNames, mode, options)`: web-sys only
    /// exposes the options argument under `web_sys_unstable_apis`.
    #[wasm_bindgen(method, catch, js_name = transaction)]
    pub(super) fn transaction_with_options(
        this: &DatabaseWithOptions,
        store_names: &str,
        mode: &str,
        options: &Object,
    ) -> Result<IdbTransaction, JsValue>;
}

/// A promise settled by a request: resolved with the event on `success`,
/// rejected with it on `error`.
pub(super) fn request_promise(req: &IdbRequest) -> Promise {
    Promise::new(&mut |resolve, reject| {
        req.set_onsuccess(Some(&resolve));
        req.set_onerror(Some(&reject));
    })
}

/// A promise settled by a transaction: resolved on `complete`, rejected on
/// `abort` (request errors abort the transaction unless prevented, so
/// `error` needs no handler of its own).
pub(super) fn transaction_promise(tx: &IdbTransaction) -> Promise {
    Promise::new(&mut |resolve, reject| {
        tx.set_oncomplete(Some(&resolve));
        tx.set_onabort(Some(&reject));
    })
}

pub(super) fn event_type(event: &JsValue) -> Option<String> {
    event.dyn_ref::<Event>().map(|e| e.type_())
}

pub(super) fn request_error(context: &str, req: &IdbRequest) -> StorageError {
    match req.error() {
        Ok(Some(e)) => map_error(context, &e),
        Ok(None) => StorageError::Aborted(format!("{context}: the request failed").into()),
        Err(e) => map_error(context, &e),
    }
}

fn prop_string(value: &JsValue, prop: &str) -> Option<String> {
    if !value.is_object() {
        return None;
    }
    Reflect::get(value, &JsValue::from_str(prop))
        .ok()
        .and_then(|v| v.as_string())
}

/// Map a thrown value or a `DOMException` onto a typed error, keeping the
/// exception's name and message in the text and, as a [`DomError`], as the
/// error's source.
pub(super) fn map_error(context: &str, err: &JsValue) -> StorageError {
    let name = prop_string(err, "name").unwrap_or_default();
    let message = prop_string(err, "message")
        .or_else(|| err.as_string())
        .unwrap_or_else(|| format!("{err:?}"));
    let text = if name.is_empty() {
        format!("{context}: {message}")
    } else {
        format!("{context}: {name}: {message}")
    };
    let kind: fn(Detail) -> StorageError = match name.as_str() {
        "QuotaExceededError" => StorageError::QuotaExceeded,
        "InvalidStateError"
        | "TransactionInactiveError"
        | "VersionError"
        | "NotFoundError"
        | "SecurityError" => StorageError::Unavailable,
        // "AbortError", and anything else a request or transaction throws.
        _ => StorageError::Aborted,
    };
    let name = if name.is_empty() {
        "Error".into()
    } else {
        name
    };
    kind(Detail::caused_by(text, DomError { name, message }))
}

pub(super) fn key_to_js(key: &StorageKey) -> JsValue {
    key.0
        .iter()
        .map(|s| JsValue::from_str(s))
        .collect::<Array>()
        .into()
}

pub(super) fn key_from_js(value: &JsValue) -> Result<StorageKey, String> {
    let array = value
        .dyn_ref::<Array>()
        .ok_or_else(|| format!("key {value:?} is not an array"))?;
    array
        .iter()
        .map(|part| {
            part.as_string()
                .ok_or_else(|| format!("key component {part:?} is not a string"))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(StorageKey)
}

/// Every key starting with `prefix`: from `prefix` itself (inclusive) up to,
/// excluding, `[...prefix, []]`. An array sorts after every string in
/// IndexedDB's key order, so every `[...prefix, s, ...]` falls inside (even
/// when `s` starts with "\uffff", which automerge-repo's `"\uffff"` bound
/// misses) and a sibling such as `["ab"]` for prefix `["a"]` falls outside.
pub(super) fn prefix_range(prefix: &StorageKey) -> Result<IdbKeyRange, JsValue> {
    let lower = key_to_js(prefix);
    let upper: Array = prefix.0.iter().map(|s| JsValue::from_str(s)).collect();
    upper.push(&Array::new());
    IdbKeyRange::bound_with_lower_open_and_upper_open(&lower, &upper, false, true)
}

/// The stored value: `{key, binary}` as automerge-repo writes it.
pub(super) fn record(key: &JsValue, bytes: &[u8]) -> Result<Object, JsValue> {
    let value = Object::new();
    Reflect::set(&value, &JsValue::from_str("key"), key)?;
    Reflect::set(
        &value,
        &JsValue::from_str("binary"),
        &Uint8Array::from(bytes),
    )?;
    Ok(value)
}

pub(super) fn binary_of(value: &JsValue) -> Result<Vec<u8>, String> {
    let binary = Reflect::get(value, &JsValue::from_str("binary"))
        .map_err(|_| "stored value is not an object with a `binary` field".to_string())?;
    if let Some(bytes) = binary.dyn_ref::<Uint8Array>() {
        Ok(bytes.to_vec())
    } else if let Some(buffer) = binary.dyn_ref::<js_sys::ArrayBuffer>() {
        Ok(Uint8Array::new(buffer).to_vec())
    } else {
        Err(format!(
            "stored value's `binary` is not a Uint8Array: {binary:?}"
        ))
    }
}
