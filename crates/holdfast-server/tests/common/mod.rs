//! Test harness for holdfast-server over real WebSockets on 127.0.0.1.
//!
//! - [`Client`]: a native holdfast client. It drives a core [`Repo`]
//!   (announcing, outgoing) over a tokio-tungstenite connection, with a
//!   [`MemoryStorage`] that completes at once, and records every event and
//!   every message the server sent, so that tests can await exactly the
//!   event or frame they expect ([`Client::wait_for`]).
//! - [`Raw`]: a frame-level client for bad-input tests.
//! - [`InProc`]: the server in this process (over a [`LogStorage`] the test
//!   can reach), [`ServerProc`]: the real binary (to SIGKILL / SIGINT it).
//!
//! Nothing here sleeps to "let things settle": every wait is for a specific
//! event, frame or exit, and [`TIMEOUT`] only bounds a failure.

#![allow(dead_code)]

use std::future::Future;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use automerge::sync;
use automerge::transaction::Transaction;
use automerge::{Automerge, AutomergeError, ChangeHash, ReadDoc};
use futures_util::{FutureExt, SinkExt, StreamExt};
use holdfast_core::id::DocumentId;
use holdfast_core::memory::MemoryStorage;
use holdfast_core::repo::{
    ChangeId, ChangeSource, ConnId, Direction, Effect, Event, FindId, Repo, RepoConfig, Timestamp,
};
use holdfast_core::storage::Storage;
use holdfast_core::wire::{self, DecodeLimits, Message, PeerMetadata};
use holdfast_log::{LogError, LogOptions, LogStorage};
use holdfast_server::{Config, Running};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message as WsMsg;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Held while spawning the server binary and while opening a log in this
/// process. A child between fork and exec still shares the parent's open
/// files, so a `LOCK` file just released by an in-process server could
/// still be locked (`LogError::Locked`) by a child spawned at that moment.
pub static FORK_GUARD: Mutex<()> = Mutex::new(());

/// Upper bound of any single wait; only reached when a test fails.
pub const TIMEOUT: Duration = Duration::from_secs(20);

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Run `f` on a current-thread runtime inside a `LocalSet` (what
/// `holdfast_server::start` needs).
pub fn run<F: Future>(f: F) -> F::Output {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .try_init();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    tokio::task::LocalSet::new().block_on(&rt, f)
}

pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).expect("OS randomness");
    b
}

pub fn random_doc_id() -> DocumentId {
    DocumentId(random_bytes())
}

/// Await `f`, panicking with `what` if it takes longer than [`TIMEOUT`].
pub async fn within<F: Future>(what: &str, f: F) -> F::Output {
    match tokio::time::timeout(TIMEOUT, f).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {TIMEOUT:?} waiting for {what}"),
    }
}

async fn ws_connect(url: &str) -> Ws {
    // Allow large frames on the client side: the server's limit is under test.
    let cfg = WebSocketConfig::default()
        .max_message_size(Some(256 << 20))
        .max_frame_size(Some(256 << 20));
    let (ws, _) = within(
        "the WebSocket connection",
        tokio_tungstenite::connect_async_with_config(url, Some(cfg), false),
    )
    .await
    .unwrap_or_else(|e| panic!("connect {url}: {e}"));
    ws
}

pub fn ws_url(addr: SocketAddr, path: &str) -> String {
    format!("ws://{addr}{path}")
}

// ---------------------------------------------------------------------------
// Sync-message helpers
// ---------------------------------------------------------------------------

/// The heads a `sync`/`request` message advertises (its sender's heads).
pub fn sync_heads(msg: &Message) -> Option<(DocumentId, Vec<ChangeHash>)> {
    match msg {
        Message::Sync {
            document_id, data, ..
        } => {
            let m = sync::Message::decode(data).expect("the server sends valid sync messages");
            Some((*document_id, m.heads))
        }
        _ => None,
    }
}

/// Whether `theirs` (a peer's heads) covers `ours`: every change in `ours`
/// is one of `theirs` or an ancestor of one. `doc` must hold `ours`; when it
/// does not know some of `theirs`, only direct membership counts
/// (conservative: never claims coverage that is not there).
pub fn covers(doc: &Automerge, theirs: &[ChangeHash], ours: &[ChangeHash]) -> bool {
    if ours.iter().all(|h| theirs.contains(h)) {
        return true;
    }
    if !theirs.iter().all(|h| doc.get_change_by_hash(h).is_some()) {
        return false;
    }
    // Changes not reachable from `theirs`: none of ours may be among them.
    let beyond: Vec<ChangeHash> = doc.get_changes(theirs).iter().map(|c| c.hash()).collect();
    ours.iter().all(|h| !beyond.contains(h))
}

pub fn sorted(mut heads: Vec<ChangeHash>) -> Vec<ChangeHash> {
    heads.sort();
    heads
}

// ---------------------------------------------------------------------------
// The native client
// ---------------------------------------------------------------------------

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

    pub fn doc(&self, doc: &DocumentId) -> &Automerge {
        self.repo.durable_doc(doc).expect("document is open")
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

// ---------------------------------------------------------------------------
// The raw-frame client
// ---------------------------------------------------------------------------

#[derive(Debug)]
pub enum RawIn {
    Msg(Message),
    /// A binary frame that does not decode as a message.
    Undecodable(Vec<u8>),
    /// A close frame, the end of the stream or a socket error.
    Closed,
}

pub struct Raw {
    ws: Ws,
    pub peer_id: String,
}

impl Raw {
    pub async fn connect(url: &str) -> Raw {
        Raw {
            ws: ws_connect(url).await,
            peer_id: format!("raw-{}", hex::encode(random_bytes::<6>())),
        }
    }

    pub async fn send_bytes(&mut self, bytes: Vec<u8>) {
        self.ws
            .send(WsMsg::Binary(bytes.into()))
            .await
            .expect("send a frame");
    }

    pub async fn send_msg(&mut self, msg: &Message) {
        self.send_bytes(wire::encode(msg)).await;
    }

    /// The next frame from the server (text frames are not expected).
    pub async fn next(&mut self) -> RawIn {
        loop {
            let msg = within("a frame from the server", self.ws.next()).await;
            return match msg {
                Some(Ok(WsMsg::Binary(b))) => match wire::decode(&b, &DecodeLimits::default()) {
                    Ok(m) => RawIn::Msg(m),
                    Err(_) => RawIn::Undecodable(b.to_vec()),
                },
                Some(Ok(WsMsg::Close(_))) | None | Some(Err(_)) => RawIn::Closed,
                Some(Ok(WsMsg::Text(t))) => panic!("unexpected text frame {t:?}"),
                Some(Ok(_)) => continue,
            };
        }
    }

    pub fn join_msg(&self, versions: &[&str]) -> Message {
        Message::Join {
            sender_id: self.peer_id.clone(),
            peer_metadata: PeerMetadata::default(),
            supported_protocol_versions: versions.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// `join` and expect `peer`; returns the server's peer id.
    pub async fn join(&mut self) -> String {
        let join = self.join_msg(&["1"]);
        self.send_msg(&join).await;
        match self.next().await {
            RawIn::Msg(Message::Peer {
                sender_id,
                target_id,
                selected_protocol_version,
                ..
            }) => {
                assert_eq!(target_id, self.peer_id);
                assert_eq!(selected_protocol_version, "1");
                sender_id
            }
            other => panic!("expected peer, got {other:?}"),
        }
    }

    /// Expect an `error` message followed by the connection's close (and
    /// nothing else); returns the error's text.
    pub async fn expect_error_and_close(&mut self, what: &str) -> String {
        let message = match self.next().await {
            RawIn::Msg(Message::Error { message }) => message,
            other => panic!("{what}: expected an error message, got {other:?}"),
        };
        self.expect_closed(what).await;
        message
    }

    /// Expect the connection to end with nothing more sent.
    pub async fn expect_closed(&mut self, what: &str) {
        match self.next().await {
            RawIn::Closed => {}
            other => panic!("{what}: expected the connection to close, got {other:?}"),
        }
    }
}

/// A `sync` message of `doc` whose data is a valid, empty automerge sync
/// message (a request for the document).
pub fn empty_sync(doc: DocumentId, sender: &str, target: &str) -> Message {
    let data = sync::Message {
        heads: vec![],
        need: vec![],
        have: vec![],
        changes: Vec::<Vec<u8>>::new().into(),
        flags: None,
        version: sync::MessageVersion::V1,
    }
    .encode();
    Message::Sync {
        request: true,
        document_id: doc,
        sender_id: sender.into(),
        target_id: target.into(),
        data,
    }
}

// ---------------------------------------------------------------------------
// Servers
// ---------------------------------------------------------------------------

/// The server in this process, over a log the test can inspect.
pub struct InProc {
    pub running: Option<Running>,
    pub storage: LogStorage,
    pub addr: SocketAddr,
    pub dir: PathBuf,
}

pub fn config(www: Option<PathBuf>, max_frame: usize) -> Config {
    Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        www,
        max_frame,
        validate_peer_input: true,
    }
}

impl InProc {
    /// Open (recover) the log in `dir` and start serving on 127.0.0.1:0.
    pub async fn start(dir: &Path, config: Config) -> InProc {
        // Rarely (about 1 run in 150) the directory was still locked for
        // ~1 ms right after a stop in this process; the cause is not known
        // yet (see the report). Retry `Locked` only, say so, and bound it.
        let t0 = Instant::now();
        let (storage, _report) = loop {
            let opened = {
                let _guard = FORK_GUARD.lock().unwrap_or_else(|p| p.into_inner());
                LogStorage::open(dir, LogOptions::default())
            };
            match opened {
                Ok(opened) => break opened,
                Err(LogError::Locked(_)) if t0.elapsed() < Duration::from_secs(2) => {
                    eprintln!("note: {} still locked; retrying", dir.display());
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Err(e) => panic!("open the log: {e}"),
            }
        };
        let running = holdfast_server::start(config, storage.clone())
            .await
            .expect("start the server");
        InProc {
            addr: running.addr,
            running: Some(running),
            storage,
            dir: dir.to_path_buf(),
        }
    }

    pub fn url(&self) -> String {
        ws_url(self.addr, "/")
    }

    /// Stop gracefully and release the log (so it can be reopened).
    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            within("the server to stop", r.stop()).await;
        }
    }
}

/// The real binary, with its stdout/stderr captured.
pub struct ServerProc {
    child: Option<Child>,
    /// The threads copying stdout/stderr into `output` (done at EOF).
    readers: Vec<std::thread::JoinHandle<()>>,
    pub addr: SocketAddr,
    pub output: Arc<Mutex<Vec<String>>>,
}

impl ServerProc {
    /// Start `holdfast-server --listen 127.0.0.1:0 --data <data> <extra>` and
    /// wait for its "listening" line.
    pub fn spawn(data: &Path, extra: &[&str]) -> ServerProc {
        let guard = FORK_GUARD.lock().unwrap_or_else(|p| p.into_inner());
        let mut child = Command::new(env!("CARGO_BIN_EXE_holdfast-server"))
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data")
            .arg(data)
            .args(extra)
            .env(
                "RUST_LOG",
                std::env::var("SERVER_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn holdfast-server");
        drop(guard);
        let output = Arc::new(Mutex::new(Vec::new()));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let out = output.clone();
        let mut readers = Vec::new();
        readers.push(std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(a) = line.strip_prefix("holdfast-server: listening on ws://") {
                    let _ = addr_tx.send(a.trim().to_string());
                }
                out.lock().unwrap().push(line);
            }
        }));
        let mut stderr = child.stderr.take().unwrap();
        let out = output.clone();
        readers.push(std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            out.lock()
                .unwrap()
                .extend(s.lines().map(|l| format!("stderr: {l}")));
        }));
        let addr = match addr_rx.recv_timeout(TIMEOUT) {
            Ok(a) => a.parse().expect("a socket address"),
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "holdfast-server did not start: {:#?}",
                    output.lock().unwrap()
                );
            }
        };
        ServerProc {
            child: Some(child),
            readers,
            addr,
            output,
        }
    }

    pub fn url(&self) -> String {
        ws_url(self.addr, "/sync")
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// SIGKILL, now, and reap it.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
    }

    /// Send SIGINT (what Ctrl-C sends).
    pub fn sigint(&self) {
        let rc = unsafe { libc::kill(self.pid() as libc::pid_t, libc::SIGINT) };
        assert_eq!(rc, 0, "kill -INT");
    }

    /// Wait for the process to exit on its own (SIGKILL after [`TIMEOUT`]),
    /// and for all of its output.
    pub async fn wait_exit(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let readers = std::mem::take(&mut self.readers);
        let pid = child.id();
        let waited = tokio::time::timeout(
            TIMEOUT,
            tokio::task::spawn_blocking(move || {
                let status = child.wait();
                for r in readers {
                    let _ = r.join();
                }
                status
            }),
        )
        .await;
        match waited {
            Ok(r) => r.expect("join").expect("wait"),
            Err(_) => {
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
                panic!(
                    "holdfast-server did not exit within {TIMEOUT:?}: {:#?}",
                    self.output.lock().unwrap()
                );
            }
        }
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "holdfast-server {} output:\n{}",
                self.addr,
                self.output.lock().unwrap().join("\n")
            );
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

// ---------------------------------------------------------------------------
// Plain HTTP
// ---------------------------------------------------------------------------

/// `GET path` over a fresh TCP connection (HTTP/1.1, `Connection: close`);
/// returns the status code and the body.
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let addr2 = addr;
    let path = path.to_string();
    let raw = within(
        "an HTTP response",
        tokio::task::spawn_blocking(move || {
            let mut s = std::net::TcpStream::connect(addr2).expect("connect");
            s.set_read_timeout(Some(TIMEOUT)).unwrap();
            write!(
                s,
                "GET {path} HTTP/1.1\r\nHost: {addr2}\r\nConnection: close\r\n\r\n"
            )
            .unwrap();
            let mut buf = Vec::new();
            s.read_to_end(&mut buf).expect("read the response");
            buf
        }),
    )
    .await
    .expect("join");
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line in {head:?}"));
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    (status, body)
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((len, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(len.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}
