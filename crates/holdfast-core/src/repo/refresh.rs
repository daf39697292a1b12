//! Several writers on one store (browser tabs of one origin on one
//! IndexedDB database): another writer's commit adds records this repo has
//! not read. On a hint ([`Repo::refresh`]: a BroadcastChannel message from
//! the other tab, or this tab becoming visible again, since such messages
//! are not guaranteed) the document's records are read again and the ones
//! not known yet are merged into `durable` and `working`, and reported as
//! a change from [`ChangeSource::Storage`].
//!
//! Invariants:
//! - `durable` still holds exactly what storage holds: only records read
//!   back from storage are merged, and only once verified.
//! - Records are merged only while the document has no local work on its
//!   way to storage (not dirty, nothing in flight): `working` then equals
//!   `durable`, both take the same bytes, and `issued_heads` moves to the
//!   merged heads, so no later commit writes the other writer's changes
//!   again. A refresh asked for meanwhile is done once that work is
//!   durable ([`Repo::refresh_when_idle`], called after each commit).
//! - Merged records join `records`, so compaction may cover and delete
//!   them (they are in `durable`); records another writer added since are
//!   not in `records` and are never deleted here.
//! - A document is taken as deleted by another writer only when records
//!   this repo had read or written when the read started (and has not
//!   deleted itself since) are gone from it, and nothing but incremental
//!   chunks is left under its prefix. Records are deleted only by a delete
//!   or once a snapshot covers them, and a compaction's snapshot stays
//!   until a later snapshot replaces it; a quarantined record moves to a
//!   quarantine key, which also rules a delete out. A delete leaves
//!   nothing, or increments committed since, racing it. Records written
//!   after the read started prove nothing: a commit here may land before
//!   the read is answered. The document is then deleted here too, through
//!   the ordinary delete path (which also removes such leftovers), and
//!   reported with [`Event::DocDeleted`]. Records gone under a snapshot
//!   leave `records`, so that they do not look deleted on a later read.
//! - The collection entry of a merged document takes the merged heads:
//!   they are durable in the shared store, and a leader that connects
//!   later offers the document if its server has not acknowledged them.

use super::types::*;
use super::unwind::guarded;
use super::Repo;
use crate::id::DocumentId;
use crate::storage::{verify_chunk, ChunkKind, RecordKind, StorageError, StorageKey};
use automerge::ChangeHash;
use std::collections::BTreeSet;

impl Repo {
    /// Another writer of this repo's store may have committed to `id`:
    /// read its records again and take what is new. A document not held
    /// here needs nothing (it is read whole when opened); returns whether
    /// `id` is held.
    pub fn refresh(&mut self, now: Timestamp, id: DocumentId) -> bool {
        self.now = now;
        let Some(doc) = self.docs.get_mut(&id) else {
            return false;
        };
        doc.refresh_wanted = true;
        self.refresh_when_idle(id);
        true
    }

    /// Whether `theirs` (heads another writer's peer holds, e.g. what a sync
    /// server acknowledged to the tab that holds the connection) cover this
    /// repo's working heads of `id`: then everything here is there too.
    pub fn covered_by(&self, id: &DocumentId, theirs: &[ChangeHash]) -> bool {
        self.docs
            .get(id)
            .is_some_and(|d| d.loaded() && d.covered_by(Some(theirs)))
    }

    /// Take the collection index records another writer of this store
    /// wrote since it was read (`records`: the range under
    /// [`crate::collection::prefix`]): before connecting to a server, so
    /// that the exchange offers the documents they name (see
    /// [`super::collection::Collection::merge_stored`]). Returns the
    /// documents not held here whose stored heads are new to this repo:
    /// while connected, the caller opens them so that they sync (their
    /// writer's hint may have been lost).
    pub fn reread_collection(&mut self, records: Vec<(StorageKey, Vec<u8>)>) -> Vec<DocumentId> {
        let docs = &self.docs;
        let changed = self
            .collection
            .merge_stored(records, |id| docs.get(id).is_some_and(|d| d.loaded()));
        if let Some(sid) = self.collection.storage_id.clone() {
            self.cfg.metadata.storage_id = Some(sid);
        }
        changed
    }

    /// The writer holding the sync connection for this store found no
    /// peer with `id`: a find here that waits for peers fails now, as the
    /// find deadline would have failed it.
    pub fn unavailable_elsewhere(&mut self, now: Timestamp, id: DocumentId) {
        self.now = now;
        if self
            .docs
            .get(&id)
            .is_some_and(|d| d.find_deadline().is_some() && !d.findable())
        {
            self.fail_finds(id, self.unavailable());
        }
    }

    /// [`Repo::refresh`] every document held (the tab became visible:
    /// hints may have been lost while it slept).
    pub fn refresh_all(&mut self, now: Timestamp) {
        let ids: Vec<DocumentId> = self.docs.keys().copied().collect();
        for id in ids {
            self.refresh(now, id);
        }
    }

    /// Start the read a refresh waits for, if one is wanted and the
    /// document has no local work on its way to storage.
    pub(super) fn refresh_when_idle(&mut self, id: DocumentId) {
        let Some(doc) = self.docs.get_mut(&id) else {
            return;
        };
        let busy = !doc.loaded()
            || doc.refreshing
            || doc.deleting().is_some()
            || doc.in_flight.is_some()
            || doc.dirty();
        if !doc.refresh_wanted || busy {
            return;
        }
        doc.refresh_wanted = false;
        doc.refreshing = true;
        // The records known when the read starts: only those can be judged
        // gone by it (a later commit here may land before it is answered).
        let known = doc.records.keys().cloned().collect();
        let task = self.task();
        self.refreshes.insert(task, (id, known));
        self.effects.push_back(Effect::Load {
            task,
            prefix: StorageKey::doc_prefix(&id),
        });
    }

    /// Storage answered a refresh's read. Returns `false` if `task` is not
    /// a refresh (then it is a load).
    pub(super) fn refresh_done(
        &mut self,
        task: TaskId,
        result: Result<Vec<(StorageKey, Vec<u8>)>, StorageError>,
    ) -> bool {
        let Some((id, known)) = self.refreshes.remove(&task) else {
            return false;
        };
        let Some(doc) = self.docs.get_mut(&id) else {
            return true;
        };
        doc.refreshing = false;
        let Ok(records) = result else {
            // Nothing merged; the next hint reads again.
            return true;
        };
        if doc.in_flight.is_some() || doc.dirty() || doc.deleting().is_some() {
            // Local work started during the read: merge after it.
            doc.refresh_wanted = true;
            return true;
        }
        let stored: BTreeSet<&StorageKey> = records.iter().map(|(k, _)| k).collect();
        let gone: Vec<StorageKey> = known
            .into_iter()
            .filter(|k| doc.records.contains_key(k) && !stored.contains(k))
            .collect();
        let increments_only = stored
            .iter()
            .all(|k| k.kind() == RecordKind::Chunk(ChunkKind::Incremental));
        if !gone.is_empty() && increments_only {
            // Records this repo read or wrote vanished and no snapshot
            // covers them: another writer deleted the document (what is
            // left was committed since, racing the delete). Delete it here
            // too.
            let _ = self.delete(self.now, &id);
            return true;
        }
        for k in &gone {
            // Covered by another writer's snapshot and deleted by it.
            doc.records.remove(k);
        }
        let fresh: Vec<(StorageKey, Vec<u8>)> = records
            .into_iter()
            .filter(|(k, v)| match k.kind() {
                RecordKind::Chunk(kind) => {
                    !doc.records.contains_key(k) && verify_chunk(k, kind, v).is_ok()
                }
                _ => false,
            })
            .collect();
        let mut panicked = None;
        if !fresh.is_empty() {
            // Nothing is pending: `working` is exactly what is durable, and
            // what it takes from storage is durable too.
            let before = doc.durable_heads.clone();
            let bytes: Vec<u8> = fresh.iter().flat_map(|(_, v)| v.iter().copied()).collect();
            let working = &mut doc.working;
            let merged = guarded(|| working.load_incremental(&bytes));
            if !matches!(merged, Ok(Ok(_))) {
                // Left for a full load to quarantine.
                tracing::warn!(doc = %id, ?merged, "records of another writer did not load");
                if let Err(e) = doc.rewind(&before) {
                    tracing::error!(doc = %id, error = %e, "could not return the document to its durable state");
                }
                return true;
            }
            doc.durable_heads = doc.working.get_heads();
            doc.issued_heads = doc.durable_heads.clone();
            for (k, v) in &fresh {
                doc.records.insert(k.clone(), v.len());
            }
            // Peers' changes held back for what just arrived: into `working`
            // (then the next commit), as if their message came now.
            let limits = self.cfg.peer_limits;
            let ready = doc.readmit_orphans(&limits);
            if !ready.is_empty() {
                let working = &mut doc.working;
                match guarded(|| working.apply_changes(ready)) {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        tracing::warn!(doc = %id, error = %e, "held-back changes did not load");
                        let durable = doc.durable_heads.clone();
                        if let Err(e) = doc.rewind(&durable) {
                            panicked = Some(e);
                        }
                    }
                    Err(p) => panicked = Some(p),
                }
            }
            let after = doc.durable_heads.clone();
            if before != after {
                self.event(Event::DocChanged {
                    doc: id,
                    before,
                    after,
                    source: ChangeSource::Storage,
                });
                self.resolve_finds(id);
                self.sync_doc(id);
                self.collection_settled(id);
            }
        }
        if let Some(panic) = panicked {
            self.set_aside(id, None, &panic);
        }
        // A hint that came during the read may name a later commit.
        self.refresh_when_idle(id);
        true
    }
}
