//! What the repo does with a peer's changes: changes whose dependencies are
//! missing are held back (never handed to automerge) and applied when their
//! dependencies arrive; a change automerge would panic on is refused with an
//! error to that peer; with validation off, a panic is isolated to the one
//! document and connection.
//!
//! The same tests (but the one that needs unwinding) run in headless
//! Chromium through `wasm-pack test`: in the browser a panic would abort
//! the module, so there the checks are the whole defence.

use std::collections::BTreeMap;

use automerge::sync;
use automerge::transaction::Transactable;
use automerge::{ActorId, Automerge, Change, ChangeHash, ReadDoc, ROOT};
use holdfast::core::id::DocumentId;
use holdfast::core::repo::*;
use holdfast::core::storage::StorageKey;
use holdfast::core::wire::{self, Message, PeerMetadata};

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;
#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

mod crafted;

const T: Timestamp = Timestamp(1_000);
const SERVER: &str = "server";

struct Server {
    repo: Repo,
    store: BTreeMap<StorageKey, Vec<u8>>,
    /// Frames sent, per connection.
    sent: Vec<(ConnId, Message)>,
    events: Vec<Event>,
}

impl Server {
    fn new(validate: bool) -> Self {
        let mut cfg = RepoConfig::new(SERVER, [9; 16], "s");
        cfg.announce = false;
        cfg.validate_peer_input = validate;
        Server {
            repo: Repo::new(cfg),
            store: BTreeMap::new(),
            sent: Vec::new(),
            events: Vec::new(),
        }
    }

    /// Performs every effect (storage at once) until there are none.
    fn pump(&mut self) {
        while let Some(e) = self.repo.poll_effect() {
            match e {
                Effect::Send { conn, frame } => {
                    let m = wire::decode(&frame, &Default::default()).unwrap();
                    self.sent.push((conn, m));
                }
                Effect::Load { task, prefix } => {
                    let recs = self
                        .store
                        .iter()
                        .filter(|(k, _)| k.starts_with(&prefix))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    self.repo.load_done(T, task, Ok(recs));
                }
                Effect::Commit { task, commit } => {
                    for (k, v) in commit.puts {
                        self.store.insert(k, v);
                    }
                    for k in commit.deletes {
                        self.store.remove(&k);
                    }
                    self.repo.commit_done(T, task, Ok(()));
                }
                Effect::Event(ev) => self.events.push(ev),
                Effect::Close { .. } => {}
            }
        }
    }

    fn join(&mut self, conn: u64) {
        self.repo.connected(T, ConnId(conn), Direction::Incoming);
        let join = Message::Join {
            sender_id: format!("client-{conn}"),
            peer_metadata: PeerMetadata::default(),
            supported_protocol_versions: vec!["1".into()],
        };
        self.repo.frame(T, ConnId(conn), &wire::encode(&join));
        self.pump();
    }

    fn sync(&mut self, conn: u64, doc: DocumentId, data: Vec<u8>) {
        let m = Message::Sync {
            request: false,
            document_id: doc,
            sender_id: format!("client-{conn}"),
            target_id: SERVER.into(),
            data,
        };
        self.repo.frame(T, ConnId(conn), &wire::encode(&m));
        self.pump();
    }

    fn errors(&self, conn: u64) -> Vec<ProtocolError> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::ConnectionError { conn: c, error } if *c == ConnId(conn) => {
                    Some(error.clone())
                }
                _ => None,
            })
            .collect()
    }

    /// The `need` of the last sync message sent to `conn`.
    fn last_need(&self, conn: u64) -> Vec<ChangeHash> {
        self.sent
            .iter()
            .rev()
            .find_map(|(c, m)| match m {
                Message::Sync { data, .. } if *c == ConnId(conn) => {
                    Some(sync::Message::decode(data).unwrap().need)
                }
                _ => None,
            })
            .expect("a sync message was sent")
    }

    fn heads(&self, doc: &DocumentId) -> Vec<ChangeHash> {
        self.repo
            .durable_doc(doc)
            .map(|d| d.get_heads())
            .unwrap_or_default()
    }
}

fn changes_msg(changes: &[&Change], heads: Vec<ChangeHash>) -> Vec<u8> {
    sync::Message {
        heads,
        need: vec![],
        have: vec![],
        changes: changes
            .iter()
            .map(|c| c.raw_bytes().to_vec())
            .collect::<Vec<_>>()
            .into(),
        flags: None,
        version: sync::MessageVersion::V1,
    }
    .encode()
}

/// A client document with three changes by one actor, each on the last.
fn three_changes() -> (Automerge, Vec<Change>) {
    let mut d = Automerge::new().with_actor(ActorId::from([5u8; 16]));
    let mut out = Vec::new();
    for i in 0..3 {
        let mut tx = d.transaction();
        tx.put(ROOT, "n", i).unwrap();
        tx.commit();
        out.push(d.get_last_local_change().unwrap());
    }
    (d, out)
}

#[test]
fn a_change_whose_dependencies_are_missing_waits_then_applies() {
    let mut s = Server::new(true);
    s.join(1);
    let id = DocumentId([3; 16]);
    let (client, ch) = three_changes();
    // Only the first, then the third: the third waits for the second.
    s.sync(1, id, changes_msg(&[&ch[0]], vec![ch[0].hash()]));
    assert_eq!(s.heads(&id), vec![ch[0].hash()]);
    s.sync(1, id, changes_msg(&[&ch[2]], client.get_heads()));
    assert!(s.errors(1).is_empty(), "{:?}", s.errors(1));
    assert_eq!(s.heads(&id), vec![ch[0].hash()], "the third is held back");
    assert_eq!(
        s.last_need(1),
        vec![ch[1].hash()],
        "the server asks for the missing second change, not the held-back third"
    );
    s.sync(1, id, changes_msg(&[&ch[1]], client.get_heads()));
    assert_eq!(s.heads(&id), client.get_heads(), "both applied, durable");
    assert!(s.errors(1).is_empty());
}

fn with_seq(change: &Change, seq: u8) -> Vec<u8> {
    crafted::with_seq(change.raw_bytes(), seq)
}

fn raw_msg(chunks: Vec<Vec<u8>>) -> Vec<u8> {
    sync::Message {
        heads: vec![],
        need: vec![],
        have: vec![],
        changes: chunks.into(),
        flags: None,
        version: sync::MessageVersion::V1,
    }
    .encode()
}

#[test]
fn a_change_with_a_seq_gap_is_refused_and_nothing_of_it_is_stored() {
    let mut s = Server::new(true);
    s.join(1);
    s.join(2);
    let id = DocumentId([4; 16]);
    let (_, ch) = three_changes();
    s.sync(1, id, changes_msg(&[&ch[0]], vec![ch[0].hash()]));
    let stored = s.store.len();
    // The second change claiming seq 3.
    s.sync(1, id, raw_msg(vec![with_seq(&ch[1], 3)]));
    let errs = s.errors(1);
    assert!(
        matches!(errs.as_slice(), [ProtocolError::Refused { .. }]),
        "{errs:?}"
    );
    assert!(errs[0].to_string().contains("has seq 3"), "{}", errs[0]);
    assert_eq!(s.store.len(), stored, "nothing stored");
    assert_eq!(s.heads(&id), vec![ch[0].hash()]);
    // Another peer goes on: it sends the real second change.
    s.sync(2, id, changes_msg(&[&ch[1]], vec![ch[1].hash()]));
    assert!(s.errors(2).is_empty());
    assert_eq!(s.heads(&id), vec![ch[1].hash()]);
}

#[test]
fn a_first_change_with_seq_three_is_refused() {
    let mut s = Server::new(true);
    s.join(1);
    let id = DocumentId([6; 16]);
    let (_, ch) = three_changes();
    s.sync(1, id, raw_msg(vec![with_seq(&ch[0], 3)]));
    assert!(matches!(
        s.errors(1).as_slice(),
        [ProtocolError::Refused { .. }]
    ));
    assert!(s.heads(&id).is_empty());
}

#[cfg(not(target_arch = "wasm32"))]
#[test]
fn without_validation_a_panic_costs_one_message_and_one_connection() {
    let mut s = Server::new(false);
    s.join(1);
    s.join(2);
    let id = DocumentId([7; 16]);
    let (_, ch) = three_changes();
    s.sync(2, id, changes_msg(&[&ch[0]], vec![ch[0].hash()]));
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    // automerge asserts on the seq gap inside `load_incremental`.
    s.sync(1, id, raw_msg(vec![with_seq(&ch[1], 3)]));
    std::panic::set_hook(hook);
    let errs = s.errors(1);
    assert!(
        matches!(errs.as_slice(), [ProtocolError::Internal { .. }]),
        "{errs:?}"
    );
    assert_eq!(s.heads(&id), vec![ch[0].hash()], "durable state intact");
    // The other connection, and the same document, go on.
    s.sync(2, id, changes_msg(&[&ch[1]], vec![ch[1].hash()]));
    assert!(s.errors(2).is_empty(), "{:?}", s.errors(2));
    assert_eq!(s.heads(&id), vec![ch[1].hash()]);
    assert_eq!(
        s.repo.doc(&id).unwrap().get(ROOT, "n").unwrap().unwrap().0,
        automerge::Value::from(1i64)
    );
}
