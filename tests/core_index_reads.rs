//! A store that started empty keeps a complete collection index
//! (`["$holdfast","complete"]`), so a message about a document the index
//! does not list needs no storage read: a flood of `request`s for new ids
//! reads nothing (W9), while everything stored is still read and served,
//! across a restart, and a store older than the index still reads. And a
//! connection bringing documents into memory faster than
//! `ConnLimits::new_docs_per_sec` is told to wait (its input is paused).
//! A request for such an id builds no document at all: the asker is
//! remembered, and gets the document once it exists here.

use automerge::sync;
use automerge::transaction::Transactable;
use automerge::{ActorId, Automerge, Change, ROOT};
use holdfast_core::collection;
use holdfast_core::id::DocumentId;
use holdfast_core::repo::*;
use holdfast_core::wire::Message;

mod peer_harness;

use peer_harness::*;

fn id(n: u8) -> DocumentId {
    DocumentId([n; 16])
}

fn change(actor: u8) -> Change {
    let mut d = Automerge::new().with_actor(ActorId::from([actor; 16]));
    let mut tx = d.transaction();
    tx.put(ROOT, "k", "v").unwrap();
    tx.commit();
    d.get_last_local_change().unwrap()
}

/// The last message sent to `conn` about `doc`.
fn answer(s: &Server, conn: u64, doc: DocumentId) -> Option<&Message> {
    s.sent.iter().rev().find_map(|(c, m)| {
        let about = match m {
            Message::Sync { document_id, .. } | Message::DocUnavailable { document_id, .. } => {
                *document_id
            }
            _ => return None,
        };
        (*c == ConnId(conn) && about == doc).then_some(m)
    })
}

fn unavailable(m: Option<&Message>) -> bool {
    matches!(m, Some(Message::DocUnavailable { .. }))
}

/// A server on `store`, with its index read as holdfast-server does.
fn open(store: std::collections::BTreeMap<holdfast_core::storage::StorageKey, Vec<u8>>) -> Server {
    let mut s = Server::new(true);
    let empty = store.is_empty();
    s.store = store;
    s.repo.restore_collection(s.range(&collection::prefix()));
    if empty {
        s.repo.store_started_empty();
    }
    s
}

#[test]
fn requests_for_ids_a_complete_index_lacks_read_nothing() {
    let mut s = open(Default::default());
    s.join(1);
    for n in 1..=100 {
        s.request(1, id(n), empty_request());
        assert!(unavailable(answer(&s, 1, id(n))), "doc {n}");
    }
    assert_eq!(s.loads, 0, "no storage read for ids nobody stored");

    // A document stored, then asked for after a restart: read and served.
    s.join(2);
    let c = change(7);
    s.sync(2, id(200), changes_msg(&[&c], vec![c.hash()]));
    assert!(s.store.contains_key(&collection::complete_key()));
    let mut s = open(s.store);
    s.join(3);
    s.request(3, id(200), empty_request());
    assert_eq!(s.loads, 1);
    assert!(matches!(answer(&s, 3, id(200)), Some(Message::Sync { .. })));
    // The marker came back from the store: unknown ids still read nothing.
    s.request(3, id(201), empty_request());
    assert!(unavailable(answer(&s, 3, id(201))));
    assert_eq!(s.loads, 1);
}

#[test]
fn a_requester_answered_without_a_read_still_gets_the_document_when_it_arrives() {
    let mut s = open(Default::default());
    s.join(1);
    s.join(2);
    s.request(1, id(5), empty_request());
    assert!(unavailable(answer(&s, 1, id(5))));
    let c = change(8);
    s.sync(2, id(5), changes_msg(&[&c], vec![c.hash()]));
    let Some(Message::Sync { data, .. }) = answer(&s, 1, id(5)) else {
        panic!("the requester was not sent the document");
    };
    let msg = sync::Message::decode(data).unwrap();
    assert_eq!(msg.heads, vec![c.hash()]);
    assert_eq!(s.loads, 0);
}

#[test]
fn requests_for_unstored_ids_build_no_document_and_a_disconnect_forgets_them() {
    let mut s = open(Default::default());
    s.join(1);
    s.join(2);
    for n in 1..=100 {
        s.request(1, id(n), empty_request());
        assert!(unavailable(answer(&s, 1, id(n))), "doc {n}");
    }
    s.request(2, id(1), empty_request());
    assert_eq!(s.repo.loaded_docs(), 0, "no document built for a request");
    assert_eq!(s.repo.askers_waiting(), 101);
    s.repo.disconnected(T, ConnId(1));
    assert_eq!(s.repo.askers_waiting(), 1, "connection 2's ask stays");
    s.repo.disconnected(T, ConnId(2));
    assert_eq!(s.repo.askers_waiting(), 0);
}

#[test]
fn a_document_created_here_goes_to_those_who_asked_for_it() {
    let mut s = open(Default::default());
    s.join(1);
    s.request(1, id(9), empty_request());
    assert!(unavailable(answer(&s, 1, id(9))));
    s.repo
        .create(T, id(9), |tx| {
            tx.put(ROOT, "k", "v")?;
            Ok::<_, automerge::AutomergeError>(())
        })
        .unwrap();
    s.pump();
    let Some(Message::Sync { data, .. }) = answer(&s, 1, id(9)) else {
        panic!("the asker was not sent the new document");
    };
    let msg = sync::Message::decode(data).unwrap();
    assert_eq!(msg.heads, s.heads(&id(9)));
    assert!(!msg.changes.is_empty(), "the first message carries it all");
    assert_eq!(s.repo.askers_waiting(), 0);
}

#[test]
fn askers_of_an_unstored_document_may_relay_ephemeral_messages_to_each_other() {
    let mut s = open(Default::default());
    s.join(1);
    s.join(2);
    s.request(1, id(3), empty_request());
    s.request(2, id(3), empty_request());
    let eph = Message::Ephemeral {
        sender_id: "client-1".into(),
        target_id: SERVER.into(),
        count: 1,
        session_id: "s1".into(),
        document_id: id(3),
        data: vec![0xa0],
    };
    s.repo
        .frame(T, ConnId(1), &holdfast_core::wire::encode(&eph));
    s.pump();
    let relayed = s
        .sent
        .iter()
        .any(|(c, m)| *c == ConnId(2) && matches!(m, Message::Ephemeral { .. }));
    assert!(relayed, "{:?}", s.repo.refused());
    assert_eq!(s.repo.loaded_docs(), 0);
}

#[test]
fn a_store_older_than_the_index_is_still_read() {
    // Documents stored without index records (as before the index): the
    // store is not empty and has no marker, so every miss is read.
    let mut s = open(Default::default());
    s.join(2);
    let c = change(9);
    s.sync(2, id(40), changes_msg(&[&c], vec![c.hash()]));
    let prefix = collection::prefix();
    let legacy: std::collections::BTreeMap<_, _> = s
        .store
        .into_iter()
        .filter(|(k, _)| !k.starts_with(&prefix))
        .collect();
    assert!(!legacy.is_empty());
    let mut s = open(legacy);
    s.join(1);
    s.request(1, id(40), empty_request());
    assert_eq!(s.loads, 1);
    assert!(matches!(answer(&s, 1, id(40)), Some(Message::Sync { .. })));
    s.request(1, id(41), empty_request());
    assert_eq!(
        s.loads, 2,
        "an unknown id is read: the index may be incomplete"
    );
    assert!(unavailable(answer(&s, 1, id(41))));
}

#[test]
fn a_connection_bringing_up_documents_too_fast_is_paused_until_the_next_window() {
    let mut s = Server::new(true);
    let mut cfg = s.repo.config().clone();
    // 30 a second: 3 per 100 ms pacing window.
    cfg.conn_limits.new_docs_per_sec = 30;
    s.repo = Repo::new(cfg);
    s.repo.restore_collection(Vec::new());
    s.repo.store_started_empty();
    s.join(1);
    for n in 1..=2 {
        s.request(1, id(n), empty_request());
    }
    assert_eq!(s.repo.read_paused_until(ConnId(1)), None);
    // Again about a document it already brought up: not counted.
    s.request(1, id(1), empty_request());
    assert_eq!(s.repo.read_paused_until(ConnId(1)), None);
    s.request(1, id(3), empty_request());
    assert_eq!(s.repo.read_paused_until(ConnId(1)), Some(Timestamp(1_100)));
    assert!(unavailable(answer(&s, 1, id(3))), "answered all the same");
    assert_eq!(
        s.repo.refused().get(&"new_docs_per_sec_paused").copied(),
        Some(1)
    );
    // Another connection is not paused; the next window, neither is this one.
    s.join(2);
    assert_eq!(s.repo.read_paused_until(ConnId(2)), None);
    s.repo.handle_timeout(Timestamp(1_100));
    assert_eq!(s.repo.read_paused_until(ConnId(1)), None);
}
