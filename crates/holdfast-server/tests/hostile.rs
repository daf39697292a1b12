//! Hostile peers (issue 11): crafted `sync` messages that used to panic
//! automerge on the server's only driver task, closing every socket.
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
//! Cases A-G are issue 11's frames and their variants; H, changes whose
//! operations do not fit, as the fuzz target found them.

mod common;

use std::sync::{Mutex, Once};
use std::thread::ThreadId;
use std::time::Duration;

use automerge::sync;
use automerge::transaction::Transactable;
use automerge::{
    ActorId, Automerge, AutomergeError, Change, ChangeHash, ReadDoc, ScalarValue, Value, ROOT,
};
use common::*;
use holdfast_core::id::DocumentId;
use holdfast_core::storage::sha256_hex;
use holdfast_core::wire::Message;
use tokio::time::Instant;

/// Large enough for the 160,000-character `documentId` of case F.
const MAX_FRAME: usize = 1 << 20;

/// What the hostile peer sends.
enum Frame {
    /// After `join` → `peer`: a `sync` of the attacked document, this data.
    Sync(Vec<u8>),
    /// Before any `join`: these bytes as one binary frame.
    BeforeJoin(Vec<u8>),
}

struct Env {
    server: InProc,
    /// Connected before every attack and kept open through all of them.
    keeper: Client,
    validate: bool,
    _dir: tempfile::TempDir,
}

impl Env {
    async fn start(validate: bool) -> Env {
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

    async fn stop(self) {
        self.keeper.close().await;
        self.server.stop().await;
    }
}

/// One server (validation on), one attack.
fn refused(case: &str, craft: impl FnOnce(&Automerge) -> Frame) {
    watch_panics();
    run(async {
        let mut env = Env::start(true).await;
        attack(&mut env, case, craft).await;
        env.stop().await;
    });
}

// ---------------------------------------------------------------------------
// Validation on: each crafted frame is refused
// ---------------------------------------------------------------------------

#[test]
fn a_bloom_filter_with_zero_bits_per_entry() {
    refused("A zero-bit Bloom filter", |_| Frame::Sync(zero_bit_bloom()));
}

#[test]
fn b_bloom_filter_with_2_pow_32_probes() {
    refused("B 2^32-1 probes", |_| {
        let data = vec![
            0x42, 0x00, 0x00, 0x01, 0x00, 0x08, 0x01, 0x08, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x00,
            0x00,
        ];
        Frame::Sync(decodable(data))
    });
}

#[test]
fn c_hundred_bloom_filters_of_2_pow_20_probes() {
    refused("C 100 x 2^20 probes", |_| {
        let mut data = vec![0x42, 0x00, 0x00, 100];
        for _ in 0..100 {
            // lastSync: none; 6 filter bytes: 1 entry, 8 bits, 2^20 probes, 1 byte.
            data.extend([0x00, 0x06, 0x01, 0x08, 0x80, 0x80, 0x40, 0x00]);
        }
        data.push(0x00);
        assert_eq!(data.len(), 805);
        Frame::Sync(decodable(data))
    });
}

#[test]
fn d_next_change_with_seq_2_rewritten_to_3() {
    refused("D seq 2 -> 3", |doc| Frame::Sync(seq_skipped(doc)));
}

#[test]
fn e_new_actor_first_change_with_seq_3() {
    refused("E new actor, first seq 3", |doc| {
        let change = next_change(doc, None);
        assert_eq!(change.seq(), 1);
        assert_eq!(sorted(change.deps().to_vec()), sorted(doc.get_heads()));
        let (bytes, hash) = rewrite_seq(change.raw_bytes(), 3);
        Frame::Sync(carrying(vec![hash], bytes))
    });
}

#[test]
fn f_huge_document_id_before_join() {
    refused("F 160,000-char documentId before join", |_| {
        Frame::BeforeJoin(huge_document_id_frame())
    });
}

/// Frame F against the real binary (validation on by default; the server on
/// its own runtime): besides the answer, how long a well-behaved connection's
/// edit, sent right after the frame, waits for its ack. Printed, not
/// asserted; it must still be acknowledged.
#[test]
fn f_huge_document_id_against_the_binary() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let server = ServerProc::spawn(dir.path(), &[]);
        let mut keeper = Client::connect(&server.url()).await;
        let (doc, _) = keeper.create(|tx| tx.put(ROOT, "title", "before F"));
        let h = keeper.heads(&doc);
        keeper.wait_acked(&doc, &h).await;

        let mut raw = Raw::connect(&server.url()).await;
        let frame = huge_document_id_frame();
        let t0 = Instant::now();
        raw.send_bytes(frame).await;
        keeper.change(&doc, |tx| tx.put(ROOT, "title", "during F"));
        let h = keeper.heads(&doc);
        let addr = server.addr;
        let ((error, answered), acked) = tokio::join!(
            async {
                let e = refusal(&mut raw, "F (binary)", true).await;
                (e, t0.elapsed())
            },
            async {
                keeper.wait_acked(&doc, &h).await;
                t0.elapsed()
            },
        );
        eprintln!(
            "F (binary): 160,000-char documentId before join → error {error:?} \
             (answered in {answered:?}); another connection's edit, sent right \
             after it, was acknowledged after {acked:?}"
        );
        healthz_ok(addr, "F (binary)").await;
        let mut reader = Client::connect(&server.url()).await;
        read_back(&mut reader, doc).await;
        assert_eq!(
            get_str(reader.doc(&doc), "title").as_deref(),
            Some("during F")
        );
        keeper.close().await;
        reader.close().await;
    });
}

#[test]
fn g_change_with_seq_0() {
    refused("G seq 0", |doc| {
        let change = next_change(doc, Some(first_actor(doc)));
        let (bytes, hash) = rewrite_seq(change.raw_bytes(), 0);
        Frame::Sync(carrying(vec![hash], bytes))
    });
}

#[test]
fn g_change_with_wrong_checksum() {
    refused("G wrong checksum", |doc| {
        let change = next_change(doc, Some(first_actor(doc)));
        let mut bytes = change.raw_bytes().to_vec();
        bytes[4] ^= 0xff;
        Frame::Sync(carrying(vec![change.hash()], bytes))
    });
}

#[test]
fn g_truncated_sync_message() {
    refused("G truncated sync message", |doc| {
        let change = next_change(doc, Some(first_actor(doc)));
        let mut data = carrying(vec![change.hash()], change.raw_bytes().to_vec());
        data.truncate(data.len() - 10);
        assert!(sync::Message::decode(&data).is_err());
        Frame::Sync(data)
    });
}

/// The sync message is well formed; the change chunk inside it is cut short.
#[test]
fn g_truncated_change() {
    refused("G truncated change", |doc| {
        let change = next_change(doc, Some(first_actor(doc)));
        let bytes = change.raw_bytes();
        let cut = bytes[..bytes.len() - 10].to_vec();
        Frame::Sync(carrying(vec![change.hash()], cut))
    });
}

// ---------------------------------------------------------------------------
// Validation on: changes whose operations do not fit (found by the fuzz
// target with validation on; `fuzz/regressions/`)
// ---------------------------------------------------------------------------

/// A real next change by a new actor, made by `edit` on a fork, then
/// rewritten by `rewrite` (re-encoded: a valid checksum, a new hash).
fn crafted_change(
    doc: &Automerge,
    edit: impl FnOnce(&mut automerge::transaction::Transaction<'_>) -> Result<(), AutomergeError>,
    rewrite: impl FnOnce(&mut automerge::ExpandedChange),
) -> Frame {
    let mut fork = doc.fork();
    fork.transact(|tx| edit(tx)).unwrap();
    let mut x = fork.get_last_local_change().expect("a change").decode();
    rewrite(&mut x);
    x.hash = None;
    let change = Change::from(x);
    Frame::Sync(carrying(vec![change.hash()], change.raw_bytes().to_vec()))
}

#[test]
fn h_start_op_not_above_its_dependencies() {
    refused("H startOp 1 after the document's ops", |doc| {
        crafted_change(
            doc,
            // A new key: no predecessor, so only its dependency's ops
            // show that counter 1 is taken.
            |tx| tx.put(ROOT, "fresh", "forged"),
            |x| x.start_op = std::num::NonZeroU64::new(1).unwrap(),
        )
    });
}

#[test]
fn h_update_at_the_head_of_a_list() {
    refused("H update at a list's head", |doc| {
        crafted_change(
            doc,
            |tx| {
                let l = tx.put_object(ROOT, "l", automerge::ObjType::List)?;
                tx.insert(&l, 0, "x")
            },
            |x| x.operations[1].insert = false,
        )
    });
}

#[test]
fn h_predecessor_on_another_key() {
    refused("H predecessor on another key", |doc| {
        let title = doc.get(ROOT, "title").unwrap().unwrap().1;
        let (ctr, actor) = match title {
            automerge::ObjId::Id(ctr, actor, _) => (ctr, actor),
            automerge::ObjId::Root => unreachable!(),
        };
        crafted_change(
            doc,
            |tx| tx.put(ROOT, "other", "forged"),
            |x| x.operations[0].pred = vec![automerge::legacy::OpId::new(ctr, &actor)].into(),
        )
    });
}

#[test]
fn h_deletion_made_an_insert() {
    refused("H deletion made an insert", |doc| {
        crafted_change(
            doc,
            |tx| {
                let l = tx.put_object(ROOT, "l", automerge::ObjType::List)?;
                tx.insert(&l, 0, "x")?;
                tx.delete(&l, 0)
            },
            |x| {
                x.operations[2].insert = true;
                x.operations[2].pred = Vec::new().into();
            },
        )
    });
}

// ---------------------------------------------------------------------------
// Validation off: automerge panics, the core isolates it
// ---------------------------------------------------------------------------

/// Frames A and D reach automerge unchecked and make it panic inside the
/// core: only the hostile connection is answered with an `error` and closed;
/// `/healthz` stays ok, the keeper (connected before) and new clients still
/// push and read, the attacked documents included. (Not B: unchecked it
/// allocates 16 GiB.)
#[test]
fn isolation_without_validation() {
    watch_panics();
    run(async {
        let mut env = Env::start(false).await;
        attack(&mut env, "unvalidated A zero-bit Bloom filter", |_| {
            Frame::Sync(zero_bit_bloom())
        })
        .await;
        attack(&mut env, "unvalidated D seq 2 -> 3", |doc| {
            Frame::Sync(seq_skipped(doc))
        })
        .await;
        env.stop().await;
    });
}

// ---------------------------------------------------------------------------
// The scenario
// ---------------------------------------------------------------------------

/// Steps 1–5 of the module docs; returns the error text.
async fn attack(env: &mut Env, case: &str, craft: impl FnOnce(&Automerge) -> Frame) -> String {
    let url = env.server.url();
    let addr = env.server.addr;

    // 1. The attacked document, acknowledged by the server.
    let title = format!("acknowledged before {case}");
    let t = title.clone();
    let (doc, _) = env.keeper.create(move |tx| tx.put(ROOT, "title", t));
    let acked = env.keeper.heads(&doc);
    env.keeper.wait_acked(&doc, &acked).await;
    let frame = craft(env.keeper.doc(&doc));
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
    assert_eq!(get_str(reader.doc(&fresh), "note"), Some(note));
    read_back(&mut reader, doc).await;
    assert_eq!(
        sorted(reader.heads(&doc)),
        sorted(acked.clone()),
        "{case}: the attacked document as acknowledged"
    );
    assert_eq!(get_str(reader.doc(&doc), "title"), Some(title));
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
async fn refusal(raw: &mut Raw, case: &str, strict: bool) -> String {
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

async fn healthz_ok(addr: std::net::SocketAddr, case: &str) {
    let answer = tokio::time::timeout(Duration::from_secs(2), http_get(addr, "/healthz"))
        .await
        .unwrap_or_else(|_| panic!("{case}: /healthz did not answer within 2 s"));
    assert_eq!(answer, (200, "ok\n".into()), "{case}: /healthz");
}

/// Find `doc` and wait for the server's copy (a sync whose heads are ours).
async fn read_back(c: &mut Client, doc: DocumentId) {
    c.find_doc(doc).await;
    c.wait_for("the server's copy", |c| {
        let mine = sorted(c.heads(&doc));
        c.received
            .iter()
            .any(|m| sync_heads(m).is_some_and(|(d, h)| d == doc && sorted(h) == mine))
    })
    .await;
}

fn get_str(doc: &Automerge, key: &str) -> Option<String> {
    match doc.get(ROOT, key).unwrap() {
        Some((Value::Scalar(s), _)) => match s.as_ref() {
            ScalarValue::Str(s) => Some(s.to_string()),
            other => panic!("{key} is {other:?}"),
        },
        Some(other) => panic!("{key} is {other:?}"),
        None => None,
    }
}

/// Panics (also those the core catches), by thread. The in-process server
/// runs on its test's thread, so a test sees only its own server's.
static PANICS: Mutex<Vec<(ThreadId, String)>> = Mutex::new(Vec::new());

fn watch_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((std::thread::current().id(), info.to_string()));
            previous(info);
        }));
    });
}

fn panics_on_this_thread() -> Vec<String> {
    let me = std::thread::current().id();
    PANICS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter(|(t, _)| *t == me)
        .map(|(_, p)| p.clone())
        .collect()
}

/// Short frames in hex, longer ones by size.
fn show(data: &[u8]) -> String {
    if data.len() <= 48 {
        format!("data {}", hex::encode(data))
    } else {
        format!("data of {} bytes", data.len())
    }
}

// ---------------------------------------------------------------------------
// Crafting
// ---------------------------------------------------------------------------

/// Frame A: one head (random), a `have` whose filter has 1 entry, 0 bits per
/// entry and 1 probe (no bit bytes): every probe is `% 0`.
fn zero_bit_bloom() -> Vec<u8> {
    let mut data = vec![0x42, 0x01];
    data.extend(random_bytes::<32>());
    data.extend([0x00, 0x01, 0x00, 0x03, 0x01, 0x00, 0x01, 0x00]);
    decodable(data)
}

/// Frame D: the document's next change by its creator, seq 2 rewritten to 3
/// (checksum recomputed), heads = the rewritten change's hash.
fn seq_skipped(doc: &Automerge) -> Vec<u8> {
    let change = next_change(doc, Some(first_actor(doc)));
    assert_eq!(change.seq(), 2);
    let (bytes, hash) = rewrite_seq(change.raw_bytes(), 3);
    carrying(vec![hash], bytes)
}

/// Frame F: a `sync` whose `documentId` is 160,000 base58 characters (all
/// valid digits, so a decoder has to do the whole conversion).
fn huge_document_id_frame() -> Vec<u8> {
    let data = carrying(vec![], Vec::new());
    let id = "z".repeat(160_000);
    let mut f = Vec::new();
    cbor_head(&mut f, 5, 5);
    for (k, v) in [
        ("type", "sync"),
        ("senderId", "hostile"),
        ("targetId", "server"),
        ("documentId", id.as_str()),
    ] {
        cbor_text(&mut f, k);
        cbor_text(&mut f, v);
    }
    cbor_text(&mut f, "data");
    cbor_head(&mut f, 2, data.len() as u64);
    f.extend(&data);
    f
}

/// Check that automerge itself decodes `data`: the refusal must come from
/// validation, not from a sync message that does not parse.
fn decodable(data: Vec<u8>) -> Vec<u8> {
    if let Err(e) = sync::Message::decode(&data) {
        panic!("crafted sync message does not decode: {e}");
    }
    data
}

/// A v1 sync message with these heads and one change chunk (none if empty).
fn carrying(heads: Vec<ChangeHash>, chunk: Vec<u8>) -> Vec<u8> {
    let changes: Vec<Vec<u8>> = if chunk.is_empty() {
        vec![]
    } else {
        vec![chunk]
    };
    sync::Message {
        heads,
        need: vec![],
        have: vec![],
        changes: changes.into(),
        flags: None,
        version: sync::MessageVersion::V1,
    }
    .encode()
}

/// The actor of the document's first change (the keeper's).
fn first_actor(doc: &Automerge) -> ActorId {
    doc.get_changes(&[])[0].actor_id().clone()
}

/// A real next change of `doc` (made on a fork), by `actor` or a new one.
fn next_change(doc: &Automerge, actor: Option<ActorId>) -> Change {
    let mut fork = doc.fork();
    if let Some(a) = actor {
        fork.set_actor(a);
    }
    fork.transact::<_, _, AutomergeError>(|tx| tx.put(ROOT, "title", "forged"))
        .unwrap();
    let change = fork.get_last_local_change().expect("a change");
    assert_eq!(change.raw_bytes()[8], 1, "an uncompressed change chunk");
    change
}

const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];

/// Rewrite the `seq` of an uncompressed change chunk, recomputing the
/// checksum. Chunk: magic, checksum (4), type (1 = change), uleb body
/// length, body = deps (uleb n + n × 32 bytes), actor (uleb len + bytes),
/// seq (uleb), start op, time, message, other actors, op columns.
/// Returns the chunk and its change hash.
fn rewrite_seq(chunk: &[u8], seq: u64) -> (Vec<u8>, ChangeHash) {
    assert_eq!(chunk[..4], MAGIC);
    assert_eq!(chunk[8], 1, "a change chunk");
    let (len, n) = read_uleb(&chunk[9..]);
    let body = &chunk[9 + n..];
    assert_eq!(body.len() as u64, len, "one whole chunk");
    // The checksum computed here matches automerge's on the original.
    assert_eq!(seal(1, body).0, chunk, "checksum recomputation");

    let (deps, k) = read_uleb(body);
    let mut p = k + 32 * deps as usize;
    let (actor_len, k) = read_uleb(&body[p..]);
    p += k + actor_len as usize;
    let (_, k) = read_uleb(&body[p..]);
    let mut new_body = body[..p].to_vec();
    write_uleb(&mut new_body, seq);
    new_body.extend(&body[p + k..]);
    let (out, hash) = seal(1, &new_body);

    // automerge parses the result as that change with the new seq.
    let parsed = Change::try_from(&out[..]).expect("the rewritten chunk parses");
    assert_eq!(parsed.seq(), seq);
    assert_eq!(parsed.hash(), hash);
    (out, hash)
}

/// A chunk of `chunk_type` around `body`; its checksum is the first 4 bytes
/// of SHA-256(type ‖ uleb(len) ‖ body), which is the change hash.
fn seal(chunk_type: u8, body: &[u8]) -> (Vec<u8>, ChangeHash) {
    let mut hashed = vec![chunk_type];
    write_uleb(&mut hashed, body.len() as u64);
    hashed.extend(body);
    let digest: [u8; 32] = hex::decode(sha256_hex(&hashed))
        .unwrap()
        .try_into()
        .unwrap();
    let mut out = MAGIC.to_vec();
    out.extend(&digest[..4]);
    out.extend(hashed);
    (out, ChangeHash(digest))
}

fn read_uleb(b: &[u8]) -> (u64, usize) {
    let mut v = 0u64;
    for (i, byte) in b.iter().enumerate().take(10) {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return (v, i + 1);
        }
    }
    panic!("bad LEB128");
}

fn write_uleb(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// A CBOR head: major type, length.
fn cbor_head(out: &mut Vec<u8>, major: u8, len: u64) {
    let m = major << 5;
    match len {
        0..=23 => out.push(m | len as u8),
        24..=0xff => out.extend([m | 24, len as u8]),
        0x100..=0xffff => {
            out.push(m | 25);
            out.extend((len as u16).to_be_bytes());
        }
        _ => {
            out.push(m | 26);
            out.extend((len as u32).to_be_bytes());
        }
    }
}

fn cbor_text(out: &mut Vec<u8>, s: &str) {
    cbor_head(out, 3, s.len() as u64);
    out.extend(s.as_bytes());
}
