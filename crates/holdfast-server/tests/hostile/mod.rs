//! Hostile peers (issue 11): crafted `sync` messages that used to panic
//! automerge on the server's only driver task, closing every socket. This
//! module is the scenario shared by `hostile_frames.rs` (cases A-G, issue
//! 11's frames and their variants) and `hostile_ops.rs` (cases H, changes
//! whose operations do not fit, as the fuzz target found them, and the
//! isolation of automerge's panics with validation off); `craft.rs` makes
//! the frames.
//!
//! Every test runs the same scenario against an in-process server, over real
//! WebSockets on 127.0.0.1 ([`attack`]):
//! 1. a well-behaved client (the *keeper*, connected throughout) creates a
//!    document and waits for the server's acknowledgement;
//! 2. a raw client joins and sends one crafted frame for that document;
//! 3. it must get an `error` message and then the close (with validation on,
//!    as the first and only answer, nothing is written to the log, and
//!    nothing panicked in the server; with validation off, automerge did
//!    panic and the core caught it);
//! 4. `/healthz` answers `ok` within 2 s; a fresh client pushes a new
//!    document, a second fresh client reads it back, and reads the attacked
//!    document with exactly its acknowledged heads and content, then edits
//!    it (acknowledged);
//! 5. the keeper edits the attacked document too and gets its ack.
//!
//! The answers are printed (`--nocapture`): "<case>: <frame> → error ...".

#![allow(dead_code)]

mod craft;

pub use craft::*;

use std::sync::{Mutex, Once};
use std::thread::ThreadId;
use std::time::Duration;

use automerge::transaction::Transactable;
use automerge::{Automerge, ROOT};
use holdfast_core::id::DocumentId;
use holdfast_core::wire::Message;
use tokio::time::Instant;

use crate::common::*;

/// Large enough for the 160,000-character `documentId` of case F.
pub const MAX_FRAME: usize = 1 << 20;

/// What the hostile peer sends.
pub enum Frame {
    /// After `join` → `peer`: a `sync` of the attacked document, this data.
    Sync(Vec<u8>),
    /// Before any `join`: these bytes as one binary frame.
    BeforeJoin(Vec<u8>),
}

pub struct Env {
    server: InProc,
    /// Connected before every attack and kept open through all of them.
    keeper: Client,
    validate: bool,
    _dir: tempfile::TempDir,
}

impl Env {
    pub async fn start(validate: bool) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(None, MAX_FRAME);
        cfg.validate_peer_input = validate;
        let server = InProc::start(dir.path(), cfg).await;
        let keeper = Client::connect(&server.url()).await;
        Env {
            server,
            keeper,
            validate,
            _dir: dir,
        }
    }

    pub async fn stop(self) {
        self.keeper.close().await;
        self.server.stop().await;
    }
}

/// One server (validation on), one attack.
pub fn refused(case: &str, craft: impl FnOnce(&Automerge) -> Frame) {
    watch_panics();
    run(async {
        let mut env = Env::start(true).await;
        attack(&mut env, case, craft).await;
        env.stop().await;
    });
}

// ---------------------------------------------------------------------------
// The scenario
// ---------------------------------------------------------------------------

/// Steps 1–5 of the module docs; returns the error text.
pub async fn attack(env: &mut Env, case: &str, craft: impl FnOnce(&Automerge) -> Frame) -> String {
    let url = env.server.url();
    let addr = env.server.addr;

    // 1. The attacked document, acknowledged by the server.
    let title = format!("acknowledged before {case}");
    let t = title.clone();
    let (doc, _) = env.keeper.create(move |tx| tx.put(ROOT, "title", t));
    let acked = env.keeper.heads(&doc);
    env.keeper.wait_acked(&doc, &acked).await;
    let frame = craft(&env.keeper.doc(&doc));
    let before = env.server.storage.stats().await.unwrap();
    let panics_before = panics_on_this_thread().len();

    // 2. The hostile peer.
    let mut raw = Raw::connect(&url).await;
    let (t0, shown) = match frame {
        Frame::Sync(data) => {
            let server_id = raw.join().await;
            let shown = show(&data);
            let msg = Message::Sync {
                request: false,
                document_id: doc,
                sender_id: raw.peer_id.clone(),
                target_id: server_id,
                data,
            };
            let t0 = Instant::now();
            raw.send_msg(&msg).await;
            (t0, shown)
        }
        Frame::BeforeJoin(bytes) => {
            let shown = format!("frame of {} bytes before join", bytes.len());
            let t0 = Instant::now();
            raw.send_bytes(bytes).await;
            (t0, shown)
        }
    };

    // 3. An `error`, then the close.
    let error = refusal(&mut raw, case, env.validate).await;
    eprintln!(
        "{case}: {shown} → error {error:?} (answered in {:?})",
        t0.elapsed()
    );
    let after = env.server.storage.stats().await.unwrap();
    let caught = panics_on_this_thread();
    if env.validate {
        // Refused by validation, not by a panic caught in the core.
        assert!(
            caught.is_empty(),
            "{case}: panicked in the server: {caught:#?}"
        );
        assert_eq!(after, before, "{case}: nothing written");
    } else {
        assert!(
            caught.len() > panics_before,
            "{case}: automerge did not panic"
        );
        if after != before {
            eprintln!("{case}: the log changed during the attack: {before:?} → {after:?}");
        }
    }

    // 4. The server still serves: health, a new document, the attacked one.
    healthz_ok(addr, case).await;
    let mut writer = Client::connect(&url).await;
    let note = format!("written after {case}");
    let n = note.clone();
    let (fresh, _) = writer.create(move |tx| tx.put(ROOT, "note", n));
    let fresh_heads = writer.heads(&fresh);
    writer.wait_acked(&fresh, &fresh_heads).await;

    let mut reader = Client::connect(&url).await;
    read_back(&mut reader, fresh).await;
    assert_eq!(sorted(reader.heads(&fresh)), sorted(fresh_heads.clone()));
    assert_eq!(get_str(&reader.doc(&fresh), "note"), Some(note));
    read_back(&mut reader, doc).await;
    assert_eq!(
        sorted(reader.heads(&doc)),
        sorted(acked.clone()),
        "{case}: the attacked document as acknowledged"
    );
    assert_eq!(get_str(&reader.doc(&doc), "title"), Some(title));
    reader.change(&doc, |tx| tx.put(ROOT, "reader", "after the attack"));
    let h = reader.heads(&doc);
    reader.wait_acked(&doc, &h).await;

    // 5. The connection open during the attack still works.
    assert!(!env.keeper.closed, "{case}: the keeper was disconnected");
    env.keeper
        .change(&doc, |tx| tx.put(ROOT, "keeper", "after the attack"));
    let h = env.keeper.heads(&doc);
    env.keeper.wait_acked(&doc, &h).await;
    healthz_ok(addr, case).await;

    writer.close().await;
    reader.close().await;
    error
}

/// The hostile peer's answer: an `error` message, then the close. `strict`
/// (validation on): the error is the very first thing it gets.
pub async fn refusal(raw: &mut Raw, case: &str, strict: bool) -> String {
    loop {
        match raw.next().await {
            RawIn::Msg(Message::Error { message }) => {
                raw.expect_closed(case).await;
                return message;
            }
            RawIn::Msg(m @ (Message::Sync { .. } | Message::DocUnavailable { .. })) if !strict => {
                eprintln!("{case}: before the error the server sent {}", m.type_name());
            }
            other => panic!("{case}: expected an error message, got {other:?}"),
        }
    }
}

pub async fn healthz_ok(addr: std::net::SocketAddr, case: &str) {
    let answer = tokio::time::timeout(Duration::from_secs(2), http_get(addr, "/healthz"))
        .await
        .unwrap_or_else(|_| panic!("{case}: /healthz did not answer within 2 s"));
    assert_eq!(answer, (200, "ok\n".into()), "{case}: /healthz");
}

/// Find `doc` and wait for the server's copy (a sync whose heads are ours).
pub async fn read_back(c: &mut Client, doc: DocumentId) {
    c.find_doc(doc).await;
    c.wait_for("the server's copy", |c| {
        let mine = sorted(c.heads(&doc));
        c.received
            .iter()
            .any(|m| sync_heads(m).is_some_and(|(d, h)| d == doc && sorted(h) == mine))
    })
    .await;
}
/// Panics (also those the core catches), by thread. The in-process server
/// runs on its test's thread, so a test sees only its own server's; with
/// `HOLDFAST_TEST_SHARDS` above 1 its other shards run on threads named
/// `holdfast-shard-<i>`, counted for every test (`make test` runs that
/// suite serially then).
static PANICS: Mutex<Vec<(ThreadId, bool, String)>> = Mutex::new(Vec::new());

pub fn watch_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.lock().unwrap_or_else(|p| p.into_inner()).push((
                std::thread::current().id(),
                std::thread::current()
                    .name()
                    .is_some_and(|n| n.starts_with("holdfast-shard-")),
                info.to_string(),
            ));
            previous(info);
        }));
    });
}

pub fn panics_on_this_thread() -> Vec<String> {
    let me = std::thread::current().id();
    PANICS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter(|(t, shard, _)| *t == me || *shard)
        .map(|(_, _, p)| p.clone())
        .collect()
}

/// Short frames in hex, longer ones by size.
pub fn show(data: &[u8]) -> String {
    if data.len() <= 48 {
        format!("data {}", hex::encode(data))
    } else {
        format!("data of {} bytes", data.len())
    }
}
