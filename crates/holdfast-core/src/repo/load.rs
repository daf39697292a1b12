//! Loading a document: the storage read (skipped when the collection index
//! knows storage holds nothing of it) and building the document from its
//! verified records.

use automerge::Automerge;

use super::doc::Phase;
use super::types::*;
use super::Repo;
use crate::id::DocumentId;
use crate::storage::{verify_chunk, ChunkKind, RecordKind, StorageError, StorageKey};

impl Repo {
    /// Read `id` (just inserted, `Loading`) from storage; or, when the
    /// index knows storage holds nothing of it, go on as storage would
    /// answer.
    pub(super) fn load(&mut self, id: DocumentId) {
        if self.collection.not_stored(&id) {
            return self.loaded(id, Vec::new());
        }
        let task = self.task();
        self.loads.insert(task, id);
        self.effects.push_back(Effect::Load {
            task,
            prefix: StorageKey::doc_prefix(&id),
        });
    }

    /// Storage answered a [`Effect::Load`].
    pub fn load_done(
        &mut self,
        now: Timestamp,
        task: TaskId,
        result: Result<Vec<(StorageKey, Vec<u8>)>, StorageError>,
    ) {
        self.now = now;
        let Some(id) = self.loads.remove(&task) else {
            self.refresh_done(task, result);
            return;
        };
        let records = match result {
            Ok(r) => r,
            Err(error) => {
                self.fail_finds(id, FindError::Storage(error.clone()));
                self.docs.remove(&id);
                self.event(Event::StorageError {
                    docs: vec![id],
                    error,
                });
                return;
            }
        };
        self.loaded(id, records);
    }

    /// What storage holds of `id` (loading) is `records`.
    fn loaded(&mut self, id: DocumentId, records: Vec<(StorageKey, Vec<u8>)>) {
        let actor = self.actor.clone();
        let Some(doc) = self.docs.get_mut(&id) else {
            return;
        };
        let (loaded, good, bad) = load_records(records);
        doc.working = loaded.with_actor(actor);
        doc.durable_heads = doc.working.get_heads();
        doc.issued_heads = doc.durable_heads.clone();
        doc.records = good.into_iter().collect();
        // One load per loading document (a find or frame for a document
        // already loading joins it), so the phase is `Loading` here.
        let buffered = match std::mem::replace(&mut doc.phase, Phase::Ready) {
            Phase::Loading { buffered } => buffered,
            _ => Vec::new(),
        };
        // Peers that asked while nobody stored it (see `wanted`).
        self.adopt_askers(id);
        let doc = self.docs.get_mut(&id).expect("present");
        // Loading is when a badly fragmented document costs: compact it now
        // (e.g. one record of thousands of small changes, as group commit
        // writes for changes made in one burst).
        doc.want_snapshot = doc.wants_compaction(&self.cfg) && doc.can_snapshot();
        if !bad.is_empty() {
            let quarantined = bad.iter().map(|(k, _)| k.clone()).collect();
            doc.quarantine = bad;
            doc.reset_sync_states();
            self.event(Event::StorageRepaired {
                doc: id,
                quarantined,
            });
        }
        for (conn, msg) in buffered {
            self.handle_doc_message(conn, msg);
        }
        self.resolve_finds(id);
        let deadline = self.now.plus_ms(self.cfg.find_timeout_ms);
        if self.docs.get(&id).is_some_and(|d| !d.finds.is_empty()) {
            // Not in storage: wait for peers until the deadline.
            self.start_requesting(id, deadline);
        }
        self.sync_doc(id);
        self.collection_settled(id);
        // A hint that came while it loaded may name a commit the read
        // missed (see `refresh`).
        self.refresh_when_idle(id);
    }
}

/// Verify and load the records of one document. Returns the document, the
/// keys (and value lengths) of the records it was loaded from, and the records that failed.
#[allow(clippy::type_complexity)]
fn load_records(
    records: Vec<(StorageKey, Vec<u8>)>,
) -> (
    Automerge,
    Vec<(StorageKey, usize)>,
    Vec<(StorageKey, Vec<u8>)>,
) {
    let mut snapshots = Vec::new();
    let mut incrementals = Vec::new();
    let mut bad = Vec::new();
    for (key, value) in records {
        let RecordKind::Chunk(kind) = key.kind() else {
            continue;
        };
        match verify_chunk(&key, kind, &value) {
            Ok(()) if kind == ChunkKind::Snapshot => snapshots.push((key, value)),
            Ok(()) => incrementals.push((key, value)),
            Err(detail) => {
                tracing::warn!(%key, %detail, "quarantining a corrupt record");
                bad.push((key, value));
            }
        }
    }
    if let Some(fast) = load_all_at_once(&snapshots, &incrementals) {
        let good = snapshots
            .iter()
            .chain(&incrementals)
            .map(|(k, v)| (k.clone(), v.len()))
            .collect();
        return (fast, good, bad);
    }
    // Some record that passed its checksum does not load: one by one, to
    // find which. A snapshot is a whole document: load the first good one
    // strictly as the base. Incremental records may depend on each other in
    // any key order, so they are applied with `load_incremental`, which
    // queues changes until their dependencies arrive.
    let mut doc: Option<Automerge> = None;
    let mut good = Vec::new();
    for (key, value) in snapshots.into_iter().chain(incrementals) {
        let ok = match (doc.as_mut(), key.kind()) {
            (None, RecordKind::Chunk(ChunkKind::Snapshot)) => match Automerge::load(&value) {
                Ok(d) => {
                    doc = Some(d);
                    true
                }
                Err(_) => false,
            },
            (Some(d), _) => d.load_incremental(&value).is_ok(),
            (None, _) => {
                let mut d = Automerge::new();
                let ok = d.load_incremental(&value).is_ok();
                doc = ok.then_some(d);
                ok
            }
        };
        if ok {
            good.push((key, value.len()));
        } else {
            tracing::warn!(%key, "quarantining a record automerge cannot load");
            bad.push((key, value));
        }
    }
    (doc.unwrap_or_default(), good, bad)
}

/// The usual case, fast: the first snapshot, then every other record in one
/// `load_incremental` call (automerge applies a batch of changes far faster
/// than the same changes record by record). `None` if anything fails to load.
fn load_all_at_once(
    snapshots: &[(StorageKey, Vec<u8>)],
    incrementals: &[(StorageKey, Vec<u8>)],
) -> Option<Automerge> {
    let mut doc = match snapshots.first() {
        Some((_, base)) => Automerge::load(base).ok()?,
        None => Automerge::new(),
    };
    let mut bytes = Vec::new();
    for (_, value) in snapshots.iter().skip(1).chain(incrementals) {
        bytes.extend_from_slice(value);
    }
    if !bytes.is_empty() {
        doc.load_incremental(&bytes).ok()?;
    }
    Some(doc)
}
