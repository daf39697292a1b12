//! Test harness for holdfast-server over real WebSockets on 127.0.0.1.
//!
//! - [`Client`] (`client.rs`): a native holdfast client. It drives a core
//!   [`Repo`](holdfast_core::repo::Repo) (announcing, outgoing) over a
//!   tokio-tungstenite connection, with a
//!   [`MemoryStorage`](holdfast_core::memory::MemoryStorage) that completes
//!   at once, and records every event and every message the server sent, so
//!   that tests can await exactly the event or frame they expect
//!   ([`Client::wait_for`]).
//! - [`Raw`] (`raw.rs`): a frame-level client for bad-input tests.
//! - [`InProc`] (`server.rs`): the server in this process (over a
//!   [`LogStorage`](holdfast_log::LogStorage) the test can reach),
//!   [`ServerProc`]: the real binary (to SIGKILL / SIGINT it).
//! - [`http_get`] (`http.rs`): a plain HTTP/1.1 `GET`; [`metric`]
//!   (`prom.rs`): one sample of `/metrics`, parsed strictly.
//! - Here: the runtime, timeouts, randomness, and helpers for sync messages
//!   and document contents.
//!
//! Nothing here sleeps to "let things settle": every wait is for a specific
//! event, frame or exit, and [`TIMEOUT`] only bounds a failure.

#![allow(dead_code)]

mod client;
mod http;
mod prom;
mod raw;
mod server;

// Each test target uses some of these.
#[allow(unused_imports)]
pub use client::Client;
#[allow(unused_imports)]
pub use http::http_get;
#[allow(unused_imports)]
pub use prom::{metric, parse};
#[allow(unused_imports)]
pub use raw::{empty_sync, Raw, RawIn};
#[allow(unused_imports)]
pub use server::{config, InProc, ServerProc};

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use automerge::sync;
use automerge::transaction::Transactable;
use automerge::{Automerge, ChangeHash, ReadDoc, ScalarValue, Value, ROOT};
use holdfast_core::id::DocumentId;
use holdfast_core::wire::Message;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
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
// Document helpers
// ---------------------------------------------------------------------------

/// The string at `key` of the root map, if any (panics on another type).
pub fn get_str(doc: &Automerge, key: &str) -> Option<String> {
    match doc.get(ROOT, key).unwrap() {
        Some((Value::Scalar(s), _)) => match s.as_ref() {
            ScalarValue::Str(s) => Some(s.to_string()),
            other => panic!("{key} is {other:?}"),
        },
        Some(other) => panic!("{key} is {other:?}"),
        None => None,
    }
}

/// The strings in the root list `items`.
pub fn items(doc: &Automerge) -> Vec<String> {
    let Some((_, list)) = doc.get(ROOT, "items").unwrap() else {
        return Vec::new();
    };
    (0..doc.length(&list))
        .map(|i| match doc.get(&list, i).unwrap() {
            Some((Value::Scalar(s), _)) => s.as_str().unwrap().to_string(),
            other => panic!("items[{i}] is {other:?}"),
        })
        .collect()
}

/// Append `value` to the root list `items` (a local change; not awaited).
pub fn push_item(c: &mut Client, doc: &DocumentId, value: String) {
    c.change(doc, move |tx| {
        let (_, list) = tx.get(ROOT, "items")?.expect("items exists");
        let n = tx.length(&list);
        tx.insert(&list, n, value)
    });
}
