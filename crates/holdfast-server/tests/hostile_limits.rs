//! Hostile clients against the real binary (issue 14), part 2: clients
//! that do not read, heavy frames, floods of document ids and of ephemeral
//! messages, spoofed senders. Each attack is followed by the checks of
//! `limits::Env::still_serves` (a well-behaved client syncs and gets its
//! ack; the server's RSS stayed under its cap).
//!
//! `make test` runs the short version of each; `HOLDFAST_HOSTILE_FULL=1`
//! (`make soak`) runs them at the sizes the issue measured.

mod common;
mod limits;

use std::time::Duration;

use automerge::sync;
use automerge::transaction::Transactable;
use automerge::{AutoCommit, ROOT};
use common::*;
use holdfast_core::id::DocumentId;
use holdfast_core::wire::Message;
use limits::*;
use tokio::net::TcpSocket;
use tokio::time::Instant;

fn full() -> bool {
    std::env::var("HOLDFAST_HOSTILE_FULL").is_ok_and(|v| v == "1")
}

/// A raw client whose socket receive buffer is tiny and that never reads:
/// what the server sends it piles up in the server.
async fn non_reader(url: &str, addr: std::net::SocketAddr, doc: DocumentId) -> (Raw, String) {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(addr).await.unwrap();
    let mut raw = Raw::over(url, stream).await;
    let server = raw.join().await;
    raw.send_msg(&request(doc, &raw.peer_id, &server)).await;
    (raw, server)
}

/// What automerge-repo sends to ask for a document it does not have: the
/// first sync message of an empty document (one empty Bloom filter in
/// `have`, so the server answers with everything).
fn request(doc: DocumentId, sender: &str, server: &str) -> Message {
    use automerge::sync::SyncDoc;
    let data = automerge::Automerge::new()
        .generate_sync_message(&mut sync::State::new())
        .expect("a first message")
        .encode();
    Message::Sync {
        request: true,
        document_id: doc,
        sender_id: sender.into(),
        target_id: server.into(),
        data,
    }
}

/// A sync message carrying `change` (its sender's heads after it).
fn sync_with(doc: &mut AutoCommit, id: DocumentId, sender: &str, server: &str) -> Message {
    let change = doc
        .get_last_local_change()
        .expect("a change")
        .raw_bytes()
        .to_vec();
    let data = sync::Message {
        heads: doc.get_heads(),
        need: vec![],
        have: vec![],
        changes: vec![change].into(),
        flags: None,
        version: sync::MessageVersion::V1,
    }
    .encode();
    Message::Sync {
        request: false,
        document_id: id,
        sender_id: sender.into(),
        target_id: server.into(),
        data,
    }
}

/// The writer keeps writing documents of 256 KiB; the subscriber asks for
/// each and never reads. (One document written over and over gets slower
/// with its history in a debug build; fresh ones cost the same each time.)
#[test]
fn a_client_that_never_reads_is_disconnected() {
    run(async {
        let mut env = Env::start(&["--max-queued-out", &(1 << 20).to_string()]);
        let url = env.url();
        let mut writer = Client::connect(&url).await;
        let (doc, _) = writer.create(|tx| tx.put(ROOT, "n", 0));
        let h = writer.heads(&doc);
        writer.wait_acked(&doc, &h).await;
        let (mut stalled, server) = non_reader(&url, env.server.addr, doc).await;
        let t0 = Instant::now();
        let mut written = 0usize;
        let series = "holdfast_refusals_total{reason=\"max_queued_out\"}";
        while env.metric(series).await == 0 {
            let blob = noise(256 << 10);
            let (doc, _) = writer.create(move |tx| tx.put(ROOT, "blob", blob));
            let h = writer.heads(&doc);
            writer.wait_acked(&doc, &h).await;
            // The socket still takes frames (its send buffer is the
            // client's; only the server's side fills up).
            stalled
                .send_msg(&request(doc, &stalled.peer_id, &server))
                .await;
            written += 256 << 10;
            env.rss_mib();
            assert!(t0.elapsed() < TIMEOUT, "never disconnected");
        }
        eprintln!(
            "non-reader: disconnected after it asked for {} MiB in {:?}",
            written >> 20,
            t0.elapsed()
        );
        env.still_serves("a client that never reads").await;
        drop(stalled);
        drop(writer);
        env.all_released().await;
    });
}

#[test]
fn heavy_frames_do_not_stall_other_clients() {
    run(async {
        let (conns, frames) = if full() { (10, 20) } else { (3, 4) };
        let mut env = Env::start(&[]);
        let url = env.url();
        let mut attackers = Vec::new();
        for _ in 0..conns {
            let mut raw = Raw::connect(&url).await;
            let server = raw.join().await;
            let frames: Vec<Message> = {
                let id = random_doc_id();
                let mut doc = AutoCommit::new();
                (0..frames)
                    .map(|_| {
                        doc.put(ROOT, "blob", noise(900 << 10)).unwrap();
                        doc.commit();
                        sync_with(&mut doc, id, &raw.peer_id, &server)
                    })
                    .collect()
            };
            attackers.push(tokio::task::spawn_local(async move {
                for f in frames {
                    raw.send_msg(&f).await;
                }
                raw
            }));
        }
        // While they are being processed: a new client joins and writes.
        let answer = within("/healthz", http_get(env.server.addr, "/healthz")).await;
        assert_eq!(answer.0, 200);
        let acked_in = env.still_serves("heavy frames").await;
        eprintln!(
            "heavy frames: {conns} connections x {frames} frames of 900 KiB; a new client's ack took {acked_in:?}"
        );
        for a in attackers {
            drop(a.await.unwrap());
        }
        env.all_released().await;
    });
}

#[test]
fn a_client_bringing_up_documents_fast_is_paced_not_refused() {
    run(async {
        let mut env = Env::start(&["--new-docs-per-sec", "50"]);
        let url = env.url();
        let mut raw = Raw::connect(&url).await;
        let server = raw.join().await;
        let started = std::time::Instant::now();
        for _ in 0..200 {
            raw.send_msg(&empty_sync(random_doc_id(), &raw.peer_id, &server))
                .await;
        }
        let mut answered = 0;
        while answered < 200 {
            match raw.next().await {
                RawIn::Msg(Message::DocUnavailable { .. }) => answered += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
        // 50 a second, 5 per 100 ms: the last cannot be read before 3.9 s
        // after the first (a lower bound: a slow machine only adds to it).
        let took = started.elapsed();
        assert!(
            took >= Duration::from_secs(3),
            "200 new documents in {took:?}"
        );
        assert!(env.refusals("new_docs_per_sec_paused").await >= 3);
        env.still_serves("a client paced").await;
    });
}

#[test]
fn document_id_spam_builds_nothing_and_idle_documents_are_evicted() {
    run(async {
        let total = if full() { 30_000 } else { 6_000 };
        let (written, cap) = (300u64, 100u64);
        let mut env = Env::start(&[
            "--max-docs-per-connection",
            "2000",
            "--max-loaded-docs",
            &cap.to_string(),
        ]);
        let url = env.url();
        // Documents written before the spam, three times the cap: idle
        // once their writer left, so evicted down to it, and read back
        // from the log afterwards.
        let mut writer = Client::connect(&url).await;
        let mut kept = Vec::new();
        for i in 0..written {
            let (doc, _) = writer.create(move |tx| tx.put(ROOT, "n", i));
            kept.push((doc, writer.heads(&doc)));
        }
        for (doc, heads) in &kept {
            writer.wait_acked(doc, heads).await;
        }
        writer.close().await;
        let reads_before = env.metric("holdfast_storage_reads_total").await;
        let disk_before = env.metric("holdfast_log_bytes").await;
        let mut sent = 0;
        let mut closed = 0;
        let mut held_max = 0;
        while sent < total {
            let mut raw = Raw::connect(&url).await;
            let server = raw.join().await;
            // One more than the connection may sync: the last is refused.
            for _ in 0..2001 {
                raw.send_msg(&empty_sync(random_doc_id(), &raw.peer_id, &server))
                    .await;
            }
            sent += 2001;
            loop {
                match raw.next().await {
                    RawIn::Msg(Message::DocUnavailable { .. }) => {}
                    RawIn::Msg(Message::Error { message }) => {
                        assert!(message.contains("2000 documents"), "{message}");
                    }
                    RawIn::Closed => break,
                    other => panic!("unexpected {other:?}"),
                }
            }
            closed += 1;
            held_max = held_max.max(env.metric("holdfast_documents_loaded").await);
            env.rss_mib();
        }
        let refused = env.refusals("max_docs_per_conn").await;
        assert_eq!(refused, closed);
        // A request for an id nobody stores builds no document: what is
        // held is what was written, never the spam.
        assert!(
            held_max <= written,
            "{held_max} documents held during the spam of {sent} ids"
        );
        // The data directory started empty, so the index lists every
        // document stored: ids it does not list cost no storage read.
        let reads = env.metric("holdfast_storage_reads_total").await - reads_before;
        assert_eq!(reads, 0, "{reads} storage reads for {sent} unknown ids");
        // Asking for documents that do not exist writes nothing.
        let disk = env.metric("holdfast_log_bytes").await;
        assert_eq!(disk, disk_before, "the spam wrote to the log");
        // Idle documents are evicted down to the cap.
        within("eviction", async {
            loop {
                let held = env.metric("holdfast_documents_loaded").await;
                let conns = env.metric("holdfast_connections").await;
                if conns == 0 && held <= cap {
                    return;
                }
                tokio::task::yield_now().await;
            }
        })
        .await;
        let evicted = env.metric("holdfast_documents_evicted_total").await;
        assert!(evicted >= written - cap, "{evicted} documents evicted");
        // Read back until three were evicted ones (each a storage read;
        // which ones were evicted is the server's choice): all are intact.
        let mut reader = Client::connect(&url).await;
        let mut reads = 0;
        for (doc, heads) in &kept {
            reader.find_doc(*doc).await;
            reader
                .wait_for("a document, loaded again if evicted", |c| {
                    sorted(c.heads(doc)) == sorted(heads.clone())
                })
                .await;
            reads = env.metric("holdfast_storage_reads_total").await - reads_before;
            if reads >= 3 {
                break;
            }
        }
        assert!(reads >= 3, "evicted documents read back: {reads} reads");
        reader.close().await;
        eprintln!(
            "document id spam: {sent} requests over {closed} connections, each closed at 2,000; documents held at most {held_max}, after: {}; log {disk} bytes",
            env.metric("holdfast_documents_loaded").await
        );
        env.still_serves("document id spam").await;
    });
}

#[test]
fn stalled_requesters_of_a_large_document_do_not_slow_the_writer() {
    run(async {
        let (stalled_n, size) = if full() { (10, 20 << 20) } else { (5, 4 << 20) };
        let mut env = Env::start(&["--max-queued-out", &(8 << 20).to_string()]);
        let url = env.url();
        let mut writer = Client::connect(&url).await;
        let blob = noise(size);
        let (doc, _) = writer.create(move |tx| tx.put(ROOT, "blob", blob));
        let h = writer.heads(&doc);
        writer.wait_acked(&doc, &h).await;
        let mut stalled = Vec::new();
        for _ in 0..stalled_n {
            stalled.push(non_reader(&url, env.server.addr, doc).await);
        }
        let mut slowest = Duration::ZERO;
        for i in 0..5 {
            let t0 = Instant::now();
            writer.change(&doc, move |tx| tx.put(ROOT, "n", i));
            let h = writer.heads(&doc);
            writer.wait_acked(&doc, &h).await;
            slowest = slowest.max(t0.elapsed());
            env.rss_mib();
        }
        eprintln!(
            "{stalled_n} stalled requesters of a {} MiB document: the writer's slowest ack {slowest:?}; {} dropped for not reading",
            size >> 20,
            env.refusals("max_queued_out").await
        );
        env.still_serves("stalled requesters").await;
        drop(stalled);
        drop(writer);
        env.all_released().await;
    });
}

#[test]
fn ephemeral_messages_need_a_subscription_a_true_sender_and_a_budget() {
    run(async {
        let mut env = Env::start(&["--ephemeral-per-sec", "50"]);
        let url = env.url();
        let doc = random_doc_id();
        let (mut receiver, server) = subscriber(&url, doc).await;
        let ephemeral = |sender: &str, count: u64, data: Vec<u8>| Message::Ephemeral {
            sender_id: sender.into(),
            target_id: server.clone(),
            count,
            session_id: format!("session-{sender}"),
            document_id: doc,
            data,
        };
        // 1. From a peer that does not sync the document: not relayed.
        let mut outsider = Raw::connect(&url).await;
        outsider.join().await;
        let m = ephemeral(&outsider.peer_id, 1, b"outsider".to_vec());
        outsider.send_msg(&m).await;
        env.metric_reaches(
            "holdfast_refusals_total{reason=\"ephemeral_not_syncing\"}",
            1,
        )
        .await;
        // 2. Claiming the receiver's id: refused, the connection closed, and
        // the receiver's own count is not poisoned.
        let (mut spoofer, _) = subscriber(&url, doc).await;
        let m = ephemeral(&receiver.peer_id, (1 << 53) - 1, b"spoof".to_vec());
        spoofer.send_msg(&m).await;
        let error = spoofer.expect_error_and_close("a spoofed sender").await;
        assert!(error.contains("senderId"), "{error}");
        // 3. A burst of 1,000 from one subscriber: at most its budget per
        // second gets through.
        let (mut flooder, _) = subscriber(&url, doc).await;
        let before = env
            .metric("holdfast_messages_received_total{type=\"ephemeral\"}")
            .await;
        let t0 = Instant::now();
        for count in 1..=1000 {
            let m = ephemeral(&flooder.peer_id, count, b"flood".to_vec());
            flooder.send_msg(&m).await;
        }
        env.metric_reaches(
            "holdfast_messages_received_total{type=\"ephemeral\"}",
            before + 1000,
        )
        .await;
        // Windows are whole seconds: a burst can touch one more than it lasts.
        let seconds = t0.elapsed().as_secs() + 2;
        // 4. A marker from the receiver's real peer (after the flood was
        // handled): everything before it in the receiver's stream is the
        // flood's share.
        let (mut friend, _) = subscriber(&url, doc).await;
        let m = ephemeral(&friend.peer_id, 1, b"marker".to_vec());
        friend.send_msg(&m).await;
        let mut flood = 0;
        loop {
            match receiver.next().await {
                RawIn::Msg(Message::Ephemeral {
                    data, sender_id, ..
                }) => {
                    assert_ne!(data, b"outsider", "relayed from a non-subscriber");
                    assert_ne!(data, b"spoof", "relayed a spoofed sender");
                    if data == b"marker" {
                        assert_eq!(sender_id, friend.peer_id);
                        break;
                    }
                    flood += 1;
                }
                RawIn::Msg(_) => {}
                other => panic!("the receiver got {other:?}"),
            }
        }
        eprintln!("ephemeral flood: 1,000 sent within {seconds} s, {flood} relayed (50 per second allowed)");
        assert!(flood >= 1 && flood <= 50 * seconds, "{flood} relayed");
        assert!(env.refusals("ephemeral_rate").await >= 1000 - flood);
        // 5. Session ids are short: a 1 MiB one is refused at decode.
        let mut m = ephemeral(&flooder.peer_id, 2000, vec![]);
        if let Message::Ephemeral { session_id, .. } = &mut m {
            *session_id = "s".repeat(1 << 20);
        }
        flooder.send_msg(&m).await;
        // (It syncs the document: the marker reached it first.)
        let error = loop {
            match flooder.next().await {
                RawIn::Msg(Message::Ephemeral { .. }) => continue,
                RawIn::Msg(Message::Error { message }) => break message,
                other => panic!("a 1 MiB session id: got {other:?}"),
            }
        };
        flooder.expect_closed("a 1 MiB session id").await;
        assert!(error.contains("sessionId"), "{error}");
        env.still_serves("ephemeral floods").await;
        drop((receiver, outsider, friend));
        env.all_released().await;
    });
}
