//! The holdfast sync server: the core's repo behind automerge-repo's
//! WebSocket protocol, persisting to the crash-safe log.

pub mod auth;
pub mod driver;
pub mod http;
pub mod limits;
pub mod listen;
mod loads;
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
pub async fn start<S: Storage + 'static>(config: Config, storage: S) -> std::io::Result<Running> {
    start_with_hints(config, storage, None).await
}

/// [`start`], reading documents again on every hint from `hints` (other
/// nodes' commits to a shared store).
pub async fn start_with_hints<S: Storage + 'static>(
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
    let mut actor = [0u8; 16];
    getrandom::fill(&mut actor).expect("the OS random number generator works");
    let mut cfg = RepoConfig::new(
        format!("holdfast-server-{}", random_hex::<8>()),
        actor,
        random_hex::<8>(),
    );
    cfg.announce = false;
    cfg.limits = DecodeLimits {
        max_frame_size: config.max_frame,
    };
    cfg.validate_peer_input = config.validate_peer_input;
    cfg.conn_limits = config.limits.conn.clone();
    match &config.auth {
        Some(v) => {
            // A connection no token authorized gets nothing.
            cfg.default_access = holdfast_core::repo::Access::none();
            tracing::info!(keys = ?v, "authentication on: every connection needs a valid token");
        }
        None => tracing::warn!(
            "running OPEN: anyone who can reach this server can read and write every document; \
             pass --auth-secret-file or --auth-jwks"
        ),
    }
    // Adopted as the store's id if it has none yet (then kept for its life).
    cfg.metadata.storage_id = Some(format!("holdfast-server-{}", random_hex::<16>()));
    // The collection index: which document changed at which sequence number
    // (docs/design.md §5b), read once at start.
    let records = storage
        .range(&holdfast_core::collection::prefix())
        .await
        .map_err(|e| std::io::Error::other(format!("cannot read the collection index: {e}")))?;
    let empty = storage
        .is_empty()
        .await
        .map_err(|e| std::io::Error::other(format!("cannot read the store: {e}")))?;
    let mut repo = Repo::new(cfg);
    if !config.shared_store {
        repo.restore_collection(records);
    }
    if empty && !config.shared_store {
        // The index will list every document: a request for an id it does
        // not list is answered without a storage read.
        repo.store_started_empty();
    }
    tracing::info!(
        storage_id = repo.config().metadata.storage_id.as_deref().unwrap_or(""),
        "collection index loaded"
    );

    let stats = Arc::new(stats::Stats::default());
    let (tx, rx) = mpsc::unbounded_channel();
    if let Some(mut hints) = hints {
        let tx = tx.clone();
        tokio::task::spawn_local(async move {
            while let Some(h) = hints.recv().await {
                if tx.send(driver::Input::Hint(h)).is_err() {
                    return;
                }
            }
        });
    }
    let driver = tokio::task::spawn_local(driver::run(
        repo,
        Rc::new(storage),
        driver::Setup {
            tx: tx.clone(),
            limits: config.limits.clone(),
            stats: stats.clone(),
        },
        rx,
    ));
    let state = http::AppState {
        repo: tx.clone(),
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
        let (done_tx, done_rx) = oneshot::channel();
        if tx.send(driver::Input::Shutdown { done: done_tx }).is_ok() {
            let _ = done_rx.await;
        }
        let _ = http_stop_tx.send(());
        let _ = http_done_rx.await;
        let _ = http_thread.join();
        let _ = driver.await;
        let _ = stopped_tx.send(());
    });
    tracing::info!(%addr, "holdfast-server listening");
    Ok(Running {
        addr,
        shutdown: shutdown_tx,
        stopped: stopped_rx,
    })
}
