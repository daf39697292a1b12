//! Isolation of what validation misses: a panic inside automerge while one
//! document's message is processed costs that message, not the process.
//!
//! Natively (the server) a panic unwinds to `guarded`, which turns it into
//! an error (`super::unwind::guarded`); the document is then set aside for that message
//! ([`Repo::set_aside`]): its working state returns to what is durable (plus
//! the commit in flight), work not yet issued is dropped or failed, its
//! peers' sync states are reset so that they resend, and the peer that sent
//! the message is told and disconnected. Every other document and
//! connection goes on. In WebAssembly a panic aborts the module and never
//! reaches `guarded`: there, `crate::validate` is the defence.
//!
//! What is durable is never at risk: it is on disk. In memory the document
//! is rebuilt from its changes up to what was issued to storage
//! ([`super::doc::Doc::rewind`]); should automerge fail at that too, the
//! error is logged and the document goes on as it is.

use super::doc::Item;
use super::types::*;
use super::Repo;
use crate::id::DocumentId;
use crate::storage::StorageError;

impl Repo {
    /// After a panic while `conn`'s message for `id` was processed, or while
    /// `id`'s working document was saved (`conn` unknown: every peer whose
    /// changes were not yet issued is disconnected). See the module docs.
    pub(super) fn set_aside(&mut self, id: DocumentId, conn: Option<ConnId>, panic: &str) {
        tracing::error!(doc = %id, ?conn, %panic, "processing a peer's message panicked; the document was set aside for it");
        let Some(doc) = self.docs.get_mut(&id) else {
            return;
        };
        // What is durable or in flight: with nothing of this document in
        // flight, what was issued is durable.
        let keep_heads = doc.issued_heads.clone();
        if let Err(e) = doc.rewind(&keep_heads) {
            tracing::error!(doc = %id, error = %e, "the document could not be returned to what is durable or in flight");
        }
        doc.orphans.clear();
        let keep = doc.in_flight;
        let mut failed = Vec::new();
        let mut culprits: Vec<ConnId> = conn.into_iter().collect();
        doc.items.retain(|p| {
            let issued = Some(p.tag) == keep;
            match (&p.item, issued) {
                (Item::Local(change), false) => failed.push(*change),
                (Item::Remote { conn: c, .. }, false) if conn.is_none() => culprits.push(*c),
                _ => {}
            }
            issued
        });
        culprits.sort();
        culprits.dedup();
        doc.issued_heads = doc.working.get_heads();
        doc.reset_sync_states();
        let error = StorageError::Aborted(
            "the document returned to its durable state after an internal error \
             processing a peer's message"
                .into(),
        );
        for change in failed {
            self.event(Event::ChangeFailed {
                change,
                doc: id,
                error: error.clone(),
            });
        }
        for c in culprits {
            if self.conns.contains_key(&c) {
                let doc = id.to_string();
                self.protocol_error(c, ProtocolError::Internal { doc });
            }
        }
        self.sync_doc(id);
    }

    /// After a panic while generating a sync message for `conn` from `id`
    /// (read-only on the document): forget that peer's sync state.
    pub(super) fn drop_peer_state(&mut self, id: DocumentId, conn: ConnId, panic: &str) {
        tracing::error!(doc = %id, ?conn, %panic, "generating a sync message panicked; closing that connection");
        if let Some(doc) = self.docs.get_mut(&id) {
            doc.peers.remove(&conn);
            doc.covered.remove(&conn);
        }
        self.protocol_error(
            conn,
            ProtocolError::Internal {
                doc: id.to_string(),
            },
        );
    }
}
