//! Hostile peers against the collection exchange (issue 13), over real
//! WebSockets: a malformed `holdfast-resume`, a second resume on one
//! connection, a `holdfast-changed` sent to the server, and a filter that
//! claims to hold every document. Each bad frame gets an `error` and a close
//! while a well-behaved client keeps working; the greedy filter gets only
//! digests, never a document id it did not know.

mod common;

use automerge::transaction::Transactable;
use automerge::ROOT;
use common::*;
use holdfast_core::collection;
use holdfast_core::wire::{Message, PeerMetadata};

/// A raw client that speaks the collection exchange; returns the server's id.
async fn join_capable(raw: &mut Raw) -> String {
    let join = Message::Join {
        sender_id: raw.peer_id.clone(),
        peer_metadata: PeerMetadata {
            holdfast: Some(collection::VERSION),
            ..Default::default()
        },
        supported_protocol_versions: vec!["1".into()],
    };
    raw.send_msg(&join).await;
    match raw.next().await {
        RawIn::Msg(Message::Peer {
            sender_id,
            peer_metadata,
            ..
        }) => {
            assert_eq!(peer_metadata.holdfast, Some(collection::VERSION));
            assert!(
                peer_metadata.storage_id.is_some(),
                "the server names its store"
            );
            sender_id
        }
        other => panic!("expected peer, got {other:?}"),
    }
}

fn resume(raw: &Raw, server: &str, held: Vec<u8>) -> Message {
    Message::Resume {
        sender_id: raw.peer_id.clone(),
        target_id: server.to_string(),
        since: None,
        held,
    }
}

/// The keeper still gets acknowledgements: the server serves everyone else.
async fn keeper_still_served(keeper: &mut Client, what: &str) {
    let (doc, _) = keeper.create(|tx| tx.put(ROOT, "after", what));
    let heads = keeper.heads(&doc);
    keeper.wait_acked(&doc, &heads).await;
}

#[test]
fn bad_collection_frames_are_refused_and_others_keep_working() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let server = InProc::start(dir.path(), config(None, 1 << 20)).await;
        let mut keeper = Client::connect(&server.url()).await;
        keeper_still_served(&mut keeper, "start").await;

        // A filter with zero bits per entry (automerge would divide by zero).
        let mut raw = Raw::connect(&server.url()).await;
        let sid = join_capable(&mut raw).await;
        raw.send_msg(&resume(&raw, &sid, vec![5, 0, 7])).await;
        let e = raw.expect_error_and_close("a zero-bit filter").await;
        println!("zero-bit filter → error {e:?}");
        assert!(e.contains("holdfast-resume"), "{e}");
        keeper_still_served(&mut keeper, "zero-bit filter").await;

        // A filter whose bit array is shorter than it declares.
        let mut raw = Raw::connect(&server.url()).await;
        let sid = join_capable(&mut raw).await;
        raw.send_msg(&resume(&raw, &sid, vec![100, 10, 7, 0xff]))
            .await;
        let e = raw.expect_error_and_close("a truncated filter").await;
        println!("truncated filter → error {e:?}");
        keeper_still_served(&mut keeper, "truncated filter").await;

        // A second resume on one connection.
        let mut raw = Raw::connect(&server.url()).await;
        let sid = join_capable(&mut raw).await;
        let held = collection::HeldFilter::new(std::iter::empty()).encode();
        raw.send_msg(&resume(&raw, &sid, held.clone())).await;
        assert!(matches!(
            raw.next().await,
            RawIn::Msg(Message::Changed { .. })
        ));
        raw.send_msg(&resume(&raw, &sid, held)).await;
        let e = raw.expect_error_and_close("a second resume").await;
        println!("second resume → error {e:?}");
        keeper_still_served(&mut keeper, "second resume").await;

        // A client telling the server what changed.
        let mut raw = Raw::connect(&server.url()).await;
        let sid = join_capable(&mut raw).await;
        let changed = Message::Changed {
            sender_id: raw.peer_id.clone(),
            target_id: sid,
            upto: 1,
            docs: Vec::new(),
        };
        raw.send_msg(&changed).await;
        let e = raw
            .expect_error_and_close("holdfast-changed to the server")
            .await;
        println!("holdfast-changed to the server → error {e:?}");
        keeper_still_served(&mut keeper, "changed to the server").await;

        keeper.close().await;
        server.stop().await;
    });
}

#[test]
fn a_filter_claiming_every_document_gets_digests_not_ids() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let server = InProc::start(dir.path(), config(None, 1 << 20)).await;
        let mut keeper = Client::connect(&server.url()).await;
        let mut ids = Vec::new();
        for i in 0..5 {
            let (doc, _) = keeper.create(move |tx| tx.put(ROOT, "i", i as i64));
            let heads = keeper.heads(&doc);
            keeper.wait_acked(&doc, &heads).await;
            ids.push(doc);
        }
        let mut raw = Raw::connect(&server.url()).await;
        let sid = join_capable(&mut raw).await;
        let mut held = vec![64, 8, 1];
        held.extend([0xff; 64]);
        raw.send_msg(&resume(&raw, &sid, held)).await;
        let docs = match raw.next().await {
            RawIn::Msg(Message::Changed { docs, .. }) => docs,
            other => panic!("expected holdfast-changed, got {other:?}"),
        };
        let listed = collection::decode_changed(&docs).unwrap();
        assert_eq!(listed.len(), ids.len());
        for id in &ids {
            assert!(!docs.windows(16).any(|w| w == id.0), "{id} leaked");
            assert!(listed.iter().any(|(d, _)| *d == collection::digest(id)));
        }
        keeper.close().await;
        server.stop().await;
    });
}
