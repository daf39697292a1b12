//! The collection exchange between a holdfast client and server (see
//! `docs/design.md` §5b), driven by hand on in-memory stores: what a
//! reconnect costs, what a cold start fetches, and that a crash between
//! receiving a list and committing it loses nothing.

mod collection_harness;

use collection_harness::*;
use holdfast_core::id::DocumentId;

const N: u8 = 50;

/// Client 1 creates `N` documents and syncs them; everything settles.
fn synced_world(clients: usize) -> (World, Vec<DocumentId>) {
    let mut w = World::new(clients);
    let ids: Vec<DocumentId> = (1..=N).map(|i| w.create(1, i)).collect();
    w.run();
    w.connect(1);
    for c in 2..=clients {
        w.connect(c);
    }
    (w, ids)
}

#[test]
fn a_reconnect_with_nothing_changed_exchanges_one_message_each_way() {
    let (mut w, _) = synced_world(1);
    w.disconnect(1);
    w.reset_counts();
    w.connect(1);
    assert_eq!(w.sent(1, "holdfast-resume"), 1);
    assert_eq!(w.sent(0, "holdfast-changed"), 1);
    assert_eq!(w.sent(1, "sync"), 0, "{:?}", w.counts);
    assert_eq!(w.sent(0, "sync"), 0, "{:?}", w.counts);
}

#[test]
fn offline_edits_cost_one_message_each_way_per_changed_document() {
    let (mut w, ids) = synced_world(1);
    w.disconnect(1);
    for (i, id) in ids.iter().take(5).enumerate() {
        w.edit(1, *id, 100 + i as i64);
    }
    w.run();
    w.reset_counts();
    w.connect(1);
    assert_eq!(w.sent(1, "sync"), 5, "{:?}", w.counts);
    assert_eq!(w.sent(0, "sync"), 5, "{:?}", w.counts);
    for (i, id) in ids.iter().take(5).enumerate() {
        assert_eq!(w.stored_value(0, *id), Some(100 + i as i64));
    }
}

#[test]
fn a_cold_start_fetches_what_another_device_changed_without_opening_anything() {
    let (mut w, ids) = synced_world(2);
    // Client 2 opens and edits 3 documents while client 1 is away.
    w.disconnect(1);
    for id in &ids[..3] {
        w.nodes[2].repo.find(T, *id);
    }
    w.run();
    for (i, id) in ids[..3].iter().enumerate() {
        w.edit(2, *id, 200 + i as i64);
    }
    w.run();
    // Client 1 reloads: nothing open, only its store.
    w.reload(1);
    w.reset_counts();
    w.connect(1);
    for (i, id) in ids[..3].iter().enumerate() {
        assert_eq!(w.stored_value(1, *id), Some(200 + i as i64), "document {i}");
    }
    assert!(w.sent(1, "sync") <= 6, "{:?}", w.counts);
    assert!(w.sent(0, "sync") <= 6, "{:?}", w.counts);
    // And the next reconnect is quiet: the cursor moved past them.
    w.disconnect(1);
    w.reset_counts();
    w.connect(1);
    assert_eq!(w.sent(1, "sync") + w.sent(0, "sync"), 0, "{:?}", w.counts);
}

#[test]
fn live_changes_reach_documents_the_client_never_opened() {
    let (mut w, ids) = synced_world(2);
    w.restart(1);
    w.connect(1);
    w.nodes[2].repo.find(T, ids[7]);
    w.run();
    w.edit(2, ids[7], 77);
    w.run();
    assert_eq!(w.stored_value(1, ids[7]), Some(77));
}

#[test]
fn a_crash_before_the_listed_documents_commit_lists_them_again() {
    let (mut w, ids) = synced_world(2);
    w.disconnect(1);
    w.nodes[2].repo.find(T, ids[4]);
    w.run();
    w.edit(2, ids[4], 44);
    w.run();
    w.restart(1);
    // Client 1 receives the list and the changes but commits nothing.
    w.hold_commits = true;
    w.connect(1);
    w.hold_commits = false;
    assert_eq!(w.stored_value(1, ids[4]), Some(0));
    w.restart(1);
    w.connect(1);
    assert_eq!(w.stored_value(1, ids[4]), Some(44));
}

#[test]
fn a_server_restart_keeps_the_sequence_and_the_storage_id() {
    let (mut w, ids) = synced_world(2);
    w.disconnect(1);
    w.restart(0);
    w.connect(2);
    w.nodes[2].repo.find(T, ids[9]);
    w.run();
    w.edit(2, ids[9], 99);
    w.run();
    assert_eq!(w.stored_value(0, ids[9]), Some(99));
    w.reset_counts();
    w.connect(1);
    assert_eq!(w.stored_value(1, ids[9]), Some(99), "{:?}", w.counts);
    assert!(w.sent(1, "sync") <= 2, "{:?}", w.counts);
}

#[test]
fn peers_without_the_exchange_sync_per_document_as_before() {
    // Client 1 speaks only per-document sync, as automerge-repo does.
    let mut w = World::with_plain_clients(1, 1);
    let ids: Vec<DocumentId> = (1..=N).map(|i| w.create(1, i)).collect();
    w.run();
    w.connect(1);
    assert_eq!(w.sent(1, "holdfast-resume"), 0);
    assert_eq!(w.sent(0, "holdfast-changed"), 0);
    assert_eq!(w.stored_value(0, ids[0]), Some(0));
    // It reconnects with one document edited and offers every document.
    w.disconnect(1);
    w.edit(1, ids[0], 5);
    w.run();
    w.reset_counts();
    w.connect(1);
    assert!(w.sent(1, "sync") >= N as usize, "{:?}", w.counts);
    assert_eq!(w.stored_value(0, ids[0]), Some(5));
}

#[test]
fn a_filter_that_claims_every_document_learns_no_document_id() {
    use holdfast_core::repo::{ConnId, Direction, Effect};
    use holdfast_core::wire::{self, DecodeLimits, Message, PeerMetadata};
    let (mut w, ids) = synced_world(1);
    let server = &mut w.nodes[0].repo;
    let conn = ConnId(999);
    server.connected(T, conn, Direction::Incoming);
    let join = Message::Join {
        sender_id: "snoop".into(),
        peer_metadata: PeerMetadata {
            holdfast: Some(1),
            ..Default::default()
        },
        supported_protocol_versions: vec!["1".into()],
    };
    server.frame(T, conn, &wire::encode(&join));
    // 64 entries, 8 bits each, 1 probe, every bit set: "I hold everything".
    let mut held = vec![64, 8, 1];
    held.extend([0xff; 64]);
    let resume = Message::Resume {
        sender_id: "snoop".into(),
        target_id: server.config().peer_id.clone(),
        since: None,
        held,
    };
    server.frame(T, conn, &wire::encode(&resume));
    let mut listed = Vec::new();
    while let Some(e) = server.poll_effect() {
        if let Effect::Send { conn: c, frame } = e {
            if c == conn {
                if let Ok(Message::Changed { docs, .. }) =
                    wire::decode(&frame, &DecodeLimits::default())
                {
                    listed.extend(holdfast_core::collection::decode_changed(&docs).unwrap());
                }
            }
        }
    }
    // Every document is listed, but only by digest: no id appears.
    assert_eq!(listed.len(), ids.len());
    for (digest, _) in &listed {
        assert!(ids.iter().all(|id| id.0 != *digest));
        assert!(ids
            .iter()
            .any(|id| holdfast_core::collection::digest(id) == *digest));
    }
}
