//! Drives a real [`Repo`] configured as a server, the way the tests do
//! (`tests/net_harness`): input methods, then drain `poll_effect`, completing
//! every `Commit` and `Load` at once against an in-memory storage image.

use std::collections::BTreeMap;

use holdfast_core::id::DocumentId;
use holdfast_core::repo::{ConnId, Direction, Effect, Event, Repo, RepoConfig, Timestamp};
use holdfast_core::storage::{Commit, StorageKey};
use holdfast_core::wire::{self, DecodeLimits, Message, PeerMetadata};

use crate::{PEER_ID, SERVER_ID};

/// A storage image: what the repo's commits made durable.
#[derive(Clone, Default)]
pub struct Image(pub BTreeMap<StorageKey, Vec<u8>>);

impl Image {
    pub fn apply(&mut self, c: &Commit) {
        for k in &c.deletes {
            self.0.remove(k);
        }
        for prefix in &c.delete_prefixes {
            self.0.retain(|k, _| !k.starts_with(prefix));
        }
        for (k, v) in &c.puts {
            self.0.insert(k.clone(), v.clone());
        }
    }

    pub fn range(&self, prefix: &StorageKey) -> Vec<(StorageKey, Vec<u8>)> {
        self.0
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    pub fn bytes(&self) -> usize {
        self.0.values().map(Vec::len).sum()
    }
}

/// What the repo did in answer to one frame.
#[derive(Default, Debug)]
pub struct Outcome {
    /// Frames sent on the connection.
    pub sent: Vec<Vec<u8>>,
    /// The repo closed the connection.
    pub closed: bool,
    /// `ConnectionError`s, by variant name.
    pub errors: Vec<String>,
    /// Documents whose durable state advanced with remote changes.
    pub remote_changes: usize,
    /// The effect loop did not settle within [`MAX_EFFECTS`].
    pub livelock: bool,
}

/// Effects one frame may cause before the loop counts as not settling.
pub const MAX_EFFECTS: usize = 100_000;

pub struct Driver {
    pub repo: Repo,
    pub image: Image,
    pub now: u64,
    next_conn: u64,
}

pub fn config(validate: bool) -> RepoConfig {
    let mut cfg = RepoConfig::new(SERVER_ID, [0x5e; 16], "holdfast-fuzz");
    cfg.announce = false;
    cfg.validate_peer_input = validate;
    cfg
}

/// The variant name of a `ProtocolError` (`Refused`, `Internal`, ...).
fn variant(debug: &str) -> String {
    debug
        .split(|c: char| !c.is_alphanumeric())
        .next()
        .unwrap_or("")
        .to_string()
}

impl Driver {
    pub fn new(validate: bool, image: Image) -> Self {
        Self {
            repo: Repo::new(config(validate)),
            image,
            now: 1_000_000,
            next_conn: 1,
        }
    }

    fn ts(&self) -> Timestamp {
        Timestamp(self.now)
    }

    /// Perform every effect until the repo is quiet.
    pub fn settle(&mut self, conn: Option<ConnId>, out: &mut Outcome) {
        let mut n = 0;
        while let Some(e) = self.repo.poll_effect() {
            n += 1;
            if n > MAX_EFFECTS {
                out.livelock = true;
                return;
            }
            match e {
                Effect::Send { conn: c, frame } => {
                    if Some(c) == conn {
                        out.sent.push(frame);
                    }
                }
                Effect::Close { conn: c } => {
                    if Some(c) == conn {
                        out.closed = true;
                    }
                }
                Effect::Load { task, prefix } => {
                    let records = self.image.range(&prefix);
                    self.repo.load_done(self.ts(), task, Ok(records));
                }
                Effect::Commit { task, commit } => {
                    self.image.apply(&commit);
                    self.repo.commit_done(self.ts(), task, Ok(()));
                }
                Effect::Event(ev) => match ev {
                    Event::ConnectionError { error, .. } => {
                        out.errors.push(variant(&format!("{error:?}")))
                    }
                    Event::DocChanged { source, .. }
                        if !matches!(source, holdfast_core::repo::ChangeSource::Local) =>
                    {
                        out.remote_changes += 1;
                    }
                    _ => {}
                },
            }
        }
    }

    /// A new incoming connection and the `join` handshake; `None` if the
    /// repo did not answer `peer`.
    pub fn open(&mut self) -> Option<ConnId> {
        let conn = ConnId(self.next_conn);
        self.next_conn += 1;
        self.now += 1;
        self.repo.connected(self.ts(), conn, Direction::Incoming);
        let out = self.frame(conn, &join_frame());
        let ok = out.sent.iter().any(|f| {
            matches!(
                wire::decode(f, &DecodeLimits::default()),
                Ok(Message::Peer { ref selected_protocol_version, .. }) if selected_protocol_version == "1"
            )
        });
        ok.then_some(conn)
    }

    pub fn frame(&mut self, conn: ConnId, frame: &[u8]) -> Outcome {
        self.now += 1;
        let mut out = Outcome::default();
        self.repo.frame(self.ts(), conn, frame);
        self.settle(Some(conn), &mut out);
        out
    }

    pub fn close(&mut self, conn: ConnId) {
        self.now += 1;
        self.repo.disconnected(self.ts(), conn);
        self.settle(None, &mut Outcome::default());
    }

    /// Import saved document bytes and make them durable.
    pub fn import(&mut self, id: DocumentId, bytes: &[u8]) {
        self.repo
            .import(self.ts(), id, bytes)
            .expect("corpus documents import");
        self.settle(None, &mut Outcome::default());
    }
}

pub fn join_frame() -> Vec<u8> {
    wire::encode(&Message::Join {
        sender_id: PEER_ID.into(),
        peer_metadata: PeerMetadata::default(),
        supported_protocol_versions: vec!["1".into()],
    })
}
