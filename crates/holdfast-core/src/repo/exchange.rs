//! The collection exchange between holdfast peers (`docs/design.md` §5b):
//! on (re)connect a client tells the server which documents it holds and
//! how far it has taken the server's change sequence; the server lists the
//! held documents that changed since; only those, and the client's own
//! documents the server has not acknowledged, exchange sync messages.
//!
//! Invariants:
//! - A client's cursor for a server moves to a listed `upto` only once every
//!   document listed up to it is durable here at (at least) the listed
//!   heads: a crash before that replays the same list.
//! - A server lists only durable entries, and after answering a resume it
//!   tells the client, in commit order, about every later commit that
//!   touches a document the client holds or syncs, so the `upto` it sends
//!   never passes a change the client was not told about.

use automerge::sync::{self, BloomFilter, Have};
use automerge::ChangeHash;

use super::durable::DurableDoc;

use super::collection::Link;
use super::doc::{Doc, Phase};
use super::types::*;
use super::Repo;
use crate::collection::{self, HeldFilter};
use crate::id::DocumentId;
use crate::storage::StorageKey;
use crate::vecmap::VecMap;
use crate::wire::{Message, PeerMetadata};

/// Largest number of documents listed in one `holdfast-changed`.
const MAX_LISTED: usize = 2048;

impl Repo {
    /// Take part in the collection exchange, from the records under
    /// [`collection::prefix`] (read from storage before any other input).
    /// A store without a storage id adopts `cfg.metadata.storage_id` (or
    /// `cfg.peer_id`) as its own and writes it with the first commit.
    // Not inlined: into `Repo.open`'s future it would copy the index's map
    // code (12 KB of wasm).
    #[inline(never)]
    pub fn restore_collection(&mut self, records: Vec<(StorageKey, Vec<u8>)>) {
        let candidate = self
            .cfg
            .metadata
            .storage_id
            .clone()
            .unwrap_or_else(|| self.cfg.peer_id.clone());
        self.collection.restore(records, &candidate);
        self.cfg.metadata.storage_id = self.collection.storage_id.clone();
        self.cfg.metadata.holdfast = Some(collection::VERSION);
    }

    /// The store held no record at all when it was opened (call after
    /// [`Repo::restore_collection`]): from now on the index knows every
    /// document the store holds, and a document it does not list is not
    /// read from storage (a `request` for a new id costs no read). Only for
    /// a store with one writer: several repos on one store (tabs, server
    /// nodes) would each miss what the others stored.
    pub fn store_started_empty(&mut self) {
        self.collection.started_empty();
    }

    /// Write what the collection holds only in memory (cursors that moved)
    /// with the next commit, now: before closing.
    pub fn persist_collection(&mut self) {
        if self.collection.on {
            self.collection.force();
        }
    }

    /// The heads server `storage_id` last advertised for `id`, as recorded
    /// in the index (for diagnostics and tests).
    pub fn synced_heads(&self, id: &DocumentId, storage_id: &str) -> Option<Vec<ChangeHash>> {
        self.collection
            .entries
            .get(id)?
            .synced
            .get(storage_id)
            .cloned()
    }

    /// The durable heads the collection index lists for `id` (what a
    /// reconnect compares with each server's acknowledged heads).
    pub fn indexed_heads(&self, id: &DocumentId) -> Option<Vec<ChangeHash>> {
        Some(self.collection.entries.get(id)?.heads.clone())
    }

    /// The cursor kept for server `storage_id`.
    pub fn cursor(&self, storage_id: &str) -> Option<u64> {
        self.collection.cursors.get(storage_id).copied()
    }

    /// A handshake completed with a peer. Returns whether the collection
    /// exchange took the connection over (the caller then does not offer it
    /// every document).
    pub(super) fn collection_opened(&mut self, conn: ConnId, meta: &PeerMetadata) -> bool {
        if !self.collection.on || meta.holdfast.is_none_or(|v| v < 1) {
            return false;
        }
        let outgoing = self.conn_direction(conn) == Some(Direction::Outgoing);
        let Some(sid) = meta.storage_id.clone().filter(|_| outgoing) else {
            if !outgoing {
                self.collection
                    .links
                    .insert(conn, Link::Client { held: None });
            }
            return false;
        };
        let ids: Vec<DocumentId> = self.collection.held().map(|(id, _)| *id).collect();
        let held = HeldFilter::new(ids.iter());
        let dirty: Vec<DocumentId> = self
            .collection
            .held()
            .filter(|(_, e)| e.synced.get(&sid) != Some(&e.heads))
            .map(|(id, _)| *id)
            .collect();
        let since = self.collection.cursors.get(&sid).copied();
        self.collection.links.insert(
            conn,
            Link::Server {
                storage_id: sid,
                waiting: Default::default(),
            },
        );
        let resume = Message::Resume {
            sender_id: self.cfg.peer_id.clone(),
            target_id: self.peer_id(conn),
            since,
            held: held.encode(),
        };
        self.send(conn, &resume);
        for id in dirty {
            self.sync_listed(id, conn, None);
        }
        // Open documents that are not dirty: the server has exactly our
        // durable heads. A state that knows it sends nothing, and reports
        // them covered.
        let quiet: Vec<DocumentId> = self
            .docs
            .values()
            .filter(|d| d.loaded() && !d.durable_heads.is_empty() && !d.peers.contains_key(&conn))
            .map(|d| d.id)
            .collect();
        for id in quiet {
            let finding = self.docs.get(&id).is_some_and(|d| !d.finds.is_empty());
            if finding {
                continue;
            }
            let state = self.peer_state(conn, id);
            if let Some(doc) = self.docs.get_mut(&id) {
                doc.peers.insert(conn, state);
                self.note_peer(conn, id);
            }
            self.update_coverage(id);
        }
        true
    }

    /// A fresh sync state for `conn` and document `id`. Toward a server the
    /// index knows, it starts from the heads that server last advertised,
    /// so that the first message already carries what the server lacks.
    pub(super) fn peer_state(&self, conn: ConnId, id: DocumentId) -> sync::State {
        let (
            Some(Link::Server {
                storage_id,
                waiting,
            }),
            Some(doc),
        ) = (self.collection.links.get(&conn), self.docs.get(&id))
        else {
            return sync::State::new();
        };
        let synced = self
            .collection
            .entries
            .get(&id)
            .and_then(|e| e.synced.get(storage_id));
        let listed = waiting.iter().rev().find_map(|(_, p)| p.get(&id));
        seeded(doc.durable(), synced, listed)
    }

    /// Sync `id` with `conn`: load it first if it is only in storage.
    /// `listed`: the heads the server just listed for it.
    fn sync_listed(&mut self, id: DocumentId, conn: ConnId, listed: Option<&[ChangeHash]>) {
        match self.docs.get(&id) {
            Some(d) if d.loaded() => {
                let state = match d.peers.contains_key(&conn) {
                    true => None,
                    false => Some(self.peer_state(conn, id)),
                };
                if state.is_some() {
                    self.note_peer(conn, id);
                }
                let doc = self.docs.get_mut(&id).expect("present");
                if let Some(state) = state {
                    doc.peers.insert(conn, state);
                }
                if let (Some(heads), Some(state)) = (listed, doc.peers.get_mut(&conn)) {
                    // What the state believes the server has is out of date.
                    state.their_heads = Some(heads.to_vec());
                }
                self.send_sync(id, conn);
            }
            // `load_done` offers it to every connection.
            Some(_) => {}
            None => {
                let task = self.task();
                self.docs
                    .insert(id, Doc::new(id, &self.actor, Phase::loading()));
                self.loads.insert(task, id);
                self.effects.push_back(Effect::Load {
                    task,
                    prefix: StorageKey::doc_prefix(&id),
                });
            }
        }
    }

    /// `holdfast-resume` from a client.
    pub(super) fn handle_resume(&mut self, conn: ConnId, since: Option<u64>, held: Vec<u8>) {
        // Once per connection: each answer may walk the whole index.
        if !matches!(
            self.collection.links.get(&conn),
            Some(Link::Client { held: None })
        ) {
            return self.protocol_error(conn, ProtocolError::Unexpected("holdfast-resume"));
        }
        let filter = match HeldFilter::decode(&held, &self.cfg.peer_limits) {
            Ok(f) => f,
            Err(e) => {
                return self.protocol_error(
                    conn,
                    ProtocolError::Malformed(format!("holdfast-resume: {e}")),
                )
            }
        };
        let c = &self.collection;
        // A `since` beyond our counter comes from another life of this store
        // (restored from a backup): list everything held.
        let ids: Vec<DocumentId> = match since.filter(|s| *s <= c.durable_seq) {
            Some(s) => c.by_seq.range(s + 1..).map(|(_, id)| *id).collect(),
            None => c.entries.keys().copied().collect(),
        };
        let listed: Vec<(collection::Digest, Vec<ChangeHash>)> = ids
            .into_iter()
            .filter_map(|id| {
                let heads = &c.entries.get(&id)?.heads;
                let hashed = collection::Hashed::new(&id);
                let held = !heads.is_empty() && filter.contains_hashed(&hashed);
                let held = held && self.may_read(conn, id); // see `access`
                held.then(|| (hashed.digest(), heads.clone()))
            })
            .collect();
        let upto = c.durable_seq;
        let before = since.unwrap_or(0).min(upto);
        let chunks: Vec<&[(collection::Digest, Vec<ChangeHash>)]> =
            listed.chunks(MAX_LISTED).collect();
        let last = chunks.len().saturating_sub(1);
        for (i, chunk) in chunks.iter().enumerate() {
            // Only the last part may move the cursor.
            self.send_changed(conn, if i == last { upto } else { before }, chunk);
        }
        if chunks.is_empty() {
            self.send_changed(conn, upto, &[]);
        }
        self.collection
            .links
            .insert(conn, Link::Client { held: Some(filter) });
    }

    pub(super) fn send_changed(
        &mut self,
        conn: ConnId,
        upto: u64,
        docs: &[(collection::Digest, Vec<ChangeHash>)],
    ) {
        let msg = Message::Changed {
            sender_id: self.cfg.peer_id.clone(),
            target_id: self.peer_id(conn),
            upto,
            docs: collection::encode_changed(docs),
        };
        self.send(conn, &msg);
    }

    /// `holdfast-changed` from our server.
    pub(super) fn handle_changed(&mut self, conn: ConnId, upto: u64, docs: Vec<u8>) {
        if !matches!(self.collection.links.get(&conn), Some(Link::Server { .. })) {
            return self.protocol_error(conn, ProtocolError::Unexpected("holdfast-changed"));
        }
        let listed = match collection::decode_changed(&docs) {
            Ok(l) => l,
            Err(e) => {
                return self.protocol_error(
                    conn,
                    ProtocolError::Malformed(format!("holdfast-changed: {e}")),
                )
            }
        };
        let mut pending = VecMap::new();
        for (digest, heads) in listed {
            // Not held here (a false positive of the filter): not ours to fetch.
            let Some(&id) = self.collection.by_digest.get(&digest) else {
                continue;
            };
            let Some(entry) = self
                .collection
                .entries
                .get(&id)
                .filter(|e| !e.heads.is_empty())
            else {
                continue;
            };
            if entry.heads == heads {
                continue;
            }
            self.sync_listed(id, conn, Some(&heads));
            pending.insert(id, heads);
        }
        if let Some(Link::Server { waiting, .. }) = self.collection.links.get_mut(&conn) {
            waiting.push((upto, pending));
        }
        let ids: Vec<DocumentId> = self.waiting_on(conn);
        for id in ids {
            self.collection_settled(id);
        }
        self.advance_cursor(conn);
    }

    fn waiting_on(&self, conn: ConnId) -> Vec<DocumentId> {
        match self.collection.links.get(&conn) {
            Some(Link::Server { waiting, .. }) => waiting
                .iter()
                .flat_map(|(_, p)| p.keys().copied())
                .collect(),
            _ => Vec::new(),
        }
    }

    /// `id`'s durable state changed (loaded, committed, or gone): release
    /// what the servers' lists waited on, and move their cursors.
    pub(super) fn collection_settled(&mut self, id: DocumentId) {
        if !self.collection.on {
            return;
        }
        let doc = self.docs.get(&id).filter(|d| d.loaded());
        if let Some(d) = doc {
            if d.durable_heads.is_empty()
                && d.deleting().is_none()
                && d.in_flight.is_none()
                && !d.dirty()
            {
                // Listed, but not in storage after all (deleted underneath).
                self.collection.forget(&id);
            } else {
                self.collection.adopt(id, d.durable_heads.clone());
            }
        }
        let held = self
            .collection
            .entries
            .get(&id)
            .is_some_and(|e| !e.heads.is_empty());
        let durable = self
            .docs
            .get(&id)
            .filter(|d| d.loaded())
            .map(|d| d.durable());
        let conns: Vec<ConnId> = self.collection.links.keys().copied().collect();
        for link in self.collection.links.values_mut() {
            if let Link::Server { waiting, .. } = link {
                for (_, pending) in waiting.iter_mut() {
                    let done = match (pending.get(&id), durable) {
                        (None, _) => false,
                        _ if !held => true,
                        (Some(heads), Some(d)) => d.has_all(heads),
                        (Some(_), None) => false,
                    };
                    if done {
                        pending.remove(&id);
                    }
                }
            }
        }
        for conn in conns {
            self.advance_cursor(conn);
        }
    }

    fn advance_cursor(&mut self, conn: ConnId) {
        let now = self.now;
        let Some(Link::Server {
            storage_id,
            waiting,
        }) = self.collection.links.get_mut(&conn)
        else {
            return;
        };
        let done = waiting.iter().take_while(|(_, p)| p.is_empty()).count();
        let upto = waiting.drain(..done).next_back().map(|(u, _)| u);
        if let Some(upto) = upto {
            let sid = storage_id.clone();
            self.collection.advance_cursor(&sid, upto, now);
        }
    }

    /// A client recorded the heads its server advertised in a sync message.
    pub(super) fn note_server_heads(&mut self, conn: ConnId, id: DocumentId, heads: &[ChangeHash]) {
        if let Some(Link::Server { storage_id, .. }) = self.collection.links.get(&conn) {
            let sid = storage_id.clone();
            self.collection.note_synced(id, &sid, heads, self.now);
        }
    }
}

/// A sync state that starts from `synced`, heads the peer is known to have
/// (durable there): automerge then sends, in its first message, every change
/// of ours after them, and nothing at all when they are our heads. `listed`:
/// the peer's current heads, if it just told us (it asks for what it lacks).
fn seeded(
    durable: DurableDoc<'_>,
    synced: Option<&Vec<ChangeHash>>,
    listed: Option<&Vec<ChangeHash>>,
) -> sync::State {
    let mut s = sync::State::new();
    let Some(theirs) = synced.filter(|h| !h.is_empty()) else {
        return s;
    };
    let pending = durable.pending();
    let known: Vec<ChangeHash> = theirs
        .iter()
        .filter(|h| !pending.contains(h) && durable.working().get_change_meta_by_hash(h).is_some())
        .copied()
        .collect();
    if known.is_empty() {
        return s;
    }
    s.shared_heads.clone_from(&known);
    let theirs = listed.unwrap_or(theirs);
    s.their_heads = Some(theirs.clone());
    s.their_have = Some(vec![Have {
        last_sync: known,
        bloom: BloomFilter::default(),
    }]);
    s.their_need = Some(Vec::new());
    let ours = durable.get_heads();
    if *theirs == ours {
        s.have_responded = true;
        s.last_sent_heads = ours;
    }
    s
}
