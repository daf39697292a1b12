//! A repo set up as a server, driven by hand, for tests of what peers send
//! (`mod peer_harness;`): storage completes at once, frames and events are
//! kept for assertions.
#![allow(dead_code)]

use std::collections::BTreeMap;

use automerge::sync;
use automerge::{Change, ChangeHash};
use holdfast_core::id::DocumentId;
use holdfast_core::repo::*;
use holdfast_core::storage::StorageKey;
use holdfast_core::wire::{self, Message, PeerMetadata};

pub const T: Timestamp = Timestamp(1_000);
pub const SERVER: &str = "server";

pub struct Server {
    pub repo: Repo,
    pub store: BTreeMap<StorageKey, Vec<u8>>,
    /// Frames sent, per connection.
    pub sent: Vec<(ConnId, Message)>,
    pub events: Vec<Event>,
    /// Storage reads (`Effect::Load`) performed.
    pub loads: usize,
}

impl Server {
    pub fn new(validate: bool) -> Self {
        let mut cfg = RepoConfig::new(SERVER, [9; 16], "s");
        cfg.announce = false;
        cfg.validate_peer_input = validate;
        Server {
            repo: Repo::new(cfg),
            store: BTreeMap::new(),
            sent: Vec::new(),
            events: Vec::new(),
            loads: 0,
        }
    }

    /// The stored records under `prefix`, in key order.
    pub fn range(&self, prefix: &StorageKey) -> Vec<(StorageKey, Vec<u8>)> {
        self.store
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Performs every effect (storage at once) until there are none.
    pub fn pump(&mut self) {
        while let Some(e) = self.repo.poll_effect() {
            match e {
                Effect::Send { conn, frame } => {
                    let m = wire::decode(&frame, &Default::default()).unwrap();
                    self.sent.push((conn, m));
                }
                Effect::Load { task, prefix } => {
                    self.loads += 1;
                    let recs = self.range(&prefix);
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

    pub fn join(&mut self, conn: u64) {
        self.repo.connected(T, ConnId(conn), Direction::Incoming);
        let join = Message::Join {
            sender_id: format!("client-{conn}"),
            peer_metadata: PeerMetadata::default(),
            supported_protocol_versions: vec!["1".into()],
        };
        self.repo.frame(T, ConnId(conn), &wire::encode(&join));
        self.pump();
    }

    pub fn sync(&mut self, conn: u64, doc: DocumentId, data: Vec<u8>) {
        self.send_sync(conn, doc, data, false);
    }

    /// A `request` (a sync message from a peer that has nothing).
    pub fn request(&mut self, conn: u64, doc: DocumentId, data: Vec<u8>) {
        self.send_sync(conn, doc, data, true);
    }

    fn send_sync(&mut self, conn: u64, doc: DocumentId, data: Vec<u8>, request: bool) {
        let m = Message::Sync {
            request,
            document_id: doc,
            sender_id: format!("client-{conn}"),
            target_id: SERVER.into(),
            data,
        };
        self.repo.frame(T, ConnId(conn), &wire::encode(&m));
        self.pump();
    }

    pub fn errors(&self, conn: u64) -> Vec<ProtocolError> {
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
    pub fn last_need(&self, conn: u64) -> Vec<ChangeHash> {
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

    pub fn heads(&self, doc: &DocumentId) -> Vec<ChangeHash> {
        self.repo
            .durable_doc(doc)
            .map(|d| d.get_heads())
            .unwrap_or_default()
    }
}

/// A request's sync message: what an empty document says first.
pub fn empty_request() -> Vec<u8> {
    use automerge::sync::SyncDoc;
    automerge::Automerge::new()
        .generate_sync_message(&mut sync::State::new())
        .unwrap()
        .encode()
}

pub fn changes_msg(changes: &[&Change], heads: Vec<ChangeHash>) -> Vec<u8> {
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

pub fn raw_msg(chunks: Vec<Vec<u8>>) -> Vec<u8> {
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
