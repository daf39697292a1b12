//! Bounding the storage reads clients can start.
//!
//! A frame about a document not in memory makes the core load it
//! (`Effect::Load`) and keep the frame until storage answers. The input
//! bound ("one frame per connection waits for the core") would count that
//! frame as handled, so one connection could start any number of reads
//! (a `request` per new document id, as fast as it can send them), and
//! reads share the log with commits: they took the blocking pool's 512
//! threads and commits waited behind them (BENCHMARKS.md, W9).
//!
//! Invariants kept here:
//! - A frame that started loads holds its connection's input slot (its
//!   [`Done`]) until every one of them has been answered: a connection has
//!   at most one frame's loads in flight, and its reader waits meanwhile
//!   (its socket pushes back on the client).
//! - At most `max_reads` storage reads run at once, all connections
//!   together; the others wait, first come first served, as futures (no
//!   thread). Commits never wait for a read permit.

use std::collections::HashMap;
use std::sync::Arc;

use holdfast_core::repo::{ConnId, TaskId};
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

pub struct Loads {
    /// The connection whose frame started each load in flight.
    owner: HashMap<TaskId, ConnId>,
    /// Frames held until their loads are answered, with how many are left.
    held: HashMap<ConnId, (Option<Done>, usize)>,
    reads: Arc<Semaphore>,
    /// Storage reads started since start.
    pub started_total: u64,
}

impl Loads {
    /// `max_reads`: storage reads at once (0: no limit).
    pub fn new(max_reads: usize) -> Self {
        let permits = if max_reads == 0 {
            Semaphore::MAX_PERMITS
        } else {
            max_reads
        };
        Self {
            owner: HashMap::new(),
            held: HashMap::new(),
            reads: Arc::new(Semaphore::new(permits)),
            started_total: 0,
        }
    }

    /// A storage read is about to start (for a frame from `conn`, if any);
    /// returns the permit pool it must wait on.
    pub fn start(&mut self, task: TaskId, conn: Option<ConnId>) -> Arc<Semaphore> {
        self.started_total += 1;
        if let Some(conn) = conn {
            self.started(task, conn);
        }
        self.reads.clone()
    }

    /// Load `task` was started by a frame from `conn`.
    fn started(&mut self, task: TaskId, conn: ConnId) {
        self.owner.insert(task, conn);
        self.held.entry(conn).or_insert((None, 0)).1 += 1;
    }

    /// The frame from `conn` has been handled: keep its slot if loads it
    /// started are in flight, else let it go.
    pub fn handled(&mut self, conn: ConnId, done: Done) {
        if let Some((slot, _)) = self.held.get_mut(&conn) {
            *slot = Some(done);
        }
    }

    /// Storage answered load `task`: the frame that started it goes once
    /// all its loads have been answered.
    pub fn answered(&mut self, task: TaskId) {
        let Some(conn) = self.owner.remove(&task) else {
            return;
        };
        if let Some((_, left)) = self.held.get_mut(&conn) {
            *left -= 1;
            if *left == 0 {
                self.held.remove(&conn);
            }
        }
    }

    /// `conn` is gone: nothing of it is held any more.
    pub fn forget(&mut self, conn: ConnId) {
        self.held.remove(&conn);
    }

    /// Wait for a read permit (hold it through the read).
    pub async fn permit(reads: Arc<Semaphore>) -> Option<OwnedSemaphorePermit> {
        reads.acquire_owned().await.ok()
    }

    /// Frames waiting for their loads, for metrics.
    pub fn frames_held(&self) -> usize {
        self.held.len()
    }
}

/// Held by a frame until the core has handled it: returns its bytes to the
/// input budget and lets its connection's reader go on to the next frame.
pub struct Done {
    _permit: Option<OwnedSemaphorePermit>,
    _tx: oneshot::Sender<()>,
}

impl Done {
    pub fn new(permit: OwnedSemaphorePermit, tx: oneshot::Sender<()>) -> Self {
        Self {
            _permit: Some(permit),
            _tx: tx,
        }
    }

    /// For a copy of a frame another shard already handled (its bytes were
    /// counted then): only tells the reader.
    pub fn copy(tx: oneshot::Sender<()>) -> Self {
        Self {
            _permit: None,
            _tx: tx,
        }
    }
}
