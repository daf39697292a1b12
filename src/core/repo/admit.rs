//! Admission of a peer's checked changes into a document: what automerge
//! asserts and the message alone cannot show.
//!
//! automerge applies a change once all its dependencies are present and then
//! asserts that its `seq` is one more than the number of changes its actor
//! already has (`change_graph.rs`), and that a change carrying an author has
//! seq 1. A change whose dependencies are missing sits in automerge's queue
//! and is applied (and asserted) whenever a later message completes it, so a
//! crafted change could wait there and panic on someone else's message.
//! Hence holdfast never hands automerge an incomplete change: it keeps such
//! changes itself (`orphans`, bounded), checks each when its dependencies
//! have arrived, and asks peers for what they miss (`rewrite_need`).
//!
//! Invariants:
//! - every change passed to `working` has all its dependencies in `working`
//!   and the seq automerge will assert; automerge's own queue stays empty;
//! - `orphans` holds at most `PeerLimits::max_orphans` changes, none of them
//!   known to `working`; dropping one is safe (nothing about it was
//!   acknowledged: peers resend what our heads do not cover).

use std::collections::{BTreeMap, BTreeSet};

use automerge::{ActorId, Automerge, ChangeHash, ReadDoc};

use super::doc::Doc;
use crate::core::validate::{ChangeInfo, ChunkError, ChunkInfo, PeerLimits, ValidationError};

/// Per actor, how many changes `working` holds, as of `heads`.
#[derive(Default)]
pub(super) struct SeqCache {
    heads: Vec<ChangeHash>,
    counts: BTreeMap<ActorId, u64>,
}

impl SeqCache {
    /// Brings the counts up to `doc`'s heads: incrementally when the cached
    /// heads are still in its history, from scratch otherwise (a revert).
    fn refresh(&mut self, doc: &Automerge) {
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
            *n = (*n).max(meta.seq);
        }
        self.heads = heads;
    }
}

fn hex(h: &ChangeHash) -> String {
    h.to_string()
}

impl Doc {
    /// Decides which of a checked message's chunks `working` may load now.
    /// Returns their bytes in a loadable order; changes still missing
    /// dependencies become orphans. Refuses the whole message if any of its
    /// changes can never be applied.
    pub(super) fn admit(
        &mut self,
        chunks: Vec<ChunkInfo>,
        limits: &PeerLimits,
    ) -> Result<Vec<Vec<u8>>, ValidationError> {
        self.seqs.refresh(&self.working);
        let new_ops: u64 = chunks.iter().map(ChunkInfo::new_ops).sum();
        let deletes: u64 = chunks.iter().map(|c| c.ops().1).sum();
        let held_ops = self.working.stats().num_ops;
        if deletes > held_ops.saturating_add(new_ops) {
            return Err(ValidationError::Chunk {
                index: 0,
                error: ChunkError::TooManyDeletes {
                    count: deletes,
                    max: held_ops.saturating_add(new_ops),
                },
            });
        }
        let mut ready = Vec::new();
        let mut counts = self.seqs.counts.clone();
        let mut added: BTreeSet<ChangeHash> = BTreeSet::new();
        let mut pending: Vec<(ChangeInfo, bool)> = Vec::new();
        for c in chunks {
            match c {
                ChunkInfo::Document { bytes, .. } => {
                    self.admit_document(&bytes, &mut counts, &mut added)?;
                    ready.push(bytes);
                }
                ChunkInfo::Change(c) => {
                    if self.working.get_change_meta_by_hash(&c.hash).is_none()
                        && !added.contains(&c.hash)
                        && !pending.iter().any(|(p, _)| p.hash == c.hash)
                    {
                        pending.push((c, true));
                    }
                }
            }
        }
        for o in std::mem::take(&mut self.orphans) {
            if self.working.get_change_meta_by_hash(&o.hash).is_none()
                && !pending.iter().any(|(p, _)| p.hash == o.hash)
            {
                pending.push((o, false));
            }
        }
        // Topological: apply whatever has its dependencies, until nothing does.
        loop {
            let before = pending.len();
            let mut rest = Vec::with_capacity(pending.len());
            for (c, from_message) in pending {
                let deps_here = c.deps.iter().all(|d| {
                    added.contains(d) || self.working.get_change_meta_by_hash(d).is_some()
                });
                if !deps_here {
                    rest.push((c, from_message));
                    continue;
                }
                let held = counts.get(&c.actor).copied().unwrap_or(0);
                let verdict = check_seq(&c, held);
                match verdict {
                    Ok(()) => {
                        counts.insert(c.actor.clone(), held + 1);
                        added.insert(c.hash);
                        ready.push(c.bytes);
                    }
                    Err(e) if from_message => return Err(e),
                    Err(e) => {
                        tracing::info!(doc = %self.id, error = %e, "dropping a held-back change")
                    }
                }
            }
            pending = rest;
            if pending.len() == before || pending.is_empty() {
                break;
            }
        }
        for (c, from_message) in pending {
            // An actor's change at or below what we hold can never apply.
            let held = counts.get(&c.actor).copied().unwrap_or(0);
            if c.seq <= held {
                if from_message {
                    return Err(seq_gap(&c, held));
                }
                continue;
            }
            if self.orphans.len() >= limits.max_orphans {
                tracing::info!(doc = %self.id, "too many held-back changes; dropping one");
                continue;
            }
            self.orphans.push(c);
        }
        Ok(ready)
    }

    /// A whole document from a peer: load it on its own first (its changes
    /// were checked to be in seq order per actor), then check every change
    /// we lack against what we hold.
    fn admit_document(
        &self,
        bytes: &[u8],
        counts: &mut BTreeMap<ActorId, u64>,
        added: &mut BTreeSet<ChangeHash>,
    ) -> Result<(), ValidationError> {
        let theirs =
            Automerge::load(bytes).map_err(|e| ValidationError::Automerge(e.to_string()))?;
        let mut top: BTreeMap<ActorId, u64> = BTreeMap::new();
        for meta in theirs.get_changes_meta(&[]) {
            let actor = meta.actor.into_owned();
            let t = top.entry(actor.clone()).or_default();
            *t = (*t).max(meta.seq);
            if self.working.get_change_meta_by_hash(&meta.hash).is_some()
                || added.contains(&meta.hash)
            {
                continue;
            }
            let held = counts.get(&actor).copied().unwrap_or(0);
            if meta.seq <= held {
                return Err(ValidationError::SeqGap {
                    hash: hex(&meta.hash),
                    actor: actor.to_hex_string(),
                    seq: meta.seq,
                    held,
                });
            }
            added.insert(meta.hash);
        }
        for (actor, n) in top {
            let c = counts.entry(actor).or_default();
            *c = (*c).max(n);
        }
        Ok(())
    }

    /// automerge asks for the changes behind heads it lacks; for a head we
    /// hold back as an orphan, ask for what the orphan misses instead.
    pub(super) fn rewrite_need(&self, need: &mut Vec<ChangeHash>) {
        if self.orphans.is_empty() {
            return;
        }
        let mut out = BTreeSet::new();
        let mut seen = BTreeSet::new();
        let mut stack: Vec<ChangeHash> = need.clone();
        while let Some(h) = stack.pop() {
            if !seen.insert(h) || self.working.get_change_meta_by_hash(&h).is_some() {
                continue;
            }
            match self.orphans.iter().find(|o| o.hash == h) {
                Some(o) => stack.extend(o.deps.iter().copied()),
                None => {
                    out.insert(h);
                }
            }
        }
        *need = out.into_iter().collect();
    }
}

fn seq_gap(c: &ChangeInfo, held: u64) -> ValidationError {
    ValidationError::SeqGap {
        hash: hex(&c.hash),
        actor: c.actor.to_hex_string(),
        seq: c.seq,
        held,
    }
}

fn check_seq(c: &ChangeInfo, held: u64) -> Result<(), ValidationError> {
    if c.author && c.seq != 1 {
        return Err(ValidationError::AuthorNotFirst {
            hash: hex(&c.hash),
            seq: c.seq,
        });
    }
    if c.seq != held + 1 {
        return Err(seq_gap(c, held));
    }
    Ok(())
}
