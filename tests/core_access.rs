//! Access control in the core (`repo/access.rs`), on a virtual clock: what
//! a connection may read, write and create; a denied read answered exactly
//! as a missing document is; a refused write stores nothing and keeps the
//! connection; ownership of created documents, across a restart; ephemeral
//! relay; the collection exchange's lists; expiry.

use automerge::sync::{self, SyncDoc};
use automerge::transaction::Transactable;
use automerge::{ActorId, Automerge, Change, ReadDoc, ROOT};
use holdfast_core::collection::{self, HeldFilter, IndexEntry};
use holdfast_core::id::DocumentId;
use holdfast_core::repo::*;
use holdfast_core::wire::{self, Message, PeerMetadata};

mod peer_harness;

use peer_harness::*;

fn docs(list: &[DocumentId]) -> Grant {
    Grant::Docs(list.iter().copied().collect())
}

fn access(subject: Option<&str>, read: Grant, write: Grant, create: bool) -> Access {
    Access {
        subject: subject.map(str::to_string),
        read,
        write,
        create,
        expires: None,
    }
}

/// A server with the collection index on (as holdfast-server runs), whose
/// connections get nothing unless authorized (as with `--auth-*`).
fn server() -> Server {
    let mut s = Server::new(true);
    s.repo.restore_collection(Vec::new());
    s
}

/// Connect and join `conn` ("client-<conn>") with `a`.
fn join_as(s: &mut Server, conn: u64, a: Access) {
    s.repo.connected(T, ConnId(conn), Direction::Incoming);
    s.repo.set_access(T, ConnId(conn), a);
    let join = Message::Join {
        sender_id: format!("client-{conn}"),
        peer_metadata: PeerMetadata {
            holdfast: Some(1),
            ..Default::default()
        },
        supported_protocol_versions: vec!["1".into()],
    };
    s.repo.frame(T, ConnId(conn), &wire::encode(&join));
    s.pump();
}

fn change(actor: u8, key: &str, value: &str) -> (Automerge, Change) {
    let mut d = Automerge::new().with_actor(ActorId::from([actor; 16]));
    let mut tx = d.transaction();
    tx.put(ROOT, key, value).unwrap();
    tx.commit();
    let c = d.get_last_local_change().unwrap();
    (d, c)
}

/// A change by `actor` on top of `after`.
fn follow(after: &Change, actor: u8, key: &str, value: &str) -> Change {
    let mut d = Automerge::new().with_actor(ActorId::from([actor; 16]));
    d.apply_changes([after.clone()]).unwrap();
    let mut tx = d.transaction();
    tx.put(ROOT, key, value).unwrap();
    tx.commit();
    d.get_last_local_change().unwrap()
}

fn write(s: &mut Server, conn: u64, id: DocumentId, c: &Change) {
    s.sync(conn, id, changes_msg(&[c], vec![c.hash()]));
}

/// What was sent to `conn` since `from` (an index into `s.sent`).
fn sent_to(s: &Server, conn: u64, from: usize) -> Vec<Message> {
    s.sent[from..]
        .iter()
        .filter(|(c, _)| *c == ConnId(conn))
        .map(|(_, m)| m.clone())
        .collect()
}

fn denied(s: &Server, conn: u64) -> Vec<ProtocolError> {
    s.events
        .iter()
        .filter_map(|e| match e {
            Event::AccessDenied { conn: c, error } if *c == ConnId(conn) => Some(error.clone()),
            _ => None,
        })
        .collect()
}

fn doc_records(s: &Server, id: &DocumentId) -> usize {
    let prefix = holdfast_core::storage::StorageKey::doc_prefix(id);
    s.store.keys().filter(|k| k.starts_with(&prefix)).count()
}

#[test]
fn a_denied_request_is_answered_exactly_as_for_a_missing_document_without_loading_it() {
    let (x, missing, elsewhere) = (
        DocumentId([1; 16]),
        DocumentId([2; 16]),
        DocumentId([3; 16]),
    );
    let mut s = server();
    join_as(&mut s, 1, Access::all());
    let (_, c) = change(1, "k", "v");
    write(&mut s, 1, x, &c);
    assert_eq!(s.heads(&x), vec![c.hash()]);
    // Conn 2 may read another document only.
    join_as(
        &mut s,
        2,
        access(Some("bob"), docs(&[elsewhere]), Grant::none(), false),
    );
    let mark = s.sent.len();
    s.request(2, x, empty_request());
    s.request(2, missing, empty_request());
    let out = sent_to(&s, 2, mark);
    let unavailable = |id| Message::DocUnavailable {
        document_id: id,
        sender_id: SERVER.into(),
        target_id: "client-2".into(),
    };
    assert_eq!(out, vec![unavailable(x), unavailable(missing)]);
    // The same bytes an open server sends for a document it does not have.
    let mut open = server();
    join_as(&mut open, 2, Access::all());
    open.request(2, missing, empty_request());
    assert_eq!(sent_to(&open, 2, 0).last(), Some(&unavailable(missing)));
    // The missing document was not loaded for the denied connection.
    assert!(!s.repo.documents().any(|d| *d == missing));
    assert!(s.repo.access(ConnId(2)).is_some(), "the connection stays");
}

#[test]
fn a_denied_sync_gets_the_reply_of_an_empty_document() {
    let x = DocumentId([1; 16]);
    let (client, _) = change(7, "mine", "yes");
    let first = || {
        client
            .generate_sync_message(&mut sync::State::new())
            .unwrap()
            .encode()
    };
    // The document exists; conn 2 may not read it.
    let mut s = server();
    join_as(&mut s, 1, Access::all());
    let (_, c) = change(1, "k", "v");
    write(&mut s, 1, x, &c);
    join_as(&mut s, 2, access(None, Grant::none(), Grant::none(), false));
    let mark = s.sent.len();
    s.sync(2, x, first());
    let denied_reply = sent_to(&s, 2, mark);
    // An open server that does not have it.
    let mut open = server();
    join_as(&mut open, 2, Access::all());
    let mark = open.sent.len();
    open.sync(2, x, first());
    let missing_reply = sent_to(&open, 2, mark);
    assert_eq!(denied_reply.len(), 1, "{denied_reply:?}");
    assert_eq!(denied_reply, missing_reply);
    let Message::Sync { data, request, .. } = &denied_reply[0] else {
        panic!("{denied_reply:?}")
    };
    assert!(request);
    let m = sync::Message::decode(data).unwrap();
    assert!(
        m.heads.is_empty() && m.changes.is_empty(),
        "nothing of the document"
    );
}

#[test]
fn a_read_only_connection_reads_but_its_changes_are_refused_and_nothing_is_stored() {
    let x = DocumentId([1; 16]);
    let mut s = server();
    join_as(&mut s, 1, Access::all());
    let (_, c) = change(1, "k", "v");
    write(&mut s, 1, x, &c);
    let records = s.store.len();
    join_as(
        &mut s,
        2,
        access(Some("reader"), docs(&[x]), Grant::none(), false),
    );
    // Its own change: refused with an error, the connection stays.
    let (_, mine) = change(2, "k", "overwritten");
    let mark = s.sent.len();
    let mut heads = vec![c.hash(), mine.hash()];
    heads.sort();
    s.sync(2, x, changes_msg(&[&mine], heads));
    let out = sent_to(&s, 2, mark);
    assert!(
        matches!(&out[..], [Message::Error { message }] if message.contains("may not write")),
        "{out:?}"
    );
    assert_eq!(
        denied(&s, 2),
        vec![ProtocolError::WriteRefused { doc: x.to_string() }]
    );
    assert!(s.errors(2).is_empty(), "not closed");
    assert_eq!(s.store.len(), records, "nothing stored");
    assert_eq!(s.heads(&x), vec![c.hash()]);
    assert_eq!(
        s.repo
            .doc(&x)
            .unwrap()
            .get(ROOT, "k")
            .unwrap()
            .unwrap()
            .0
            .as_str(),
        Some("v")
    );
    // Echoing a change the document has writes nothing: it is a read.
    let mark = s.sent.len();
    s.sync(2, x, changes_msg(&[&c], vec![c.hash()]));
    assert!(!sent_to(&s, 2, mark)
        .iter()
        .any(|m| matches!(m, Message::Error { .. })));
    // And it reads: its request is answered with the document's heads.
    let mut reader = Automerge::new();
    let mut st = sync::State::new();
    let mark = s.sent.len();
    s.request(
        2,
        x,
        reader.generate_sync_message(&mut st).unwrap().encode(),
    );
    let out = sent_to(&s, 2, mark);
    let Some(Message::Sync { data, .. }) = out.last() else {
        panic!("{out:?}")
    };
    reader
        .receive_sync_message(&mut st, sync::Message::decode(data).unwrap())
        .unwrap();
    assert_eq!(sync::Message::decode(data).unwrap().heads, vec![c.hash()]);
}

#[test]
fn creating_needs_create_or_a_grant_naming_the_document() {
    let (x, y) = (DocumentId([1; 16]), DocumentId([2; 16]));
    let mut s = server();
    // May write everything the server holds, but not create.
    join_as(&mut s, 1, access(Some("w"), Grant::All, Grant::All, false));
    let (_, c) = change(1, "k", "v");
    write(&mut s, 1, x, &c);
    assert_eq!(denied(&s, 1).len(), 1);
    assert_eq!(doc_records(&s, &x), 0, "nothing stored");
    assert!(s.repo.owner(&x).is_none());
    // A grant naming the document allows its first changes.
    join_as(
        &mut s,
        2,
        access(Some("named"), Grant::none(), docs(&[y]), false),
    );
    write(&mut s, 2, y, &c);
    assert!(denied(&s, 2).is_empty());
    assert_eq!(s.heads(&y), vec![c.hash()]);
    assert_eq!(s.repo.owner(&y), Some("named"));
}

#[test]
fn the_creator_owns_a_document_across_tokens_and_restarts() {
    let x = DocumentId([1; 16]);
    let mut s = server();
    join_as(
        &mut s,
        1,
        access(Some("alice"), Grant::none(), Grant::none(), true),
    );
    let (_, c) = change(1, "k", "v");
    write(&mut s, 1, x, &c);
    assert!(denied(&s, 1).is_empty());
    assert_eq!(s.heads(&x), vec![c.hash()]);
    assert_eq!(s.repo.owner(&x), Some("alice"));
    // The owner is in the index entry written with the document.
    let entry = s
        .store
        .get(&collection::entry_key(&x))
        .map(|v| IndexEntry::decode(v).unwrap())
        .expect("an index entry");
    assert_eq!(entry.owner.as_deref(), Some("alice"));
    assert_eq!(entry.heads, vec![c.hash()]);

    // Bob may create documents too, but not take this one.
    join_as(
        &mut s,
        2,
        access(Some("bob"), Grant::none(), Grant::none(), true),
    );
    let records = s.store.len();
    let mark = s.sent.len();
    s.request(2, x, empty_request());
    let (_, theirs) = change(2, "k", "bob's");
    write(&mut s, 2, x, &theirs);
    let out = sent_to(&s, 2, mark);
    assert!(matches!(out[0], Message::DocUnavailable { .. }), "{out:?}");
    assert!(matches!(out[1], Message::Error { .. }), "{out:?}");
    assert_eq!(s.store.len(), records, "nothing stored");

    // Alice with another token that lists nothing reads and writes it.
    let mut s2 = Server::new(true);
    s2.store = s.store.clone();
    let records: Vec<_> = s2
        .store
        .iter()
        .filter(|(k, _)| k.starts_with(&collection::prefix()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    s2.repo.restore_collection(records);
    assert_eq!(s2.repo.owner(&x), Some("alice"));
    join_as(
        &mut s2,
        3,
        access(Some("alice"), Grant::none(), Grant::none(), false),
    );
    s2.request(3, x, empty_request());
    assert!(matches!(
        sent_to(&s2, 3, 0).last(),
        Some(Message::Sync { .. })
    ));
    let more = follow(&c, 3, "more", "x");
    write(&mut s2, 3, x, &more);
    assert!(denied(&s2, 3).is_empty(), "{:?}", denied(&s2, 3));
    assert_eq!(s2.heads(&x), vec![more.hash()]);
}

#[test]
fn ephemeral_messages_reach_only_connections_that_may_read() {
    let x = DocumentId([1; 16]);
    let mut s = server();
    join_as(&mut s, 1, Access::all());
    join_as(&mut s, 2, Access::all());
    let (_, c) = change(1, "k", "v");
    write(&mut s, 1, x, &c);
    s.request(2, x, empty_request());
    let eph = |sender: u64, count: u64| Message::Ephemeral {
        sender_id: format!("client-{sender}"),
        target_id: SERVER.into(),
        count,
        session_id: format!("session-{sender}"),
        document_id: x,
        data: vec![0xa1, 0x61, 0x78, 0x01],
    };
    let relayed = |s: &mut Server, from: u64, count: u64| {
        let mark = s.sent.len();
        s.repo
            .frame(T, ConnId(from), &wire::encode(&eph(from, count)));
        s.pump();
        let to = if from == 1 { 2 } else { 1 };
        sent_to(s, to, mark)
            .into_iter()
            .filter(|m| matches!(m, Message::Ephemeral { .. }))
            .count()
    };
    assert_eq!(relayed(&mut s, 1, 1), 1, "both may read: relayed");
    // Conn 2's access narrows to another document.
    s.repo.set_access(
        T,
        ConnId(2),
        access(None, docs(&[DocumentId([9; 16])]), Grant::none(), false),
    );
    assert_eq!(
        relayed(&mut s, 1, 2),
        0,
        "not to a connection that may not read"
    );
    let before = s
        .events
        .iter()
        .filter(|e| matches!(e, Event::Ephemeral { .. }))
        .count();
    assert_eq!(relayed(&mut s, 2, 1), 0, "nor from it");
    let after = s
        .events
        .iter()
        .filter(|e| matches!(e, Event::Ephemeral { .. }))
        .count();
    assert_eq!(before, after);
    // Nor does it get the document's sync messages any more.
    let mark = s.sent.len();
    let (_, c2) = change(3, "other", "w");
    write(&mut s, 1, x, &c2);
    assert!(sent_to(&s, 2, mark).is_empty());
}

#[test]
fn the_collection_exchange_lists_only_readable_documents() {
    let (x, y) = (DocumentId([1; 16]), DocumentId([2; 16]));
    let mut s = server();
    join_as(&mut s, 1, Access::all());
    let (_, a) = change(1, "k", "x");
    let (_, b) = change(2, "k", "y");
    write(&mut s, 1, x, &a);
    write(&mut s, 1, y, &b);
    join_as(&mut s, 2, access(None, docs(&[x]), Grant::none(), false));
    let resume = Message::Resume {
        sender_id: "client-2".into(),
        target_id: SERVER.into(),
        since: None,
        held: HeldFilter::new([x, y].iter()).encode(),
    };
    let mark = s.sent.len();
    s.repo.frame(T, ConnId(2), &wire::encode(&resume));
    s.pump();
    let listed = |out: Vec<Message>| -> Vec<collection::Digest> {
        out.iter()
            .flat_map(|m| match m {
                Message::Changed { docs, .. } => collection::decode_changed(docs)
                    .unwrap()
                    .into_iter()
                    .map(|(d, _)| d)
                    .collect(),
                _ => Vec::new(),
            })
            .collect()
    };
    assert_eq!(listed(sent_to(&s, 2, mark)), vec![collection::digest(&x)]);
    // Later commits: y's is not announced, x's is.
    let mark = s.sent.len();
    let b2 = follow(&b, 3, "k2", "y2");
    write(&mut s, 1, y, &b2);
    assert!(listed(sent_to(&s, 2, mark)).is_empty());
    let a2 = follow(&a, 3, "k2", "x2");
    write(&mut s, 1, x, &a2);
    assert_eq!(listed(sent_to(&s, 2, mark)), vec![collection::digest(&x)]);
}

#[test]
fn an_expired_connection_is_told_and_closed_on_the_timer() {
    let mut s = server();
    let deadline = T.plus_ms(2_000);
    join_as(
        &mut s,
        1,
        Access {
            expires: Some(deadline),
            ..Access::all()
        },
    );
    assert_eq!(s.repo.poll_timeout(), Some(deadline));
    s.repo.handle_timeout(T.plus_ms(1_999));
    s.pump();
    assert!(s.repo.access(ConnId(1)).is_some());
    let mark = s.sent.len();
    s.repo.handle_timeout(deadline);
    s.pump();
    assert_eq!(
        sent_to(&s, 1, mark),
        vec![Message::Error {
            message: "access token expired".into()
        }]
    );
    assert!(s.repo.access(ConnId(1)).is_none(), "closed");
    assert_eq!(s.errors(1), vec![ProtocolError::AccessExpired]);
    assert_eq!(s.repo.poll_timeout(), None);
    // A frame that arrives after the expiry, before the timer ran, is not
    // served either.
    join_as(
        &mut s,
        2,
        Access {
            expires: Some(deadline),
            ..Access::all()
        },
    );
    let m = Message::Sync {
        request: true,
        document_id: DocumentId([1; 16]),
        sender_id: "client-2".into(),
        target_id: SERVER.into(),
        data: empty_request(),
    };
    s.repo.frame(deadline, ConnId(2), &wire::encode(&m));
    s.pump();
    assert_eq!(s.errors(2), vec![ProtocolError::AccessExpired]);
}

#[test]
fn without_set_access_a_connection_gets_the_configured_default() {
    let x = DocumentId([1; 16]);
    let mut cfg = RepoConfig::new(SERVER, [9; 16], "s");
    cfg.announce = false;
    cfg.default_access = Access::none();
    let mut s = Server::new(true);
    s.repo = Repo::new(cfg);
    s.repo.restore_collection(Vec::new());
    s.join(1);
    let (_, c) = change(1, "k", "v");
    write(&mut s, 1, x, &c);
    assert_eq!(denied(&s, 1).len(), 1);
    assert_eq!(doc_records(&s, &x), 0);
}
