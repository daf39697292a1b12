//! Connections: the `join`/`peer` handshake, frames in and out, message
//! dispatch and ephemeral relay. Per-document sync is in `sync`.

use std::collections::BTreeSet;

use super::doc::{Doc, Phase};
use super::types::*;
use super::Repo;
use crate::id::DocumentId;
use crate::wire::{self, Message, PeerId, PeerMetadata};

pub(super) const PROTOCOL_VERSION: &str = "1";

pub(super) struct Conn {
    pub dir: Direction,
    /// Set once the handshake completed.
    pub peer: Option<(PeerId, PeerMetadata)>,
    /// Documents this peer sent `sync`/`request`/`doc-unavailable` about
    /// (bounded by `ConnLimits::max_docs_per_conn`).
    pub docs: BTreeSet<DocumentId>,
    /// Documents whose `peers` were given a sync state for this connection
    /// ([`Repo::note_peer`]; a superset: states dropped since stay listed).
    /// A disconnect visits these, the loading and the finding documents,
    /// not every document held.
    pub synced: BTreeSet<DocumentId>,
    /// Documents nobody stores that it asked for (see `wanted`; may list
    /// some loaded since).
    pub asked: Vec<DocumentId>,
    /// Ephemeral messages and bytes from this peer in the current second.
    pub eph_second: u64,
    pub eph_msgs: u32,
    pub eph_bytes: usize,
    /// Documents this peer's messages brought into memory in the pacing
    /// window `new_window` (see `conn_limits`).
    pub new_window: u64,
    pub new_docs: u32,
    /// What it may do (`access`); `None`: `RepoConfig::default_access`.
    pub access: Option<Access>,
}

impl Conn {
    fn new(dir: Direction) -> Self {
        Self {
            dir,
            peer: None,
            docs: Default::default(),
            synced: Default::default(),
            asked: Vec::new(),
            eph_second: 0,
            eph_msgs: 0,
            eph_bytes: 0,
            new_window: 0,
            new_docs: 0,
            access: None,
        }
    }
}

impl Repo {
    /// A connection opened. On outgoing connections we send `join`.
    pub fn connected(&mut self, now: Timestamp, conn: ConnId, dir: Direction) {
        self.now = now;
        self.conns.insert(conn, Conn::new(dir));
        if dir == Direction::Outgoing {
            let join = Message::Join {
                sender_id: self.cfg.peer_id.clone(),
                peer_metadata: self.cfg.metadata.clone(),
                supported_protocol_versions: vec![PROTOCOL_VERSION.to_string()],
            };
            self.send(conn, &join);
        }
    }

    /// A connection closed (either side). Unknown connections are ignored.
    pub fn disconnected(&mut self, now: Timestamp, conn: ConnId) {
        self.now = now;
        let Some(c) = self.conns.remove(&conn) else {
            return;
        };
        self.collection.links.remove(&conn);
        self.forget_asker(conn, &c.asked);
        // Every document that may hold something of `conn`, not every one
        // held: a sync state (`synced`), a frame buffered while loading
        // (those loading), a `doc-unavailable` it sent (those finding),
        // and those whose finds may now have no peer left to wait for.
        let finding = self.finding_docs();
        let mut visit: BTreeSet<DocumentId> = c.synced;
        visit.extend(self.loads.values().copied());
        visit.extend(finding.iter().copied());
        let mut states = Vec::new();
        for id in visit {
            let Some(doc) = self.docs.get_mut(&id) else {
                continue;
            };
            if let Some(state) = doc.peers.remove(&conn) {
                // What a peer knew of a document we lack is worth nothing
                // (it is answered afresh): only the others are parked.
                if !doc.is_empty() {
                    states.push((doc.id, state));
                }
            }
            doc.forget_conn(conn);
        }
        debug_assert!(
            self.docs.values().all(|d| !d.peers.contains_key(&conn)),
            "a sync state of {conn:?} was not noted in `Conn::synced`"
        );
        for id in finding {
            self.check_unavailable(id);
        }
        // A server keeps what each peer knew, for when it comes back.
        if let (Some((peer, _)), false) = (&c.peer, self.cfg.announce) {
            self.parked.park(peer.clone(), states);
        }
        if let Some((peer, _)) = &c.peer {
            self.forget_ephemeral_sessions(peer);
        }
        self.evict_floor = 0;
        self.event(Event::PeerDisconnected {
            conn,
            peer_id: c.peer.map(|p| p.0),
        });
    }

    /// A binary frame arrived on `conn`.
    pub fn frame(&mut self, now: Timestamp, conn: ConnId, frame: &[u8]) {
        self.now = now;
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let msg = match wire::decode(frame, &self.cfg.limits) {
            Ok(m) => m,
            Err(e) => return self.protocol_error(conn, ProtocolError::Malformed(e.to_string())),
        };
        *self.received.get_or_default(msg.type_name()) += 1;
        let joined = c.peer.clone();
        let dir = c.dir;
        match msg {
            Message::Join {
                sender_id,
                peer_metadata,
                supported_protocol_versions,
            } => {
                if dir != Direction::Incoming || joined.is_some() {
                    return self.protocol_error(conn, ProtocolError::Unexpected("join"));
                }
                if !supported_protocol_versions
                    .iter()
                    .any(|v| v == PROTOCOL_VERSION)
                {
                    return self.protocol_error(
                        conn,
                        ProtocolError::UnsupportedVersion(supported_protocol_versions),
                    );
                }
                let reply = Message::Peer {
                    sender_id: self.cfg.peer_id.clone(),
                    target_id: sender_id.clone(),
                    peer_metadata: self.cfg.metadata.clone(),
                    selected_protocol_version: PROTOCOL_VERSION.to_string(),
                };
                self.send(conn, &reply);
                self.peer_opened(conn, sender_id, peer_metadata);
            }
            Message::Peer {
                sender_id,
                target_id,
                peer_metadata,
                ..
            } => {
                if dir != Direction::Outgoing || joined.is_some() {
                    return self.protocol_error(conn, ProtocolError::Unexpected("peer"));
                }
                if target_id != self.cfg.peer_id {
                    return self.protocol_error(conn, ProtocolError::WrongTarget(target_id));
                }
                self.peer_opened(conn, sender_id, peer_metadata);
            }
            Message::Error { message } => {
                self.event(Event::ConnectionError {
                    conn,
                    error: ProtocolError::Remote(message),
                });
                self.effects.push_back(Effect::Close { conn });
                self.disconnected(now, conn);
            }
            Message::Leave { .. } => {
                self.effects.push_back(Effect::Close { conn });
                self.disconnected(now, conn);
            }
            other => {
                let Some((peer_id, _)) = joined else {
                    return self.protocol_error(conn, ProtocolError::NotJoined);
                };
                if let Err(e) = self.check_addressing(&other, &peer_id) {
                    return self.protocol_error(conn, e);
                }
                self.dispatch(conn, other);
            }
        }
    }

    fn check_addressing(&self, msg: &Message, peer_id: &str) -> Result<(), ProtocolError> {
        let (sender, target) = match msg {
            Message::Sync {
                sender_id,
                target_id,
                ..
            }
            | Message::DocUnavailable {
                sender_id,
                target_id,
                ..
            }
            | Message::RemoteSubscriptionChange {
                sender_id,
                target_id,
                ..
            }
            | Message::RemoteHeadsChanged {
                sender_id,
                target_id,
                ..
            }
            | Message::Resume {
                sender_id,
                target_id,
                ..
            }
            | Message::Changed {
                sender_id,
                target_id,
                ..
            } => (Some(sender_id), target_id),
            // Relayed ephemeral messages keep their original sender.
            Message::Ephemeral { target_id, .. } => (None, target_id),
            _ => return Ok(()),
        };
        if let Some(sender) = sender.filter(|s| s.as_str() != peer_id) {
            return Err(ProtocolError::WrongSender {
                expected: peer_id.to_string(),
                got: sender.clone(),
            });
        }
        if *target != self.cfg.peer_id {
            return Err(ProtocolError::WrongTarget(target.clone()));
        }
        Ok(())
    }

    fn dispatch(&mut self, conn: ConnId, msg: Message) {
        let Some(msg) = self.gate(conn, msg) else {
            return;
        };
        match msg {
            Message::Sync { document_id, .. } | Message::DocUnavailable { document_id, .. } => {
                if !self.note_conn_doc(conn, document_id) {
                    return;
                }
                if !self.docs.contains_key(&document_id)
                    && self.ask_for_unstored(conn, document_id, &msg)
                {
                    return;
                }
                match self.docs.get_mut(&document_id) {
                    Some(Doc {
                        phase: Phase::Loading { buffered },
                        ..
                    }) => buffered.push((conn, msg)),
                    Some(doc) => {
                        doc.last_used = self.now;
                        self.handle_doc_message(conn, msg)
                    }
                    None => {
                        // Not in memory: load it first, keeping the message
                        // (at once if the index says storage has nothing).
                        let mut doc = Doc::new(
                            document_id,
                            &self.actor,
                            Phase::Loading {
                                buffered: vec![(conn, msg)],
                            },
                        );
                        doc.last_used = self.now;
                        self.docs.insert(document_id, doc);
                        self.note_doc_brought_up(conn);
                        self.load(document_id);
                    }
                }
            }
            Message::Ephemeral {
                sender_id,
                count,
                session_id,
                document_id,
                data,
                ..
            } => {
                if !self.admit_ephemeral(conn, &sender_id, document_id, data.len()) {
                    return;
                }
                let key = (sender_id.clone(), session_id.clone());
                if self
                    .ephemeral_seen
                    .get(&key)
                    .is_some_and(|last| *last >= count)
                    || sender_id == self.cfg.peer_id
                {
                    return;
                }
                self.remember_ephemeral_session(key, count);
                self.event(Event::Ephemeral {
                    doc: document_id,
                    sender: sender_id.clone(),
                    data: data.clone(),
                });
                self.send_ephemeral(
                    document_id,
                    Some(conn),
                    &sender_id,
                    &session_id,
                    count,
                    &data,
                );
            }
            Message::Resume { since, held, .. } => self.handle_resume(conn, since, held),
            Message::Changed { upto, docs, .. } => self.handle_changed(conn, upto, docs),
            // Remote-heads gossip: tolerated, not used yet.
            _ => {}
        }
    }

    fn peer_opened(&mut self, conn: ConnId, peer_id: PeerId, metadata: PeerMetadata) {
        self.replace_same_peer(conn, &peer_id);
        if let Some(c) = self.conns.get_mut(&conn) {
            c.peer = Some((peer_id.clone(), metadata.clone()));
        }
        for (id, state) in self.parked.take(&peer_id) {
            if !self.may_read(conn, id) {
                continue;
            }
            if let Some(doc) = self.docs.get_mut(&id).filter(|d| d.loaded()) {
                doc.peers.entry(conn).or_insert(state);
                self.note_peer(conn, id);
            }
        }
        self.event(Event::PeerConnected {
            conn,
            peer_id,
            metadata: metadata.clone(),
        });
        let taken = self.collection_opened(conn, &metadata);
        // Only documents being found are offered to a new peer, unless we
        // announce ours (then every one): not a walk over every document
        // held per `join`.
        let ids: Vec<DocumentId> = match !taken && self.cfg.announce {
            true => self.docs.keys().copied().collect(),
            false => self.finding_docs(),
        };
        for id in ids {
            let doc = self.docs.get_mut(&id).expect("listed");
            if !doc.loaded() {
                continue;
            }
            let finding = !doc.finds.is_empty() && doc.durable_heads.is_empty();
            let announce = !taken && self.cfg.announce && !doc.durable_heads.is_empty();
            if (finding || announce) && !doc.peers.contains_key(&conn) {
                doc.peers.insert(conn, Default::default());
                self.note_peer(conn, id);
                self.send_sync(id, conn);
            }
        }
    }

    pub(super) fn send_ephemeral(
        &mut self,
        id: DocumentId,
        from: Option<ConnId>,
        sender: &str,
        session: &str,
        count: u64,
        data: &[u8],
    ) {
        let targets: Vec<(ConnId, PeerId)> = self
            .conns
            .iter()
            .filter(|(c, _)| Some(**c) != from)
            .filter_map(|(c, conn)| conn.peer.as_ref().map(|p| (*c, p.0.clone())))
            .filter(|(c, p)| p != sender && self.syncs(*c, id) && self.may_read(*c, id))
            .collect();
        for (conn, target_id) in targets {
            let msg = Message::Ephemeral {
                sender_id: sender.to_string(),
                target_id,
                count,
                session_id: session.to_string(),
                document_id: id,
                data: data.to_vec(),
            };
            self.send(conn, &msg);
        }
    }

    pub(super) fn protocol_error(&mut self, conn: ConnId, error: ProtocolError) {
        tracing::info!(?conn, %error, "closing connection");
        self.send(
            conn,
            &Message::Error {
                message: error.to_string(),
            },
        );
        self.effects.push_back(Effect::Close { conn });
        self.event(Event::ConnectionError { conn, error });
        let now = self.now;
        self.disconnected(now, conn);
    }

    /// `id`'s `peers` now hold a sync state for `conn` (call wherever one
    /// is inserted): `disconnected` finds it through [`Conn::synced`].
    pub(super) fn note_peer(&mut self, conn: ConnId, id: DocumentId) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.synced.insert(id);
        }
    }

    /// Documents waiting for peers to send them (their finds' deadlines
    /// are kept; a stale entry only costs a look).
    pub(super) fn finding_docs(&self) -> Vec<DocumentId> {
        let ids: BTreeSet<DocumentId> = self.find_deadlines.iter().map(|(_, id)| *id).collect();
        ids.into_iter().collect()
    }

    pub(super) fn send(&mut self, conn: ConnId, msg: &Message) {
        self.effects.push_back(Effect::Send {
            conn,
            frame: wire::encode(msg),
        });
    }

    pub(super) fn open_conns(&self) -> Vec<ConnId> {
        self.conns
            .iter()
            .filter(|(_, c)| c.peer.is_some())
            .map(|(id, _)| *id)
            .collect()
    }

    pub(super) fn conn_direction(&self, conn: ConnId) -> Option<Direction> {
        self.conns.get(&conn).map(|c| c.dir)
    }

    pub(super) fn peer_id(&self, conn: ConnId) -> PeerId {
        self.conns
            .get(&conn)
            .and_then(|c| c.peer.as_ref())
            .map(|p| p.0.clone())
            .unwrap_or_default()
    }
}
