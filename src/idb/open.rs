//! Open and delete requests (the "versioned" requests, which other
//! connections can block): waiting for them with a bound after `blocked`,
//! creating the object store on `upgradeneeded`, and closing a connection
//! the browser grants after its caller gave up.

use js_sys::{Array, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{Event, IdbDatabase, IdbFactory, IdbOpenDbRequest, IdbRequest};

use super::js::{event_type, map_error, request_promise};
use super::{BLOCKED_GRACE_MS, STORE};
use crate::identity;
use holdfast_core::storage::StorageError;

#[wasm_bindgen]
extern "C" {
    // Global in both Window and Worker scopes; used only to bound the wait
    // after a `blocked` event.
    #[wasm_bindgen(js_name = setTimeout)]
    fn set_timeout(handler: &js_sys::Function, ms: i32) -> JsValue;
    #[wasm_bindgen(js_name = clearTimeout)]
    fn clear_timeout(id: &JsValue);
}

pub(super) enum Outcome {
    Success,
    Failed,
    Blocked,
}

/// Await an open or delete request. After `blocked`, wait at most
/// [`BLOCKED_GRACE_MS`] more for `success` or `error`.
pub(super) async fn settle_versioned(req: &IdbOpenDbRequest) -> Outcome {
    let done = request_promise(req);
    let blocked = Promise::new(&mut |resolve, _reject| req.set_onblocked(Some(&resolve)));
    match JsFuture::from(Promise::race(&Array::of2(&done, &blocked))).await {
        Err(_) => return Outcome::Failed,
        Ok(event) if event_type(&event).as_deref() != Some("blocked") => return Outcome::Success,
        Ok(_) => {}
    }
    let mut timer = JsValue::UNDEFINED;
    let grace = Promise::new(&mut |resolve, _reject| {
        timer = set_timeout(&resolve, BLOCKED_GRACE_MS);
    });
    let outcome = match JsFuture::from(Promise::race(&Array::of2(&done, &grace))).await {
        Err(_) => Outcome::Failed,
        // The timer resolves with `undefined`, the request with its event.
        Ok(value) if value.is_undefined() => Outcome::Blocked,
        Ok(_) => Outcome::Success,
    };
    clear_timeout(&timer);
    outcome
}

/// The per-thread event handlers that must outlive any one call.
struct Handlers {
    /// `upgradeneeded`: create the `documents` store.
    upgrade: Closure<dyn Fn(Event)>,
    /// `success` of an open nobody waits for any more: close it at once.
    close_late: Closure<dyn Fn(Event)>,
}

thread_local! {
    static HANDLERS: Handlers = Handlers {
        upgrade: Closure::<dyn Fn(Event)>::new(on_upgrade_needed),
        close_late: Closure::<dyn Fn(Event)>::new(close_late_connection),
    };
}

/// Have `req`'s `upgradeneeded` create the `documents` store (and note
/// what the browser said, see [`identity::record_upgrade`]).
pub(super) fn create_store_on_upgrade(req: &IdbOpenDbRequest) {
    HANDLERS.with(|h| req.set_onupgradeneeded(Some(h.upgrade.as_ref().unchecked_ref())));
}

fn on_upgrade_needed(event: Event) {
    let Some(req) = event
        .target()
        .and_then(|t| t.dyn_into::<IdbOpenDbRequest>().ok())
    else {
        return;
    };
    identity::record_upgrade(&req, &event);
    let Some(db) = req
        .result()
        .ok()
        .and_then(|r| r.dyn_into::<IdbDatabase>().ok())
    else {
        return;
    };
    if !db.object_store_names().contains(STORE) && db.create_object_store(STORE).is_err() {
        // Without the store the database is useless: fail the open (the
        // request then reports an AbortError).
        if let Some(tx) = req.transaction() {
            let _ = tx.abort();
        }
    }
}

fn close_late_connection(event: Event) {
    if let Some(db) = event
        .target()
        .and_then(|t| t.dyn_into::<IdbRequest>().ok())
        .and_then(|r| r.result().ok())
        .and_then(|r| r.dyn_into::<IdbDatabase>().ok())
    {
        db.close();
    }
}

/// Closes the connection of an open request whose caller stopped waiting
/// (blocked, or the future was dropped) if the browser grants it later.
pub(super) struct PendingOpen {
    req: IdbOpenDbRequest,
    settled: bool,
}

impl PendingOpen {
    pub(super) fn new(req: &IdbOpenDbRequest) -> PendingOpen {
        PendingOpen {
            req: req.clone(),
            settled: false,
        }
    }

    /// The request succeeded or failed: its caller takes it from here.
    pub(super) fn settle(&mut self) {
        self.settled = true;
    }
}

impl Drop for PendingOpen {
    fn drop(&mut self) {
        if !self.settled {
            HANDLERS.with(|h| {
                self.req
                    .set_onsuccess(Some(h.close_late.as_ref().unchecked_ref()))
            });
        }
    }
}

/// The IndexedDB factory of this global scope (Window or any Worker).
pub(super) fn factory() -> Result<IdbFactory, StorageError> {
    let global = js_sys::global();
    let value = Reflect::get(&global, &JsValue::from_str("indexedDB"))
        .map_err(|e| map_error("getting indexedDB", &e))?;
    value
        .dyn_into::<IdbFactory>()
        .map_err(|_| StorageError::Unavailable("IndexedDB is not available in this context".into()))
}
