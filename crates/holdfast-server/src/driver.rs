//! The task that owns the server's [`Repo`]: connections and storage feed it
//! inputs through one channel; it performs the core's effects.
//!
//! Invariants:
//! - One repo per shard (`crate::shards`; one by default) serves every
//!   connection's messages about its documents, so their writes share the
//!   shard's group commit: at most one commit (one fsync or transaction) in
//!   flight per shard, everything that arrives meanwhile goes into the next.
//! - The core generates the sync reply that advertises new heads only after
//!   the commit holding them completed; this task just delivers it.
//! - A storage failure is an input like any other: the core rejects that
//!   commit's work and resets the peers' sync states; this task keeps serving.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use holdfast_core::repo::{ConnId, Direction, Effect, Event, Repo, TaskId, Timestamp};
use holdfast_core::storage::{Storage, StorageError, StorageKey, StoreHint};
use holdfast_core::wire::untrusted;
use tokio::sync::{mpsc, oneshot, Notify};

use crate::limits::Limits;
pub use crate::loads::Done;
use crate::loads::Loads;

mod metrics;
use crate::stats::{Busy, Histogram, Refusal, Stats};
pub use metrics::Figures;
use tokio::time::Instant;

/// What a connection's writer is told to do.
#[derive(Debug)]
pub enum Out {
    Frame(Vec<u8>),
    Close,
}

/// A connection's way out: its writer's queue, the bytes in it not yet
/// written to the socket (also counted in `total`, every connection's), and
/// a switch that drops the socket at once.
#[derive(Clone)]
pub struct ConnOut {
    tx: mpsc::UnboundedSender<Out>,
    queued: Arc<AtomicUsize>,
    total: Arc<AtomicUsize>,
    /// A `Close` was queued: the connection is ending.
    closing: Arc<AtomicBool>,
    pub kill: Arc<Notify>,
}

impl ConnOut {
    pub fn new(tx: mpsc::UnboundedSender<Out>, total: Arc<AtomicUsize>) -> Self {
        Self {
            tx,
            queued: Arc::default(),
            total,
            closing: Arc::default(),
            kill: Arc::default(),
        }
    }

    /// A `Close` was queued for this connection.
    pub fn closing(&self) -> bool {
        self.closing.load(Ordering::Relaxed)
    }

    /// Queue `out` (counting a frame's bytes until the writer sent it).
    pub fn send(&self, out: Out) {
        match &out {
            Out::Frame(f) => self.add(f.len()),
            Out::Close => self.closing.store(true, Ordering::Relaxed),
        }
        if let Err(e) = self.tx.send(out) {
            if let Out::Frame(f) = e.0 {
                self.written(f.len());
            }
        }
    }

    fn add(&self, len: usize) {
        self.queued.fetch_add(len, Ordering::Relaxed);
        self.total.fetch_add(len, Ordering::Relaxed);
    }

    /// The writer is done with a frame of `len` bytes (sent or not).
    pub fn written(&self, len: usize) {
        self.queued.fetch_sub(len, Ordering::Relaxed);
        self.total.fetch_sub(len, Ordering::Relaxed);
    }

    /// The socket is gone: whatever was not written never will be.
    pub fn release(&self) {
        let left = self.queued.swap(0, Ordering::Relaxed);
        self.total.fetch_sub(left, Ordering::Relaxed);
    }

    fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }
}

/// What the driver needs besides the repo, storage and its input.
pub struct Setup {
    /// Its own input channel, for storage completions.
    pub tx: mpsc::UnboundedSender<Input>,
    pub limits: Limits,
    pub stats: Arc<Stats>,
}

pub enum Input {
    Open {
        conn: ConnId,
        out: ConnOut,
        /// What it may do, or how to find out ([`crate::auth`]).
        auth: crate::auth::ConnAuth,
    },
    Frame {
        conn: ConnId,
        bytes: Vec<u8>,
        done: Done,
        /// A copy of a connection-level frame its home shard handled
        /// ([`crate::shards`]): the first frame its handling sends that
        /// connection (a `join`'s `peer` reply) is dropped.
        quiet: bool,
    },
    Closed {
        conn: ConnId,
    },
    Committed {
        task: TaskId,
        result: Result<(), StorageError>,
    },
    #[allow(clippy::type_complexity)]
    Loaded {
        task: TaskId,
        result: Result<Vec<(StorageKey, Vec<u8>)>, StorageError>,
    },
    /// `GET /metrics`: answer with the metrics in Prometheus' text format
    /// ([`metrics`]).
    Metrics {
        reply: oneshot::Sender<metrics::Figures>,
    },
    /// Another node on the same database committed (see
    /// [`holdfast_core::storage::StoreHint`]).
    Hint(StoreHint),
    /// Close every connection, finish what is in flight, then answer.
    Shutdown {
        done: oneshot::Sender<()>,
    },
}

impl Input {
    /// What the core task was busy with, for its timing ([`Busy`]).
    fn kind(&self) -> &'static str {
        match self {
            Input::Open { .. } => "open",
            Input::Frame { .. } => "frame",
            Input::Closed { .. } => "closed",
            Input::Committed { .. } => "committed",
            Input::Loaded { .. } => "loaded",
            Input::Metrics { .. } => "metrics",
            Input::Hint(_) => "hint",
            Input::Shutdown { .. } => "shutdown",
        }
    }
}

/// The driver's clock: milliseconds since it started (the core only needs a
/// monotonic clock for its timers).
struct Clock(Instant);

impl Clock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.elapsed().as_millis() as u64)
    }
    fn instant(&self, t: Timestamp) -> Instant {
        self.0 + std::time::Duration::from_millis(t.0)
    }
}

/// The task's state besides the repo.
struct Driver<S> {
    storage: Rc<S>,
    setup: Setup,
    clock: Clock,
    conns: HashMap<ConnId, ConnOut>,
    /// When each commit in flight was issued (for the latency histogram).
    commits: HashMap<TaskId, Instant>,
    commit_seconds: Histogram,
    /// Storage reads in flight and the frames that wait for them.
    loads: Loads,
    /// The connection whose frame the core is handling (its loads hold it).
    frame_from: Option<ConnId>,
    /// Time spent on each input, its effects included.
    input_seconds: Rc<RefCell<Histogram>>,
    /// A quiet frame from this connection is being handled: drop the next
    /// frame to it.
    mute: Option<ConnId>,
    /// Quiet copies the core counted as received, by type (the home shard
    /// counted the frame once already): left out of `/metrics`.
    quiet_received: Vec<(&'static str, u64)>,
}

/// Run the repo until shutdown completes. Must run inside a
/// `tokio::task::LocalSet` (storage futures need not be `Send`).
pub async fn run<S: Storage + 'static>(
    mut repo: Repo,
    storage: Rc<S>,
    setup: Setup,
    mut rx: mpsc::UnboundedReceiver<Input>,
) {
    let mut d = Driver {
        loads: Loads::new(setup.limits.max_storage_reads),
        storage,
        setup,
        clock: Clock(Instant::now()),
        conns: HashMap::new(),
        commits: HashMap::new(),
        commit_seconds: Histogram::default(),
        frame_from: None,
        input_seconds: Rc::default(),
        mute: None,
        quiet_received: Vec::new(),
    };
    let mut shutdown: Option<oneshot::Sender<()>> = None;
    // Connections whose token must come with their `join`.
    let mut at_join = crate::auth::AtJoin::default();
    loop {
        if shutdown.is_some() && repo.is_idle() {
            tracing::info!("all commits finished; stopping");
            if let Some(done) = shutdown.take() {
                let _ = done.send(());
            }
            return;
        }
        let deadline = repo.poll_timeout().map(|t| d.clock.instant(t));
        let input = tokio::select! {
            i = rx.recv() => i,
            _ = sleep_until(deadline) => {
                let _busy = d.busy("timeout");
                repo.handle_timeout(d.clock.now());
                d.drain(&mut repo);
                continue;
            }
        };
        let Some(input) = input else { return };
        let now = d.clock.now();
        let _busy = d.busy(input.kind());
        match input {
            Input::Open { conn, out, auth } => {
                if shutdown.is_some() {
                    out.send(Out::Close);
                    continue;
                }
                d.conns.insert(conn, out);
                repo.connected(now, conn, Direction::Incoming);
                auth.start(&mut repo, now, conn, &mut at_join);
            }
            Input::Frame {
                conn,
                bytes,
                done,
                quiet,
            } => {
                tracing::trace!(conn = conn.0, len = bytes.len(), "frame");
                let counted: Vec<(&'static str, u64)> = match quiet {
                    true => repo.received().iter().map(|(k, n)| (*k, *n)).collect(),
                    false => Vec::new(),
                };
                if shutdown.is_none() {
                    match at_join.check(&mut repo, now, conn, &bytes) {
                        Ok(()) => repo.frame(now, conn, &bytes),
                        Err(error) => {
                            // A `join` without a valid token: told, closed.
                            if let Some(out) = d.conns.remove(&conn) {
                                out.send(Out::Frame(error));
                                out.send(Out::Close);
                            }
                            repo.disconnected(now, conn);
                        }
                    }
                }
                drop(bytes);
                if quiet {
                    d.uncount(&repo, &counted);
                }
                d.frame_from = Some(conn);
                d.mute = quiet.then_some(conn);
                d.drain(&mut repo);
                d.frame_from = None;
                d.mute = None;
                match repo.read_paused_until(conn) {
                    // It brought its window's share of documents into
                    // memory: its next frame waits for the next window
                    // (nothing is refused).
                    Some(t) => {
                        let until = d.clock.instant(t);
                        tokio::task::spawn_local(async move {
                            tokio::time::sleep_until(until).await;
                            drop(done);
                        });
                    }
                    None => d.loads.handled(conn, done),
                }
                continue;
            }
            Input::Closed { conn } => {
                at_join.forget(conn);
                d.loads.forget(conn);
                d.conns.remove(&conn);
                repo.disconnected(now, conn);
            }
            Input::Committed { task, result } => {
                tracing::trace!(task = task.0, ok = result.is_ok(), "commit done");
                if let Some(t0) = d.commits.remove(&task) {
                    d.commit_seconds.observe(t0.elapsed().as_secs_f64());
                }
                repo.commit_done(now, task, result)
            }
            Input::Loaded { task, result } => {
                repo.load_done(now, task, result);
                d.loads.answered(task);
            }
            Input::Metrics { reply } => {
                let _ = reply.send(d.figures(&repo));
                continue;
            }
            Input::Hint(StoreHint::Changed(docs)) => {
                for doc in docs {
                    repo.refresh(now, doc);
                }
            }
            Input::Hint(StoreHint::Unknown) => repo.refresh_all(now),
            Input::Shutdown { done } => {
                tracing::info!("shutting down: closing connections, finishing commits");
                for (conn, out) in d.conns.drain() {
                    out.send(Out::Close);
                    repo.disconnected(now, conn);
                }
                shutdown = Some(done);
            }
        }
        d.drain(&mut repo);
    }
}

impl<S: Storage + 'static> Driver<S> {
    /// Time the core's handling of one input, until the guard drops.
    fn busy(&self, kind: &'static str) -> Busy {
        Busy::new(kind, self.input_seconds.clone())
    }

    /// Note what the core counted as received since `before` (a quiet
    /// copy's type) in `quiet_received`.
    fn uncount(&mut self, repo: &Repo, before: &[(&'static str, u64)]) {
        for (k, n) in repo.received() {
            let was = before.iter().find(|(b, _)| b == k).map_or(0, |(_, m)| *m);
            if *n > was {
                match self.quiet_received.iter_mut().find(|(q, _)| q == k) {
                    Some((_, m)) => *m += n - was,
                    None => self.quiet_received.push((k, n - was)),
                }
            }
        }
    }

    /// Perform the repo's effects until it has none.
    fn drain(&mut self, repo: &mut Repo) {
        while let Some(effect) = repo.poll_effect() {
            match effect {
                Effect::Send { conn, frame } => self.deliver(repo, conn, frame),
                Effect::Close { conn } => {
                    if let Some(out) = self.conns.remove(&conn) {
                        out.send(Out::Close);
                    }
                }
                Effect::Commit { task, commit } => {
                    tracing::trace!(task = task.0, puts = commit.puts.len(), "commit issued");
                    self.commits.insert(task, Instant::now());
                    let (storage, tx) = (self.storage.clone(), self.setup.tx.clone());
                    tokio::task::spawn_local(async move {
                        let result = storage.commit(commit).await;
                        let _ = tx.send(Input::Committed { task, result });
                    });
                }
                Effect::Load { task, prefix } => {
                    let reads = self.loads.start(task, self.frame_from);
                    let (storage, tx) = (self.storage.clone(), self.setup.tx.clone());
                    tokio::task::spawn_local(async move {
                        let _permit = Loads::permit(reads).await;
                        let result = storage.range(&prefix).await;
                        let _ = tx.send(Input::Loaded { task, result });
                    });
                }
                Effect::Event(e) => log_event(e),
            }
        }
    }

    /// Queue `frame` for `conn`, unless that connection's unsent bytes (or
    /// everyone's) would pass their limit: then drop the connection.
    fn deliver(&mut self, repo: &mut Repo, conn: ConnId, frame: Vec<u8>) {
        let Some(out) = self.conns.get(&conn) else {
            return;
        };
        if self.mute == Some(conn) {
            self.mute = None;
            return;
        }
        let limits = self.setup.limits.clone();
        let queued = out.queued();
        if queued > 0 && queued + frame.len() > limits.max_queued_out {
            self.setup.stats.refuse(
                Refusal::QueueFull,
                format_args!(
                    "connection {} does not read: {queued} bytes unsent, {} more",
                    conn.0,
                    frame.len()
                ),
            );
            return self.kill(repo, conn);
        }
        out.send(Out::Frame(frame));
        if limits.max_queued_out_total == 0 {
            return;
        }
        // Every connection's unsent bytes, kept as they change: looked at
        // per frame, scanned only when over the limit.
        let mut total = out.total.load(Ordering::Relaxed);
        while total > limits.max_queued_out_total {
            let Some((&worst, q)) = self
                .conns
                .iter()
                .map(|(c, o)| (c, o.queued()))
                .max_by_key(|(_, q)| *q)
            else {
                break;
            };
            self.setup.stats.refuse(
                Refusal::QueueTotal,
                format_args!(
                    "unsent bytes of all connections passed the limit; dropping connection {} ({q} unsent)",
                    worst.0
                ),
            );
            self.kill(repo, worst);
            total = total.saturating_sub(q);
        }
    }

    /// Drop a connection's socket now (its writer may be blocked on a
    /// client that does not read) and forget its peer.
    fn kill(&mut self, repo: &mut Repo, conn: ConnId) {
        if let Some(out) = self.conns.remove(&conn) {
            out.kill.notify_one();
        }
        self.loads.forget(conn);
        repo.disconnected(self.clock.now(), conn);
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

fn log_event(e: Event) {
    match e {
        Event::StorageError { docs, error } => {
            tracing::error!(%error, docs = docs.len(), "commit failed; its documents were reset to their durable state")
        }
        Event::StorageRepaired { doc, quarantined } => {
            tracing::warn!(%doc, records = quarantined.len(), "quarantined corrupt records")
        }
        Event::ConnectionError { conn, error } => {
            tracing::info!(conn = conn.0, %error, "closed a connection")
        }
        Event::PeerConnected { conn, peer_id, .. } => {
            tracing::info!(conn = conn.0, peer_id = %untrusted(&peer_id), "peer joined")
        }
        Event::PeerDisconnected { conn, peer_id } => {
            tracing::debug!(conn = conn.0, peer_id = %untrusted(peer_id.as_deref().unwrap_or("")), "peer left")
        }
        Event::DocChanged { doc, .. } => tracing::debug!(%doc, "document durable"),
        _ => {}
    }
}
