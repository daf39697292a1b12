//! The repo: a sans-IO state machine that holds Automerge documents, syncs
//! them with peers and persists them, reporting nothing before it is durable.
//!
//! Driving it: call the input methods ([`Repo::connected`], [`Repo::frame`],
//! [`Repo::load_done`], [`Repo::commit_done`], [`Repo::handle_timeout`], and
//! the local operations [`Repo::create`], [`Repo::change`], [`Repo::find`],
//! ...) with the current time, then drain [`Repo::poll_effect`] until it
//! returns `None`, performing each effect and feeding its completion back.
//! Arm a timer for [`Repo::poll_timeout`].
//!
//! Group commit: at most one [`Effect::Commit`] is in flight. Everything that
//! becomes pending meanwhile, and everything made before the effects are
//! drained, goes into the next single commit, which is built when the effect
//! queue runs dry. Each local change is reported when the commit holding it
//! completes.

mod access;
mod admit;
mod collection;
mod commit;
mod conn_limits;
mod doc;
mod docs;
mod durable;
mod evict;
mod exchange;
mod guard;
mod load;
mod net;
mod notify;
mod ops_check;
mod parked;
mod refresh;
mod seqs;
mod sync;
pub mod types;
mod unwind;
mod wanted;

use std::collections::{BTreeMap, VecDeque};

use automerge::transaction::{CommitOptions, Transaction};
use automerge::{ActorId, Automerge, ChangeHash};

use crate::id::DocumentId;
use crate::storage::{StorageKey, StorageReset};
use crate::wire::PeerId;
use doc::{Doc, Item, Pending, Phase};
pub use durable::DurableDoc;
pub use types::*;

pub struct Repo {
    cfg: RepoConfig,
    actor: ActorId,
    now: Timestamp,
    docs: docs::Docs,
    conns: BTreeMap<ConnId, net::Conn>,
    effects: VecDeque<Effect>,
    loads: BTreeMap<TaskId, DocumentId>,
    in_flight: Option<commit::InFlight>,
    /// The batch id the next commit will carry. Batch ids only grow.
    next_batch: u64,
    next_task: u64,
    next_change: u64,
    next_find: u64,
    ephemeral_seen: BTreeMap<(PeerId, String), u64>,
    ephemeral_count: u64,
    /// The store lost data it had once made durable: a document found
    /// nowhere fails with [`FindError::Lost`], not `Unavailable`.
    reset: Option<StorageReset>,
    /// The collection index and exchange (off until `restore_collection`).
    collection: collection::Collection,
    /// Frames received that decoded, per message type (for metrics).
    received: crate::vecmap::VecMap<&'static str, u64>,
    /// Sync states of peers that disconnected (a server's only).
    parked: parked::Parked,
    /// When connections' access expires (see `access`).
    expiries: std::collections::BTreeSet<(Timestamp, ConnId)>,
    /// Refusals of peers' messages under `ConnLimits`, per reason.
    refused: crate::vecmap::VecMap<&'static str, u64>,
    /// Eviction (see `evict`): documents evicted, and the count below which
    /// no scan runs.
    evicted: u64,
    evict_floor: usize,
    /// Documents picked for eviction, the least recently used last.
    evict_queue: Vec<(Timestamp, DocumentId)>,
    /// When documents' finds stop waiting for peers, earliest first. May
    /// hold stale entries (a document that found or left since): each costs
    /// one early `handle_timeout`, which drops it. Kept so that
    /// `poll_timeout` does not scan every document held.
    find_deadlines: std::collections::BTreeSet<(Timestamp, DocumentId)>,
    /// Peers waiting for documents nobody stores here (see `wanted`).
    wanted: wanted::Wanted,
    /// Reads of documents' records again for another writer's commits
    /// (see `refresh`), by task, with the records known when each started.
    refreshes: BTreeMap<TaskId, (DocumentId, Vec<StorageKey>)>,
}

impl Repo {
    pub fn new(cfg: RepoConfig) -> Self {
        Self {
            actor: ActorId::from(cfg.actor_id),
            cfg,
            now: Timestamp(0),
            docs: docs::Docs::default(),
            conns: BTreeMap::new(),
            effects: VecDeque::new(),
            loads: BTreeMap::new(),
            in_flight: None,
            next_batch: 1,
            next_task: 1,
            next_change: 1,
            next_find: 1,
            ephemeral_seen: BTreeMap::new(),
            ephemeral_count: 0,
            reset: None,
            collection: collection::Collection::default(),
            received: Default::default(),
            parked: parked::Parked::default(),
            expiries: Default::default(),
            refused: Default::default(),
            evicted: 0,
            evict_floor: 0,
            evict_queue: Vec::new(),
            find_deadlines: Default::default(),
            wanted: Default::default(),
            refreshes: BTreeMap::new(),
        }
    }

    pub fn config(&self) -> &RepoConfig {
        &self.cfg
    }

    /// How many frames of each message type arrived (and decoded) so far.
    pub fn received(&self) -> &crate::vecmap::VecMap<&'static str, u64> {
        &self.received
    }

    /// How often a peer's message was refused under
    /// [`RepoConfig::conn_limits`], per reason.
    pub fn refused(&self) -> &crate::vecmap::VecMap<&'static str, u64> {
        &self.refused
    }

    /// The next effect to perform. When nothing else is queued, this builds
    /// the next group commit if none is in flight and work is pending.
    pub fn poll_effect(&mut self) -> Option<Effect> {
        if self.effects.is_empty() {
            self.flush();
            self.evict_idle();
        }
        self.effects.pop_front()
    }

    /// The earliest time [`Repo::handle_timeout`] should be called.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        let finds = self.find_deadlines.first().map(|(t, _)| *t);
        // Picked documents left to evict: the next turn drops more.
        let evicting = self.eviction_pending().then_some(self.now);
        finds
            .into_iter()
            .chain(evicting)
            .chain(self.collection.due)
            .chain(self.next_expiry())
            .min()
    }

    pub fn handle_timeout(&mut self, now: Timestamp) {
        self.now = now;
        if self.collection.due.is_some_and(|t| t <= now) {
            self.collection.force();
        }
        while let Some(&(t, id)) = self.find_deadlines.first().filter(|(t, _)| *t <= now) {
            self.find_deadlines.remove(&(t, id));
            let due = self.docs.get(&id).and_then(Doc::find_deadline);
            if due.is_some_and(|t| t <= now) {
                self.fail_finds(id, self.unavailable());
            }
        }
        self.expire_access(now);
    }

    /// The storage adapter found that its store lost data it had made
    /// durable (see [`StorageReset`]). From now on a document that neither
    /// storage nor any peer has fails its find with [`FindError::Lost`].
    /// Peers still serve what they hold: a find asks them as before.
    pub fn storage_reset(&mut self, reset: StorageReset) {
        self.reset = Some(reset);
    }

    /// The reset last reported by [`Repo::storage_reset`].
    pub fn reset(&self) -> Option<&StorageReset> {
        self.reset.as_ref()
    }

    /// Why a document neither storage nor any peer has cannot be found.
    fn unavailable(&self) -> FindError {
        match &self.reset {
            Some(r) => FindError::Lost(r.clone()),
            None => FindError::Unavailable,
        }
    }

    /// The document as the application sees it: durable state plus local and
    /// received changes that are not yet durable.
    pub fn doc(&self, id: &DocumentId) -> Option<&Automerge> {
        self.docs.get(id).filter(|d| d.loaded()).map(|d| &d.working)
    }

    /// The document as it is on disk: a view of [`Self::doc`] at its
    /// durable heads.
    pub fn durable_doc(&self, id: &DocumentId) -> Option<DurableDoc<'_>> {
        self.docs
            .get(id)
            .filter(|d| d.loaded())
            .map(|d| d.durable())
    }

    pub fn documents(&self) -> impl Iterator<Item = &DocumentId> {
        self.docs.keys()
    }

    /// Create a document with id `id` (random bytes the caller drew) and run
    /// `init` on it as its first change. An `init` that writes nothing still
    /// produces an (empty) first change, so the document has heads.
    pub fn create<F, E>(
        &mut self,
        now: Timestamp,
        id: DocumentId,
        init: F,
    ) -> Result<ChangeId, ChangeError>
    where
        F: FnOnce(&mut Transaction<'_>) -> Result<(), E>,
        E: std::fmt::Display,
    {
        self.now = now;
        if self.docs.contains_key(&id) {
            return Err(ChangeError::AlreadyExists(id.to_string()));
        }
        let mut doc = Doc::new(id, &self.actor, Phase::Ready);
        match doc.working.transact_with(|_| self.commit_options(), init) {
            Ok(ok) if ok.hash.is_some() => {}
            Ok(_) => {
                doc.working.empty_commit(self.commit_options());
            }
            Err(f) => return Err(ChangeError::Rejected(f.error.to_string())),
        }
        self.docs.insert(id, doc);
        self.adopt_askers(id);
        Ok(self.queue_local(id))
    }

    /// Apply `f` to the working document now; the returned [`ChangeId`] is
    /// reported by [`Event::ChangeDurable`] or [`Event::ChangeFailed`]. An `f`
    /// that writes nothing is reported once everything before it is durable.
    pub fn change<F, O, E>(
        &mut self,
        now: Timestamp,
        id: &DocumentId,
        f: F,
    ) -> Result<(ChangeId, O), ChangeError>
    where
        F: FnOnce(&mut Transaction<'_>) -> Result<O, E>,
        E: std::fmt::Display,
    {
        self.now = now;
        let opts = self.commit_options();
        let doc = self.ready_doc(id)?;
        let out = doc
            .working
            .transact_with(|_| opts, f)
            .map_err(|f| ChangeError::Rejected(f.error.to_string()))?;
        Ok((self.queue_local(*id), out.result))
    }

    /// Merge saved document bytes (from `export`, or automerge's `save`) into
    /// document `id`, creating it if absent.
    pub fn import(
        &mut self,
        now: Timestamp,
        id: DocumentId,
        bytes: &[u8],
    ) -> Result<ChangeId, ChangeError> {
        self.now = now;
        let check =
            Automerge::load(bytes).map_err(|e| ChangeError::InvalidDocument(e.to_string()))?;
        match self.docs.get(&id) {
            Some(d) if !d.loaded() => return Err(ChangeError::Loading(id.to_string())),
            Some(_) => {}
            None => {
                self.docs
                    .insert(id, Doc::new(id, &self.actor, Phase::Ready));
                self.adopt_askers(id);
            }
        }
        let doc = self.docs.get_mut(&id).expect("present");
        let changes = check.get_changes(&[]);
        doc.working
            .apply_changes(changes)
            .map_err(|e| ChangeError::InvalidDocument(e.to_string()))?;
        Ok(self.queue_local(id))
    }

    /// Delete document `id` from storage (every record under its prefix,
    /// including ones this repo never loaded) once its pending changes are
    /// durable, and forget it. Reported like a change; further changes are
    /// refused with [`ChangeError::Deleting`] meanwhile and
    /// [`ChangeError::NotFound`] once it is gone.
    pub fn delete(&mut self, now: Timestamp, id: &DocumentId) -> Result<ChangeId, ChangeError> {
        self.now = now;
        let change = ChangeId(self.next_change);
        let doc = self.ready_doc(id)?;
        doc.phase = Phase::Deleting { change };
        self.next_change += 1;
        Ok(change)
    }

    /// The heads peer `conn` last advertised for document `id` (durable on
    /// that peer, if it is a holdfast peer).
    pub fn peer_heads(&self, id: &DocumentId, conn: ConnId) -> Option<Vec<ChangeHash>> {
        self.docs.get(id)?.peers.get(&conn)?.their_heads.clone()
    }

    /// A one-line summary of a document's internal state, for diagnostics.
    pub fn debug_doc(&self, id: &DocumentId) -> String {
        let Some(d) = self.docs.get(id) else {
            return "absent".into();
        };
        let items: Vec<String> = d
            .items
            .iter()
            .map(|p| match &p.item {
                Item::Local(c) => format!("local{}@{}", c.0, p.tag),
                Item::Remote { conn, msg } => {
                    format!("remote{}({} chunks)@{}", conn.0, msg.changes.len(), p.tag)
                }
            })
            .collect();
        let peers: Vec<String> = d
            .peers
            .iter()
            .map(|(c, s)| {
                format!(
                    "{}: their={:?} in_flight={} responded={}",
                    c.0,
                    s.their_heads.as_ref().map(|h| h.len()),
                    s.in_flight,
                    s.have_responded
                )
            })
            .collect();
        format!(
            "ready={} dirty={} in_flight={:?} next_batch={} items={items:?} peers={peers:?} finds={}",
            d.loaded(),
            d.dirty(),
            d.in_flight,
            self.next_batch,
            d.finds.len()
        )
    }

    /// No commit in flight and nothing waiting to be committed.
    pub fn is_idle(&self) -> bool {
        self.in_flight.is_none() && !self.docs.any_needs_commit() && !self.collection.needs_commit()
    }

    /// The document's complete durable history, loadable by `Automerge::load`.
    pub fn export(&self, id: &DocumentId) -> Option<Vec<u8>> {
        self.durable_doc(id).map(|d| d.save())
    }

    /// Open a document: from memory, else from storage, else from peers.
    /// Answered by [`Event::FindReady`] or [`Event::FindFailed`].
    pub fn find(&mut self, now: Timestamp, id: DocumentId) -> FindId {
        self.now = now;
        let find = FindId(self.next_find);
        self.next_find += 1;
        let deadline = now.plus_ms(self.cfg.find_timeout_ms);
        match self.docs.get_mut(&id) {
            Some(doc) if doc.loaded() && doc.findable() => {
                self.effects
                    .push_back(Effect::Event(Event::FindReady { find, doc: id }));
            }
            Some(doc) => {
                doc.finds.push(find);
                // The wait for peers starts once storage said "not here"
                // (for a loading document: in `load_done`).
                if doc.loaded() {
                    self.start_requesting(id, deadline);
                }
            }
            None => {
                let mut doc = Doc::new(id, &self.actor, Phase::loading());
                doc.finds.push(find);
                self.docs.insert(id, doc);
                self.load(id);
            }
        }
        find
    }

    /// Send an ephemeral message about `id` to the peers syncing it.
    pub fn broadcast(&mut self, now: Timestamp, id: DocumentId, data: Vec<u8>) {
        self.now = now;
        self.ephemeral_count += 1;
        let (count, session) = (self.ephemeral_count, self.cfg.session_id.clone());
        let sender = self.cfg.peer_id.clone();
        self.send_ephemeral(id, None, &sender, &session, count, &data);
    }

    fn commit_options(&self) -> CommitOptions {
        CommitOptions::default().with_time((self.now.0 / 1000) as i64)
    }

    fn ready_doc(&mut self, id: &DocumentId) -> Result<&mut Doc, ChangeError> {
        match self.docs.get_mut(id) {
            Some(d) if d.deleting().is_some() => Err(ChangeError::Deleting(id.to_string())),
            Some(d) if d.loaded() => Ok(d),
            Some(_) => Err(ChangeError::Loading(id.to_string())),
            None => Err(ChangeError::NotFound(id.to_string())),
        }
    }

    fn task(&mut self) -> TaskId {
        let t = TaskId(self.next_task);
        self.next_task += 1;
        t
    }

    /// Queue a local change for reporting once `working`'s state is durable.
    fn queue_local(&mut self, id: DocumentId) -> ChangeId {
        let change = ChangeId(self.next_change);
        self.next_change += 1;
        let next_batch = self.next_batch;
        let doc = self
            .docs
            .get_mut(&id)
            .expect("caller checked the document exists");
        match doc.barrier(next_batch) {
            Some(tag) => {
                doc.items.push_back(Pending {
                    tag,
                    item: Item::Local(change),
                });
                self.update_coverage(id);
            }
            None => {
                let heads = doc.durable_heads.clone();
                self.effects.push_back(Effect::Event(Event::ChangeDurable {
                    change,
                    doc: id,
                    heads,
                }));
            }
        }
        change
    }

    fn fail_finds_of(&mut self, finds: Vec<FindId>, id: DocumentId) {
        for find in finds {
            self.event(Event::FindFailed {
                find,
                doc: id,
                error: FindError::Deleted,
            });
        }
    }

    fn fail_finds(&mut self, id: DocumentId, error: FindError) {
        if let Some(doc) = self.docs.get_mut(&id) {
            doc.stop_requesting();
            for find in doc.finds.drain(..) {
                self.effects.push_back(Effect::Event(Event::FindFailed {
                    find,
                    doc: id,
                    error: error.clone(),
                }));
            }
        }
    }

    fn resolve_finds(&mut self, id: DocumentId) {
        if let Some(doc) = self.docs.get_mut(&id) {
            if doc.findable() {
                doc.stop_requesting();
                for find in doc.finds.drain(..) {
                    self.effects
                        .push_back(Effect::Event(Event::FindReady { find, doc: id }));
                }
            }
        }
    }

    fn event(&mut self, e: Event) {
        self.effects.push_back(Effect::Event(e));
    }
}
