//! Telling peers what a completed commit changed: a server lists, to each
//! resumed client, the held documents that advanced and that it does not
//! sync already (`holdfast-changed`); a client makes sure its server learns
//! of documents it holds for the first time (see docs/design.md §5b).

use super::collection::{Batch, Link};
use super::types::*;
use super::Repo;
use crate::collection;
use crate::id::DocumentId;

impl Repo {
    /// Server side, after a commit completed: tell each client that resumed
    /// which of the documents it holds advanced (those it is not syncing
    /// already), and the sequence number it has now been told about.
    pub(super) fn notify_committed(&mut self, batch: &Batch) {
        if batch.advanced_ids().next().is_none()
            || !self
                .collection
                .links
                .iter()
                .any(|(_, l)| matches!(l, Link::Client { held: Some(_) }))
        {
            return;
        }
        // Each id hashed once, not once per client.
        let ids: Vec<(DocumentId, collection::Hashed)> = batch
            .advanced_ids()
            .map(|id| (id, collection::Hashed::new(&id)))
            .collect();
        let upto = self.collection.durable_seq;
        let mut sends = Vec::new();
        for (conn, link) in self.collection.links.iter() {
            let Link::Client { held: Some(held) } = link else {
                continue;
            };
            let mut relevant = false;
            let mut listed = Vec::new();
            for (id, hashed) in &ids {
                let syncing = self
                    .docs
                    .get(id)
                    .is_some_and(|d| d.peers.contains_key(conn));
                relevant |= syncing;
                if !syncing && held.contains_hashed(hashed) && self.may_read(*conn, *id) {
                    relevant = true;
                    let heads = self
                        .collection
                        .entries
                        .get(id)
                        .map(|e| e.heads.clone())
                        .unwrap_or_default();
                    listed.push((hashed.digest(), heads));
                }
            }
            if relevant {
                sends.push((*conn, listed));
            }
        }
        for (conn, listed) in sends {
            self.send_changed(conn, upto, &listed);
        }
    }

    /// A client's commit made `ids` durable here for the first time. A
    /// server it resumed with holds our filter from before, which does not
    /// name them, and tells us of their later changes only while we sync
    /// them with it: a state that would send nothing (none yet, or one
    /// that knows the server has our heads, as after a reconnect) is
    /// replaced by a fresh one, whose first message makes the server
    /// subscribe us.
    pub(super) fn announce_newly_held(&mut self, ids: Vec<DocumentId>) {
        if ids.is_empty() {
            return;
        }
        let servers: Vec<ConnId> = self
            .collection
            .links
            .iter()
            .filter(|(_, l)| matches!(l, Link::Server { .. }))
            .map(|(c, _)| *c)
            .collect();
        for conn in servers {
            for id in &ids {
                let Some(doc) = self.docs.get_mut(id).filter(|d| d.loaded()) else {
                    continue;
                };
                let heads = doc.durable_heads.clone();
                let silent = doc
                    .peers
                    .get(&conn)
                    .is_none_or(|st| st.their_heads.as_deref() == Some(&heads[..]));
                if silent {
                    doc.peers.insert(conn, Default::default());
                    self.note_peer(conn, *id);
                    self.send_sync(*id, conn);
                }
            }
        }
    }
}
