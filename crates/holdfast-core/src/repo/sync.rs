//! Per-document sync over the connections: handling a peer's `sync`,
//! `request` and `doc-unavailable`, asking peers for a document a find
//! waits for, and generating sync messages (from durable state only, so a
//! peer is never offered a head that is not on our disk).

use automerge::sync;

use super::durable;

use super::doc::{Doc, Item, Pending, Phase};
use super::types::*;
use super::unwind::guarded;
use super::Repo;
use crate::id::DocumentId;
use crate::validate::{self, ChangeInfo};
use crate::wire::Message;

impl Repo {
    /// A `sync`, `request` or `doc-unavailable` for a document that is ready.
    pub(super) fn handle_doc_message(&mut self, conn: ConnId, msg: Message) {
        if !self.conns.contains_key(&conn) {
            return;
        }
        match msg {
            Message::Sync {
                request,
                document_id,
                data,
                ..
            } => {
                // Everything automerge does with this message, validation
                // included, is guarded: natively a panic costs this message
                // and this connection (see `guard`).
                let outcome = guarded(|| {
                    if !self.cfg.validate_peer_input {
                        return match sync::Message::decode(&data) {
                            Ok(m) => self.receive_sync(conn, document_id, request, m, None),
                            Err(e) => self
                                .protocol_error(conn, ProtocolError::BadSyncMessage(e.to_string())),
                        };
                    }
                    match validate::check_sync_message(&data, &self.cfg.peer_limits) {
                        Ok(c) => {
                            self.receive_sync(conn, document_id, request, c.msg, Some(c.chunks))
                        }
                        Err(error) => self.protocol_error(
                            conn,
                            ProtocolError::Refused {
                                doc: document_id.to_string(),
                                error,
                            },
                        ),
                    }
                });
                if let Err(panic) = outcome {
                    self.set_aside(document_id, Some(conn), &panic);
                }
            }
            Message::DocUnavailable { document_id, .. } => {
                if let Some(Doc {
                    phase: Phase::Requesting { unavailable, .. },
                    ..
                }) = self.docs.get_mut(&document_id)
                {
                    unavailable.insert(conn);
                }
                self.check_unavailable(document_id);
            }
            _ => {}
        }
    }

    /// `chunks`: what validation found in `msg`'s changes (`None` when
    /// validation is off).
    pub(super) fn receive_sync(
        &mut self,
        conn: ConnId,
        id: DocumentId,
        request: bool,
        msg: sync::Message,
        chunks: Option<Vec<Vec<ChangeInfo>>>,
    ) {
        let next_batch = self.next_batch;
        if !self.docs.contains_key(&id) {
            return;
        }
        // May `conn` write what this carries, and read the document?
        let Some((msg, chunks)) = self.check_sync(conn, id, request, msg, chunks) else {
            return;
        };
        self.note_server_heads(conn, id, &msg.heads);
        self.note_peer(conn, id);
        let Some(doc) = self.docs.get_mut(&id) else {
            return;
        };
        let state = doc.peers.entry(conn).or_default();
        if msg.have.first().map(|h| &h.last_sync) != Some(&doc.durable_heads) {
            // The peer does not know that it has our heads: it gets them
            // (a state kept across a reconnect believes it told them).
            state.have_responded = false;
        }
        doc.forget_conn(conn);
        if request && doc.is_empty() && msg.changes.is_empty() {
            // We have nothing: say so. The peer stays subscribed and gets the
            // document if it arrives later.
            let state = doc.peers.get_mut(&conn).expect("inserted");
            durable::receive(&doc.working, &doc.durable_heads, state, msg);
            // `doc-unavailable` is our answer: no empty sync message follows.
            state.have_responded = true;
            state.last_sent_heads = Vec::new();
            let reply = Message::DocUnavailable {
                document_id: id,
                sender_id: self.cfg.peer_id.clone(),
                target_id: self.peer_id(conn),
            };
            return self.send(conn, &reply);
        }
        let mut msg = msg;
        let mut checked = None;
        if let Some(chunks) = chunks.filter(|c| !c.is_empty()) {
            // Checked: load only what may be applied now (see `admit`).
            let all = chunks.into_iter().flatten().collect();
            match doc.admit(all, &self.cfg.peer_limits) {
                Ok(ready) => {
                    // What the message is answered as carrying (the bytes
                    // themselves are not read again).
                    msg.changes = ready
                        .iter()
                        .map(|c| c.raw_bytes().to_vec())
                        .collect::<Vec<_>>()
                        .into();
                    checked = Some(ready);
                }
                Err(error) => {
                    let doc = id.to_string();
                    return self.protocol_error(conn, ProtocolError::Refused { doc, error });
                }
            }
        }
        let tag = if msg.changes.is_empty() {
            doc.conn_tag(conn)
        } else {
            // (A panic here is caught by `handle_doc_message`'s guard.)
            let applied = match checked {
                // Parsed once, by the checks.
                Some(changes) => doc.working.apply_changes(changes),
                None => {
                    let bytes: Vec<u8> = msg.changes.iter().flatten().copied().collect();
                    doc.working.load_incremental(&bytes).map(drop)
                }
            };
            if let Err(e) = applied {
                return self.protocol_error(conn, ProtocolError::BadSyncMessage(e.to_string()));
            }
            doc.barrier(next_batch)
        };
        match tag {
            Some(tag) => doc.items.push_back(Pending {
                tag,
                item: Item::Remote { conn, msg },
            }),
            None => {
                // Everything it carries is already durable here.
                doc.feed(conn, msg);
                self.send_sync(id, conn);
                self.update_coverage(id);
            }
        }
    }

    /// Wait for peers until `deadline` (kept if already waiting) for a
    /// document whose finds storage could not answer, and ask them.
    pub(super) fn start_requesting(&mut self, id: DocumentId, deadline: Timestamp) {
        if let Some(doc) = self.docs.get_mut(&id) {
            doc.request(deadline);
            if let Some(t) = doc.find_deadline() {
                self.find_deadlines.insert((t, id));
            }
        }
        self.request_from_peers(id);
    }

    /// Ask every connected peer for a document we are finding.
    pub(super) fn request_from_peers(&mut self, id: DocumentId) {
        let open: Vec<ConnId> = self.open_conns();
        let Some(doc) = self.docs.get_mut(&id) else {
            return;
        };
        if !doc.durable_heads.is_empty() {
            return;
        }
        for conn in &open {
            doc.peers.entry(*conn).or_default();
        }
        for conn in open {
            self.note_peer(conn, id);
            self.send_sync(id, conn);
        }
        self.check_unavailable(id);
    }

    /// Fail pending finds once every connected peer said it lacks the doc.
    pub(super) fn check_unavailable(&mut self, id: DocumentId) {
        let Some(doc) = self.docs.get(&id) else {
            return;
        };
        if doc.finds.is_empty() || !doc.durable_heads.is_empty() {
            return;
        }
        let Phase::Requesting { unavailable, .. } = &doc.phase else {
            return;
        };
        let open = self.open_conns();
        if !open.is_empty() && open.iter().all(|c| unavailable.contains(c)) {
            self.fail_finds(id, self.unavailable());
        }
    }

    /// After the durable state of `id` changed: offer it to every peer that
    /// syncs it (and, when announcing, to every connected peer).
    pub(super) fn sync_doc(&mut self, id: DocumentId) {
        let Some(doc) = self.docs.get(&id) else {
            return;
        };
        if !doc.loaded() {
            return;
        }
        if self.cfg.announce && !doc.durable_heads.is_empty() {
            let fresh: Vec<ConnId> = self
                .open_conns()
                .into_iter()
                .filter(|c| !doc.peers.contains_key(c))
                .collect();
            for conn in fresh {
                let state = self.peer_state(conn, id);
                self.docs
                    .get_mut(&id)
                    .expect("present")
                    .peers
                    .insert(conn, state);
                self.note_peer(conn, id);
            }
        }
        let doc = self.docs.get_mut(&id).expect("present");
        let conns: Vec<ConnId> = doc.peers.keys().copied().collect();
        for conn in conns {
            self.send_sync(id, conn);
        }
        self.update_coverage(id);
    }

    /// Report the servers we dial (outgoing connections) whose coverage of
    /// our working heads changed.
    pub(super) fn update_coverage(&mut self, id: DocumentId) {
        let conns = &self.conns;
        let Some(doc) = self.docs.get_mut(&id) else {
            return;
        };
        let mut changed = Vec::new();
        for (conn, state) in &doc.peers {
            // "On the server" is about servers we dial. A server's clients
            // (incoming) are not asked: `covered_by` walks the history their
            // heads do not cover, per peer, and with many clients behind
            // that took a server node's core task for seconds at a time.
            if conns.get(conn).is_none_or(|c| c.dir != Direction::Outgoing) {
                continue;
            }
            let covered = doc.covered_by(state.their_heads.as_deref());
            if doc.covered.get(conn) != Some(&covered) {
                changed.push((*conn, covered));
            }
        }
        let peers = &doc.peers;
        doc.covered.retain(|c, _| peers.contains_key(c));
        for (conn, covered) in &changed {
            doc.covered.insert(*conn, *covered);
        }
        let heads = doc.working.get_heads();
        for (conn, covered) in changed {
            self.event(Event::SyncStatus {
                doc: id,
                conn,
                covered,
                heads: heads.clone(),
            });
        }
    }

    /// Generate (from durable state) and send one sync message, if any.
    pub(super) fn send_sync(&mut self, id: DocumentId, conn: ConnId) {
        if !self.may_read(conn, id) {
            // Never a byte of a document to a connection that may not read
            // it, whichever path got here (see `access`).
            if let Some(doc) = self.docs.get_mut(&id) {
                doc.peers.remove(&conn);
            }
            return;
        }
        let Some(doc) = self.docs.get_mut(&id) else {
            return;
        };
        let msg = match doc.generate(conn) {
            Ok(Some(msg)) => msg,
            Ok(None) => return,
            Err(panic) => return self.drop_peer_state(id, conn, &panic),
        };
        let request = doc.durable_heads.is_empty();
        let frame = Message::Sync {
            request,
            document_id: id,
            sender_id: self.cfg.peer_id.clone(),
            target_id: self.peer_id(conn),
            data: msg.encode(),
        };
        self.send(conn, &frame);
    }
}
