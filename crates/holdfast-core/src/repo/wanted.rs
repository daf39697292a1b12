//! Peers waiting for a document nobody stores here. A `request` from a
//! peer that has nothing of a document that is neither in memory nor in
//! storage (the collection index is complete) is answered
//! `doc-unavailable` and its asker remembered here: no document is built
//! for it (an empty `Doc` is two Automerge documents, its validation and
//! later its eviction; a flood of requests for random ids was most of the
//! server's work under W9's spam, and each asker's disconnect then visited
//! every one of them).
//!
//! Invariants:
//! - An id is listed in `by_doc` only while no document with that id is
//!   loaded. When one is (created, imported, loaded for a find or for a
//!   peer's message), [`Repo::adopt_askers`] gives each asker still
//!   connected a sync state saying it has nothing and was answered, so the
//!   document is sent to it once durable here, as it would have been had
//!   the document been built at the request.
//! - `(id, conn)` is in `by_doc` only if `id` is in `conns[conn].asked`; a
//!   disconnect removes the connection's entries (`asked` may list ids
//!   adopted since: a superset).

use std::collections::HashMap;

use automerge::sync::{self, BloomFilter, Have};

use super::types::*;
use super::unwind::guarded;
use super::Repo;
use crate::id::DocumentId;
use crate::validate;
use crate::wire;

#[derive(Default)]
pub(super) struct Wanted {
    by_doc: HashMap<DocumentId, Vec<ConnId>>,
}

impl Repo {
    /// `msg`, about `id` (not in memory), from `conn`: if it is a
    /// `request` carrying nothing (no heads, no changes) and storage has
    /// nothing of `id` either, answer it here without building a document.
    /// Otherwise `false`: the caller loads the document as for any message.
    pub(super) fn ask_for_unstored(
        &mut self,
        conn: ConnId,
        id: DocumentId,
        msg: &wire::Message,
    ) -> bool {
        if !self.collection.not_stored(&id) || !self.plain_request(msg) {
            return false;
        }
        // Counted against `new_docs_per_sec` like a document brought into
        // memory (once per asker and id; each time when it may not read).
        if !self.may_read(conn, id) {
            self.note_doc_brought_up(conn);
        } else if !self.syncs(conn, id) {
            self.wanted.by_doc.entry(id).or_default().push(conn);
            if let Some(c) = self.conns.get_mut(&conn) {
                c.asked.push(id);
            }
            self.note_doc_brought_up(conn);
        }
        // Exactly what a document we lack answers (see `receive_sync`).
        let reply = wire::Message::DocUnavailable {
            document_id: id,
            sender_id: self.cfg.peer_id.clone(),
            target_id: self.peer_id(conn),
        };
        self.send(conn, &reply);
        true
    }

    /// A `request` with nothing in it: the asker has no heads and sends no
    /// changes (what a peer lacking the document sends first). One that
    /// does not decode or validate is not: the usual path refuses it.
    fn plain_request(&self, msg: &wire::Message) -> bool {
        let wire::Message::Sync {
            request: true,
            data,
            ..
        } = msg
        else {
            return false;
        };
        let decoded = guarded(|| match self.cfg.validate_peer_input {
            true => validate::check_sync_message(data, &self.cfg.peer_limits)
                .ok()
                .map(|c| c.msg),
            false => sync::Message::decode(data).ok(),
        });
        matches!(decoded, Ok(Some(m)) if m.heads.is_empty() && m.changes.is_empty())
    }

    /// `id` is loaded now: its askers become its peers.
    pub(super) fn adopt_askers(&mut self, id: DocumentId) {
        let Some(askers) = self.wanted.by_doc.remove(&id) else {
            return;
        };
        for conn in askers {
            if !self.conns.contains_key(&conn) || !self.may_read(conn, id) {
                continue;
            }
            if let Some(doc) = self.docs.get_mut(&id) {
                doc.peers.entry(conn).or_insert_with(answered_unavailable);
                self.note_peer(conn, id);
            }
        }
    }

    /// `conn` closed: forget what it asked for.
    pub(super) fn forget_asker(&mut self, conn: ConnId, asked: &[DocumentId]) {
        for id in asked {
            if let Some(askers) = self.wanted.by_doc.get_mut(id) {
                askers.retain(|c| *c != conn);
                if askers.is_empty() {
                    self.wanted.by_doc.remove(id);
                }
            }
        }
    }

    /// Whether `conn` syncs `id` with us, or asked for it and waits.
    pub(super) fn syncs(&self, conn: ConnId, id: DocumentId) -> bool {
        match self.docs.get(&id) {
            Some(d) => d.peers.contains_key(&conn),
            None => self
                .wanted
                .by_doc
                .get(&id)
                .is_some_and(|a| a.contains(&conn)),
        }
    }

    /// Peers waiting for documents nobody stores here, counted per
    /// document (for tests and diagnostics).
    pub fn askers_waiting(&self) -> usize {
        self.wanted.by_doc.values().map(Vec::len).sum()
    }
}

/// The sync state of a peer that asked for a document while we had
/// nothing and was answered `doc-unavailable`: it has nothing, needs
/// nothing, and was told our (empty) heads. Our first message once we
/// have the document carries all of it.
fn answered_unavailable() -> sync::State {
    let mut s = sync::State::new();
    s.their_heads = Some(Vec::new());
    s.their_have = Some(vec![Have {
        last_sync: Vec::new(),
        bloom: BloomFilter::default(),
    }]);
    s.their_need = Some(Vec::new());
    s.have_responded = true;
    s
}
