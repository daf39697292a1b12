//! The commit pipeline (group commit, completion, failure).

use automerge::ChangeHash;

use super::doc::{Item, Phase};
use super::types::*;
use super::unwind::guarded;
use super::Repo;
use crate::id::DocumentId;
use crate::storage::{ChunkKind, Commit, StorageError, StorageKey};

/// The one commit in flight.
pub(super) struct InFlight {
    task: TaskId,
    batch: u64,
    docs: Vec<DocBatch>,
    collection: Option<super::collection::Batch>,
}

/// What one commit does for one document.
struct DocBatch {
    doc: DocumentId,
    /// The new incremental record: changes in `working` not yet issued, and
    /// the heads of `working` they bring it to.
    incremental: Option<(StorageKey, Vec<u8>, Vec<ChangeHash>)>,
    /// A snapshot of `working` as this commit leaves storage, and the
    /// records it covers.
    snapshot: Option<(StorageKey, usize, Vec<StorageKey>)>,
    deletes: Vec<StorageKey>,
    quarantine: Vec<(StorageKey, Vec<u8>)>,
    /// This commit deletes the whole document.
    delete: bool,
}

impl DocBatch {
    fn new(doc: DocumentId) -> Self {
        Self {
            doc,
            incremental: None,
            snapshot: None,
            deletes: Vec::new(),
            quarantine: Vec::new(),
            delete: false,
        }
    }
}

impl Repo {
    /// Build the next group commit if none is in flight and work is pending.
    pub(super) fn flush(&mut self) {
        if self.in_flight.is_some() {
            return;
        }
        let batch = self.next_batch;
        let mut commit = Commit::default();
        let mut docs = Vec::new();
        let mut broken = Vec::new();
        // Only marked documents can need a commit (see `docs::Docs`); each
        // one looked at here either goes into this commit or needs none.
        for id in self.docs.take_touched() {
            let Some(doc) = self.docs.get_mut_unmarked(&id).filter(|d| d.needs_commit()) else {
                continue;
            };
            if doc.deleting().is_some() && !doc.dirty() {
                // Everything pending is durable: remove the whole document,
                // including records other tabs wrote.
                commit.delete_prefixes.push(StorageKey::doc_prefix(&doc.id));
                doc.in_flight = Some(batch);
                docs.push(DocBatch {
                    delete: true,
                    ..DocBatch::new(doc.id)
                });
                continue;
            }
            let mut b = DocBatch {
                deletes: std::mem::take(&mut doc.pending_deletes),
                quarantine: std::mem::take(&mut doc.quarantine),
                ..DocBatch::new(doc.id)
            };
            if doc.dirty() {
                let working = &doc.working;
                let issued = &doc.issued_heads;
                let bytes = match guarded(|| working.save_after(issued)) {
                    Ok(bytes) => bytes,
                    Err(panic) => {
                        // A peer's change that automerge applied but cannot
                        // save: maintenance waits for the next commit.
                        doc.pending_deletes.append(&mut b.deletes);
                        doc.quarantine.append(&mut b.quarantine);
                        broken.push((id, panic));
                        continue;
                    }
                };
                doc.issued_heads = doc.working.get_heads();
                if !bytes.is_empty() {
                    let key = StorageKey::chunk(&doc.id, ChunkKind::Incremental, &bytes);
                    commit.puts.push((key.clone(), bytes.clone()));
                    b.incremental = Some((key, bytes, doc.issued_heads.clone()));
                }
            }
            if std::mem::take(&mut doc.want_snapshot)
                && doc.can_snapshot()
                && doc.deleting().is_none()
            {
                // Nothing else is in flight, so `working` is the durable part
                // plus what this commit writes: the snapshot covers exactly
                // what storage holds once it completes.
                let bytes = doc.working.save();
                let key = StorageKey::chunk(&doc.id, ChunkKind::Snapshot, &bytes);
                let len = bytes.len();
                let covered = doc.records.keys().filter(|k| **k != key).cloned().collect();
                commit.puts.push((key.clone(), bytes));
                b.snapshot = Some((key, len, covered));
            }
            for (key, value) in &b.quarantine {
                commit.puts.push((key.quarantine_of(), value.clone()));
                commit.deletes.push(key.clone());
            }
            commit.deletes.extend(b.deletes.iter().cloned());
            if b.incremental.is_none()
                && b.snapshot.is_none()
                && b.deletes.is_empty()
                && b.quarantine.is_empty()
            {
                // Nothing to write (no pending item can be waiting on this
                // batch: items wait only on dirty or in-flight documents).
                continue;
            }
            doc.in_flight = Some(batch);
            docs.push(b);
        }
        for (id, panic) in broken {
            self.set_aside(id, None, &panic);
        }
        if docs.is_empty() && !self.collection.needs_commit() {
            return;
        }
        let advanced = docs
            .iter()
            .filter_map(|b| Some((b.doc, b.incremental.as_ref()?.2.clone())))
            .collect();
        let removed = docs.iter().filter(|b| b.delete).map(|b| b.doc).collect();
        let collection = self.collection.stage(&mut commit, advanced, removed);
        if commit.is_empty() {
            return;
        }
        self.next_batch += 1;
        let task = self.task();
        self.in_flight = Some(InFlight {
            task,
            batch,
            docs,
            collection,
        });
        self.effects.push_back(Effect::Commit { task, commit });
    }

    /// A commit completed (`Ok`: durable) or failed.
    pub fn commit_done(&mut self, now: Timestamp, task: TaskId, result: Result<(), StorageError>) {
        self.now = now;
        let Some(inflight) = self.in_flight.take_if(|f| f.task == task) else {
            tracing::warn!(?task, "completion for a commit that is not in flight");
            return;
        };
        match result {
            Ok(()) => {
                let newly_held = inflight
                    .collection
                    .as_ref()
                    .map(|c| self.collection.newly_held(c))
                    .unwrap_or_default();
                if let Some(c) = &inflight.collection {
                    self.collection.committed(c);
                }
                for b in inflight.docs {
                    self.commit_succeeded(inflight.batch, b);
                }
                if let Some(c) = &inflight.collection {
                    self.notify_committed(c);
                }
                self.announce_newly_held(newly_held);
            }
            Err(error) => {
                if let Some(c) = inflight.collection {
                    self.collection.failed(c);
                }
                let ids: Vec<DocumentId> = inflight.docs.iter().map(|b| b.doc).collect();
                for b in inflight.docs {
                    self.commit_failed(b, &error);
                }
                self.event(Event::StorageError { docs: ids, error });
            }
        }
    }

    fn commit_succeeded(&mut self, batch: u64, b: DocBatch) {
        let id = b.doc;
        if b.delete {
            if let Some(doc) = self.docs.remove(&id) {
                if let Some(change) = doc.deleting() {
                    self.event(Event::ChangeDurable {
                        change,
                        doc: id,
                        heads: Vec::new(),
                    });
                }
                self.fail_finds_of(doc.finds, id);
            }
            self.event(Event::DocDeleted { doc: id });
            self.collection_settled(id);
            return;
        }
        let Some(doc) = self.docs.get_mut(&id) else {
            return;
        };
        doc.in_flight = None;
        let before = doc.durable_heads.clone();
        if let Some((key, bytes, heads)) = b.incremental {
            // Commits complete in order and this one was cut from `working`
            // at `heads`, after everything earlier: they are the durable
            // heads now. `working` still holds them (a rewind after a panic
            // keeps what is in flight); should it not, the bytes go back in.
            if !heads
                .iter()
                .all(|h| doc.working.get_change_meta_by_hash(h).is_some())
            {
                let working = &mut doc.working;
                let loaded = guarded(|| working.load_incremental(&bytes));
                tracing::error!(doc = %id, %key, ?loaded, "a committed record was missing from the document; loaded again");
            }
            doc.durable_heads = heads;
            doc.durable_heads.sort();
            doc.records.insert(key, bytes.len());
        }
        if let Some((key, len, covered)) = b.snapshot {
            doc.records.insert(key, len);
            doc.pending_deletes.extend(covered);
        }
        for key in b.deletes {
            doc.records.remove(&key);
        }
        let (mut local, mut remote) = (false, false);
        let mut released = Vec::new();
        for item in doc.take_released(batch) {
            match item {
                Item::Local(change) => {
                    local = true;
                    released.push(change);
                }
                Item::Remote { conn, msg } => {
                    remote |= !msg.changes.is_empty();
                    // Feed it and answer it, exactly as if it had been
                    // processed on arrival: a later message of the same peer
                    // must not be applied before this one is answered (its
                    // heads would then equal ours, and automerge would
                    // conclude the peer already knows them: no acknowledgement).
                    let doc = self.docs.get_mut(&id).expect("present above");
                    if doc.feed(conn, msg) {
                        self.send_sync(id, conn);
                    }
                }
            }
        }
        let doc = self.docs.get_mut(&id).expect("present above");
        let after = doc.durable_heads.clone();
        if doc.wants_compaction(&self.cfg) && doc.pending_deletes.is_empty() && doc.can_snapshot() {
            doc.want_snapshot = true;
        }
        for change in released {
            self.event(Event::ChangeDurable {
                change,
                doc: id,
                heads: after.clone(),
            });
        }
        if before != after {
            let source = match (local, remote) {
                (true, false) => ChangeSource::Local,
                (true, true) => ChangeSource::Both,
                _ => ChangeSource::Remote,
            };
            self.event(Event::DocChanged {
                doc: id,
                before,
                after,
                source,
            });
        }
        self.resolve_finds(id);
        self.sync_doc(id);
        self.collection_settled(id);
        self.refresh_when_idle(id);
    }

    fn commit_failed(&mut self, b: DocBatch, error: &StorageError) {
        let id = b.doc;
        let Some(doc) = self.docs.get_mut(&id) else {
            return;
        };
        doc.in_flight = None;
        if b.delete {
            // The document stays, as it was; the delete is reported failed.
            if let Some(change) = doc.deleting() {
                doc.phase = Phase::Ready;
                let waiting = !doc.finds.is_empty() && !doc.findable();
                self.event(Event::ChangeFailed {
                    change,
                    doc: id,
                    error: error.clone(),
                });
                if waiting {
                    // Finds that waited through the delete wait for peers
                    // again, with a deadline of their own.
                    let deadline = self.now.plus_ms(self.cfg.find_timeout_ms);
                    self.start_requesting(id, deadline);
                }
            }
            return;
        }
        // Back to the last durable state: everything not yet durable is gone,
        // including changes made while this commit was in flight.
        let durable = doc.durable_heads.clone();
        if let Err(e) = doc.rewind(&durable) {
            tracing::error!(doc = %id, error = %e, "could not return the document to its durable state");
        }
        doc.issued_heads = durable;
        // Maintenance is retried by a later commit.
        doc.pending_deletes.extend(b.deletes);
        doc.quarantine.extend(b.quarantine);
        let mut failed = Vec::new();
        for p in doc.items.drain(..) {
            if let Item::Local(change) = p.item {
                failed.push(change);
            }
        }
        doc.reset_sync_states();
        for change in failed {
            self.event(Event::ChangeFailed {
                change,
                doc: id,
                error: error.clone(),
            });
        }
        self.sync_doc(id);
        self.refresh_when_idle(id);
    }
}
