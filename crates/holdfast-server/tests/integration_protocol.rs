//! holdfast-server over real WebSockets on 127.0.0.1, with real files and
//! fsync: the protocol and the routes (handshake, two clients, bad input,
//! HTTP routes). Durability (SIGKILL, storage failure, shutdown) is in
//! `integration_durability.rs`.

mod common;

use automerge::transaction::Transactable;
use automerge::{ObjType, ROOT};
use common::*;
use holdfast_core::repo::ChangeSource;
use holdfast_core::storage::{Storage, StorageKey};
use holdfast_core::wire::Message;

const MAX_FRAME: usize = 64 * 1024;

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
        assert_eq!(get_str(&b.doc(&id), "title").as_deref(), Some("from A"));

        // A → B.
        a.change(&id, |tx| tx.put(ROOT, "a", "1"));
        a.flush().await;
        let want = a.heads(&id);
        Client::wait_both(
            &mut b,
            |b| {
                get_str(&b.doc(&id), "a").as_deref() == Some("1")
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
                get_str(&a.doc(&id), "b").as_deref() == Some("2")
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
        assert_eq!(get_str(&a.doc(&id), "x"), get_str(&b.doc(&id), "x"));
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
            assert_eq!(items(&good.doc(&doc)).len(), n + 1);
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
        assert_eq!(get_str(&b.doc(&id), "k").as_deref(), Some("v"));
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
