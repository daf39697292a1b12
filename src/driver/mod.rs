//! The browser event loop around the core: it feeds the [`Repo`] inputs
//! stamped with `Date.now()`, performs its effects (storage operations as
//! spawned futures, timers through `setTimeout`), and settles the JS promises
//! of local operations from the core's events.
//!
//! Invariants:
//! - The core is borrowed only between awaits and never while JS code runs
//!   (event handlers may call back into the repo).
//! - Effects are drained in a microtask after the calls of the current tick,
//!   so that changes made in one tick share one commit (the core builds the
//!   commit when its effect queue runs dry).
//! - A promise is settled only from the core's `ChangeDurable` /
//!   `ChangeFailed` / `Find*` events, i.e. after the commit completed.

mod events;

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::{Rc, Weak};

use automerge::{Automerge, ChangeHash};
use js_sys::{Array, Function, Object, Promise, Reflect};
use wasm_bindgen::prelude::*;

use crate::js::{clear_timeout, now, set_timeout};
use crate::net::{Net, NetEvent};
use holdfast_core::id::DocumentId;
use holdfast_core::repo::{ChangeId, Direction, DurableDoc, Effect, FindId, Repo};
use holdfast_core::storage::Storage;

/// Heads for JS as automerge-repo 2.x hands them out (`UrlHeads`): each
/// hash bs58check-encoded, as in `automerge:<id>#<heads>` URLs.
pub fn heads_js(heads: &[ChangeHash]) -> JsValue {
    heads
        .iter()
        .map(|h| JsValue::from_str(&holdfast_core::id::format_head(h)))
        .collect::<Array>()
        .into()
}

/// What a settled local operation resolves with.
enum Outcome {
    Heads,
    Value(JsValue),
}

struct Waiter {
    resolve: Function,
    reject: Function,
    outcome: Outcome,
}

struct State {
    repo: Repo,
    changes: HashMap<ChangeId, Waiter>,
    finds: HashMap<FindId, Waiter>,
    idle: Vec<Function>,
    handler: Option<Function>,
    /// Diagnostics: told of every commit as it is handed to storage.
    commit_observer: Option<Function>,
    pump_scheduled: bool,
    timer_at: Option<u64>,
    /// The `setTimeout` id of the armed timer, to clear it on close.
    timer_id: Option<JsValue>,
}

struct Shared<S> {
    storage: S,
    state: RefCell<State>,
    net: Net,
}

/// Runs a [`Repo`] over storage `S` in the browser's event loop.
pub struct Driver<S: Storage + 'static> {
    shared: Rc<Shared<S>>,
}

impl<S: Storage + 'static> Clone for Driver<S> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

/// A promise and its settle functions.
fn deferred() -> (Promise, Function, Function) {
    let mut parts = None;
    let p = Promise::new(&mut |res, rej| parts = Some((res, rej)));
    let (res, rej) = parts.expect("the Promise executor runs synchronously");
    (p, res, rej)
}

impl<S: Storage + 'static> Driver<S> {
    pub fn new(repo: Repo, storage: S) -> Self {
        let state = State {
            repo,
            changes: HashMap::new(),
            finds: HashMap::new(),
            idle: Vec::new(),
            handler: None,
            commit_observer: None,
            pump_scheduled: false,
            timer_at: None,
            timer_id: None,
        };
        let shared = Rc::new_cyclic(|weak: &Weak<Shared<S>>| {
            let weak = weak.clone();
            Shared {
                storage,
                state: RefCell::new(state),
                // Weak: the transport must not keep a closed repo alive.
                net: Net::new(move |event| {
                    if let Some(shared) = weak.upgrade() {
                        Driver { shared }.on_net(event);
                    }
                }),
            }
        });
        Self { shared }
    }

    /// Start syncing with these servers.
    pub fn set_sync_servers(&self, servers: Vec<crate::net::SyncServer>, paused: bool) {
        self.shared.net.add_servers(servers, paused);
    }

    /// `"online"` (a sync server is connected), `"connecting"` or `"offline"`.
    pub fn status(&self) -> &'static str {
        self.shared.net.status().as_str()
    }

    /// Close every connection and stay offline until [`Driver::go_online`].
    pub fn go_offline(&self) {
        self.shared.net.go_offline();
    }

    pub fn go_online(&self) {
        self.shared.net.go_online();
    }

    fn on_net(&self, event: NetEvent) {
        match event {
            NetEvent::Opened(conn) => {
                self.with_repo(|r| r.connected(now(), conn, Direction::Outgoing))
            }
            NetEvent::Frame(conn, bytes) => self.with_repo(|r| r.frame(now(), conn, &bytes)),
            NetEvent::Closed(conn) => self.with_repo(|r| r.disconnected(now(), conn)),
            NetEvent::Status(status) => self.emit(&[
                ("type", "status".into()),
                ("status", status.as_str().into()),
            ]),
        }
    }

    pub fn storage(&self) -> &S {
        &self.shared.storage
    }

    /// Run `f` against the core (no JS may run inside `f`), then schedule
    /// the effects it produced to be drained.
    pub fn with_repo<R>(&self, f: impl FnOnce(&mut Repo) -> R) -> R {
        let r = f(&mut self.shared.state.borrow_mut().repo);
        self.schedule_pump();
        r
    }

    /// Read a document's working state.
    pub fn read<R>(&self, id: &DocumentId, f: impl FnOnce(&Automerge) -> R) -> Option<R> {
        self.shared.state.borrow().repo.doc(id).map(f)
    }

    /// Read a document's durable state (what storage holds).
    pub fn read_durable<R>(
        &self,
        id: &DocumentId,
        f: impl FnOnce(DurableDoc<'_>) -> R,
    ) -> Option<R> {
        self.shared.state.borrow().repo.durable_doc(id).map(f)
    }

    /// A promise settled when `change` is reported: resolved with the
    /// durable heads, or with `value` if given; rejected with the named
    /// storage error.
    pub fn await_change(&self, change: ChangeId, value: Option<JsValue>) -> Promise {
        let (p, resolve, reject) = deferred();
        let outcome = value.map_or(Outcome::Heads, Outcome::Value);
        self.shared.state.borrow_mut().changes.insert(
            change,
            Waiter {
                resolve,
                reject,
                outcome,
            },
        );
        self.schedule_pump();
        p
    }

    pub fn await_find(&self, find: FindId, value: JsValue) -> Promise {
        let (p, resolve, reject) = deferred();
        self.shared.state.borrow_mut().finds.insert(
            find,
            Waiter {
                resolve,
                reject,
                outcome: Outcome::Value(value),
            },
        );
        self.schedule_pump();
        p
    }

    /// Resolves once nothing is in flight or waiting to be committed.
    pub fn when_idle(&self) -> Promise {
        let (p, resolve, _) = deferred();
        self.shared.state.borrow_mut().idle.push(resolve);
        self.schedule_pump();
        p
    }

    pub fn set_handler(&self, f: Option<Function>) {
        self.shared.state.borrow_mut().handler = f;
    }

    /// Diagnostics (crash tests aim their kill with it): `f({puts,
    /// snapshots, quarantined, deletes, deletePrefixes})` is called as each
    /// commit is handed to storage, before it can complete.
    pub fn set_commit_observer(&self, f: Option<Function>) {
        self.shared.state.borrow_mut().commit_observer = f;
    }

    fn observe_commit(&self, commit: &holdfast_core::storage::Commit) {
        use holdfast_core::storage::{ChunkKind, RecordKind};
        let observer = self.shared.state.borrow().commit_observer.clone();
        let Some(f) = observer else { return };
        let count = |kind: RecordKind| commit.puts.iter().filter(|(k, _)| k.kind() == kind).count();
        let o = Object::new();
        for (k, v) in [
            ("puts", commit.puts.len()),
            ("snapshots", count(RecordKind::Chunk(ChunkKind::Snapshot))),
            ("quarantined", count(RecordKind::Quarantine)),
            ("deletes", commit.deletes.len()),
            ("deletePrefixes", commit.delete_prefixes.len()),
        ] {
            let _ = Reflect::set(&o, &k.into(), &(v as f64).into());
        }
        let _ = f.call1(&JsValue::UNDEFINED, &o);
    }

    fn schedule_pump(&self) {
        let mut st = self.shared.state.borrow_mut();
        if st.pump_scheduled {
            return;
        }
        st.pump_scheduled = true;
        let this = self.clone();
        wasm_bindgen_futures::spawn_local(async move { this.pump() });
    }

    /// Drain the core's effects.
    fn pump(&self) {
        self.shared.state.borrow_mut().pump_scheduled = false;
        loop {
            let effect = self.shared.state.borrow_mut().repo.poll_effect();
            let Some(effect) = effect else { break };
            match effect {
                Effect::Commit { task, commit } => {
                    self.observe_commit(&commit);
                    let this = self.clone();
                    wasm_bindgen_futures::spawn_local(async move {
                        let result = this.shared.storage.commit(commit).await;
                        this.shared
                            .state
                            .borrow_mut()
                            .repo
                            .commit_done(now(), task, result);
                        this.pump();
                    });
                }
                Effect::Load { task, prefix } => {
                    let this = self.clone();
                    wasm_bindgen_futures::spawn_local(async move {
                        let result = this.shared.storage.range(&prefix).await;
                        this.shared
                            .state
                            .borrow_mut()
                            .repo
                            .load_done(now(), task, result);
                        this.pump();
                    });
                }
                Effect::Send { conn, frame } => self.shared.net.send(conn, &frame),
                Effect::Close { conn } => self.shared.net.close(conn),
                Effect::Event(e) => self.dispatch(e),
            }
        }
        self.arm_timer();
        let idle = {
            let mut st = self.shared.state.borrow_mut();
            if st.repo.is_idle() {
                std::mem::take(&mut st.idle)
            } else {
                Vec::new()
            }
        };
        for resolve in idle {
            let _ = resolve.call0(&JsValue::UNDEFINED);
        }
    }

    fn arm_timer(&self) {
        let deadline = self.shared.state.borrow().repo.poll_timeout();
        let Some(at) = deadline else { return };
        {
            let mut st = self.shared.state.borrow_mut();
            if st.timer_at.is_some_and(|t| t <= at.0) {
                return;
            }
            st.timer_at = Some(at.0);
        }
        let this = self.clone();
        let fire = Closure::once_into_js(move || {
            this.shared.state.borrow_mut().timer_at = None;
            this.shared.state.borrow_mut().timer_id = None;
            this.shared.state.borrow_mut().repo.handle_timeout(now());
            this.pump();
        });
        let delay = at.0.saturating_sub(now().0) as f64;
        if let Some(id) = set_timeout(&fire, delay) {
            self.shared.state.borrow_mut().timer_id = Some(id);
        }
    }

    /// Reject every `find` still waiting (the repo is closing; with the
    /// timer cleared nothing would settle them).
    pub fn reject_finds(&self, error: &JsValue) {
        let waiters: Vec<Waiter> = {
            let mut st = self.shared.state.borrow_mut();
            st.finds.drain().map(|(_, w)| w).collect()
        };
        for w in waiters {
            let _ = w.reject.call1(&JsValue::UNDEFINED, error);
        }
    }

    /// Clear the armed timer (the repo is closing): a pending find
    /// deadline must not keep the page's or node's event loop, and this
    /// driver, alive.
    pub fn cancel_timer(&self) {
        let id = {
            let mut st = self.shared.state.borrow_mut();
            st.timer_at = None;
            st.timer_id.take()
        };
        if let Some(id) = id {
            clear_timeout(&id);
        }
    }

    fn settle(&self, waiter: Option<Waiter>, result: Result<JsValue, JsValue>) {
        let Some(w) = waiter else { return };
        let _ = match (result, w.outcome) {
            (Ok(heads), Outcome::Heads) => w.resolve.call1(&JsValue::UNDEFINED, &heads),
            (Ok(_), Outcome::Value(v)) => w.resolve.call1(&JsValue::UNDEFINED, &v),
            (Err(e), _) => w.reject.call1(&JsValue::UNDEFINED, &e),
        };
    }

    /// Call the JS event handler (outside any borrow of the core).
    fn emit(&self, fields: &[(&str, JsValue)]) {
        let handler = self.shared.state.borrow().handler.clone();
        let Some(handler) = handler else { return };
        let ev = Object::new();
        for (k, v) in fields {
            let _ = Reflect::set(&ev, &JsValue::from_str(k), v);
        }
        if let Err(e) = handler.call1(&JsValue::UNDEFINED, &ev) {
            web_sys::console::error_2(&"holdfast: an event handler threw".into(), &e);
        }
    }
}
