//! Per-connection access control: what each connection may read, write and
//! create, set by the adapter that authenticated it (the core knows no
//! tokens: the server verifies a JWT and hands over an [`Access`] with
//! [`Repo::set_access`]). Without a call, a connection gets
//! `RepoConfig::default_access` (everything, unless the adapter says
//! otherwise: a server with authentication starts every connection at
//! [`Access::none`], so a connection it forgot to authorize gets nothing).
//!
//! Invariants:
//! - A connection that may not read a document never receives a byte of
//!   it: no sync message (`send_sync` refuses and drops its sync state), no
//!   ephemeral message, no entry in a `holdfast-changed` list, no parked
//!   sync state restored on reconnect.
//! - Its `sync` / `request` for such a document is answered as for a
//!   document that does not exist, from an empty document
//!   (`answer_as_missing`), whether or not it exists, and without
//!   loading it: the answer cannot tell the two apart.
//! - A sync message carrying a change the connection may not write is
//!   refused whole with an `error` (the connection stays open, so its other
//!   documents keep syncing): nothing of it is applied, stored or
//!   acknowledged. Changes the document already holds are not a write.
//! - Ownership: the first connection to write a document nobody holds or
//!   claimed (allowed by `create`, or by a write grant naming the id) claims
//!   it: its subject becomes the owner, kept in the document's index entry
//!   (`collection::IndexEntry::owner`), written in the same commit as the
//!   document's first records. The owner may read and write it with any
//!   token of the same subject.
//! - A connection whose access expires is told (`error`) and closed at the
//!   expiry time, by the repo's timer.

use automerge::sync;

use super::doc::{Doc, Phase};
use super::types::*;
use super::unwind::guarded;
use super::Repo;
use crate::id::DocumentId;
use crate::validate::{self, ChangeInfo};
use crate::wire::Message;

/// Why nothing of a message was stored.
fn write_refused(id: DocumentId) -> ProtocolError {
    ProtocolError::WriteRefused {
        doc: id.to_string(),
    }
}

impl Repo {
    /// Set what connection `conn` may do (call it right after
    /// [`Repo::connected`], before any frame; a later call narrows or widens
    /// it, dropping its sync state of documents it may no longer read).
    /// Unknown connections are ignored.
    pub fn set_access(&mut self, now: Timestamp, conn: ConnId, access: Access) {
        self.now = now;
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if let Some(t) = access.expires {
            // (An entry for an earlier access of this id is skipped when it
            // comes due: `expire_access` checks the current one.)
            self.expiries.insert((t, conn));
        }
        c.access = Some(access);
        if c.peer.is_none() {
            // Not joined: no sync state to drop (the usual case: right
            // after `connected`).
            return;
        }
        let unreadable: Vec<DocumentId> = self
            .docs
            .values()
            .filter(|d| d.peers.contains_key(&conn))
            .map(|d| d.id)
            .filter(|id| !self.may_read(conn, *id))
            .collect();
        for id in unreadable {
            if let Some(d) = self.docs.get_mut(&id) {
                d.peers.remove(&conn);
                d.covered.remove(&conn);
            }
        }
    }

    /// What connection `conn` may do (`None`: not connected).
    pub fn access(&self, conn: ConnId) -> Option<&Access> {
        self.conns
            .get(&conn)
            .map(|c| c.access.as_ref().unwrap_or(&self.cfg.default_access))
    }

    /// The subject that owns document `id`, if one claimed it.
    pub fn owner(&self, id: &DocumentId) -> Option<&str> {
        self.collection.owner(id)
    }

    /// Whether `conn` may receive document `id`.
    pub(super) fn may_read(&self, conn: ConnId, id: DocumentId) -> bool {
        let Some(a) = self.access(conn) else {
            return false;
        };
        a.read.contains(&id) || a.write.contains(&id) || self.owns(a, &id)
    }

    fn owns(&self, a: &Access, id: &DocumentId) -> bool {
        a.subject
            .as_deref()
            .is_some_and(|s| self.collection.owner(id) == Some(s))
    }

    /// Whether someone holds or claimed `id`: `None` when that is not known
    /// without loading it (not in memory, and no index).
    fn claimed(&self, id: &DocumentId) -> Option<bool> {
        if self.collection.owner(id).is_some() {
            return Some(true);
        }
        if let Some(d) = self.docs.get(id).filter(|d| d.loaded()) {
            return Some(!d.working.get_heads().is_empty() || d.in_flight.is_some());
        }
        if self.collection.on {
            return Some(
                self.collection
                    .entries
                    .get(id)
                    .is_some_and(|e| !e.heads.is_empty()),
            );
        }
        None
    }

    /// Whether `conn` may add changes to `id` (loaded). `create`: whether it
    /// would be creating it (nobody holds or claimed it).
    fn may_write(&self, conn: ConnId, id: DocumentId) -> (bool, bool) {
        let Some(a) = self.access(conn) else {
            return (false, false);
        };
        let creating = self.claimed(&id) == Some(false);
        let allowed = a.write.names(&id)
            || self.owns(a, &id)
            || (matches!(a.write, Grant::All) && !creating)
            || (a.create && creating);
        (allowed, creating)
    }

    /// The first writer of a document nobody held: its subject owns it, and
    /// this connection may read and write it from now on.
    fn claim(&mut self, conn: ConnId, id: DocumentId) {
        let default = &self.cfg.default_access;
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let a = c.access.get_or_insert_with(|| default.clone());
        a.read.add(id);
        a.write.add(id);
        if let Some(subject) = a.subject.clone() {
            tracing::info!(doc = %id, %subject, "document created; owned by its creator");
            self.collection.set_owner(id, subject);
        }
    }

    /// Dispatch's gate for a joined connection's message: `None` when it
    /// was answered or dropped here. A `sync`/`request` for a document `conn`
    /// may not read is answered as if the document did not exist, without
    /// loading it (unless `conn` may create documents and this one may not
    /// exist: then `receive_sync` decides, once it is loaded).
    pub(super) fn gate(&mut self, conn: ConnId, msg: Message) -> Option<Message> {
        let a = self.access(conn)?;
        let (unrestricted, create) = (a.unrestricted(), a.create);
        let expired = a.expires.is_some_and(|t| t <= self.now);
        if unrestricted {
            return Some(msg);
        }
        if expired {
            self.protocol_error(conn, ProtocolError::AccessExpired);
            return None;
        }
        match msg {
            Message::Sync {
                request,
                document_id: id,
                ref data,
                ..
            } => {
                if self.may_read(conn, id) || (create && self.claimed(&id) != Some(true)) {
                    return Some(msg);
                }
                let msg = self.decode_sync(conn, id, data)?;
                if msg.changes.is_empty() {
                    self.answer_as_missing(conn, id, request, msg);
                } else {
                    self.deny(conn, write_refused(id));
                }
                None
            }
            Message::DocUnavailable {
                document_id: id, ..
            }
            | Message::Ephemeral {
                document_id: id, ..
            } if !self.may_read(conn, id) => None,
            _ => Some(msg),
        }
    }

    /// `data` decoded (and checked, as `handle_doc_message` does); `None`
    /// when it was refused (and the connection closed).
    fn decode_sync(&mut self, conn: ConnId, id: DocumentId, data: &[u8]) -> Option<sync::Message> {
        let decoded = if self.cfg.validate_peer_input {
            let limits = &self.cfg.peer_limits;
            guarded(|| validate::check_sync_message(data, limits))
                .map(|r| {
                    r.map(|c| c.msg).map_err(|error| ProtocolError::Refused {
                        doc: id.to_string(),
                        error,
                    })
                })
                .unwrap_or_else(|_| {
                    Err(ProtocolError::Internal {
                        doc: id.to_string(),
                    })
                })
        } else {
            sync::Message::decode(data).map_err(|e| ProtocolError::BadSyncMessage(e.to_string()))
        };
        match decoded {
            Ok(m) => Some(m),
            Err(e) => {
                self.protocol_error(conn, e);
                None
            }
        }
    }

    /// `receive_sync`'s check, for a loaded document: the message to go on
    /// with, or `None` when it was refused or answered here.
    pub(super) fn check_sync(
        &mut self,
        conn: ConnId,
        id: DocumentId,
        request: bool,
        mut msg: sync::Message,
        mut chunks: Option<Vec<Vec<ChangeInfo>>>,
    ) -> Option<(sync::Message, Option<Vec<Vec<ChangeInfo>>>)> {
        if self.access(conn)?.unrestricted() {
            return Some((msg, chunks));
        }
        if !msg.changes.is_empty() {
            let (allowed, creating) = self.may_write(conn, id);
            if !allowed {
                // Changes the document already has write nothing: a reader
                // that echoes them still reads.
                let doc = self.docs.get(&id)?;
                let known = chunks.as_ref().is_some_and(|c| {
                    c.iter()
                        .flatten()
                        .all(|ch| doc.working.get_change_meta_by_hash(&ch.hash).is_some())
                });
                if !(known && self.may_read(conn, id)) {
                    self.deny(conn, write_refused(id));
                    return None;
                }
                msg.changes = sync::ChunkList::empty();
                chunks = None;
            } else if creating {
                self.claim(conn, id);
            }
        }
        if !self.may_read(conn, id) {
            self.answer_as_missing(conn, id, request, msg);
            return None;
        }
        Some((msg, chunks))
    }

    /// Answer a sync message about a document `conn` may not read exactly as
    /// `receive_sync` answers one about a document we do not have: a
    /// `request` gets `doc-unavailable`, a `sync` the reply of an empty
    /// document with a fresh sync state. Nothing is kept.
    fn answer_as_missing(
        &mut self,
        conn: ConnId,
        id: DocumentId,
        request: bool,
        msg: sync::Message,
    ) {
        if request {
            let reply = Message::DocUnavailable {
                document_id: id,
                sender_id: self.cfg.peer_id.clone(),
                target_id: self.peer_id(conn),
            };
            return self.send(conn, &reply);
        }
        let mut ghost = Doc::new(id, &self.actor, Phase::Ready);
        ghost.peers.insert(conn, sync::State::new());
        let reply = guarded(move || {
            ghost.feed(conn, msg);
            ghost.generate(conn)
        });
        if let Ok(Ok(Some(m))) = reply {
            let frame = Message::Sync {
                request: true,
                document_id: id,
                sender_id: self.cfg.peer_id.clone(),
                target_id: self.peer_id(conn),
                data: m.encode(),
            };
            self.send(conn, &frame);
        }
    }

    /// Refuse one message with an `error`; the connection stays open.
    fn deny(&mut self, conn: ConnId, error: ProtocolError) {
        tracing::info!(?conn, %error, "refused a message");
        let message = error.to_string();
        self.event(Event::AccessDenied { conn, error });
        self.send(conn, &Message::Error { message });
    }

    /// The earliest time a connection's access expires.
    pub(super) fn next_expiry(&self) -> Option<Timestamp> {
        self.expiries.first().map(|(t, _)| *t)
    }

    /// Tell and close every connection whose access expired by `now`.
    pub(super) fn expire_access(&mut self, now: Timestamp) {
        while let Some(&(t, conn)) = self.expiries.first().filter(|(t, _)| *t <= now) {
            self.expiries.remove(&(t, conn));
            // Only if it is still this connection's expiry (it may have
            // closed, its id been reused, or its access replaced).
            if self.access(conn).is_some_and(|a| a.expires == Some(t)) {
                self.protocol_error(conn, ProtocolError::AccessExpired);
            }
        }
    }
}
