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
//!
//! Files: this one holds the connection ([`IdbStorage`]: open, close,
//! `versionchange`) and [`delete_database`]; `open.rs` the open and delete
//! requests (bounded wait after `blocked`, store creation on upgrade);
//! `storage.rs` the [`Storage`] impl; `js.rs` the request/transaction
//! promises, key and record conversion and error mapping; `fault.rs` the
//! test hook `CommitFault` (feature `test-hooks` only).
//!
//! [`Storage`]: holdfast_core::storage::Storage
//! [`Storage::commit`]: holdfast_core::storage::Storage::commit
//! [`StorageKey`]: holdfast_core::storage::StorageKey

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use js_sys::Reflect;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{Event, IdbDatabase, IdbTransaction};

use crate::identity;
use holdfast_core::storage::StorageError;

#[cfg(feature = "test-hooks")]
mod fault;
mod js;
mod open;
mod storage;

#[cfg(feature = "test-hooks")]
pub use fault::CommitFault;
use js::{map_error, request_error};
use open::{create_store_on_upgrade, factory, settle_versioned, Outcome, PendingOpen};

/// The object store holding every record (automerge-repo's name).
pub const STORE: &str = "documents";
/// The schema version this adapter opens.
const VERSION: u32 = 1;

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

/// State shared with the connection's event handlers.
struct State {
    /// Why the connection is unusable, once it is.
    closed: RefCell<Option<String>>,
    durability: Cell<Durability>,
    commits: Cell<u64>,
    /// The test hook's fault, waiting for its commit.
    #[cfg(feature = "test-hooks")]
    faults: fault::Faults,
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
            Some(why) => Err(StorageError::Unavailable(
                format!("IndexedDB database {name:?}: {why}").into(),
            )),
            None => Ok(()),
        }
    }
}

/// An open IndexedDB database used as [`Storage`]. Not `Send` (browser
/// objects). Dropping it closes the connection.
///
/// [`Storage`]: holdfast_core::storage::Storage
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
        create_store_on_upgrade(&req);
        let mut guard = PendingOpen::new(&req);
        let db = match settle_versioned(&req).await {
            Outcome::Success => {
                guard.settle();
                req.result()
                    .ok()
                    .and_then(|r| r.dyn_into::<IdbDatabase>().ok())
                    .ok_or_else(|| {
                        StorageError::Unavailable(
                            format!(
                                "opening {name:?}: the open request succeeded without a database"
                            )
                            .into(),
                        )
                    })?
            }
            Outcome::Blocked => {
                // The request stays queued; `guard` closes the connection if
                // it is granted later, so it never blocks anyone.
                return Err(StorageError::Unavailable(
                    format!(
                        "opening {name:?} is blocked: other connections to the database did \
                         not close within {BLOCKED_GRACE_MS} ms"
                    )
                    .into(),
                ));
            }
            Outcome::Failed => {
                guard.settle();
                return Err(request_error(&format!("opening {name:?}"), &req));
            }
        };
        drop(guard);

        if !db.object_store_names().contains(STORE) {
            db.close();
            return Err(StorageError::Unavailable(
                format!(
                    "database {name:?} has no {STORE:?} object store (created by another \
                     application?)"
                )
                .into(),
            ));
        }

        let state = Rc::new(State {
            closed: RefCell::new(None),
            durability: Cell::new(Durability::Default),
            commits: Cell::new(0),
            #[cfg(feature = "test-hooks")]
            faults: fault::Faults::default(),
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

    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the browser reported (`tx.durability`) for the last readwrite
    /// transaction we opened with `{durability: "strict"}`.
    pub fn durability(&self) -> Durability {
        self.state.durability.get()
    }

    /// How many readwrite transactions [`Storage::commit`] completed.
    ///
    /// [`Storage::commit`]: holdfast_core::storage::Storage::commit
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
}

impl Drop for IdbStorage {
    fn drop(&mut self) {
        self.db.set_onversionchange(None);
        self.db.set_onclose(None);
        self.db.close();
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
        Outcome::Blocked => Err(StorageError::Unavailable(
            format!(
                "deleting {name:?} is blocked: other connections to the database did not close \
                 within {BLOCKED_GRACE_MS} ms; the deletion stays queued until they close"
            )
            .into(),
        )),
        Outcome::Failed => Err(request_error(&format!("deleting {name:?}"), &req)),
    }
}
