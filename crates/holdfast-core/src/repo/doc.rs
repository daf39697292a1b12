//! Per-document state: the Automerge document and its durable heads, the
//! queue of work waiting for a commit, and one sync state per connection.
//!
//! Invariants (checked by the simulation):
//! - The durable part of `working` (the ancestors of `durable_heads`, see
//!   [`super::durable`]) is exactly what storage holds: `durable_heads` only
//!   advances when a commit completes (to the heads that commit was cut at)
//!   or when records are read from storage.
//! - Sync messages are generated from that durable part only, so a peer
//!   never sees a head that is not on our disk.
//! - `working` = the durable part + changes not yet durable (local, or
//!   received); it is what the application reads and edits.
//! - Every queued [`Pending`] item is released only when the commit with id
//!   `tag` has completed; items are released in queue order.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use automerge::sync;
use automerge::{ActorId, Automerge, ChangeHash, ReadDoc};

use super::durable::{self, DurableDoc};

use super::ops_check::OpCache;
use super::seqs::SeqCache;
use super::types::{ChangeId, ConnId, FindId, RepoConfig, Timestamp};
use super::unwind::guarded;
use crate::id::DocumentId;
use crate::storage::{ChunkKind, RecordKind, StorageKey};
use crate::validate::ChangeInfo;
use crate::wire;

/// Where a document is in its life; each phase holds what only it needs.
///
/// `Loading` → `Ready` when storage answers; `Ready` → `Requesting` when a
/// `find` waits for peers (storage had nothing), and back when the document
/// arrives or the finds fail; `Ready`/`Requesting` → `Deleting` on
/// `delete`, which ends with the document forgotten (or back to `Ready` if
/// the delete's commit failed). Every phase but `Loading` is *loaded*: it
/// syncs, commits and serves reads.
pub(super) enum Phase {
    /// Waiting for storage; frames that arrive meanwhile wait here, in order.
    Loading {
        buffered: Vec<(ConnId, wire::Message)>,
    },
    /// Loaded.
    Ready,
    /// Loaded, not [findable](Doc::findable), and `finds` wait for a peer to
    /// send it. Invariant: `finds` is not empty.
    Requesting {
        /// The finds fail at this time.
        deadline: Timestamp,
        /// Connections that answered our request with `doc-unavailable`.
        unavailable: BTreeSet<ConnId>,
    },
    /// `delete` was called: once nothing is dirty or in flight, one commit
    /// removes every record under the document's prefix; `change` reports it.
    Deleting { change: ChangeId },
}

impl Phase {
    pub fn loading() -> Self {
        Phase::Loading {
            buffered: Vec::new(),
        }
    }
}

pub(super) enum Item {
    /// A local change (or creation/import), reported when durable.
    Local(ChangeId),
    /// A sync message whose changes are in `working` but not yet durable. It is
    /// fed to that peer's sync state (and answered) once they are durable.
    Remote { conn: ConnId, msg: sync::Message },
}

pub(super) struct Pending {
    /// The commit (batch id) that must complete before this item is released.
    pub tag: u64,
    pub item: Item,
}

pub(super) struct Doc {
    pub id: DocumentId,
    pub phase: Phase,
    /// Heads of the durable part of `working` (sorted).
    pub durable_heads: Vec<ChangeHash>,
    pub working: Automerge,
    /// Heads of `working` already handed to storage (in flight or complete).
    pub issued_heads: Vec<ChangeHash>,
    /// The batch id of the commit in flight that holds this document.
    pub in_flight: Option<u64>,
    pub items: VecDeque<Pending>,
    pub peers: BTreeMap<ConnId, sync::State>,
    /// Per peer: whether its advertised (durable) heads cover our working
    /// heads, as last reported in [`super::Event::SyncStatus`].
    pub covered: BTreeMap<ConnId, bool>,
    /// Durable chunk records of this document that we know of (loaded or
    /// written by us). Only these may be deleted by compaction.
    /// Each with its value's length.
    pub records: BTreeMap<StorageKey, usize>,
    pub want_snapshot: bool,
    /// Records covered by a durable snapshot, to delete in a later commit.
    pub pending_deletes: Vec<StorageKey>,
    /// Corrupt records to move aside in the next commit.
    pub quarantine: Vec<(StorageKey, Vec<u8>)>,
    /// Finds waiting for the document (loading, requesting, or deleting:
    /// those fail when it is gone).
    pub finds: Vec<FindId>,
    /// Peers' changes whose dependencies have not arrived (see `admit`).
    pub orphans: Vec<ChangeInfo>,
    pub seqs: SeqCache,
    /// Operations of changes admission looked up (see `ops_check`).
    pub op_cache: OpCache,
    /// When a peer last sent a message about it (eviction goes least
    /// recently used first).
    pub last_used: Timestamp,
    /// Another writer may have committed to it: read its records again
    /// once nothing of ours is on its way to storage (see `refresh`).
    pub refresh_wanted: bool,
    /// That read is in flight.
    pub refreshing: bool,
}

impl Doc {
    pub fn new(id: DocumentId, actor: &ActorId, phase: Phase) -> Self {
        Self {
            id,
            phase,
            working: Automerge::new().with_actor(actor.clone()),
            durable_heads: Vec::new(),
            issued_heads: Vec::new(),
            in_flight: None,
            items: VecDeque::new(),
            peers: BTreeMap::new(),
            covered: BTreeMap::new(),
            records: BTreeMap::new(),
            want_snapshot: false,
            pending_deletes: Vec::new(),
            quarantine: Vec::new(),
            finds: Vec::new(),
            orphans: Vec::new(),
            seqs: SeqCache::default(),
            op_cache: OpCache::default(),
            last_used: Timestamp(0),
            refresh_wanted: false,
            refreshing: false,
        }
    }

    /// Nothing but storage needs it in memory: no peer syncs it, no find
    /// waits for it, nothing is pending, in flight or waiting for deps.
    pub fn evictable(&self) -> bool {
        matches!(self.phase, Phase::Ready)
            && self.peers.is_empty()
            && self.finds.is_empty()
            && self.items.is_empty()
            && self.in_flight.is_none()
            && self.orphans.is_empty()
            && !self.needs_commit()
    }

    /// Storage has answered: every phase but `Loading`.
    pub fn loaded(&self) -> bool {
        !matches!(self.phase, Phase::Loading { .. })
    }

    /// The change reporting a delete in progress.
    pub fn deleting(&self) -> Option<ChangeId> {
        match self.phase {
            Phase::Deleting { change } => Some(change),
            _ => None,
        }
    }

    /// When the finds waiting for peers fail.
    pub fn find_deadline(&self) -> Option<Timestamp> {
        match self.phase {
            Phase::Requesting { deadline, .. } => Some(deadline),
            _ => None,
        }
    }

    /// Wait for peers until `deadline` (kept if already waiting), forgetting
    /// who said they lack it: the caller asks them again. A document being
    /// deleted or still loading stays as it is.
    pub fn request(&mut self, deadline: Timestamp) {
        match &mut self.phase {
            Phase::Ready => {
                self.phase = Phase::Requesting {
                    deadline,
                    unavailable: BTreeSet::new(),
                }
            }
            Phase::Requesting { unavailable, .. } => unavailable.clear(),
            Phase::Loading { .. } | Phase::Deleting { .. } => {}
        }
    }

    /// The finds are settled: stop waiting for peers.
    pub fn stop_requesting(&mut self) {
        if matches!(self.phase, Phase::Requesting { .. }) {
            self.phase = Phase::Ready;
        }
    }

    /// Forget connection `conn` in the phase's state.
    pub fn forget_conn(&mut self, conn: ConnId) {
        match &mut self.phase {
            Phase::Loading { buffered } => buffered.retain(|(c, _)| *c != conn),
            Phase::Requesting { unavailable, .. } => {
                unavailable.remove(&conn);
            }
            Phase::Ready | Phase::Deleting { .. } => {}
        }
    }

    /// Nothing here at all, durable or pending.
    pub fn is_empty(&self) -> bool {
        self.durable_heads.is_empty()
            && self.working.get_heads().is_empty()
            && self.in_flight.is_none()
    }

    /// Whether a `find` may report the document: it has durable content, or
    /// it was created here (the application's own, still-pending state).
    pub fn findable(&self) -> bool {
        !self.durable_heads.is_empty()
            || self.items.iter().any(|p| matches!(p.item, Item::Local(_)))
    }

    pub fn dirty(&self) -> bool {
        self.working.get_heads() != self.issued_heads
    }

    pub fn needs_commit(&self) -> bool {
        self.loaded()
            && (self.dirty()
                || (self.deleting().is_some() && self.in_flight.is_none())
                || self.want_snapshot
                || !self.pending_deletes.is_empty()
                || !self.quarantine.is_empty())
    }

    /// The commit after which `working`'s present state is durable: `None`
    /// when it already is.
    pub fn barrier(&self, next_batch: u64) -> Option<u64> {
        if self.dirty() {
            Some(next_batch)
        } else {
            self.in_flight
        }
    }

    /// The tag for a message from `conn` that carries no changes: it must not
    /// overtake that connection's earlier messages.
    pub fn conn_tag(&self, conn: ConnId) -> Option<u64> {
        self.items
            .iter()
            .rev()
            .find(|p| matches!(p.item, Item::Remote { conn: c, .. } if c == conn))
            .map(|p| p.tag)
    }

    /// Items whose commit `batch` has completed, in queue order.
    pub fn take_released(&mut self, batch: u64) -> Vec<Item> {
        let mut out = Vec::new();
        let mut keep = VecDeque::with_capacity(self.items.len());
        for p in self.items.drain(..) {
            if p.tag <= batch {
                out.push(p.item);
            } else {
                keep.push_back(p);
            }
        }
        self.items = keep;
        out
    }

    /// Forget every peer's sync progress so that they resend what we lack.
    /// The next message we send carries empty heads, automerge's "I lost my
    /// data" signal: the peer clears what it thinks it sent us and answers
    /// with its heads. (The newer SYNC_RESET flag is not used: with our heads
    /// unchanged it makes the peer conclude it has nothing to answer, and we
    /// would wait forever for its heads.)
    pub fn reset_sync_states(&mut self) {
        for state in self.peers.values_mut() {
            let mut fresh = sync::State::new();
            fresh.needs_reset = true;
            *state = fresh;
        }
    }

    /// Whether this document's records call for a snapshot: many
    /// incremental records, or more incremental bytes than snapshot bytes.
    pub fn wants_compaction(&self, cfg: &RepoConfig) -> bool {
        let (mut count, mut incremental, mut snapshot) = (0, 0, 0);
        for (key, len) in &self.records {
            match key.kind() {
                RecordKind::Chunk(ChunkKind::Incremental) => {
                    count += 1;
                    incremental += len;
                }
                RecordKind::Chunk(ChunkKind::Snapshot) => snapshot += len,
                _ => {}
            }
        }
        count >= cfg.compact_after || incremental > snapshot.max(cfg.compact_bytes)
    }

    /// A snapshot may only replace records whose changes are all applied:
    /// `save` leaves out changes still waiting for their dependencies.
    pub fn can_snapshot(&self) -> bool {
        self.working.get_missing_deps(&[]).is_empty()
    }

    /// The durable part of `working`.
    pub fn durable(&self) -> DurableDoc<'_> {
        DurableDoc::new(&self.working, &self.durable_heads)
    }

    /// Return `working` to `heads` (which it holds), dropping every change
    /// that is not their ancestor. `Err`: automerge failed or panicked
    /// rebuilding it (see `guard`); `working` is then unchanged.
    pub fn rewind(&mut self, heads: &[ChangeHash]) -> Result<(), String> {
        if self.working.get_heads() == heads {
            return Ok(());
        }
        let actor = self.working.get_actor().clone();
        let working = &self.working;
        self.working =
            guarded(|| durable::rewound(working, heads, actor))?.map_err(|e| e.to_string())?;
        Ok(())
    }

    /// Whether `theirs` (a peer's advertised heads) covers every one of our
    /// working heads, i.e. all our changes are in the peer's history.
    pub fn covered_by(&self, theirs: Option<&[ChangeHash]>) -> bool {
        let Some(theirs) = theirs else { return false };
        let ours = self.working.get_heads();
        if ours.iter().all(|h| theirs.contains(h)) {
            return true;
        }
        let known: Vec<ChangeHash> = theirs
            .iter()
            .filter(|h| self.working.get_change_meta_by_hash(h).is_some())
            .copied()
            .collect();
        if known.is_empty() {
            return false;
        }
        // Changes outside the history of their heads: none may be ours.
        !self
            .working
            .get_changes_meta(&known)
            .iter()
            .any(|c| ours.contains(&c.hash))
    }

    /// Take a peer's sync message into its sync state (its changes are
    /// already durable). Returns false if the peer is gone.
    ///
    /// The message is taken without its changes: they are in `working`
    /// already and durable. For the sync state the only difference is
    /// `shared_heads`, then taken from the message's heads (all known once
    /// the changes are here).
    ///
    /// A message that carried changes is always answered with our heads: that
    /// answer is the acknowledgement the peer waits for ("on server").
    /// automerge skips it when the peer earlier told us our own heads, which
    /// after a sync-state reset leaves the peer without our heads forever.
    pub fn feed(&mut self, conn: ConnId, msg: sync::Message) -> bool {
        let Some(state) = self.peers.get_mut(&conn) else {
            return false;
        };
        let carried = !msg.changes.is_empty();
        let sent = state.last_sent_heads.clone();
        let peer_lost_all = msg.heads.is_empty();
        let msg = sync::Message {
            changes: sync::ChunkList::empty(),
            ..msg
        };
        durable::receive(&self.working, &self.durable_heads, state, msg);
        if carried {
            state.last_sent_heads.clear();
        } else if !peer_lost_all {
            // automerge records the peer's heads as "sent" when they equal
            // ours, assuming the peer knows we have them. After we reset
            // (and advertised no heads) it does not: keep what we really
            // sent, so that our heads go out if they differ from it.
            state.last_sent_heads = sent;
        }
        true
    }

    /// The next sync message for `conn`, from the durable part. `Err`:
    /// automerge panicked on the peer's state (see `guard`).
    pub fn generate(&mut self, conn: ConnId) -> Result<Option<sync::Message>, String> {
        let Some(state) = self.peers.get_mut(&conn) else {
            return Ok(None);
        };
        let (working, heads) = (&self.working, &self.durable_heads);
        let Some(mut msg) = guarded(|| durable::generate(working, heads, state))? else {
            return Ok(None);
        };
        self.rewrite_need(&mut msg.need);
        // automerge's encoder asserts (in debug builds) that every hash list
        // is sorted; some of them echo what a peer sent.
        for list in [&mut msg.heads, &mut msg.need]
            .into_iter()
            .chain(msg.have.iter_mut().map(|h| &mut h.last_sync))
        {
            list.sort();
            list.dedup();
        }
        // No flags section (`durable::generate` sets none): the peer takes us
        // for a v1 peer and never sends a whole document (a v2 message),
        // which holdfast does not accept from peers
        // (`validate::ChunkError::Document`).
        let state = self.peers.get_mut(&conn).expect("present above");
        // Record the heads actually sent: a reset message carries empty heads
        // while the state records our real ones, and would then never send
        // them (it believes the peer has them).
        state.last_sent_heads.clone_from(&msg.heads);
        Ok(Some(msg))
    }
}
