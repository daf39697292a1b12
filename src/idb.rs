//! IndexedDB implementation of [`Storage`] (wasm32 only).
//!
//! Layout, compatible with automerge-repo's IndexedDB adapter: object store
//! `documents`, out-of-line keys that are arrays of strings (a
//! [`StorageKey`]'s components), values `{key: <the same array>, binary:
//! Uint8Array}`.
//!
//! Durability: every [`Storage::commit`] is ONE readwrite transaction opened
//! with `{durability: "strict"}` and resolves only on its `complete` event,
//! so a resolved commit is on stable storage wherever the browser honours the
//! hint. [`IdbStorage::durability`] reports what the browser says it did
//! (`tx.durability`).
//!
//! Never hang: every wait is on an IndexedDB event that the specification
//! guarantees will fire (`complete`/`abort` for transactions, `success`/
//! `error` for requests), except an open or delete blocked by other
//! connections: after `blocked` it waits at most [`BLOCKED_GRACE_MS`] more
//! (one `setTimeout`) and then fails with [`StorageError::Unavailable`].
//! When another connection deletes or upgrades the database
//! (`versionchange`), or the browser closes it (`close`), this connection is
//! closed and marked unavailable, so later calls fail at once; a commit
//! already in flight still completes (closing waits for it).
//!
//! Partial failure: a request that fails aborts the transaction (the browser
//! does it); a call that throws synchronously makes the adapter abort it.
//! Either way none of the commit's writes land.
//!
//! Futures: events are turned into `js_sys::Promise`s whose `resolve` /
//! `reject` functions are installed directly as the event handlers, so no Rust
//! closure is allocated (or leaked) per call, and a dropped future leaves
//! nothing behind but a promise nobody awaits. The only Rust closures are two per-thread
//! handlers (store creation on upgrade, closing a connection that succeeds
//! after its caller gave up) and the `versionchange`/`close` handlers each
//! [`IdbStorage`] owns and removes when dropped.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use js_sys::{Array, Object, Promise, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    Event, IdbDatabase, IdbFactory, IdbKeyRange, IdbObjectStore, IdbOpenDbRequest, IdbRequest,
    IdbTransaction,
};

use crate::identity;
use holdfast_core::storage::{Commit, Storage, StorageError, StorageKey};

/// The object store holding every record (automerge-repo's name).
pub const STORE: &str = "documents";
/// The schema version this adapter opens.
const VERSION: u32 = 1;

#[wasm_bindgen]
extern "C" {
    /// `IDBDatabase`, seen through the one method web-sys lacks.
    #[wasm_bindgen(js_name = IDBDatabase)]
    type DatabaseWithOptions;

    /// `IDBDatabase.transaction(storeNames, mode, options)`: web-sys only
    /// exposes the options argument under `web_sys_unstable_apis`.
    #[wasm_bindgen(method, catch, js_name = transaction)]
    fn transaction_with_options(
        this: &DatabaseWithOptions,
        store_names: &str,
        mode: &str,
        options: &Object,
    ) -> Result<IdbTransaction, JsValue>;

    // Global in both Window and Worker scopes; used only to bound the wait
    // after a `blocked` event.
    #[wasm_bindgen(js_name = setTimeout)]
    fn set_timeout(handler: &js_sys::Function, ms: i32) -> JsValue;
    #[wasm_bindgen(js_name = clearTimeout)]
    fn clear_timeout(id: &JsValue);
}

/// How long an open or delete may still wait for `success` after the browser
/// reported `blocked`. Chromium reports `blocked` also for connections that
/// were already closed but still finish a transaction (they close a few
/// milliseconds later); a connection that never closes (another tab that
/// ignores `versionchange`) fails the call after this bound.
pub const BLOCKED_GRACE_MS: i32 = 1_000;

/// What the browser reports (`tx.durability`) for our readwrite transactions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// The browser flushes to stable storage before `complete` fires.
    Strict,
    /// The hint was ignored (or reported as anything but `"strict"`).
    Default,
}

impl Durability {
    pub fn as_str(&self) -> &'static str {
        match self {
            Durability::Strict => "strict",
            Durability::Default => "default",
        }
    }

    fn of(tx: &IdbTransaction) -> Durability {
        match Reflect::get(tx, &JsValue::from_str("durability"))
            .ok()
            .and_then(|v| v.as_string())
            .as_deref()
        {
            Some("strict") => Durability::Strict,
            _ => Durability::Default,
        }
    }
}

/// Test hook: make the next commit fail part-way, after some of its puts were
/// issued, to check that IndexedDB rolls all of them back.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommitFault {
    /// Before put number `n`, issue a put whose key is not a valid key:
    /// IndexedDB throws `DataError` synchronously and the adapter aborts.
    ThrowBeforePut(usize),
    /// Before put number `n` (n >= 1), `add` the first put's key again: the
    /// request fails with `ConstraintError` and the browser aborts the
    /// transaction itself.
    FailRequestBeforePut(usize),
}

/// State shared with the connection's event handlers.
struct State {
    /// Why the connection is unusable, once it is.
    closed: RefCell<Option<String>>,
    durability: Cell<Durability>,
    commits: Cell<u64>,
    fault: Cell<Option<CommitFault>>,
    /// Non-empty commits to let through before `fault` applies.
    fault_skip: Cell<usize>,
    /// The last readonly transaction started: reads issued while it is still
    /// active (the same task: e.g. a thousand documents' loads started by
    /// one pump) share it instead of each starting one.
    reader: RefCell<Option<IdbTransaction>>,
}

impl State {
    fn mark_closed(&self, why: &str) {
        let mut closed = self.closed.borrow_mut();
        if closed.is_none() {
            *closed = Some(why.to_string());
        }
    }

    fn check_open(&self, name: &str) -> Result<(), StorageError> {
        match &*self.closed.borrow() {
            Some(why) => Err(StorageError::Unavailable(format!(
                "IndexedDB database {name:?}: {why}"
            ))),
            None => Ok(()),
        }
    }
}

/// An open IndexedDB database used as [`Storage`]. Not `Send` (browser
/// objects). Dropping it closes the connection.
pub struct IdbStorage {
    name: String,
    db: IdbDatabase,
    state: Rc<State>,
    /// Set by `open` before it returns.
    identity: Option<identity::Identity>,
    // Kept alive while installed on `db`; removed from it in `drop`.
    _on_versionchange: Closure<dyn FnMut(Event)>,
    _on_close: Closure<dyn FnMut(Event)>,
}

impl IdbStorage {
    /// Open (creating if needed) database `name` with object store
    /// `documents`. Fails with [`StorageError::Unavailable`] when IndexedDB is
    /// missing, the open is blocked by other connections, the database has a
    /// newer version, or it lacks the `documents` store.
    pub async fn open(name: &str) -> Result<IdbStorage, StorageError> {
        let factory = factory()?;
        let req = factory
            .open_with_u32(name, VERSION)
            .map_err(|e| map_error(&format!("opening {name:?}"), &e))?;
        HANDLERS.with(|h| req.set_onupgradeneeded(Some(h.upgrade.as_ref().unchecked_ref())));
        let mut guard = PendingOpen {
            req: req.clone(),
            settled: false,
        };
        let db = match settle_versioned(&req).await {
            Outcome::Success => {
                guard.settled = true;
                req.result()
                    .ok()
                    .and_then(|r| r.dyn_into::<IdbDatabase>().ok())
                    .ok_or_else(|| {
                        StorageError::Unavailable(format!(
                            "opening {name:?}: the open request succeeded without a database"
                        ))
                    })?
            }
            Outcome::Blocked => {
                // The request stays queued; `guard` closes the connection if
                // it is granted later, so it never blocks anyone.
                return Err(StorageError::Unavailable(format!(
                    "opening {name:?} is blocked: other connections to the database did not \
                     close within {BLOCKED_GRACE_MS} ms"
                )));
            }
            Outcome::Failed => {
                guard.settled = true;
                return Err(request_error(&format!("opening {name:?}"), &req));
            }
        };
        drop(guard);

        if !db.object_store_names().contains(STORE) {
            db.close();
            return Err(StorageError::Unavailable(format!(
                "database {name:?} has no {STORE:?} object store (created by another application?)"
            )));
        }

        let state = Rc::new(State {
            closed: RefCell::new(None),
            durability: Cell::new(Durability::Default),
            commits: Cell::new(0),
            fault: Cell::new(None),
            fault_skip: Cell::new(0),
            reader: RefCell::new(None),
        });
        let on_versionchange = {
            let state = Rc::clone(&state);
            let db = db.clone();
            Closure::<dyn FnMut(Event)>::new(move |_event: Event| {
                state.mark_closed(
                    "closed because another connection is deleting or upgrading the database \
                     (versionchange)",
                );
                db.close();
            })
        };
        let on_close = {
            let state = Rc::clone(&state);
            Closure::<dyn FnMut(Event)>::new(move |_event: Event| {
                state.mark_closed("the browser closed the connection (storage cleared or failed)");
            })
        };
        db.set_onversionchange(Some(on_versionchange.as_ref().unchecked_ref()));
        db.set_onclose(Some(on_close.as_ref().unchecked_ref()));

        let mut storage = IdbStorage {
            name: name.to_string(),
            db,
            state,
            identity: None,
            _on_versionchange: on_versionchange,
            _on_close: on_close,
        };
        // Probe what the browser does with the durability hint. Reading the
        // attribute is synchronous; the empty transaction is then aborted.
        let probe = storage.strict_transaction()?;
        storage.state.durability.set(Durability::of(&probe));
        let _ = probe.abort();
        let upgrade = identity::Upgrade::of_request(&req);
        storage.identity = Some(identity::identify(&storage, upgrade).await?);
        // The identity read's transaction may still be active: later reads
        // start their own (a connection closed underneath then fails them).
        storage.state.reader.borrow_mut().take();
        Ok(storage)
    }

    /// What this open learned about the database's identity and history:
    /// whether the browser reset it (see [`identity`]).
    pub fn identity(&self) -> &identity::Identity {
        self.identity
            .as_ref()
            .expect("set by IdbStorage::open before it returns")
    }

    /// Read the stored value under `key` as it is (`undefined` if absent).
    pub(crate) async fn get_value(&self, key: &StorageKey) -> Result<JsValue, StorageError> {
        let js_key = key_to_js(key);
        let req = self.read_request("reading a record", |store| store.get(&js_key))?;
        self.read("reading a record", &req).await
    }

    /// Store `bytes` under `key` in one strict transaction; with `add`, fail
    /// with `Ok(false)` instead of overwriting an existing record.
    pub(crate) async fn put_value(
        &self,
        key: &StorageKey,
        bytes: &[u8],
        add: bool,
    ) -> Result<bool, StorageError> {
        self.check_open()?;
        let tx = self.strict_transaction()?;
        let done = transaction_promise(&tx);
        let js_key = key_to_js(key);
        let issued = tx.object_store(STORE).and_then(|store| {
            let value = record(&js_key, bytes)?;
            let req = if add {
                store.add_with_key(&value, &js_key)?
            } else {
                store.put_with_key(&value, &js_key)?
            };
            Ok(req)
        });
        let req = match issued {
            Ok(req) => req,
            Err(e) => {
                let _ = tx.abort();
                let _ = JsFuture::from(done).await;
                return Err(self.fail("writing a record", &e));
            }
        };
        match JsFuture::from(done).await {
            Ok(_) => Ok(true),
            Err(_) => {
                let name = req
                    .error()
                    .ok()
                    .flatten()
                    .map(|e| e.name())
                    .unwrap_or_default();
                if add && name == "ConstraintError" {
                    return Ok(false);
                }
                Err(match tx.error() {
                    Some(e) => self.fail("writing a record", &e),
                    None => StorageError::Aborted("writing a record: transaction aborted".into()),
                })
            }
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the browser reported (`tx.durability`) for the last readwrite
    /// transaction we opened with `{durability: "strict"}`.
    pub fn durability(&self) -> Durability {
        self.state.durability.get()
    }

    /// How many readwrite transactions [`Storage::commit`] completed.
    pub fn commits(&self) -> u64 {
        self.state.commits.get()
    }

    /// Close the connection. Transactions already started still complete;
    /// every later call fails with [`StorageError::Unavailable`].
    pub fn close(&self) {
        self.state.mark_closed("closed by IdbStorage::close");
        self.db.close();
    }

    /// The underlying connection, for tests (e.g. closing it underneath).
    #[doc(hidden)]
    pub fn raw_database(&self) -> &IdbDatabase {
        &self.db
    }

    /// Test hook: make the next non-empty commit fail part-way.
    #[doc(hidden)]
    pub fn inject_commit_fault(&self, fault: CommitFault) {
        self.inject_commit_fault_after(0, fault);
    }

    /// Test hook: let `skip` non-empty commits through, then fail the next.
    #[doc(hidden)]
    pub fn inject_commit_fault_after(&self, skip: usize, fault: CommitFault) {
        self.state.fault_skip.set(skip);
        self.state.fault.set(Some(fault));
    }

    fn check_open(&self) -> Result<(), StorageError> {
        self.state.check_open(&self.name)
    }

    /// A failure of `transaction()` or of a request, seen in the light of
    /// whether we know the connection is gone.
    fn fail(&self, context: &str, err: &JsValue) -> StorageError {
        match (&*self.state.closed.borrow(), map_error(context, err)) {
            (Some(why), StorageError::Aborted(msg)) => {
                StorageError::Unavailable(format!("{msg} ({why})"))
            }
            (_, mapped) => mapped,
        }
    }

    fn strict_transaction(&self) -> Result<IdbTransaction, StorageError> {
        let options = Object::new();
        Reflect::set(&options, &"durability".into(), &"strict".into())
            .map_err(|e| map_error("building transaction options", &e))?;
        self.db
            .unchecked_ref::<DatabaseWithOptions>()
            .transaction_with_options(STORE, "readwrite", &options)
            .map_err(|e| self.fail("starting a readwrite transaction", &e))
    }

    fn read_store(&self) -> Result<IdbObjectStore, StorageError> {
        self.check_open()?;
        let tx = self
            .db
            .transaction_with_str(STORE)
            .map_err(|e| self.fail("starting a read transaction", &e))?;
        let store = tx
            .object_store(STORE)
            .map_err(|e| self.fail("opening the object store", &e))?;
        *self.state.reader.borrow_mut() = Some(tx);
        Ok(store)
    }

    /// Issue one read with `issue` on the current readonly transaction if it
    /// is still active, else on a new one. (A transaction that is no longer
    /// active makes the request throw synchronously, nothing else happens.)
    fn read_request(
        &self,
        context: &str,
        issue: impl Fn(&IdbObjectStore) -> Result<IdbRequest, JsValue>,
    ) -> Result<IdbRequest, StorageError> {
        self.check_open()?;
        let current = self.state.reader.borrow().clone();
        if let Some(store) = current.and_then(|tx| tx.object_store(STORE).ok()) {
            if let Ok(req) = issue(&store) {
                return Ok(req);
            }
        }
        issue(&self.read_store()?).map_err(|e| self.fail(context, &e))
    }

    /// Await a read request; its error is mapped from `request.error`.
    async fn read(&self, context: &str, req: &IdbRequest) -> Result<JsValue, StorageError> {
        match JsFuture::from(request_promise(req)).await {
            Ok(_) => req.result().map_err(|e| self.fail(context, &e)),
            Err(_) => {
                let err = req.error().ok().flatten().map(JsValue::from);
                Err(match err {
                    Some(e) => self.fail(context, &e),
                    None => StorageError::Aborted(format!("{context}: the request failed")),
                })
            }
        }
    }

    /// Issue every operation of `commit` on `tx`. An `Err` means a call threw
    /// synchronously; the caller aborts the transaction.
    fn issue(&self, tx: &IdbTransaction, commit: Commit) -> Result<(), JsValue> {
        let store = tx.object_store(STORE)?;
        for key in &commit.deletes {
            store.delete(&key_to_js(key))?;
        }
        for prefix in &commit.delete_prefixes {
            store.delete(&prefix_range(prefix)?.into())?;
        }
        let fault = match self.state.fault_skip.get() {
            0 => self.state.fault.take(),
            n => {
                self.state.fault_skip.set(n - 1);
                None
            }
        };
        let mut first_key = None;
        for (i, (key, bytes)) in commit.puts.iter().enumerate() {
            let js_key = key_to_js(key);
            let value = record(&js_key, bytes)?;
            match fault {
                Some(CommitFault::ThrowBeforePut(n)) if n == i => {
                    store.put_with_key(&value, &Object::new())?;
                }
                Some(CommitFault::FailRequestBeforePut(n)) if n == i => {
                    if let Some(first) = &first_key {
                        store.add_with_key(&value, first)?;
                    }
                }
                _ => {}
            }
            store.put_with_key(&value, &js_key)?;
            if first_key.is_none() {
                first_key = Some(js_key);
            }
        }
        Ok(())
    }
}

impl Drop for IdbStorage {
    fn drop(&mut self) {
        self.db.set_onversionchange(None);
        self.db.set_onclose(None);
        self.db.close();
    }
}

impl Storage for IdbStorage {
    async fn get(&self, key: &StorageKey) -> Result<Option<Vec<u8>>, StorageError> {
        let js_key = key_to_js(key);
        let req = self.read_request("reading a record", |store| store.get(&js_key))?;
        let value = self.read("reading a record", &req).await?;
        if value.is_undefined() {
            return Ok(None);
        }
        binary_of(&value)
            .map(Some)
            .map_err(|detail| StorageError::Corrupt {
                key: key.clone(),
                detail,
            })
    }

    async fn range(&self, prefix: &StorageKey) -> Result<Vec<(StorageKey, Vec<u8>)>, StorageError> {
        let range = prefix_range(prefix).map_err(|e| self.fail("building a key range", &e))?;
        // One request: every stored value carries its own key (`{key,
        // binary}`, automerge-repo's layout), so no getAllKeys is needed.
        let req = self.read_request("reading records", |store| store.get_all_with_key(&range))?;
        let values: Array = self
            .read("reading records", &req)
            .await?
            .dyn_into()
            .map_err(|_| StorageError::Aborted("reading records: result is not an array".into()))?;
        let mut out = Vec::with_capacity(values.length() as usize);
        for v in values.iter() {
            let stored_key =
                Reflect::get(&v, &JsValue::from_str("key")).unwrap_or(JsValue::UNDEFINED);
            let key = key_from_js(&stored_key).map_err(|detail| StorageError::Corrupt {
                key: StorageKey::new([format!("{stored_key:?}")]),
                detail: format!("a record under {prefix} has no valid `key` field: {detail}"),
            })?;
            let bytes = binary_of(&v).map_err(|detail| StorageError::Corrupt {
                key: key.clone(),
                detail,
            })?;
            out.push((key, bytes));
        }
        Ok(out)
    }

    async fn commit(&self, commit: Commit) -> Result<(), StorageError> {
        self.check_open()?;
        if commit.is_empty() {
            return Ok(());
        }
        let tx = self.strict_transaction()?;
        self.state.durability.set(Durability::of(&tx));
        let done = transaction_promise(&tx);
        let thrown = self.issue(&tx, commit).err();
        if thrown.is_some() {
            // Nothing of this transaction may land. The abort event settles
            // `done` (abort() cannot throw here: the transaction is active).
            let _ = tx.abort();
        }
        let settled = JsFuture::from(done).await;
        if let Some(e) = thrown {
            return Err(self.fail("commit", &e));
        }
        match settled {
            Ok(_) => {
                self.state.commits.set(self.state.commits.get() + 1);
                Ok(())
            }
            Err(_) => Err(match tx.error() {
                Some(e) => self.fail("commit", &e),
                None => match &*self.state.closed.borrow() {
                    Some(why) => {
                        StorageError::Unavailable(format!("commit: transaction aborted ({why})"))
                    }
                    None => StorageError::Aborted("commit: transaction aborted".into()),
                },
            }),
        }
    }
}

/// Delete database `name`. Our own open connections close themselves on the
/// `versionchange` this causes. If another connection does not close, the
/// browser reports `blocked`: this returns [`StorageError::Unavailable`] at
/// once; the deletion stays queued and happens when those connections close.
///
/// Deleting through here is not a loss: the origin's memory of the database
/// is cleared first, so the next open does not report a [`StorageReset`].
///
/// [`StorageReset`]: holdfast_core::storage::StorageReset
pub async fn delete_database(name: &str) -> Result<(), StorageError> {
    let factory = factory()?;
    identity::forget(name).await;
    let req = factory
        .delete_database(name)
        .map_err(|e| map_error(&format!("deleting {name:?}"), &e))?;
    match settle_versioned(&req).await {
        Outcome::Success => Ok(()),
        Outcome::Blocked => Err(StorageError::Unavailable(format!(
            "deleting {name:?} is blocked: other connections to the database did not close \
             within {BLOCKED_GRACE_MS} ms; the deletion stays queued until they close"
        ))),
        Outcome::Failed => Err(request_error(&format!("deleting {name:?}"), &req)),
    }
}

enum Outcome {
    Success,
    Failed,
    Blocked,
}

/// Await an open or delete request. After `blocked`, wait at most
/// [`BLOCKED_GRACE_MS`] more for `success` or `error`.
async fn settle_versioned(req: &IdbOpenDbRequest) -> Outcome {
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
struct PendingOpen {
    req: IdbOpenDbRequest,
    settled: bool,
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
fn factory() -> Result<IdbFactory, StorageError> {
    let global = js_sys::global();
    let value = Reflect::get(&global, &JsValue::from_str("indexedDB"))
        .map_err(|e| map_error("getting indexedDB", &e))?;
    value
        .dyn_into::<IdbFactory>()
        .map_err(|_| StorageError::Unavailable("IndexedDB is not available in this context".into()))
}

/// A promise settled by a request: resolved with the event on `success`,
/// rejected with it on `error`.
fn request_promise(req: &IdbRequest) -> Promise {
    Promise::new(&mut |resolve, reject| {
        req.set_onsuccess(Some(&resolve));
        req.set_onerror(Some(&reject));
    })
}

/// A promise settled by a transaction: resolved on `complete`, rejected on
/// `abort` (request errors abort the transaction unless prevented, so
/// `error` needs no handler of its own).
fn transaction_promise(tx: &IdbTransaction) -> Promise {
    Promise::new(&mut |resolve, reject| {
        tx.set_oncomplete(Some(&resolve));
        tx.set_onabort(Some(&reject));
    })
}

fn event_type(event: &JsValue) -> Option<String> {
    event.dyn_ref::<Event>().map(|e| e.type_())
}

fn request_error(context: &str, req: &IdbRequest) -> StorageError {
    match req.error() {
        Ok(Some(e)) => map_error(context, &e),
        Ok(None) => StorageError::Aborted(format!("{context}: the request failed")),
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
/// exception's name and message in the text.
fn map_error(context: &str, err: &JsValue) -> StorageError {
    let name = prop_string(err, "name").unwrap_or_default();
    let message = prop_string(err, "message")
        .or_else(|| err.as_string())
        .unwrap_or_else(|| format!("{err:?}"));
    let text = if name.is_empty() {
        format!("{context}: {message}")
    } else {
        format!("{context}: {name}: {message}")
    };
    match name.as_str() {
        "QuotaExceededError" => StorageError::QuotaExceeded(text),
        "AbortError" => StorageError::Aborted(text),
        "InvalidStateError"
        | "TransactionInactiveError"
        | "VersionError"
        | "NotFoundError"
        | "SecurityError" => StorageError::Unavailable(text),
        _ => StorageError::Aborted(text),
    }
}

fn key_to_js(key: &StorageKey) -> JsValue {
    key.0
        .iter()
        .map(|s| JsValue::from_str(s))
        .collect::<Array>()
        .into()
}

fn key_from_js(value: &JsValue) -> Result<StorageKey, String> {
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
fn prefix_range(prefix: &StorageKey) -> Result<IdbKeyRange, JsValue> {
    let lower = key_to_js(prefix);
    let upper: Array = prefix.0.iter().map(|s| JsValue::from_str(s)).collect();
    upper.push(&Array::new());
    IdbKeyRange::bound_with_lower_open_and_upper_open(&lower, &upper, false, true)
}

/// The stored value: `{key, binary}` as automerge-repo writes it.
fn record(key: &JsValue, bytes: &[u8]) -> Result<Object, JsValue> {
    let value = Object::new();
    Reflect::set(&value, &JsValue::from_str("key"), key)?;
    Reflect::set(
        &value,
        &JsValue::from_str("binary"),
        &Uint8Array::from(bytes),
    )?;
    Ok(value)
}

fn binary_of(value: &JsValue) -> Result<Vec<u8>, String> {
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
