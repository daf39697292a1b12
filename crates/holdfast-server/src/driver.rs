//! The task that owns the server's [`Repo`]: connections and storage feed it
//! inputs through one channel; it performs the core's effects.
//!
//! Invariants:
//! - One repo for every connection, so every connection's writes share the
//!   core's group commit: at most one commit (one fsync) in flight, everything
//!   that arrives meanwhile goes into the next one.
//! - The core generates the sync reply that advertises new heads only after
//!   the commit holding them completed; this task just delivers it.
//! - A storage failure is an input like any other: the core rejects that
//!   commit's work and resets the peers' sync states; this task keeps serving.

use std::collections::HashMap;
use std::rc::Rc;

use holdfast_core::repo::{ConnId, Direction, Effect, Event, Repo, TaskId, Timestamp};
use holdfast_core::storage::{Storage, StorageError, StorageKey};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// What a connection's writer is told to do.
#[derive(Debug)]
pub enum Out {
    Frame(Vec<u8>),
    Close,
}

pub enum Input {
    Open {
        conn: ConnId,
        out: mpsc::UnboundedSender<Out>,
    },
    Frame {
        conn: ConnId,
        bytes: Vec<u8>,
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
        reply: oneshot::Sender<String>,
    },
    /// Close every connection, finish what is in flight, then answer.
    Shutdown {
        done: oneshot::Sender<()>,
    },
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

/// Run the repo until shutdown completes. Must run inside a
/// `tokio::task::LocalSet` (storage futures need not be `Send`).
pub async fn run<S: Storage + 'static>(
    mut repo: Repo,
    storage: Rc<S>,
    tx: mpsc::UnboundedSender<Input>,
    mut rx: mpsc::UnboundedReceiver<Input>,
) {
    let clock = Clock(Instant::now());
    let mut conns: HashMap<ConnId, mpsc::UnboundedSender<Out>> = HashMap::new();
    let mut shutdown: Option<oneshot::Sender<()>> = None;
    loop {
        if shutdown.is_some() && repo.is_idle() {
            tracing::info!("all commits finished; stopping");
            if let Some(done) = shutdown.take() {
                let _ = done.send(());
            }
            return;
        }
        let deadline = repo.poll_timeout().map(|t| clock.instant(t));
        let input = tokio::select! {
            i = rx.recv() => i,
            _ = sleep_until(deadline) => {
                repo.handle_timeout(clock.now());
                drain(&mut repo, &storage, &tx, &mut conns);
                continue;
            }
        };
        let Some(input) = input else { return };
        let now = clock.now();
        match input {
            Input::Open { conn, out } => {
                if shutdown.is_some() {
                    let _ = out.send(Out::Close);
                    continue;
                }
                conns.insert(conn, out);
                repo.connected(now, conn, Direction::Incoming);
            }
            Input::Frame { conn, bytes } => {
                tracing::trace!(conn = conn.0, len = bytes.len(), "frame");
                if shutdown.is_none() {
                    repo.frame(now, conn, &bytes);
                }
            }
            Input::Closed { conn } => {
                conns.remove(&conn);
                repo.disconnected(now, conn);
            }
            Input::Committed { task, result } => {
                tracing::trace!(task = task.0, ok = result.is_ok(), "commit done");
                repo.commit_done(now, task, result)
            }
            Input::Loaded { task, result } => repo.load_done(now, task, result),
            Input::Metrics { reply } => {
                let _ = reply.send(metrics(&repo, conns.len()));
                continue;
            }
            Input::Shutdown { done } => {
                tracing::info!("shutting down: closing connections, finishing commits");
                for (conn, out) in conns.drain() {
                    let _ = out.send(Out::Close);
                    repo.disconnected(now, conn);
                }
                shutdown = Some(done);
            }
        }
        drain(&mut repo, &storage, &tx, &mut conns);
    }
}

/// The server's metrics in Prometheus' text exposition format (0.0.4):
/// frames received per message type since start (`Repo::received`, frames
/// that decoded) and the connections open now.
pub fn metrics(repo: &Repo, connections: usize) -> String {
    use std::fmt::Write;
    let mut out = String::from(
        "# HELP holdfast_messages_received_total Frames received from peers that decoded, by message type.\n\
         # TYPE holdfast_messages_received_total counter\n",
    );
    for (kind, n) in repo.received() {
        // Message type names are fixed wire strings: nothing to escape.
        let _ = writeln!(
            out,
            "holdfast_messages_received_total{{type=\"{kind}\"}} {n}"
        );
    }
    let _ = write!(
        out,
        "# HELP holdfast_connections WebSocket connections open now.\n\
         # TYPE holdfast_connections gauge\n\
         holdfast_connections {connections}\n"
    );
    out
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

fn drain<S: Storage + 'static>(
    repo: &mut Repo,
    storage: &Rc<S>,
    tx: &mpsc::UnboundedSender<Input>,
    conns: &mut HashMap<ConnId, mpsc::UnboundedSender<Out>>,
) {
    while let Some(effect) = repo.poll_effect() {
        match effect {
            Effect::Send { conn, frame } => {
                tracing::trace!(conn = conn.0, len = frame.len(), "send");
                if let Some(out) = conns.get(&conn) {
                    let _ = out.send(Out::Frame(frame));
                }
            }
            Effect::Close { conn } => {
                if let Some(out) = conns.remove(&conn) {
                    let _ = out.send(Out::Close);
                }
            }
            Effect::Commit { task, commit } => {
                tracing::trace!(task = task.0, puts = commit.puts.len(), "commit issued");
                let (storage, tx) = (storage.clone(), tx.clone());
                tokio::task::spawn_local(async move {
                    let result = storage.commit(commit).await;
                    let _ = tx.send(Input::Committed { task, result });
                });
            }
            Effect::Load { task, prefix } => {
                let (storage, tx) = (storage.clone(), tx.clone());
                tokio::task::spawn_local(async move {
                    let result = storage.range(&prefix).await;
                    let _ = tx.send(Input::Loaded { task, result });
                });
            }
            Effect::Event(e) => log_event(e),
        }
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
            tracing::info!(conn = conn.0, %peer_id, "peer joined")
        }
        Event::PeerDisconnected { conn, peer_id } => {
            tracing::debug!(conn = conn.0, ?peer_id, "peer left")
        }
        Event::DocChanged { doc, .. } => tracing::debug!(%doc, "document durable"),
        _ => {}
    }
}
