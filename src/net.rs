//! The browser's WebSocket transport: one socket per connection the
//! [`Dialer`] asks for. The dialer (in the core) decides when to connect,
//! back off and give up; the repo does the handshake and the sync; this only
//! opens and closes sockets, moves frames, listens to the browser's
//! `online`/`offline` events and reports what happened as [`NetEvent`]s.
//!
//! Invariants: no borrow of the transport's state is held while the sink
//! runs (it calls into the repo and, for status changes, into JS handlers
//! that may call back here); a socket's handlers are detached before it is
//! closed on purpose, so only sockets closing by themselves report a loss.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use js_sys::{Function, Promise, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use web_sys::{BinaryType, MessageEvent, WebSocket};

use crate::js::{now, random_u32, set_timeout};
use holdfast_core::dialer::{DialAction, Dialer, DialerConfig, Status};
use holdfast_core::repo::ConnId;

/// What the transport tells its owner.
pub enum NetEvent {
    /// `conn`'s socket is open: the repo may start the handshake.
    Opened(ConnId),
    Frame(ConnId, Vec<u8>),
    /// `conn` is gone (closed by either side); the repo must forget it.
    Closed(ConnId),
    /// The application-visible status changed.
    Status(Status),
}

type Handler = Closure<dyn FnMut(JsValue)>;

/// A sync server: its URL (what the dialer and messages name), and
/// optionally a function called before every connection attempt that
/// returns (a promise of) the URL to open instead: `pkg/index.js` makes one
/// from a `token` option, so that a token function runs on every
/// reconnect and the token is never logged.
pub struct SyncServer {
    pub url: String,
    pub connect_url: Option<Function>,
}

struct Socket {
    ws: WebSocket,
    /// The closures the socket calls; alive as long as the socket.
    handlers: Vec<Handler>,
}

struct Inner {
    dialer: Dialer,
    sockets: HashMap<ConnId, Socket>,
    /// The last status reported.
    status: Status,
    /// The deadline a `setTimeout` is armed for.
    timer_at: Option<u64>,
    online_handlers: Option<[Handler; 2]>,
    /// Per server URL: its `connect_url` function.
    connect_urls: HashMap<String, Function>,
    /// Connections waiting for their `connect_url` (no socket yet).
    resolving: HashSet<ConnId>,
}

/// The transport; clones share it.
#[derive(Clone)]
pub struct Net {
    inner: Rc<RefCell<Inner>>,
    sink: Rc<dyn Fn(NetEvent)>,
}

/// The `sync` option as `pkg/index.js` passes it: absent, a URL, or an
/// array of URLs and `{ url, connectUrl? }` objects.
pub fn sync_servers(v: &JsValue) -> Result<Vec<SyncServer>, String> {
    const WHAT: &str =
        "`sync` must be a WebSocket URL, a { url, token } object or an array of them";
    if v.is_undefined() || v.is_null() {
        return Ok(Vec::new());
    }
    let items: Vec<JsValue> = match js_sys::Array::is_array(v) {
        true => js_sys::Array::from(v).iter().collect(),
        false => vec![v.clone()],
    };
    let mut out = Vec::new();
    for item in items {
        if let Some(url) = item.as_string() {
            out.push(SyncServer {
                url,
                connect_url: None,
            });
            continue;
        }
        let get = |k: &str| Reflect::get(&item, &k.into()).unwrap_or(JsValue::UNDEFINED);
        let Some(url) = item.is_object().then(|| get("url").as_string()).flatten() else {
            return Err(WHAT.into());
        };
        let connect = get("connectUrl");
        let connect_url = match connect.dyn_into::<Function>() {
            Ok(f) => Some(f),
            Err(v) if v.is_undefined() => None,
            Err(_) => return Err(format!("{WHAT}: connectUrl must be a function")),
        };
        out.push(SyncServer { url, connect_url });
    }
    Ok(out)
}

fn browser_online() -> bool {
    let nav = Reflect::get(&js_sys::global(), &"navigator".into()).ok();
    nav.and_then(|n| Reflect::get(&n, &"onLine".into()).ok())
        .and_then(|v| v.as_bool())
        .unwrap_or(true)
}

impl Net {
    /// A transport reporting to `sink`, with connection ids from 1 up (the
    /// browser repo has no other connections).
    pub fn new(sink: impl Fn(NetEvent) + 'static) -> Self {
        Self {
            inner: Rc::new(RefCell::new(Inner {
                dialer: Dialer::new(DialerConfig::default(), 1),
                sockets: HashMap::new(),
                status: Status::Offline,
                timer_at: None,
                online_handlers: None,
                connect_urls: HashMap::new(),
                resolving: HashSet::new(),
            })),
            sink: Rc::new(sink),
        }
    }

    /// Start syncing with these servers (`paused`: only once
    /// [`Net::go_online`] is called).
    pub fn add_servers(&self, servers: Vec<SyncServer>, paused: bool) {
        self.listen_online();
        {
            let mut inner = self.inner.borrow_mut();
            if paused {
                inner.dialer.pause();
            }
            inner.dialer.set_network(browser_online());
            for s in servers {
                if let Some(f) = s.connect_url {
                    inner.connect_urls.insert(s.url.clone(), f);
                }
                inner.dialer.add(s.url);
            }
        }
        self.drain();
    }

    pub fn status(&self) -> Status {
        self.inner.borrow().dialer.status()
    }

    /// The peer that completed the handshake on `conn`.
    pub fn peer(&self, conn: ConnId) -> Option<String> {
        self.inner.borrow().dialer.peer(conn).map(str::to_string)
    }

    /// Close every connection and stay offline until [`Net::go_online`].
    pub fn go_offline(&self) {
        self.inner.borrow_mut().dialer.pause();
        self.drain();
    }

    pub fn go_online(&self) {
        self.inner.borrow_mut().dialer.resume();
        self.drain();
    }

    pub fn send(&self, conn: ConnId, frame: &[u8]) {
        let ws = self.inner.borrow().sockets.get(&conn).map(|s| s.ws.clone());
        if let Some(ws) = ws {
            if ws.ready_state() == WebSocket::OPEN {
                if let Err(e) = ws.send_with_u8_array(frame) {
                    web_sys::console::warn_2(&"holdfast: send failed".into(), &e);
                }
            }
        }
    }

    /// The repo wants `conn` closed; the dialer retries later.
    pub fn close(&self, conn: ConnId) {
        self.inner
            .borrow_mut()
            .dialer
            .close(now(), conn, random_u32());
        self.drain();
    }

    /// The handshake on `conn` completed with `peer_id`.
    pub fn peer_joined(&self, conn: ConnId, peer_id: String) {
        self.inner.borrow_mut().dialer.peer_joined(conn, peer_id);
        self.status_changed();
    }

    pub fn peer_left(&self, conn: ConnId) {
        self.inner.borrow_mut().dialer.peer_left(conn);
        self.status_changed();
    }

    /// Carry out what the dialer asks, then re-arm its timer and report a
    /// status change.
    fn drain(&self) {
        loop {
            let action = self.inner.borrow_mut().dialer.poll_action();
            match action {
                Some(DialAction::Open { conn, url, .. }) => self.open(conn, &url),
                Some(DialAction::Close { conn }) => self.forget(conn),
                None => break,
            }
        }
        self.arm_timer();
        self.status_changed();
    }

    /// Open `conn` to `url`, first asking its `connect_url` function (if it
    /// has one) which URL to open: a failure there is a failed attempt
    /// (the dialer backs off and tries again, calling it again).
    fn open(&self, conn: ConnId, url: &str) {
        let connect = self.inner.borrow().connect_urls.get(url).cloned();
        let Some(f) = connect else {
            return self.open_socket(conn, url, url);
        };
        self.inner.borrow_mut().resolving.insert(conn);
        let (this, url) = (self.clone(), url.to_string());
        wasm_bindgen_futures::spawn_local(async move {
            let resolved = match f.call0(&JsValue::UNDEFINED) {
                Ok(v) => wasm_bindgen_futures::JsFuture::from(Promise::resolve(&v)).await,
                Err(e) => Err(e),
            };
            // Closed meanwhile (offline, or the repo closed): nothing to open.
            if !this.inner.borrow_mut().resolving.remove(&conn) {
                return;
            }
            match resolved.map(|v| v.as_string()) {
                Ok(Some(actual)) => this.open_socket(conn, &url, &actual),
                Ok(None) => {
                    web_sys::console::warn_1(
                        &format!("holdfast: the token for {url} is not a string").into(),
                    );
                    this.lost(conn);
                }
                Err(e) => {
                    web_sys::console::warn_2(
                        &format!("holdfast: getting the token for {url} failed").into(),
                        &e,
                    );
                    this.lost(conn);
                }
            }
        });
    }

    /// Open `conn`'s socket to `actual` (`url` with its token, if any;
    /// messages name `url` only).
    fn open_socket(&self, conn: ConnId, url: &str, actual: &str) {
        let ws = match WebSocket::new(actual) {
            Ok(ws) => ws,
            Err(e) => {
                web_sys::console::error_2(&format!("holdfast: cannot open {url}").into(), &e);
                let mut inner = self.inner.borrow_mut();
                inner.dialer.connection_lost(now(), conn, random_u32());
                return;
            }
        };
        ws.set_binary_type(BinaryType::Arraybuffer);
        let on_open = {
            let sink = self.sink.clone();
            Handler::new(move |_| sink(NetEvent::Opened(conn)))
        };
        let on_message = {
            let sink = self.sink.clone();
            Handler::new(move |ev: JsValue| {
                if let Ok(ev) = ev.dyn_into::<MessageEvent>() {
                    sink(NetEvent::Frame(conn, Uint8Array::new(&ev.data()).to_vec()));
                }
            })
        };
        let on_close = {
            let this = self.clone();
            Handler::new(move |_| this.lost(conn))
        };
        ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        self.inner.borrow_mut().sockets.insert(
            conn,
            Socket {
                ws,
                handlers: vec![on_open, on_message, on_close],
            },
        );
    }

    /// `conn`'s socket closed by itself.
    fn lost(&self, conn: ConnId) {
        self.inner
            .borrow_mut()
            .dialer
            .connection_lost(now(), conn, random_u32());
        self.forget(conn);
        self.drain();
    }

    /// Close `conn`'s socket (if still open) and tell the owner it is gone.
    fn forget(&self, conn: ConnId) {
        self.inner.borrow_mut().resolving.remove(&conn);
        let socket = self.inner.borrow_mut().sockets.remove(&conn);
        let Some(Socket { ws, handlers }) = socket else {
            return;
        };
        ws.set_onopen(None);
        ws.set_onmessage(None);
        ws.set_onclose(None);
        let _ = ws.close();
        // The closures may be running right now (this is called from
        // `onclose`): drop them after the current task.
        wasm_bindgen_futures::spawn_local(async move { drop(handlers) });
        (self.sink)(NetEvent::Closed(conn));
    }

    fn arm_timer(&self) {
        let at = {
            let mut inner = self.inner.borrow_mut();
            let Some(at) = inner.dialer.poll_timeout() else {
                return;
            };
            if inner.timer_at.is_some_and(|t| t <= at.0) {
                return;
            }
            inner.timer_at = Some(at.0);
            at.0
        };
        let this = self.clone();
        let fire = Closure::once_into_js(move || {
            this.inner.borrow_mut().timer_at = None;
            this.inner.borrow_mut().dialer.handle_timeout(now());
            this.drain();
        });
        set_timeout(&fire, at.saturating_sub(now().0) as f64);
    }

    fn status_changed(&self) {
        let changed = {
            let mut inner = self.inner.borrow_mut();
            let status = inner.dialer.status();
            (std::mem::replace(&mut inner.status, status) != status).then_some(status)
        };
        if let Some(status) = changed {
            (self.sink)(NetEvent::Status(status));
        }
    }

    /// Follow the browser's `online`/`offline` events: reconnect at once
    /// when it comes back, close sockets when it goes (they can hang
    /// half-open otherwise).
    fn listen_online(&self) {
        if self.inner.borrow().online_handlers.is_some() {
            return;
        }
        let global = js_sys::global();
        let Ok(add) = Reflect::get(&global, &"addEventListener".into())
            .and_then(|f| f.dyn_into::<Function>())
        else {
            return;
        };
        let handler = |up: bool| {
            let this = self.clone();
            Handler::new(move |_| {
                this.inner.borrow_mut().dialer.set_network(up);
                this.drain();
            })
        };
        let (online, offline) = (handler(true), handler(false));
        let _ = add.call2(&global, &"online".into(), online.as_ref());
        let _ = add.call2(&global, &"offline".into(), offline.as_ref());
        self.inner.borrow_mut().online_handlers = Some([online, offline]);
    }
}
