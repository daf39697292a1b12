//! holdfast-server over real WebSockets on 127.0.0.1, with real files and
//! fsync: handshake, durable acknowledgement across SIGKILL, two clients,
//! storage failure, bad input, HTTP routes, graceful shutdown.

mod common;

use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use automerge::transaction::Transactable;
use automerge::{ObjType, ReadDoc, ScalarValue, Value, ROOT};
use common::*;
use holdfast_core::repo::ChangeSource;
use holdfast_core::storage::{Storage, StorageKey};
use holdfast_core::wire::Message;
use holdfast_log::FaultPoint;

const MAX_FRAME: usize = 64 * 1024;

fn get_str(doc: &automerge::Automerge, key: &str) -> Option<String> {
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
fn items(doc: &automerge::Automerge) -> Vec<String> {
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

fn push_item(c: &mut Client, doc: &holdfast_core::id::DocumentId, value: String) {
    c.change(doc, move |tx| {
        let (_, list) = tx.get(ROOT, "items")?.expect("items exists");
        let n = tx.length(&list);
        tx.insert(&list, n, value)
    });
}

/// `join` → `peer` addressed to the client, protocol "1"; an unsupported
/// protocol version → `error` and the socket closes.
#[test]
fn handshake() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let server = InProc::start(dir.path(), config(None, MAX_FRAME)).await;

        let mut raw = Raw::connect(&server.url()).await;
        let join = raw.join_msg(&["1"]);
        raw.send_msg(&join).await;
        match raw.next().await {
            RawIn::Msg(Message::Peer {
                sender_id,
                target_id,
                selected_protocol_version,
                ..
            }) => {
                assert_eq!(target_id, raw.peer_id);
                assert_eq!(selected_protocol_version, "1");
                assert!(!sender_id.is_empty());
            }
            other => panic!("expected peer, got {other:?}"),
        }

        // Several versions offered, "1" among them: still accepted.
        let mut raw = Raw::connect(&server.url()).await;
        let join = raw.join_msg(&["0", "1", "7"]);
        raw.send_msg(&join).await;
        assert!(matches!(raw.next().await, RawIn::Msg(Message::Peer { .. })));

        let mut raw = Raw::connect(&server.url()).await;
        let join = raw.join_msg(&["2"]);
        raw.send_msg(&join).await;
        let error = raw.expect_error_and_close("unknown protocol version").await;
        assert!(error.contains("protocol"), "error text: {error}");

        // The native client completes the handshake too (PeerConnected).
        let c = Client::connect(&server.url()).await;
        c.close().await;
        server.stop().await;
    });
}

/// The contract, end to end: once the server's sync message advertises heads
/// covering the client's, the work survives SIGKILL of the server at once.
#[test]
fn acknowledged_work_survives_sigkill() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        const ROUNDS: usize = 4;
        const PER_ROUND: usize = 5;
        let mut doc = None;
        let mut acked_heads = Vec::new();
        let mut acked_items: Vec<String> = Vec::new();
        for round in 0..=ROUNDS {
            let mut server = ServerProc::spawn(dir.path(), &[]);
            let mut c = Client::connect(&server.url()).await;
            // A fresh client finds everything acknowledged before the kill.
            if let Some(id) = doc {
                c.find_doc(id).await;
                c.wait_for("the server's copy", |c| {
                    let mine = sorted(c.heads(&id));
                    c.received
                        .iter()
                        .any(|m| sync_heads(m).is_some_and(|(d, h)| d == id && sorted(h) == mine))
                })
                .await;
                let d = c.doc(&id);
                let missing: Vec<_> = acked_heads
                    .iter()
                    .filter(|h| d.get_change_by_hash(h).is_none())
                    .collect();
                assert!(
                    missing.is_empty(),
                    "round {round}: lost acknowledged changes {missing:?}"
                );
                let found = items(d);
                assert_eq!(
                    found[..acked_items.len()],
                    acked_items[..],
                    "round {round}: acknowledged items"
                );
                println!(
                    "round {round}: after SIGKILL + restart found {} items ({} acknowledged)",
                    found.len(),
                    acked_items.len()
                );
                acked_items = found;
            }
            if round == ROUNDS {
                break;
            }
            let id = *doc.get_or_insert_with(|| {
                c.create(|tx| tx.put_object(ROOT, "items", ObjType::List).map(|_| ()))
                    .0
            });
            // Several changes, each sent as soon as it is made.
            for i in 0..PER_ROUND {
                push_item(&mut c, &id, format!("r{round}-c{i}"));
                c.flush().await;
            }
            let heads = c.heads(&id);
            c.wait_acked(&id, &heads).await;
            server.kill9();
            acked_heads = heads;
            let now_items = items(c.doc(&id));
            println!(
                "round {round}: {} changes acknowledged ({} items), server SIGKILLed",
                PER_ROUND,
                now_items.len()
            );
            acked_items = now_items;
        }
        assert_eq!(acked_items.len(), ROUNDS * PER_ROUND);
    });
}

/// A creates and edits, B finds it through the server; changes flow both
/// ways (`DocChanged` on each side); concurrent edits converge.
#[test]
fn two_clients_sync_and_converge() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let server = InProc::start(dir.path(), config(None, MAX_FRAME)).await;
        let mut a = Client::connect(&server.url()).await;
        let mut b = Client::connect(&ws_url(server.addr, "/sync")).await;

        let (id, created) = a.create(|tx| tx.put(ROOT, "title", "from A"));
        a.wait_durable(created).await;
        let h = a.heads(&id);
        a.wait_acked(&id, &h).await;

        b.find_doc(id).await;
        assert_eq!(get_str(b.doc(&id), "title").as_deref(), Some("from A"));

        // A → B.
        a.change(&id, |tx| tx.put(ROOT, "a", "1"));
        a.flush().await;
        let want = a.heads(&id);
        Client::wait_both(
            &mut b,
            |b| {
                get_str(b.doc(&id), "a").as_deref() == Some("1")
                    && b.doc_changed(&id, ChangeSource::Remote) >= 1
            },
            &mut a,
            |_| true,
            "A's change at B",
        )
        .await;
        assert_eq!(sorted(b.heads(&id)), sorted(want));

        // B → A.
        let before = a.doc_changed(&id, ChangeSource::Remote);
        b.change(&id, |tx| tx.put(ROOT, "b", "2"));
        b.flush().await;
        Client::wait_both(
            &mut a,
            |a| {
                get_str(a.doc(&id), "b").as_deref() == Some("2")
                    && a.doc_changed(&id, ChangeSource::Remote) > before
            },
            &mut b,
            |_| true,
            "B's change at A",
        )
        .await;

        // Concurrent edits of the same key, made before either side hears
        // of the other's.
        a.change(&id, |tx| tx.put(ROOT, "x", "A"));
        b.change(&id, |tx| tx.put(ROOT, "x", "B"));
        a.flush().await;
        b.flush().await;
        let mut both = a.heads(&id);
        both.extend(b.heads(&id));
        assert_eq!(both.len(), 2, "the two edits are concurrent");
        let both = sorted(both);
        let (wa, wb) = (both.clone(), both.clone());
        Client::wait_both(
            &mut a,
            move |c| sorted(c.heads(&id)) == wa,
            &mut b,
            move |c| sorted(c.heads(&id)) == wb,
            "convergence",
        )
        .await;
        assert_eq!(get_str(a.doc(&id), "x"), get_str(b.doc(&id), "x"));
        // And the server holds (and advertises) the merge to both.
        let (ba, bb) = (both.clone(), both.clone());
        Client::wait_both(
            &mut a,
            move |c| c.ack_index(&id, &ba, 0).is_some(),
            &mut b,
            move |c| c.ack_index(&id, &bb, 0).is_some(),
            "the server's acknowledgement of the merge",
        )
        .await;

        a.close().await;
        b.close().await;
        server.stop().await;
    });
}

/// fsync fails on the server: no acknowledgement while it fails, other
/// clients are still served, and once it works again the client's work is
/// resent by the sync protocol and acknowledged; it survives a restart.
#[test]
fn storage_failure_withholds_the_ack_until_a_retry_succeeds() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let server = InProc::start(dir.path(), config(None, MAX_FRAME)).await;
        let failing = Arc::new(AtomicBool::new(false));
        let faults = Arc::new(AtomicUsize::new(0));
        {
            let (failing, faults) = (failing.clone(), faults.clone());
            server.storage.set_fault_hook(Some(Box::new(move |p| {
                if p == FaultPoint::Sync && failing.load(Ordering::SeqCst) {
                    faults.fetch_add(1, Ordering::SeqCst);
                    Some(io::Error::other("injected fsync failure"))
                } else {
                    None
                }
            })));
        }

        let mut a = Client::connect(&server.url()).await;
        let mut b = Client::connect(&server.url()).await;
        let (x, _) = a.create(|tx| tx.put(ROOT, "v", "durable"));
        let (y, _) = b.create(|tx| tx.put(ROOT, "v", "other doc"));
        let hx = a.heads(&x);
        let hy = b.heads(&y);
        a.wait_acked(&x, &hx).await;
        b.wait_acked(&y, &hy).await;
        let stats_before = server.storage.stats().await.unwrap();

        failing.store(true, Ordering::SeqCst);
        a.change(&x, |tx| tx.put(ROOT, "v", "written during the fault"));
        let want = a.heads(&x);
        // Let the server fail, reset, receive the resent changes and fail
        // again a few times.
        let f = faults.clone();
        a.wait_for("three failed fsyncs", move |_| {
            f.load(Ordering::SeqCst) >= 3
        })
        .await;
        assert!(!a.closed, "the server keeps the connection");
        assert_eq!(
            a.ack_index(&x, &want, 0),
            None,
            "the server advertised heads it failed to make durable"
        );
        // Nothing of it is in the log either (failed appends are undone).
        assert_eq!(server.storage.stats().await.unwrap(), stats_before);

        // Meanwhile the server serves another client on another document.
        let mut c = Client::connect(&server.url()).await;
        c.find_doc(y).await;
        assert_eq!(get_str(c.doc(&y), "v").as_deref(), Some("other doc"));
        assert_eq!(a.ack_index(&x, &want, 0), None);

        failing.store(false, Ordering::SeqCst);
        a.wait_acked(&x, &want).await;
        println!(
            "acknowledged after {} injected fsync failures",
            faults.load(Ordering::SeqCst)
        );

        a.close().await;
        b.close().await;
        c.close().await;
        server.stop().await;
        let server = InProc::start(dir.path(), config(None, MAX_FRAME)).await;
        let mut d = Client::connect(&server.url()).await;
        d.find_doc(x).await;
        assert_eq!(
            get_str(d.doc(&x), "v").as_deref(),
            Some("written during the fault")
        );
        d.close().await;
        server.stop().await;
    });
}

/// Bad input on one connection gets an `error` message and a close, writes
/// nothing, and does not disturb a well-behaved connection.
#[test]
fn bad_input_is_refused_without_side_effects() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let server = InProc::start(dir.path(), config(None, MAX_FRAME)).await;
        let mut good = Client::connect(&server.url()).await;
        let (doc, _) = good.create(|tx| tx.put_object(ROOT, "items", ObjType::List).map(|_| ()));
        let h = good.heads(&doc);
        good.wait_acked(&doc, &h).await;

        let bad_doc = random_doc_id();
        let garbage_changes = automerge::sync::Message {
            heads: vec![],
            need: vec![],
            have: vec![],
            changes: vec![vec![0x85, 0x6f, 0x4a, 0x83, 1, 2, 3, 4, 5]].into(),
            flags: None,
            version: automerge::sync::MessageVersion::V1,
        }
        .encode();

        #[derive(Clone, Copy, Debug)]
        enum Case {
            GarbageBeforeJoin,
            GarbageAfterJoin,
            TextFrame,
            OverMaxFrame,
            SyncBeforeJoin,
            WrongSender,
            GarbageSyncData,
            GarbageChanges,
            SecondJoin,
        }
        use Case::*;
        for (n, case) in [
            GarbageBeforeJoin,
            GarbageAfterJoin,
            TextFrame,
            OverMaxFrame,
            SyncBeforeJoin,
            WrongSender,
            GarbageSyncData,
            GarbageChanges,
            SecondJoin,
        ]
        .into_iter()
        .enumerate()
        {
            let what = format!("{case:?}");
            let before = server.storage.stats().await.unwrap();
            let mut raw = Raw::connect(&server.url()).await;
            let joined = !matches!(case, GarbageBeforeJoin | SyncBeforeJoin | TextFrame);
            let server_id = if joined {
                raw.join().await
            } else {
                String::new()
            };
            let me = raw.peer_id.clone();
            match case {
                GarbageBeforeJoin | GarbageAfterJoin => {
                    raw.send_bytes(vec![0xff, 0x00, 0x13, 0x37]).await
                }
                TextFrame => {
                    // Not something automerge-repo sends: refused as malformed.
                    raw.send_bytes(b"{\"type\":\"join\"}".to_vec()).await
                }
                OverMaxFrame => raw.send_bytes(vec![0xa0; MAX_FRAME + 1]).await,
                SyncBeforeJoin => raw.send_msg(&empty_sync(bad_doc, &me, "server")).await,
                WrongSender => {
                    raw.send_msg(&empty_sync(bad_doc, "mallory", &server_id))
                        .await
                }
                GarbageSyncData => {
                    raw.send_msg(&Message::Sync {
                        request: false,
                        document_id: bad_doc,
                        sender_id: me.clone(),
                        target_id: server_id.clone(),
                        data: vec![0x42, 1, 2, 3],
                    })
                    .await
                }
                GarbageChanges => {
                    raw.send_msg(&Message::Sync {
                        request: false,
                        document_id: bad_doc,
                        sender_id: me.clone(),
                        target_id: server_id.clone(),
                        data: garbage_changes.clone(),
                    })
                    .await
                }
                SecondJoin => {
                    let join = raw.join_msg(&["1"]);
                    raw.send_msg(&join).await
                }
            }
            let error = raw.expect_error_and_close(&what).await;
            println!("{what}: error {error:?}");
            assert_eq!(
                server.storage.stats().await.unwrap(),
                before,
                "{what}: nothing written"
            );
            assert!(
                server
                    .storage
                    .range(&StorageKey::doc_prefix(&bad_doc))
                    .await
                    .unwrap()
                    .is_empty(),
                "{what}: no record of the bad document"
            );

            // The good connection keeps syncing.
            push_item(&mut good, &doc, format!("after {what}"));
            let h = good.heads(&doc);
            good.wait_acked(&doc, &h).await;
            assert!(!good.closed);
            assert_eq!(items(good.doc(&doc)).len(), n + 1);
        }

        // A frame beyond what the socket layer accepts at all (max_frame +
        // 64 KiB) is refused there, also with an `error` and a close.
        let before = server.storage.stats().await.unwrap();
        let mut raw = Raw::connect(&server.url()).await;
        raw.join().await;
        raw.send_bytes(vec![0xa0; 4 * MAX_FRAME]).await;
        let error = raw.expect_error_and_close("huge frame").await;
        println!("huge frame: error {error:?}");
        assert_eq!(server.storage.stats().await.unwrap(), before);
        push_item(&mut good, &doc, "last".into());
        let h = good.heads(&doc);
        good.wait_acked(&doc, &h).await;

        good.close().await;
        server.stop().await;
    });
}

/// `GET /healthz`, static files with `--www` at `/` (no upgrade), and
/// WebSocket upgrades on both `/` and `/sync`.
#[test]
fn http_routes() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let www = tempfile::tempdir().unwrap();
        std::fs::write(
            www.path().join("index.html"),
            "<h1>holdfast test page</h1>\n",
        )
        .unwrap();
        std::fs::write(www.path().join("app.js"), "console.log('hi')\n").unwrap();
        let server = InProc::start(
            dir.path(),
            config(Some(www.path().to_path_buf()), MAX_FRAME),
        )
        .await;

        assert_eq!(
            http_get(server.addr, "/healthz").await,
            (200, "ok\n".into())
        );
        let (status, body) = http_get(server.addr, "/").await;
        assert_eq!(status, 200);
        assert_eq!(body, "<h1>holdfast test page</h1>\n");
        assert_eq!(
            http_get(server.addr, "/app.js").await,
            (200, "console.log('hi')\n".into())
        );
        assert_eq!(http_get(server.addr, "/missing.js").await.0, 404);

        // WebSocket on `/` and on `/sync`, syncing with each other.
        let mut a = Client::connect(&ws_url(server.addr, "/")).await;
        let mut b = Client::connect(&ws_url(server.addr, "/sync")).await;
        let (id, _) = a.create(|tx| tx.put(ROOT, "k", "v"));
        let h = a.heads(&id);
        a.wait_acked(&id, &h).await;
        b.find_doc(id).await;
        assert_eq!(get_str(b.doc(&id), "k").as_deref(), Some("v"));
        a.close().await;
        b.close().await;
        server.stop().await;

        // Without --www, `/` still answers plain GETs.
        let dir2 = tempfile::tempdir().unwrap();
        let server = InProc::start(dir2.path(), config(None, MAX_FRAME)).await;
        let (status, body) = http_get(server.addr, "/").await;
        assert_eq!(status, 200);
        assert!(body.contains("holdfast"), "{body}");
        assert_eq!(
            http_get(server.addr, "/healthz").await,
            (200, "ok\n".into())
        );
        server.stop().await;
    });
}

/// `Running::stop()` while a commit is in flight (held at its fsync) waits
/// for it: the change the server had received is there after a restart.
#[test]
fn graceful_stop_finishes_the_commit_in_flight() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let server = InProc::start(dir.path(), config(None, MAX_FRAME)).await;
        let armed = Arc::new(AtomicBool::new(false));
        let (at_sync_tx, mut at_sync_rx) = tokio::sync::mpsc::unbounded_channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        {
            let armed = armed.clone();
            let release_rx = std::sync::Mutex::new(release_rx);
            server.storage.set_fault_hook(Some(Box::new(move |p| {
                if p == FaultPoint::Sync && armed.swap(false, Ordering::SeqCst) {
                    let _ = at_sync_tx.send(());
                    // Hold the fsync until the test says so.
                    let _ = release_rx.lock().unwrap().recv();
                }
                None
            })));
        }
        let mut c = Client::connect(&server.url()).await;
        let (id, _) = c.create(|tx| tx.put(ROOT, "v", "first"));
        let h = c.heads(&id);
        c.wait_acked(&id, &h).await;

        armed.store(true, Ordering::SeqCst);
        c.change(&id, |tx| tx.put(ROOT, "v", "in flight at shutdown"));
        let want = c.heads(&id);
        c.drive_until("the commit to reach its fsync", at_sync_rx.recv())
            .await;
        let stop = server.stop();
        let release = async {
            // Shutdown has begun once the server closes our connection.
            c.wait_closed().await;
            release_tx.send(()).unwrap();
        };
        tokio::join!(stop, release);
        assert_eq!(c.ack_index(&id, &want, 0), None, "acked after close?");

        let server = InProc::start(dir.path(), config(None, MAX_FRAME)).await;
        let mut d = Client::connect(&server.url()).await;
        d.find_doc(id).await;
        assert_eq!(
            get_str(d.doc(&id), "v").as_deref(),
            Some("in flight at shutdown")
        );
        d.close().await;
        server.stop().await;
    });
}

/// SIGINT to the binary: it exits 0, and what it acknowledged is there
/// after a restart (a change still in flight is wholly there or absent).
#[test]
fn sigint_exits_cleanly_keeping_acknowledged_work() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let mut server = ServerProc::spawn(dir.path(), &[]);
        let mut c = Client::connect(&server.url()).await;
        let (id, _) = c.create(|tx| tx.put_object(ROOT, "items", ObjType::List).map(|_| ()));
        for i in 0..3 {
            push_item(&mut c, &id, format!("acked {i}"));
        }
        let h = c.heads(&id);
        c.wait_acked(&id, &h).await;
        // A large change, sent, then SIGINT straight away.
        push_item(&mut c, &id, "x".repeat(512 * 1024));
        c.flush().await;
        server.sigint();
        let status = server.wait_exit().await;
        assert!(status.success(), "exit status {status:?}");
        let out = server.output.lock().unwrap().join("\n");
        assert!(out.contains("finishing in-flight commits"), "{out}");

        let server = ServerProc::spawn(dir.path(), &[]);
        let mut d = Client::connect(&server.url()).await;
        d.find_doc(id).await;
        d.wait_for("the server's copy", |d| {
            let mine = sorted(d.heads(&id));
            d.received
                .iter()
                .any(|m| sync_heads(m).is_some_and(|(x, h)| x == id && sorted(h) == mine))
        })
        .await;
        let found = items(d.doc(&id));
        assert_eq!(found[..3], ["acked 0", "acked 1", "acked 2"]);
        assert!(found.len() == 3 || (found.len() == 4 && found[3].len() == 512 * 1024));
        println!(
            "SIGINT: exit 0; the change in flight was {}",
            if found.len() == 4 {
                "kept"
            } else {
                "not received"
            }
        );
        d.close().await;
    });
}
