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

use automerge::{ActorId, Automerge, Change, ChangeHash, ReadDoc};

use super::doc::Doc;
use super::ops_check::OpIndex;
use super::seqs::Held;
use crate::validate::{ChangeInfo, ChunkError, PeerLimits, ValidationError};

fn hex(h: &ChangeHash) -> String {
    h.to_string()
}

impl Doc {
    /// Decides which of a checked message's chunks `working` may load now.
    /// Returns them in a loadable order; changes still missing
    /// dependencies become orphans. Refuses the whole message if any of its
    /// changes can never be applied.
    pub(super) fn admit(
        &mut self,
        chunks: Vec<ChangeInfo>,
        limits: &PeerLimits,
    ) -> Result<Vec<Change>, ValidationError> {
        self.seqs.refresh(&self.working);
        let new_ops: u64 = chunks.iter().map(ChangeInfo::new_ops).sum();
        let deletes: u64 = chunks.iter().map(|c| c.deletes).sum();
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
        // This batch's changes: their dependencies, and per actor the last.
        let mut batch_deps: BTreeMap<ChangeHash, Vec<ChangeHash>> = BTreeMap::new();
        // This batch's changes: their max op (for `check_lamport`).
        let mut batch_max: BTreeMap<ChangeHash, u64> = BTreeMap::new();
        let mut batch_last: BTreeMap<ActorId, ChangeHash> = BTreeMap::new();
        let mut walk_budget: usize = 1 << 20;
        let mut index = OpIndex::new(&self.working, &mut self.op_cache);
        // The candidates (the message's, then the held-back ones), each once.
        let mut pending: BTreeMap<ChangeHash, (ChangeInfo, bool)> = BTreeMap::new();
        let mut order = Vec::new();
        let candidates = chunks.into_iter().map(|c| (c, true)).chain(
            std::mem::take(&mut self.orphans)
                .into_iter()
                .map(|o| (o, false)),
        );
        for (c, from_message) in candidates {
            if !pending.contains_key(&c.hash)
                && self.working.get_change_meta_by_hash(&c.hash).is_none()
            {
                order.push(c.hash);
                pending.insert(c.hash, (c, from_message));
            }
        }
        // Topological (Kahn): a candidate is checked once every dependency
        // is in `working` or admitted; admitting it wakes its dependents.
        let mut missing: BTreeMap<ChangeHash, usize> = BTreeMap::new();
        let mut waiting: BTreeMap<ChangeHash, Vec<ChangeHash>> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::new();
        for h in &order {
            let c = &pending[h].0;
            let mut n = 0;
            for d in &c.deps {
                if self.working.get_change_meta_by_hash(d).is_none() {
                    waiting.entry(*d).or_default().push(*h);
                    n += 1;
                }
            }
            if n == 0 {
                queue.push_back(*h);
            } else {
                missing.insert(*h, n);
            }
        }
        while let Some(h) = queue.pop_front() {
            let Some((c, from_message)) = pending.remove(&h) else {
                continue;
            };
            let held = counts.get(&c.actor).copied().unwrap_or((0, 0));
            let verdict = check_seq(&c, held)
                .and_then(|()| check_lamport(&c, &batch_max, &self.working))
                .and_then(|()| check_actors(&c, &counts))
                .and_then(|()| match batch_last.get(&c.actor) {
                    Some(prev) => follows(&c, prev, &batch_deps, &mut walk_budget),
                    None => Ok(()),
                })
                .and_then(|()| {
                    index
                        .check(&c)
                        .map_err(|reason| ValidationError::BadChange {
                            hash: hex(&c.hash),
                            reason,
                        })
                });
            match verdict {
                Ok(()) => {
                    let max_op = (c.start_op + c.ops).saturating_sub(1).max(held.1);
                    counts.insert(c.actor.clone(), (c.seq, max_op));
                    batch_deps.insert(c.hash, c.deps.clone());
                    batch_max.insert(c.hash, (c.start_op + c.ops).saturating_sub(1));
                    batch_last.insert(c.actor.clone(), c.hash);
                    ready.push(c.change);
                    for w in waiting.remove(&h).unwrap_or_default() {
                        if let Some(n) = missing.get_mut(&w) {
                            *n -= 1;
                            if *n == 0 {
                                missing.remove(&w);
                                queue.push_back(w);
                            }
                        }
                    }
                }
                Err(e) if from_message => return Err(e),
                Err(e) => {
                    tracing::info!(doc = %self.id, error = %e, "dropping a held-back change")
                }
            }
        }
        let pending: Vec<(ChangeInfo, bool)> =
            order.iter().filter_map(|h| pending.remove(h)).collect();
        for (c, from_message) in pending {
            // An actor's change at or below what we hold can never apply.
            let held = counts.get(&c.actor).map_or(0, |h| h.0);
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
            // Held back for a while: its change suffices (a message's
            // operations take more memory decoded than encoded).
            let mut c = c;
            c.rows = None;
            self.orphans.push(c);
        }
        Ok(ready)
    }

    /// Check the held-back changes again after `working` gained changes
    /// some other way than a peer's message (another writer's records read
    /// from storage): those whose dependencies are all there now are
    /// returned, in a loadable order, to be loaded into `working` and
    /// committed like any peer's change. Without this they would wait for
    /// the next message carrying changes, which may never come: `rewrite_need`
    /// no longer asks for dependencies `working` holds, and the sender
    /// believes it has sent them.
    pub(super) fn readmit_orphans(&mut self, limits: &PeerLimits) -> Vec<Change> {
        if self.orphans.is_empty() {
            return Vec::new();
        }
        // Held-back changes only: `admit` drops (never refuses) those.
        self.admit(Vec::new(), limits).unwrap_or_default()
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

/// automerge registers an actor when it applies that actor's first change;
/// every other actor a change refers to must be registered by then.
fn check_actors(c: &ChangeInfo, counts: &Held) -> Result<(), ValidationError> {
    match c
        .others
        .iter()
        .find(|a| counts.get(*a).map_or(0, |h| h.0) == 0)
    {
        Some(a) => Err(ValidationError::BadChange {
            hash: hex(&c.hash),
            reason: format!("refers to actor {a}, which has no change here"),
        }),
        None => Ok(()),
    }
}

/// The seq automerge asserts, and operation ids that do not reuse the
/// actor's earlier ones.
fn check_seq(c: &ChangeInfo, (held, max_op): (u64, u64)) -> Result<(), ValidationError> {
    if c.author && c.seq != 1 {
        return Err(ValidationError::AuthorNotFirst {
            hash: hex(&c.hash),
            seq: c.seq,
        });
    }
    if c.seq != held + 1 {
        return Err(seq_gap(c, held));
    }
    if c.start_op <= max_op {
        return Err(ValidationError::BadChange {
            hash: hex(&c.hash),
            reason: format!(
                "starts at op {}, but its actor's previous change reached op {max_op}",
                c.start_op
            ),
        });
    }
    Ok(())
}

/// A change's operation ids are above every id in its history (automerge
/// makes `startOp` one more than the document's largest counter). automerge
/// orders operations by id and assumes this when it merges a batch; a change
/// reusing a counter its dependencies reached trips its assertions
/// (`batch.rs:136`). By induction over admitted changes, a dependency's own
/// max op bounds its whole history.
fn check_lamport(
    c: &ChangeInfo,
    batch_max: &BTreeMap<ChangeHash, u64>,
    working: &Automerge,
) -> Result<(), ValidationError> {
    for d in &c.deps {
        let max = match batch_max.get(d) {
            Some(m) => *m,
            None => working.get_change_meta_by_hash(d).map_or(0, |m| m.max_op),
        };
        if c.start_op <= max {
            return Err(ValidationError::BadChange {
                hash: hex(&c.hash),
                reason: format!(
                    "starts at op {}, but its dependency {d} reached op {max}",
                    c.start_op
                ),
            });
        }
    }
    Ok(())
}

/// automerge applies a batch in an order of its own choosing that respects
/// dependencies: an actor's change must therefore depend (transitively, within
/// the batch) on that actor's previous change in the batch, or its seq is
/// asserted out of order.
fn follows(
    c: &ChangeInfo,
    prev: &ChangeHash,
    batch_deps: &BTreeMap<ChangeHash, Vec<ChangeHash>>,
    budget: &mut usize,
) -> Result<(), ValidationError> {
    let mut seen = BTreeSet::new();
    let mut stack: Vec<ChangeHash> = c.deps.clone();
    while let Some(h) = stack.pop() {
        if h == *prev {
            return Ok(());
        }
        if !seen.insert(h) {
            continue;
        }
        *budget = budget
            .checked_sub(1)
            .ok_or_else(|| ValidationError::BadChange {
                hash: hex(&c.hash),
                reason: "dependency graph too large to check".into(),
            })?;
        if let Some(deps) = batch_deps.get(&h) {
            stack.extend(deps.iter().copied());
        }
    }
    Err(ValidationError::BadChange {
        hash: hex(&c.hash),
        reason: format!("does not depend on its actor's previous change {prev}"),
    })
}
