//! [`Client`]: a native holdfast client driving a core [`Repo`] over a
//! WebSocket, recording what it saw.

use std::future::Future;
use std::time::Duration;

use automerge::sync;
use automerge::transaction::Transaction;
use automerge::{Automerge, AutomergeError, ChangeHash};
use futures_util::{FutureExt, SinkExt, StreamExt};
use holdfast_core::id::DocumentId;
use holdfast_core::memory::MemoryStorage;
use holdfast_core::repo::{
    ChangeId, ChangeSource, ConnId, Direction, Effect, Event, FindId, Repo, RepoConfig, Timestamp,
};
use holdfast_core::storage::Storage;
use holdfast_core::wire::{self, DecodeLimits, Message};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as WsMsg;

use super::{
    covers, random_bytes, random_doc_id, sorted, sync_heads, within, ws_connect, Ws, TIMEOUT,
};

const CONN: ConnId = ConnId(1);

pub struct Client {
    pub repo: Repo,
    storage: MemoryStorage,
    ws: Ws,
    /// Every event the client's core emitted, in order.
    pub events: Vec<Event>,
    /// Every message the server sent, in order.
    pub received: Vec<Message>,
    pub closed: bool,
    epoch: Instant,
    pub peer_id: String,
}

impl Client {
    /// Connect to `url` and complete the handshake (`join` → `peer`).
    pub async fn connect(url: &str) -> Client {
        let peer_id = format!("test-client-{}", hex::encode(random_bytes::<6>()));
        let mut cfg = RepoConfig::new(
            peer_id.clone(),
            random_bytes(),
            hex::encode(random_bytes::<8>()),
        );
        cfg.announce = true;
        let mut c = Client {
            repo: Repo::new(cfg),
            storage: MemoryStorage::new(),
            ws: ws_connect(url).await,
            events: Vec::new(),
            received: Vec::new(),
            closed: false,
            epoch: Instant::now(),
            peer_id,
        };
        let now = c.now();
        c.repo.connected(now, CONN, Direction::Outgoing);
        c.wait_for("the handshake", |c| {
            c.events
                .iter()
                .any(|e| matches!(e, Event::PeerConnected { .. }))
        })
        .await;
        c
    }

    pub fn now(&self) -> Timestamp {
        Timestamp(self.epoch.elapsed().as_millis() as u64)
    }

    /// Perform every queued effect: frames go out, storage completes at once.
    pub async fn flush(&mut self) {
        while let Some(effect) = self.repo.poll_effect() {
            match effect {
                Effect::Send { frame, .. } => {
                    if !self.closed && self.ws.send(WsMsg::Binary(frame.into())).await.is_err() {
                        self.set_closed();
                    }
                }
                Effect::Close { .. } => {
                    let _ = self.ws.close(None).await;
                    self.closed = true;
                }
                Effect::Commit { task, commit } => {
                    let result = self
                        .storage
                        .commit(commit)
                        .now_or_never()
                        .expect("memory storage completes at once");
                    let now = self.now();
                    self.repo.commit_done(now, task, result);
                }
                Effect::Load { task, prefix } => {
                    let result = self
                        .storage
                        .range(&prefix)
                        .now_or_never()
                        .expect("memory storage completes at once");
                    let now = self.now();
                    self.repo.load_done(now, task, result);
                }
                Effect::Event(e) => self.events.push(e),
            }
        }
    }

    fn set_closed(&mut self) {
        if !self.closed {
            self.closed = true;
            let now = self.now();
            self.repo.disconnected(now, CONN);
        }
    }

    /// Wait for one input (a frame, the connection's end, a core timer);
    /// `false` when the connection is closed and no timer is armed.
    async fn step(&mut self) -> bool {
        let timer = self
            .repo
            .poll_timeout()
            .map(|t| self.epoch + Duration::from_millis(t.0));
        let sleep = async {
            match timer {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        if self.closed && timer.is_none() {
            return false;
        }
        tokio::select! {
            msg = self.ws.next(), if !self.closed => match msg {
                Some(Ok(WsMsg::Binary(b))) => {
                    let m = wire::decode(&b, &DecodeLimits::default())
                        .unwrap_or_else(|e| panic!("the server sent an undecodable frame: {e}"));
                    self.received.push(m);
                    let now = self.now();
                    self.repo.frame(now, CONN, &b);
                }
                Some(Ok(WsMsg::Close(_))) | None | Some(Err(_)) => self.set_closed(),
                Some(Ok(_)) => {}
            },
            _ = sleep => {
                let now = self.now();
                self.repo.handle_timeout(now);
            }
        }
        true
    }

    /// Drive the client until `pred` holds (checked after every input).
    /// Panics on timeout, or if the connection closes first.
    pub async fn wait_for(&mut self, what: &str, pred: impl FnMut(&Client) -> bool) {
        if let Err(e) = self.try_wait_for(what, pred).await {
            panic!("{e}");
        }
    }

    /// [`Client::wait_for`] that returns the failure (with a summary of
    /// what the client saw) instead of panicking.
    pub async fn try_wait_for(
        &mut self,
        what: &str,
        mut pred: impl FnMut(&Client) -> bool,
    ) -> Result<(), String> {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            self.flush().await;
            if pred(self) {
                return Ok(());
            }
            if self.closed && self.repo.poll_timeout().is_none() {
                return Err(format!(
                    "{}: connection closed while waiting for {what}\n{}",
                    self.peer_id,
                    self.summary()
                ));
            }
            if tokio::time::timeout_at(deadline, self.step())
                .await
                .is_err()
            {
                return Err(format!(
                    "{}: timed out after {TIMEOUT:?} waiting for {what}\n{}",
                    self.peer_id,
                    self.summary()
                ));
            }
        }
    }

    /// Drive both clients (each may have to answer the server for the other
    /// to progress) until both predicates hold.
    pub async fn wait_both(
        a: &mut Client,
        mut pa: impl FnMut(&Client) -> bool,
        b: &mut Client,
        mut pb: impl FnMut(&Client) -> bool,
        what: &str,
    ) {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            a.flush().await;
            b.flush().await;
            if pa(a) && pb(b) {
                return;
            }
            if a.closed || b.closed {
                panic!("a connection closed while waiting for {what}");
            }
            tokio::select! {
                _ = a.step() => {}
                _ = b.step() => {}
                _ = tokio::time::sleep_until(deadline) => panic!(
                    "timed out after {TIMEOUT:?} waiting for {what}\n{}: {}\n{}: {}",
                    a.peer_id,
                    a.summary(),
                    b.peer_id,
                    b.summary()
                ),
            }
        }
    }

    /// What the client saw, for failure messages.
    pub fn summary(&self) -> String {
        let mut out = String::from("received:\n");
        for m in &self.received {
            match m {
                Message::Sync {
                    document_id,
                    data,
                    request,
                    ..
                } => {
                    let s = sync::Message::decode(data).unwrap();
                    out += &format!(
                        "  {} {document_id:?} heads={:?} need={:?} have={:?} changes={} flags={:?}\n",
                        if *request { "request" } else { "sync" },
                        s.heads,
                        s.need,
                        s.have.iter().map(|h| &h.last_sync).collect::<Vec<_>>(),
                        s.changes.len(),
                        s.flags
                    );
                }
                other => out += &format!("  {other:?}\n"),
            }
        }
        out += "events:\n";
        for e in &self.events {
            out += &format!("  {e:?}\n");
        }
        out
    }

    /// Drive the client while awaiting `f` (e.g. a signal from a fault hook).
    pub async fn drive_until<T>(&mut self, what: &str, f: impl Future<Output = T>) -> T {
        let mut f = std::pin::pin!(f);
        let deadline = Instant::now() + TIMEOUT;
        loop {
            self.flush().await;
            tokio::select! {
                v = &mut f => return v,
                _ = tokio::time::sleep_until(deadline) => panic!("{}: timed out waiting for {what}", self.peer_id),
                alive = self.step() => if !alive { return within(what, f).await },
            }
        }
    }

    /// Wait until the server closes the connection.
    pub async fn wait_closed(&mut self) {
        let deadline = Instant::now() + TIMEOUT;
        while !self.closed {
            self.flush().await;
            if tokio::time::timeout_at(deadline, self.step())
                .await
                .is_err()
            {
                panic!(
                    "{}: timed out waiting for the connection to close",
                    self.peer_id
                );
            }
        }
    }

    /// Create a document (its first change runs `init`); not awaited.
    pub fn create(
        &mut self,
        init: impl FnOnce(&mut Transaction<'_>) -> Result<(), AutomergeError>,
    ) -> (DocumentId, ChangeId) {
        let id = random_doc_id();
        let now = self.now();
        let change = self.repo.create(now, id, init).expect("create");
        (id, change)
    }

    /// Make a local change; not awaited.
    pub fn change(
        &mut self,
        doc: &DocumentId,
        f: impl FnOnce(&mut Transaction<'_>) -> Result<(), AutomergeError>,
    ) -> ChangeId {
        let now = self.now();
        self.repo.change(now, doc, f).expect("change").0
    }

    /// Start finding a document; see [`Client::wait_found`].
    pub fn find(&mut self, doc: DocumentId) -> FindId {
        let now = self.now();
        self.repo.find(now, doc)
    }

    pub async fn wait_found(&mut self, find: FindId) {
        self.wait_for("a find's answer", |c| {
            c.events.iter().any(|e| match e {
                Event::FindReady { find: f, .. } => *f == find,
                Event::FindFailed { find: f, error, .. } if *f == find => {
                    panic!("find failed: {error:?}")
                }
                _ => false,
            })
        })
        .await;
    }

    /// Find `doc` through the server and wait until it is ready.
    pub async fn find_doc(&mut self, doc: DocumentId) {
        let find = self.find(doc);
        self.wait_found(find).await;
    }

    /// The heads of everything the client has of `doc` (its memory storage
    /// makes local changes durable at the next [`Client::flush`]).
    pub fn heads(&self, doc: &DocumentId) -> Vec<ChangeHash> {
        self.repo
            .doc(doc)
            .map(|d| d.get_heads())
            .unwrap_or_default()
    }

    /// The document as it is on disk (a copy).
    pub fn doc(&self, doc: &DocumentId) -> Automerge {
        let durable = self.repo.durable_doc(doc).expect("document is open");
        durable.to_automerge().expect("the durable state rebuilds")
    }

    /// Index of the first received message that is a server `sync` for `doc`
    /// advertising heads that cover `heads`, searching from `from`.
    pub fn ack_index(&self, doc: &DocumentId, heads: &[ChangeHash], from: usize) -> Option<usize> {
        assert!(!heads.is_empty(), "nothing to acknowledge");
        let d = self.repo.doc(doc)?;
        self.received
            .iter()
            .enumerate()
            .skip(from)
            .find(|(_, m)| match sync_heads(m) {
                Some((id, theirs)) => id == *doc && covers(d, &theirs, heads),
                None => false,
            })
            .map(|(i, _)| i)
    }

    /// Wait until the server advertises heads covering `heads` for `doc`.
    pub async fn wait_acked(&mut self, doc: &DocumentId, heads: &[ChangeHash]) {
        assert!(!heads.is_empty(), "nothing to acknowledge");
        let heads = heads.to_vec();
        let doc = *doc;
        self.wait_for("the server's acknowledgement", move |c| {
            c.ack_index(&doc, &heads, 0).is_some()
        })
        .await;
    }

    pub async fn wait_durable(&mut self, change: ChangeId) {
        self.wait_for("a local change to be durable", |c| {
            c.events.iter().any(|e| match e {
                Event::ChangeDurable { change: x, .. } => *x == change,
                Event::ChangeFailed {
                    change: x, error, ..
                } if *x == change => {
                    panic!("local change failed: {error}")
                }
                _ => false,
            })
        })
        .await;
    }

    /// `DocChanged` events for `doc` from `source`.
    pub fn doc_changed(&self, doc: &DocumentId, source: ChangeSource) -> usize {
        self.events
            .iter()
            .filter(|e| matches!(e, Event::DocChanged { doc: d, source: s, .. } if d == doc && *s == source))
            .count()
    }

    /// Wait until the client's durable heads of `doc` are exactly `heads`.
    pub async fn wait_heads(&mut self, doc: &DocumentId, heads: &[ChangeHash]) {
        let want = sorted(heads.to_vec());
        let doc = *doc;
        self.wait_for("the document's heads", move |c| {
            sorted(c.heads(&doc)) == want
        })
        .await;
    }

    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}
