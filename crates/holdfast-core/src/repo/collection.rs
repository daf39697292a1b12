//! The collection index in memory and what each commit writes of it (see
//! [`crate::collection`] for the records and `docs/design.md` §5b for the
//! exchange built on it, in `exchange`).
//!
//! Invariants:
//! - `entries[id].seq`/`heads` and `durable_seq` change only when the commit
//!   that wrote them completed ([`Collection::committed`]): whatever the
//!   server lists or a client compares is on disk.
//! - Every commit that gives out sequence numbers also writes the highest
//!   one given out, so after a restart numbers keep growing even if the
//!   document that held the highest was deleted.
//! - A cursor or `synced` change that failed to commit is written again by
//!   a later commit; either may lag, never lead: a cursor only moves once
//!   the documents listed up to it are durable here.

use std::collections::{BTreeMap, BTreeSet};

use automerge::ChangeHash;

use super::types::{ConnId, Timestamp};
use crate::collection::{self, HeldFilter, IndexEntry, Record};
use crate::id::DocumentId;
use crate::storage::Commit;
use crate::vecmap::VecMap;

/// How long an advanced cursor or newly acknowledged heads may wait for
/// another commit to carry them before they are written on their own.
pub(super) const DELAY_MS: u64 = 500;

#[derive(Default)]
pub(super) struct Collection {
    /// Set by [`super::Repo::restore_collection`]; off, nothing here is used.
    pub on: bool,
    pub storage_id: Option<String>,
    storage_id_unwritten: bool,
    /// Every document the store holds has an entry (see
    /// [`collection::complete_key`]): one without an entry with heads is not
    /// stored, and needs no storage read.
    pub complete: bool,
    complete_unwritten: bool,
    /// The highest sequence number that is durable.
    pub durable_seq: u64,
    next_seq: u64,
    pub entries: BTreeMap<DocumentId, IndexEntry>,
    /// Every entry's id by its [`collection::digest`] (how lists name it).
    pub by_digest: BTreeMap<collection::Digest, DocumentId>,
    pub by_seq: BTreeMap<u64, DocumentId>,
    /// Entries whose `synced` changed since they were last written.
    stale: BTreeSet<DocumentId>,
    /// Per server storage id: how far its change sequence is taken.
    pub cursors: VecMap<String, u64>,
    stale_cursors: Vec<String>,
    /// When stale cursors and entries are written even if nothing else
    /// commits.
    pub due: Option<Timestamp>,
    forced: bool,
    pub links: VecMap<ConnId, Link>,
}

/// A connection to a peer that speaks the collection exchange.
pub(super) enum Link {
    /// We are the client of server `storage_id`. `waiting`: per
    /// `holdfast-changed` received, in order, its `upto` and the listed
    /// documents (with the listed heads) not yet durable here.
    Server {
        storage_id: String,
        waiting: Vec<(u64, VecMap<DocumentId, Vec<ChangeHash>>)>,
    },
    /// We serve a client; `held` arrives with its `holdfast-resume`.
    Client { held: Option<HeldFilter> },
}

/// What one commit writes for the collection; applied when it completes.
#[derive(Default)]
pub(super) struct Batch {
    /// Documents whose durable heads this commit advances, with their new
    /// sequence number and heads.
    advanced: Vec<(DocumentId, u64, Vec<ChangeHash>)>,
    removed: Vec<DocumentId>,
    /// Entries and cursors written only because they were stale.
    stale: Vec<DocumentId>,
    cursors: Vec<String>,
    storage_id: bool,
    complete: bool,
}

impl Batch {
    pub fn advanced_ids(&self) -> impl Iterator<Item = DocumentId> + '_ {
        self.advanced.iter().map(|(id, _, _)| *id)
    }
}

impl Collection {
    /// Load the records of [`collection::prefix`]. `candidate`: the storage id
    /// to adopt (and write) if the store has none yet.
    pub fn restore(
        &mut self,
        records: Vec<(crate::storage::StorageKey, Vec<u8>)>,
        candidate: &str,
    ) {
        self.on = true;
        for (key, value) in records {
            match Record::parse(&key, &value) {
                None => {}
                Some(Err(e)) => {
                    tracing::warn!(%key, error = %e, "ignoring an unreadable index record")
                }
                Some(Ok(Record::Entry(id, e))) => {
                    self.durable_seq = self.durable_seq.max(e.seq);
                    if e.seq > 0 {
                        self.by_seq.insert(e.seq, id);
                    }
                    *self.entry(id) = e;
                }
                Some(Ok(Record::Seq(n))) => self.durable_seq = self.durable_seq.max(n),
                Some(Ok(Record::StorageId(s))) => self.storage_id = Some(s),
                Some(Ok(Record::Complete)) => self.complete = true,
                Some(Ok(Record::Cursor(sid, n))) => {
                    self.cursors.insert(sid, n);
                }
            }
        }
        self.next_seq = self.durable_seq + 1;
        if self.storage_id.is_none() {
            self.storage_id = Some(candidate.to_string());
            self.storage_id_unwritten = true;
        }
    }

    /// The store held no record at all when it was opened: every document
    /// it will hold gets an entry in the commit that stores it.
    pub fn started_empty(&mut self) {
        if !self.complete {
            self.complete = true;
            self.complete_unwritten = true;
        }
    }

    /// Whether `id` is known not to be stored (no storage read needed).
    pub fn not_stored(&self, id: &DocumentId) -> bool {
        self.on && self.complete && self.entries.get(id).is_none_or(|e| e.heads.is_empty())
    }

    /// The entry of `id`, made (empty) if there is none.
    fn entry(&mut self, id: DocumentId) -> &mut IndexEntry {
        let digests = &mut self.by_digest;
        self.entries.entry(id).or_insert_with(|| {
            digests.insert(collection::digest(&id), id);
            IndexEntry::default()
        })
    }

    /// The subject that owns `id` (see `access`).
    pub fn owner(&self, id: &DocumentId) -> Option<&str> {
        self.entries.get(id)?.owner.as_deref()
    }

    /// `subject` created `id`: kept in its entry, which is written with the
    /// document's first records (an entry is written whenever its heads
    /// advance; without the collection it stays in memory).
    pub fn set_owner(&mut self, id: DocumentId, subject: String) {
        self.entry(id).owner = Some(subject);
    }

    /// The documents held here: every entry with durable heads.
    pub fn held(&self) -> impl Iterator<Item = (&DocumentId, &IndexEntry)> {
        self.entries.iter().filter(|(_, e)| !e.heads.is_empty())
    }

    /// Whether something of the collection must be written even if no
    /// document is.
    pub fn needs_commit(&self) -> bool {
        let stale = !self.stale_cursors.is_empty() || !self.stale.is_empty();
        self.on && (self.storage_id_unwritten || (self.forced && stale))
    }

    /// Server `sid` advertised `heads` for `id` (durable there).
    pub fn note_synced(&mut self, id: DocumentId, sid: &str, heads: &[ChangeHash], now: Timestamp) {
        if !self.on || heads.is_empty() {
            return;
        }
        let e = self.entry(id);
        if e.synced.get(sid).map(Vec::as_slice) != Some(heads) {
            e.synced.insert(sid.to_string(), heads.to_vec());
            self.stale.insert(id);
            self.due.get_or_insert(now.plus_ms(DELAY_MS));
        }
    }

    /// A loaded document's durable heads: a document without an entry
    /// (stored before the index existed) gets one, written with the next
    /// commit; an entry behind what storage holds (another writer of the
    /// store committed) takes the heads in memory, since that writer wrote
    /// its own entry.
    pub fn adopt(&mut self, id: DocumentId, heads: Vec<ChangeHash>) {
        if !self.on || heads.is_empty() {
            return;
        }
        let e = self.entry(id);
        let new = e.heads.is_empty();
        e.heads = heads;
        if new {
            self.stale.insert(id);
        }
    }

    /// Records another writer of the store wrote under
    /// [`collection::prefix`] since they were read (returns the documents
    /// whose stored heads are new here): entries of documents
    /// not loaded here are taken as stored (a loaded document's entry
    /// follows its durable heads, see [`Collection::adopt`]); cursors and
    /// sequence numbers take the larger value; the stored storage id wins
    /// (two writers that started on an empty store each drew one).
    pub fn merge_stored(
        &mut self,
        records: Vec<(crate::storage::StorageKey, Vec<u8>)>,
        loaded: impl Fn(&DocumentId) -> bool,
    ) -> Vec<DocumentId> {
        let mut changed = Vec::new();
        for (key, value) in records {
            match Record::parse(&key, &value) {
                Some(Ok(Record::Entry(id, e))) => {
                    self.durable_seq = self.durable_seq.max(e.seq);
                    if loaded(&id) {
                        continue;
                    }
                    let mut e = e;
                    let old_heads = self.entries.get(&id).map(|o| &o.heads);
                    if !e.heads.is_empty() && old_heads != Some(&e.heads) {
                        changed.push(id);
                    }
                    if let Some(old) = self.entries.get(&id) {
                        self.by_seq.remove(&old.seq);
                        if self.stale.contains(&id) {
                            // Acknowledgements noted here and not yet
                            // written are newer than the stored ones.
                            for (sid, heads) in old.synced.iter() {
                                e.synced.insert(sid.clone(), heads.clone());
                            }
                        }
                    }
                    if e.seq > 0 {
                        self.by_seq.insert(e.seq, id);
                    }
                    *self.entry(id) = e;
                }
                Some(Ok(Record::Seq(n))) => self.durable_seq = self.durable_seq.max(n),
                Some(Ok(Record::StorageId(s))) => {
                    self.storage_id = Some(s);
                    self.storage_id_unwritten = false;
                }
                Some(Ok(Record::Cursor(sid, n))) => {
                    let c = self.cursors.get_or_default(sid);
                    *c = (*c).max(n);
                }
                Some(Ok(Record::Complete)) | Some(Err(_)) | None => {}
            }
        }
        self.next_seq = self.next_seq.max(self.durable_seq + 1);
        changed
    }

    /// Forget a document that is not in storage after all.
    pub fn forget(&mut self, id: &DocumentId) {
        if let Some(e) = self.entries.remove(id) {
            self.by_seq.remove(&e.seq);
            self.by_digest.remove(&collection::digest(id));
        }
        self.stale.remove(id);
    }

    pub fn advance_cursor(&mut self, sid: &str, upto: u64, now: Timestamp) {
        let c = self.cursors.get_or_default(sid.to_string());
        if upto > *c {
            *c = upto;
            if !self.stale_cursors.iter().any(|s| s == sid) {
                self.stale_cursors.push(sid.to_string());
            }
            self.due.get_or_insert(now.plus_ms(DELAY_MS));
        }
    }

    /// Write stale cursors and entries now (a timer fired, or the repo is
    /// closing).
    pub fn force(&mut self) {
        self.forced = true;
        self.due = None;
    }

    /// Add to `commit` what the collection writes with it: an entry with a
    /// new sequence number for each document in `advanced` (new durable
    /// heads), the removal of each in `removed`, stale entries and cursors,
    /// the counter and the storage id.
    pub fn stage(
        &mut self,
        commit: &mut Commit,
        advanced: Vec<(DocumentId, Vec<ChangeHash>)>,
        removed: Vec<DocumentId>,
    ) -> Option<Batch> {
        if !self.on {
            return None;
        }
        let mut b = Batch::default();
        for (id, heads) in advanced {
            let seq = self.next_seq;
            self.next_seq += 1;
            let mut e = self.entries.get(&id).cloned().unwrap_or_default();
            e.seq = seq;
            e.heads.clone_from(&heads);
            commit.puts.push((collection::entry_key(&id), e.encode()));
            self.stale.remove(&id);
            b.advanced.push((id, seq, heads));
        }
        for id in removed {
            commit.deletes.push(collection::entry_key(&id));
            self.stale.remove(&id);
            b.removed.push(id);
        }
        for id in std::mem::take(&mut self.stale) {
            // An entry not durable here yet is written with the document.
            if let Some(e) = self.entries.get(&id).filter(|e| !e.heads.is_empty()) {
                commit.puts.push((collection::entry_key(&id), e.encode()));
                b.stale.push(id);
            }
        }
        if !b.advanced.is_empty() {
            commit.puts.push((
                collection::seq_key(),
                collection::encode_u64(self.next_seq - 1),
            ));
        }
        if !commit.is_empty() || self.forced {
            for sid in std::mem::take(&mut self.stale_cursors) {
                let n = self.cursors.get(&sid).copied().unwrap_or_default();
                commit
                    .puts
                    .push((collection::cursor_key(&sid), collection::encode_u64(n)));
                b.cursors.push(sid);
            }
            self.due = None;
            self.forced = false;
        }
        if std::mem::take(&mut self.storage_id_unwritten) {
            let sid = self.storage_id.clone().unwrap_or_default();
            commit
                .puts
                .push((collection::storage_id_key(), sid.into_bytes()));
            b.storage_id = true;
        }
        if std::mem::take(&mut self.complete_unwritten) {
            commit.puts.push((collection::complete_key(), Vec::new()));
            b.complete = true;
        }
        Some(b)
    }

    /// The commit holding `b` completed.
    /// The documents `b` makes durable here for the first time (none of
    /// their records were durable before it): no filter sent so far named
    /// them.
    pub fn newly_held(&self, b: &Batch) -> Vec<DocumentId> {
        b.advanced
            .iter()
            .filter(|(id, _, _)| self.entries.get(id).is_none_or(|e| e.heads.is_empty()))
            .map(|(id, _, _)| *id)
            .collect()
    }

    pub fn committed(&mut self, b: &Batch) {
        for (id, seq, heads) in &b.advanced {
            let e = self.entry(*id);
            let old = e.seq;
            e.seq = *seq;
            e.heads.clone_from(heads);
            if old > 0 {
                self.by_seq.remove(&old);
            }
            self.by_seq.insert(*seq, *id);
            self.durable_seq = self.durable_seq.max(*seq);
        }
        for id in &b.removed {
            self.forget(id);
        }
    }

    /// The commit holding `b` failed: what it wrote for the collection is
    /// written by a later one.
    pub fn failed(&mut self, b: Batch) {
        self.stale.extend(b.stale);
        self.stale.extend(b.advanced.iter().map(|(id, _, _)| *id));
        self.stale_cursors.extend(b.cursors);
        self.storage_id_unwritten |= b.storage_id;
        self.complete_unwritten |= b.complete;
    }
}
