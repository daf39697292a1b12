//! Simulated storage: only what a commit made durable survives a crash.

use std::collections::BTreeMap;

use automerge::Automerge;
use holdfast_core::id::DocumentId;
use holdfast_core::repo::TaskId;
use holdfast_core::storage::{Commit, RecordKind, StorageError, StorageKey};

/// Storage that keeps what was committed (the durable image) apart from the
/// one commit in flight. A crash keeps the image and maybe the in-flight
/// commit (it may have reached the disk before the acknowledgement was lost),
/// wholly or not at all.
#[derive(Default)]
pub(super) struct SimStorage {
    pub(super) image: BTreeMap<StorageKey, Vec<u8>>,
    pub(super) in_flight: Option<(TaskId, Commit)>,
    pub(super) fail_next: Option<StorageError>,
}

impl SimStorage {
    pub(super) fn apply(&mut self, commit: Commit) {
        for k in commit.deletes {
            self.image.remove(&k);
        }
        for prefix in commit.delete_prefixes {
            self.image.retain(|k, _| !k.starts_with(&prefix));
        }
        for (k, v) in commit.puts {
            self.image.insert(k, v);
        }
    }

    /// Every change hash the image holds for `doc`, by loading it afresh.
    pub(super) fn image_doc(&self, doc: &DocumentId) -> Automerge {
        let prefix = StorageKey::doc_prefix(doc);
        let mut am = Automerge::new();
        for (k, v) in self.image.range(prefix.clone()..) {
            if !k.starts_with(&prefix) {
                break;
            }
            if matches!(k.kind(), RecordKind::Chunk(_)) {
                am.load_incremental(v)
                    .expect("sim storage holds only valid chunks");
            }
        }
        am
    }
}
