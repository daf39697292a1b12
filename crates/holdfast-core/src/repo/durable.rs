//! The durable document as a view: `working` read at the durable heads.
//!
//! A document is held once. Storage holds exactly the changes that are
//! ancestors of (or equal to) `durable_heads`; `working` holds those and the
//! changes not yet durable. Sync messages are generated from that durable
//! part only, so a peer is never told of a change that is not on our disk.
//!
//! automerge's sync algorithm (0.12, `sync.rs`) works on a whole document, so
//! [`generate`] and [`receive`] run it here over the view: the same steps,
//! with "our heads" the durable heads and "we have h" meaning h is durable.
//! It never sends a whole document (a v2 message): holdfast peers neither
//! send nor accept those.
//!
//! Invariants:
//! - `durable_heads` are heads of changes `working` holds, and every change
//!   that is not their ancestor is on its way to storage (or dropped by
//!   rewinding `working` to them).
//! - A message from [`generate`] names and carries only durable changes: its
//!   heads are the durable heads, its Bloom filter holds durable hashes only.

use std::collections::{BTreeSet, HashMap, HashSet};

use automerge::sync::{self, BloomFilter, Have, MessageFlags};
use automerge::{ActorId, Automerge, AutomergeError, Change, ChangeHash, ReadDoc};

/// `doc` read as it is on disk: at `heads`.
#[derive(Clone, Copy)]
pub struct DurableDoc<'a> {
    doc: &'a Automerge,
    heads: &'a [ChangeHash],
}

impl<'a> DurableDoc<'a> {
    pub(super) fn new(doc: &'a Automerge, heads: &'a [ChangeHash]) -> Self {
        Self { doc, heads }
    }

    /// The durable heads, sorted.
    pub fn get_heads(&self) -> Vec<ChangeHash> {
        self.heads.to_vec()
    }

    /// The whole document (with what is not yet durable); read it at
    /// [`Self::get_heads`] for the durable state.
    pub fn working(&self) -> &'a Automerge {
        self.doc
    }

    /// Whether nothing of `working` is beyond the durable heads.
    pub fn is_current(&self) -> bool {
        self.doc.get_heads() == self.heads
    }

    /// The changes of `working` that are not durable.
    pub fn pending(&self) -> HashSet<ChangeHash> {
        pending(self.doc, self.heads)
    }

    /// Whether `hash` is durable.
    pub fn has_change(&self, hash: &ChangeHash) -> bool {
        self.doc.get_change_meta_by_hash(hash).is_some()
            && (self.is_current() || !self.pending().contains(hash))
    }

    /// Whether every one of `hashes` is durable.
    pub fn has_all(&self, hashes: &[ChangeHash]) -> bool {
        let pending = self.pending();
        hashes
            .iter()
            .all(|h| !pending.contains(h) && self.doc.get_change_meta_by_hash(h).is_some())
    }

    /// A durable change.
    pub fn get_change_by_hash(&self, hash: &ChangeHash) -> Option<Change> {
        self.has_change(hash)
            .then(|| self.doc.get_change_by_hash(hash))
            .flatten()
    }

    /// The durable state on its own (a copy, built by replaying its changes
    /// unless nothing is pending).
    pub fn to_automerge(&self) -> Result<Automerge, AutomergeError> {
        if self.is_current() {
            Ok(self.doc.clone())
        } else {
            rewound(self.doc, self.heads, self.doc.get_actor().clone())
        }
    }

    /// The durable history, loadable by `Automerge::load`.
    pub fn save(&self) -> Vec<u8> {
        if self.is_current() {
            self.doc.save()
        } else {
            self.to_automerge().map(|d| d.save()).unwrap_or_default()
        }
    }
}

/// `doc` as it was at `heads` (which it holds), with `actor`.
pub(super) fn rewound(
    doc: &Automerge,
    heads: &[ChangeHash],
    actor: ActorId,
) -> Result<Automerge, AutomergeError> {
    Ok(doc.fork_at(heads)?.with_actor(actor))
}

/// Changes of `doc` that are not ancestors of `heads` (nor among them).
fn pending(doc: &Automerge, heads: &[ChangeHash]) -> HashSet<ChangeHash> {
    if doc.get_heads() == heads {
        return HashSet::new();
    }
    doc.get_changes_meta(heads).iter().map(|c| c.hash).collect()
}

/// What the view needs at hand for one call.
struct View<'a> {
    doc: &'a Automerge,
    pending: HashSet<ChangeHash>,
}

impl<'a> View<'a> {
    fn new(doc: &'a Automerge, heads: &'a [ChangeHash]) -> Self {
        let pending = pending(doc, heads);
        Self { doc, pending }
    }

    fn has(&self, h: &ChangeHash) -> bool {
        !self.pending.contains(h) && self.doc.get_change_meta_by_hash(h).is_some()
    }

    /// Durable changes that are not ancestors of `since`, in the document's
    /// order (dependencies first), each with its dependencies.
    fn since(&self, since: &[ChangeHash]) -> Vec<(ChangeHash, Vec<ChangeHash>)> {
        self.doc
            .get_changes_meta(since)
            .into_iter()
            .filter(|c| !self.pending.contains(&c.hash))
            .map(|c| (c.hash, c.deps))
            .collect()
    }

    fn bloom(&self, last_sync: Vec<ChangeHash>) -> Have {
        let hashes: Vec<ChangeHash> = self.since(&last_sync).into_iter().map(|c| c.0).collect();
        Have {
            last_sync,
            bloom: BloomFilter::from_hashes(hashes.iter()),
        }
    }

    /// automerge's `get_hashes_to_send` over the durable changes.
    fn hashes_to_send(&self, have: &[Have], need: &[ChangeHash]) -> Vec<ChangeHash> {
        // Each once (automerge 0.12 panicked rebuilding a change asked for
        // twice: fuzz/regressions/collector-788-need-twice.txt).
        let mut seen = HashSet::new();
        let need: Vec<ChangeHash> = need
            .iter()
            .filter(|h| seen.insert(**h) && self.has(h))
            .copied()
            .collect();
        if have.is_empty() {
            return need;
        }
        let changes = self.since(&last_sync(have));
        let mut dependents: HashMap<ChangeHash, Vec<ChangeHash>> = HashMap::new();
        let mut to_send = HashSet::new();
        for (hash, deps) in &changes {
            for dep in deps {
                dependents.entry(*dep).or_default().push(*hash);
            }
            if have.iter().all(|h| !h.bloom.contains_hash(hash)) {
                to_send.insert(*hash);
            }
        }
        let mut stack: Vec<ChangeHash> = to_send.iter().copied().collect();
        while let Some(hash) = stack.pop() {
            for dep in dependents.get(&hash).into_iter().flatten() {
                if to_send.insert(*dep) {
                    stack.push(*dep);
                }
            }
        }
        let mut out: Vec<ChangeHash> = need.into_iter().filter(|h| !to_send.contains(h)).collect();
        out.extend(changes.iter().map(|c| c.0).filter(|h| to_send.contains(h)));
        out
    }
}

/// The next sync message for a peer whose state is `state`, from the durable
/// part of `doc` (`heads`): automerge's `generate_sync_message` over the view.
/// A reset (`state.needs_reset`) is sent as empty heads, never as the
/// `SYNC_RESET` flag (see `Doc::reset_sync_states`); no flags are sent.
pub(super) fn generate(
    doc: &Automerge,
    heads: &[ChangeHash],
    state: &mut sync::State,
) -> Option<sync::Message> {
    let view = View::new(doc, heads);
    let our_heads = heads.to_vec();
    // The peer's heads we lack. (automerge also walks through the changes it
    // queues for missing dependencies; holdfast holds those back itself, see
    // `admit`, and `Doc::rewrite_need` asks for what they miss.)
    let mut our_need: Vec<ChangeHash> = if state.read_only {
        Vec::new()
    } else {
        state
            .their_heads
            .iter()
            .flatten()
            .filter(|h| doc.get_change_meta_by_hash(h).is_none())
            .copied()
            .collect()
    };
    our_need.sort();
    our_need.dedup();
    let their_heads: HashSet<&ChangeHash> = state.their_heads.iter().flatten().collect();
    let our_have = if our_need.iter().all(|h| their_heads.contains(h)) {
        vec![view.bloom(state.shared_heads.clone())]
    } else {
        Vec::new()
    };
    if let Some(first) = state.their_have.as_ref().and_then(|h| h.first()) {
        if !first.last_sync.iter().all(|h| view.has(h)) {
            return Some(sync::Message {
                heads: our_heads,
                need: Vec::new(),
                have: vec![Have::default()],
                changes: sync::ChunkList::empty(),
                flags: None,
                version: sync::MessageVersion::V1,
            });
        }
    }
    let mut hashes = Vec::new();
    if !state.is_peer_read_only() {
        if let (Some(have), Some(need)) = (&state.their_have, &state.their_need) {
            hashes = view
                .hashes_to_send(have, need)
                .into_iter()
                .filter(|h| !state.sent_hashes.contains(h))
                .collect();
        }
    }
    let changes = change_bytes(doc, state.their_have.as_deref(), &hashes)?;
    let heads_unchanged = state.last_sent_heads == our_heads;
    let heads_equal = state.their_heads.as_ref() == Some(&our_heads);
    if heads_unchanged && state.have_responded {
        if (heads_equal || state.read_only) && changes.is_empty() {
            return None;
        }
        if state.in_flight {
            return None;
        }
    }
    state.have_responded = true;
    state.last_sent_heads.clone_from(&our_heads);
    state.sent_hashes.extend(hashes);
    let heads_to_send = if std::mem::take(&mut state.needs_reset) {
        Vec::new()
    } else {
        our_heads
    };
    state.in_flight = true;
    Some(sync::Message {
        heads: heads_to_send,
        need: our_need,
        have: our_have,
        changes: changes.into(),
        flags: None,
        version: sync::MessageVersion::V1,
    })
}

/// Every hash the peer's filters were built since, once each.
fn last_sync(have: &[Have]) -> Vec<ChangeHash> {
    let all: BTreeSet<ChangeHash> = have
        .iter()
        .flat_map(|h| h.last_sync.iter().copied())
        .collect();
    all.into_iter().collect()
}

/// The bytes of `hashes`, in that order. automerge rebuilds changes from its
/// columns, one pass over the operations per call, so those after the
/// peer's `last_sync` are rebuilt in one call (as automerge's own sync
/// does); a change only named in the peer's `need` (and all of them when it
/// sent no Bloom filter) is rebuilt alone.
fn change_bytes(
    doc: &Automerge,
    have: Option<&[Have]>,
    hashes: &[ChangeHash],
) -> Option<Vec<Vec<u8>>> {
    let mut built: HashMap<ChangeHash, Change> = HashMap::new();
    let have = have.unwrap_or_default();
    if hashes.len() > 1 && !have.is_empty() {
        let since = last_sync(have);
        let wanted: HashSet<&ChangeHash> = hashes.iter().collect();
        built = doc
            .get_changes(&since)
            .into_iter()
            .filter(|c| wanted.contains(&c.hash()))
            .map(|c| (c.hash(), c))
            .collect();
    }
    hashes
        .iter()
        .map(|h| match built.get(h) {
            Some(c) => Some(c.raw_bytes().to_vec()),
            None => Some(doc.get_change_by_hash(h)?.raw_bytes().to_vec()),
        })
        .collect()
}

/// Take a peer's message into its sync state, as automerge's
/// `receive_sync_message` does, for a message whose changes (if it carried
/// any) are durable already: nothing is applied here.
pub(super) fn receive(
    doc: &Automerge,
    heads: &[ChangeHash],
    state: &mut sync::State,
    msg: sync::Message,
) {
    let view = View::new(doc, heads);
    state.in_flight = false;
    if let Some(flags) = msg.flags {
        if flags.contains(MessageFlags::SYNC_RESET) {
            state.sent_hashes.clear();
        }
        state.peer_read_only = flags.contains(MessageFlags::READ_ONLY);
    }
    // Hashes we sent that the peer's heads show it has need not be sent again.
    let known: Vec<ChangeHash> = msg
        .heads
        .iter()
        .filter(|h| doc.get_change_meta_by_hash(h).is_some())
        .copied()
        .collect();
    if !state.sent_hashes.is_empty() && !known.is_empty() {
        let after: HashSet<ChangeHash> = doc
            .get_changes_meta(&known)
            .iter()
            .map(|c| c.hash)
            .collect();
        state.sent_hashes.retain(|h| after.contains(h));
    }
    if msg.changes.is_empty() && msg.heads == heads {
        state.last_sent_heads.clone_from(&msg.heads);
    }
    let durable: Vec<ChangeHash> = msg.heads.iter().filter(|h| view.has(h)).copied().collect();
    if durable.len() == msg.heads.len() {
        state.shared_heads.clone_from(&msg.heads);
        if msg.heads.is_empty() {
            // The peer lost everything: start over.
            state.last_sent_heads = Vec::new();
            state.sent_hashes = BTreeSet::new();
        }
    } else {
        let mut shared: Vec<ChangeHash> =
            state.shared_heads.iter().chain(&durable).copied().collect();
        shared.sort();
        shared.dedup();
        state.shared_heads = shared;
    }
    state.their_have = Some(msg.have);
    state.their_heads = Some(msg.heads);
    state.their_need = Some(msg.need);
}
