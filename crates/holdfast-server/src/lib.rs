//! The holdfast sync server: the core's repo behind automerge-repo's
//! WebSocket protocol, persisting to the crash-safe log.

pub mod auth;
pub mod driver;
pub mod http;
pub mod limits;
pub mod listen;
mod loads;
pub mod shards;
pub mod slot;
pub mod stats;

pub use limits::Limits;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use holdfast_core::repo::{Repo, RepoConfig};
use holdfast_core::storage::{Storage, StoreHint};
use holdfast_core::wire::DecodeLimits;
use tokio::sync::{mpsc, oneshot};

#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    pub www: Option<PathBuf>,
    /// Largest frame the core accepts (an `error` message answers larger).
    pub max_frame: usize,
    /// Validate every peer's sync messages before automerge sees them
    /// (default true; `false` only to test that panics stay isolated).
    pub validate_peer_input: bool,
    /// Connections, queues, timeouts and per-peer limits ([`Limits`]).
    pub limits: Limits,
    /// The storage's own samples for `/metrics` (the binary adds the
    /// log's: size, compactions, fsync latency).
    pub extra_metrics: Option<stats::ExtraMetrics>,
    /// Verify every connection's token ([`auth`]); `None`: the server runs
    /// open (and says so loudly at start).
    pub auth: Option<Arc<auth::Verifier>>,
    /// Other nodes write to the same store (PostgreSQL with
    /// `--shared-database`): the collection exchange is off (its index and
    /// sequence numbers assume one writer; holdfast clients then sync
    /// document by document, as automerge-repo's do), and documents are
    /// read again on each [`StoreHint`].
    pub shared_store: bool,
    /// Core repos, each on a thread of its own, documents split among them
    /// by id ([`shards`]); at least 1. More than one turns the collection
    /// exchange off, as `shared_store` does.
    pub shards: usize,
}

/// A running server: its address, and a way to stop it gracefully.
pub struct Running {
    pub addr: SocketAddr,
    shutdown: oneshot::Sender<()>,
    stopped: oneshot::Receiver<()>,
}

impl Running {
    /// Close every connection, finish in-flight commits, stop.
    pub async fn stop(self) {
        let _ = self.shutdown.send(());
        let _ = self.stopped.await;
    }
}

fn random_hex<const N: usize>() -> String {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).expect("the OS random number generator works");
    hex::encode(b)
}

/// Start serving on `config.listen` over `storage`. Must be called inside a
/// `tokio::task::LocalSet`; the server runs until [`Running::stop`].
pub async fn start<S: Storage + Clone + Send + 'static>(
    config: Config,
    storage: S,
) -> std::io::Result<Running> {
    start_with_hints(config, storage, None).await
}

/// The repo configuration every shard shares (one peer id, one storage id:
/// to clients the shards are one peer), less the actor.
fn repo_config(config: &Config) -> RepoConfig {
    let mut cfg = RepoConfig::new(
        format!("holdfast-server-{}", random_hex::<8>()),
        [0; 16],
        random_hex::<8>(),
    );
    cfg.announce = false;
    cfg.limits = DecodeLimits {
        max_frame_size: config.max_frame,
    };
    cfg.validate_peer_input = config.validate_peer_input;
    cfg.conn_limits = config.limits.conn.clone();
    if config.auth.is_some() {
        // A connection no token authorized gets nothing.
        cfg.default_access = holdfast_core::repo::Access::none();
    }
    // Adopted as the store's id if it has none yet (then kept for its life).
    cfg.metadata.storage_id = Some(format!("holdfast-server-{}", random_hex::<16>()));
    cfg
}

/// A shard's repo: the shared configuration with an actor of its own.
fn shard_repo(mut cfg: RepoConfig) -> Repo {
    getrandom::fill(&mut cfg.actor_id).expect("the OS random number generator works");
    Repo::new(cfg)
}

/// [`start`], reading documents again on every hint from `hints` (other
/// nodes' commits to a shared store).
pub async fn start_with_hints<S: Storage + Clone + Send + 'static>(
    config: Config,
    storage: S,
    hints: Option<mpsc::UnboundedReceiver<StoreHint>>,
) -> std::io::Result<Running> {
    // A backlog of 1,024 rather than std's 128: a burst of connects past
    // it has its SYNs dropped and retried a second later, which turns a
    // flood the per-IP cap would refuse at once into a slow trickle.
    let socket = match config.listen {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(config.listen)?;
    let listener = socket.listen(1024)?.into_std()?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let mut cfg = repo_config(&config);
    match &config.auth {
        Some(v) => {
            tracing::info!(keys = ?v, "authentication on: every connection needs a valid token")
        }
        None => tracing::warn!(
            "running OPEN: anyone who can reach this server can read and write every document; \
             pass --auth-secret-file or --auth-jwks"
        ),
    }
    let n = config.shards.max(1);
    if config.auth.is_some() && (n > 1 || config.shared_store) {
        // Who created a document (its owner, `access`) is kept in the
        // collection index, which only one repo on its own store keeps.
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "authentication needs a server with one shard on a store of its own: \
             document owners are kept in the collection index, which --shards above 1 \
             and --shared-database turn off",
        ));
    }
    // The collection index (docs/design.md §5b): which document changed at
    // which sequence number. It assumes one repo writes the store.
    let own_index = !config.shared_store && n == 1;
    let io = |what: &str, e: holdfast_core::storage::StorageError| {
        std::io::Error::other(format!("cannot {what}: {e}"))
    };
    let records = storage
        .range(&holdfast_core::collection::prefix())
        .await
        .map_err(|e| io("read the collection index", e))?;
    let mut repo = None;
    if own_index {
        let empty = storage
            .is_empty()
            .await
            .map_err(|e| io("read the store", e))?;
        let mut r = shard_repo(cfg.clone());
        r.restore_collection(records);
        if empty {
            // The index will list every document: a request for an id it
            // does not list is answered without a storage read.
            r.store_started_empty();
        }
        cfg = r.config().clone();
        repo = Some(r);
    } else if !records.is_empty() {
        // Not kept up to date from now on: dropped, with the storage id it
        // holds, so that a later run with one repo starts a new index under
        // a new id (clients' cursors into the old one then list everything)
        // instead of trusting one that missed this run's commits.
        let commit = holdfast_core::storage::Commit {
            delete_prefixes: vec![holdfast_core::collection::prefix()],
            ..Default::default()
        };
        storage
            .commit(commit)
            .await
            .map_err(|e| io("drop the collection index", e))?;
        tracing::info!("dropped the collection index (kept only with one shard and one node)");
    }
    tracing::info!(
        storage_id = cfg.metadata.storage_id.as_deref().unwrap_or(""),
        shards = n,
        "collection index loaded"
    );

    let stats = Arc::new(stats::Stats::default());
    let (txs, rxs): (Vec<_>, Vec<_>) = (0..n).map(|_| mpsc::unbounded_channel()).unzip();
    let shards = shards::Shards::new(txs.clone());
    if let Some(mut hints) = hints {
        let shards = shards.clone();
        tokio::task::spawn_local(async move {
            while let Some(h) = hints.recv().await {
                let sent = match h {
                    StoreHint::Unknown => {
                        shards.send_all(|_| driver::Input::Hint(StoreHint::Unknown))
                    }
                    StoreHint::Changed(docs) => {
                        let mut by_shard = vec![Vec::new(); shards.len()];
                        for doc in docs {
                            by_shard[shards.of_doc(&doc)].push(doc);
                        }
                        by_shard
                            .into_iter()
                            .enumerate()
                            .filter(|(_, d)| !d.is_empty())
                            .all(|(i, docs)| {
                                shards.send(i, driver::Input::Hint(StoreHint::Changed(docs)))
                            })
                    }
                };
                if !sent {
                    return;
                }
            }
        });
    }
    // Shard 0 runs here; the others each on a thread of their own. A shard
    // thread's runtime keeps running until every shard has ended: storage
    // connections opened on it (a pool's) may serve the other shards.
    let mut drivers = Vec::new();
    let (all_ended_tx, all_ended) = tokio::sync::watch::channel(false);
    for (i, (tx, rx)) in txs.into_iter().zip(rxs).enumerate() {
        let setup = driver::Setup {
            tx,
            limits: config.limits.clone(),
            stats: stats.clone(),
        };
        let (storage, cfg, mut all_ended) = (storage.clone(), cfg.clone(), all_ended.clone());
        let (ended_tx, ended_rx) = oneshot::channel::<()>();
        if i == 0 {
            let repo = repo.take().unwrap_or_else(|| shard_repo(cfg));
            tokio::task::spawn_local(async move {
                driver::run(repo, Rc::new(storage), setup, rx).await;
                let _ = ended_tx.send(());
            });
        } else {
            std::thread::Builder::new()
                .name(format!("holdfast-shard-{i}"))
                .spawn(move || {
                    let rt = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(rt) => rt,
                        Err(e) => return tracing::error!(error = %e, shard = i, "cannot start a shard's runtime"),
                    };
                    let local = tokio::task::LocalSet::new();
                    local.block_on(&rt, async move {
                        driver::run(shard_repo(cfg), Rc::new(storage), setup, rx).await;
                        let _ = ended_tx.send(());
                        let _ = all_ended.wait_for(|ended| *ended).await;
                    });
                })?;
        }
        drivers.push(ended_rx);
    }
    let state = http::AppState {
        shards: shards.clone(),
        decode: DecodeLimits {
            max_frame_size: config.max_frame,
        },
        next_conn: Arc::new(AtomicU64::new(1)),
        max_message: config.max_frame.saturating_add(64 * 1024),
        www: config.www.clone(),
        auth: config.auth.clone(),
        limits: Arc::new(config.limits.clone()),
        stats: stats.clone(),
        extra_metrics: config.extra_metrics.clone(),
        queued_in: Arc::new(tokio::sync::Semaphore::new(
            config
                .limits
                .max_queued_in
                .clamp(1, tokio::sync::Semaphore::MAX_PERMITS),
        )),
    };
    // Sockets are served on a thread of their own, so that automerge work
    // on this one (loading, applying, generating sync messages) never
    // stalls accepting, `/healthz` or other connections' reads and writes.
    let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
    let (stopped_tx, stopped_rx) = oneshot::channel();
    let (http_stop_tx, http_stop_rx) = oneshot::channel::<()>();
    let (http_done_tx, http_done_rx) = oneshot::channel::<()>();
    let http_thread = std::thread::Builder::new()
        .name("holdfast-http".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!(error = %e, "cannot start the HTTP runtime");
                    return;
                }
            };
            rt.block_on(listen::serve(listener, state, http_stop_rx));
            let _ = http_done_tx.send(());
        })?;
    tokio::task::spawn_local(async move {
        let _ = shutdown_rx.await;
        let mut dones = Vec::new();
        shards.send_all(|_| {
            let (done_tx, done_rx) = oneshot::channel();
            dones.push(done_rx);
            driver::Input::Shutdown { done: done_tx }
        });
        for done in dones {
            let _ = done.await;
        }
        let _ = http_stop_tx.send(());
        let _ = http_done_rx.await;
        let _ = http_thread.join();
        for ended in drivers {
            let _ = ended.await;
        }
        let _ = all_ended_tx.send(true);
        let _ = stopped_tx.send(());
    });
    tracing::info!(%addr, "holdfast-server listening");
    Ok(Running {
        addr,
        shutdown: shutdown_tx,
        stopped: stopped_rx,
    })
}
