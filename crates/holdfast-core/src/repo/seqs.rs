//! Per actor, how many changes a document's `working` state holds: what
//! admission checks a peer's `seq` and `startOp` against (see `admit`).

use std::collections::BTreeMap;

use automerge::{ActorId, Automerge, ChangeHash};

/// Per actor: how many changes `working` holds (its last seq), and the last
/// one's max op.
pub(super) type Held = BTreeMap<ActorId, (u64, u64)>;

/// [`Held`] for `working`, as of `heads`.
#[derive(Default)]
pub(super) struct SeqCache {
    heads: Vec<ChangeHash>,
    pub counts: Held,
}

impl SeqCache {
    /// Brings the counts up to `doc`'s heads: incrementally when the cached
    /// heads are still in its history, from scratch otherwise (a revert).
    pub fn refresh(&mut self, doc: &Automerge) {
        let heads = doc.get_heads();
        if heads == self.heads {
            return;
        }
        let incremental = self
            .heads
            .iter()
            .all(|h| doc.get_change_meta_by_hash(h).is_some());
        if !incremental {
            self.counts.clear();
            self.heads.clear();
        }
        for meta in doc.get_changes_meta(&self.heads) {
            let n = self.counts.entry(meta.actor.into_owned()).or_default();
            if meta.seq > n.0 {
                *n = (meta.seq, meta.max_op);
            }
        }
        self.heads = heads;
    }
}
