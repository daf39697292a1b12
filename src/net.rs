//! The browser's network adapter: one WebSocket per sync URL, reconnected
//! with exponential backoff and jitter, paused while the browser is offline
//! or the application asked to go offline. The core does the handshake and
//! the sync; this only moves frames and reports connection state.

use std::collections::HashMap;

use js_sys::{Function, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use web_sys::{BinaryType, MessageEvent, WebSocket};

use crate::driver::{now, Driver};
use holdfast_core::repo::{ConnId, Direction};
use holdfast_core::storage::Storage;

const BACKOFF_MIN_MS: f64 = 250.0;
const BACKOFF_MAX_MS: f64 = 30_000.0;

/// One sync URL's connection.
struct Link {
    url: String,
    conn: Option<ConnId>,
    socket: Option<WebSocket>,
    /// Failed attempts since the last successful handshake.
    attempts: u32,
    /// Bumped whenever the link is (re)started, so stale timers do nothing.
    epoch: u64,
    /// Closures the socket calls; kept alive as long as the socket.
    _handlers: Vec<Closure<dyn FnMut(JsValue)>>,
}

#[derive(Default)]
pub(crate) struct Net {
    links: Vec<Link>,
    by_conn: HashMap<ConnId, usize>,
    /// Peers whose handshake completed: conn -> peer id.
    pub(crate) peers: HashMap<ConnId, String>,
    next_conn: u64,
    /// `goOffline()` was called.
    paused: bool,
    status: &'static str,
    listening: bool,
    _online_handlers: Vec<Closure<dyn FnMut(JsValue)>>,
}

fn browser_online() -> bool {
    let nav = Reflect::get(&js_sys::global(), &"navigator".into()).ok();
    nav.and_then(|n| Reflect::get(&n, &"onLine".into()).ok())
        .and_then(|v| v.as_bool())
        .unwrap_or(true)
}

impl<S: Storage + 'static> Driver<S> {
    /// Start syncing with these WebSocket URLs.
    pub fn set_sync_urls(&self, urls: Vec<String>) {
        {
            let mut net = self.net().borrow_mut();
            for url in urls {
                net.links.push(Link {
                    url,
                    conn: None,
                    socket: None,
                    attempts: 0,
                    epoch: 0,
                    _handlers: Vec::new(),
                });
            }
        }
        self.listen_online();
        self.connect_all();
    }

    /// `"online"` (a peer is connected), `"connecting"`, or `"offline"`.
    pub fn status(&self) -> &'static str {
        let net = self.net().borrow();
        if !net.peers.is_empty() {
            "online"
        } else if net.links.iter().any(|l| l.socket.is_some()) {
            "connecting"
        } else {
            "offline"
        }
    }

    /// Close every connection and stay offline until [`Driver::go_online`].
    pub fn go_offline(&self) {
        self.net().borrow_mut().paused = true;
        let n = self.net().borrow().links.len();
        for i in 0..n {
            self.drop_link(i);
        }
        self.status_changed();
    }

    pub fn go_online(&self) {
        self.net().borrow_mut().paused = false;
        for l in self.net().borrow_mut().links.iter_mut() {
            l.attempts = 0;
        }
        self.connect_all();
    }

    pub(crate) fn net_send(&self, conn: ConnId, frame: &[u8]) {
        let socket = {
            let net = self.net().borrow();
            net.by_conn
                .get(&conn)
                .and_then(|i| net.links[*i].socket.clone())
        };
        if let Some(ws) = socket {
            if ws.ready_state() == WebSocket::OPEN {
                if let Err(e) = ws.send_with_u8_array(frame) {
                    web_sys::console::warn_2(&"holdfast: send failed".into(), &e);
                }
            }
        }
    }

    pub(crate) fn net_close(&self, conn: ConnId) {
        let idx = self.net().borrow().by_conn.get(&conn).copied();
        if let Some(i) = idx {
            self.drop_link(i);
            self.schedule_reconnect(i);
        }
    }

    /// A peer completed the handshake on `conn`.
    pub(crate) fn peer_joined(&self, conn: ConnId, peer_id: String) {
        {
            let mut net = self.net().borrow_mut();
            if let Some(i) = net.by_conn.get(&conn).copied() {
                net.links[i].attempts = 0;
            }
            net.peers.insert(conn, peer_id);
        }
        self.status_changed();
    }

    pub(crate) fn peer_left(&self, conn: ConnId) {
        self.net().borrow_mut().peers.remove(&conn);
        self.status_changed();
    }

    fn status_changed(&self) {
        let status = self.status();
        let changed = {
            let mut net = self.net().borrow_mut();
            std::mem::replace(&mut net.status, status) != status
        };
        if changed {
            self.emit(&[("type", "status".into()), ("status", status.into())]);
        }
    }

    fn connect_all(&self) {
        let n = self.net().borrow().links.len();
        for i in 0..n {
            self.connect(i);
        }
        self.status_changed();
    }

    fn connect(&self, i: usize) {
        {
            let net = self.net().borrow();
            if net.paused || !browser_online() || net.links[i].socket.is_some() {
                return;
            }
        }
        let url = self.net().borrow().links[i].url.clone();
        let ws = match WebSocket::new(&url) {
            Ok(ws) => ws,
            Err(e) => {
                web_sys::console::error_2(&format!("holdfast: cannot open {url}").into(), &e);
                return self.schedule_reconnect(i);
            }
        };
        ws.set_binary_type(BinaryType::Arraybuffer);
        let conn = {
            let mut net = self.net().borrow_mut();
            net.next_conn += 1;
            ConnId(net.next_conn)
        };
        let on_open = {
            let this = self.clone();
            Closure::<dyn FnMut(JsValue)>::new(move |_| {
                this.with_repo(|r| r.connected(now(), conn, Direction::Outgoing));
            })
        };
        let on_message = {
            let this = self.clone();
            Closure::<dyn FnMut(JsValue)>::new(move |ev: JsValue| {
                let Ok(ev) = ev.dyn_into::<MessageEvent>() else {
                    return;
                };
                let bytes = Uint8Array::new(&ev.data()).to_vec();
                this.with_repo(|r| r.frame(now(), conn, &bytes));
            })
        };
        let on_close = {
            let this = self.clone();
            Closure::<dyn FnMut(JsValue)>::new(move |_| {
                let idx = this.net().borrow().by_conn.get(&conn).copied();
                if let Some(i) = idx {
                    this.drop_link(i);
                    this.schedule_reconnect(i);
                }
            })
        };
        ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        {
            let mut net = self.net().borrow_mut();
            let link = &mut net.links[i];
            link.conn = Some(conn);
            link.socket = Some(ws);
            link._handlers = vec![on_open, on_message, on_close];
            net.by_conn.insert(conn, i);
        }
        self.status_changed();
    }

    /// Forget link `i`'s socket (closing it) and tell the core.
    fn drop_link(&self, i: usize) {
        let (conn, socket, handlers) = {
            let mut net = self.net().borrow_mut();
            let link = &mut net.links[i];
            link.epoch += 1;
            let out = (
                link.conn.take(),
                link.socket.take(),
                std::mem::take(&mut link._handlers),
            );
            if let Some(c) = out.0 {
                net.by_conn.remove(&c);
                net.peers.remove(&c);
            }
            out
        };
        if let Some(ws) = socket {
            ws.set_onopen(None);
            ws.set_onmessage(None);
            ws.set_onclose(None);
            let _ = ws.close();
        }
        // The closures may be running right now (this is called from
        // `onclose`): drop them after the current task.
        wasm_bindgen_futures::spawn_local(async move { drop(handlers) });
        if let Some(conn) = conn {
            self.with_repo(|r| r.disconnected(now(), conn));
        }
        self.status_changed();
    }

    /// Try link `i` again after an exponential, jittered delay.
    fn schedule_reconnect(&self, i: usize) {
        let (attempts, epoch) = {
            let mut net = self.net().borrow_mut();
            if net.paused {
                return;
            }
            let link = &mut net.links[i];
            link.attempts = link.attempts.saturating_add(1);
            (link.attempts, link.epoch)
        };
        let base = (BACKOFF_MIN_MS * 2f64.powi(attempts.min(16) as i32 - 1)).min(BACKOFF_MAX_MS);
        let delay = base * (0.5 + js_sys::Math::random());
        let this = self.clone();
        let fire = Closure::once_into_js(move || {
            if this.net().borrow().links[i].epoch == epoch {
                this.connect(i);
            }
        });
        set_timeout(&fire, delay);
    }

    /// Reconnect at once when the browser comes back online; close sockets
    /// when it goes offline (they can hang half-open otherwise).
    fn listen_online(&self) {
        if std::mem::replace(&mut self.net().borrow_mut().listening, true) {
            return;
        }
        let global = js_sys::global();
        let Ok(add) = Reflect::get(&global, &"addEventListener".into())
            .and_then(|f| f.dyn_into::<Function>())
        else {
            return;
        };
        let online = {
            let this = self.clone();
            Closure::<dyn FnMut(JsValue)>::new(move |_| {
                for l in this.net().borrow_mut().links.iter_mut() {
                    l.attempts = 0;
                }
                this.connect_all();
            })
        };
        let offline = {
            let this = self.clone();
            Closure::<dyn FnMut(JsValue)>::new(move |_| {
                let n = this.net().borrow().links.len();
                for i in 0..n {
                    this.drop_link(i);
                }
            })
        };
        let _ = add.call2(&global, &"online".into(), online.as_ref());
        let _ = add.call2(&global, &"offline".into(), offline.as_ref());
        self.net().borrow_mut()._online_handlers = vec![online, offline];
    }
}

pub(crate) fn set_timeout(f: &JsValue, ms: f64) {
    let global = js_sys::global();
    if let Ok(set_timeout) =
        Reflect::get(&global, &"setTimeout".into()).and_then(|f| f.dyn_into::<Function>())
    {
        let _ = set_timeout.call2(&global, f, &ms.into());
    }
}
