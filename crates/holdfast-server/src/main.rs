//! `holdfast-server --listen 127.0.0.1:3030 --data ./data [--www ./www]`
//! (or `--postgres <url>` instead of the log in `--data`)

use std::net::SocketAddr;
use std::path::PathBuf;

mod auth_args;
mod limit_args;

use clap::Parser;
use holdfast_core::storage::{Storage, StoreHint};
use holdfast_log::{LogOptions, LogStorage};
use holdfast_pg::{PgOptions, PgStorage};
use holdfast_server::stats::ExtraMetrics;
use holdfast_server::{start_with_hints, Config};

#[derive(Parser, Debug)]
#[command(
    version,
    about = "holdfast sync server: automerge-repo compatible WebSocket sync, acknowledged only after fsync"
)]
struct Args {
    /// Address to listen on (use 127.0.0.1 to stay local).
    #[arg(long, default_value = "127.0.0.1:3030")]
    listen: SocketAddr,
    /// Data directory for the log (created if missing).
    #[arg(long, default_value = "./data")]
    data: PathBuf,
    /// Store in PostgreSQL instead of the log: a `postgres://` URL or a
    /// `key=value` connection string. One group commit is one
    /// transaction, acknowledged after COMMIT (synchronous_commit on).
    #[arg(long, conflicts_with = "data")]
    postgres: Option<String>,
    /// Several holdfast-server nodes share the `--postgres` database: each
    /// commit notifies the others (LISTEN/NOTIFY), which read the documents
    /// they hold again; the collection exchange is off.
    #[arg(long, requires = "postgres")]
    shared_database: bool,
    /// With `--shared-database`: how often every document held is read
    /// again anyway, in case a notification was missed.
    #[arg(long, default_value_t = 30, requires = "shared_database")]
    recheck_seconds: u64,
    /// Core repos (shards), each on a thread of its own, documents split
    /// among them by id: how many cores the sync work may use. With more
    /// than one the collection exchange is off (clients sync document by
    /// document on reconnect).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    shards: u16,
    /// Serve static files (the demo app) from this directory.
    #[arg(long)]
    www: Option<PathBuf>,
    /// Largest accepted frame in bytes; larger ones get an `error` message.
    #[arg(long, default_value_t = 64 * 1024 * 1024)]
    max_frame: usize,
    /// Testing only: hand peer sync messages to automerge unchecked, to
    /// show that a panic on crafted input stays isolated to its document.
    #[arg(long, hide = true)]
    unsafe_skip_peer_validation: bool,
    #[command(flatten)]
    limits: limit_args::LimitArgs,
    #[command(flatten)]
    auth: auth_args::AuthArgs,
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        // Colours only on a terminal: a log file or collector gets plain
        // text (and then any ESC in it would be a peer's, which the
        // server escapes).
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                // automerge instruments `load_changes` at info level with the
                // whole change history as a field: formatted on every
                // received change, it halved the server's throughput.
                .unwrap_or_else(|_| "info,automerge=warn".into()),
        )
        .init();
    let args = Args::parse();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("holdfast-server: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let local = tokio::task::LocalSet::new();
    let result: Result<(), String> = local.block_on(&rt, async move {
        match args.postgres.clone() {
            Some(url) => {
                let node = format!("node-{:016x}", rand_u64());
                let options = PgOptions {
                    exclusive: !args.shared_database,
                    node: args.shared_database.then(|| node.clone()),
                    ..PgOptions::default()
                };
                let storage = PgStorage::connect(&url, options)
                    .await
                    .map_err(|e| format!("cannot use PostgreSQL: {e}"))?;
                let hints = args.shared_database.then(|| {
                    storage.watch(std::time::Duration::from_secs(args.recheck_seconds.max(1)))
                });
                tracing::info!(shared = args.shared_database, %node, "storing in PostgreSQL");
                serve(args, storage, None, hints).await
            }
            None => {
                let (storage, report) = LogStorage::open(&args.data, LogOptions::default())
                    .map_err(|e| {
                        format!(
                            "cannot open the data directory {}: {e}",
                            args.data.display()
                        )
                    })?;
                tracing::info!(
                    data = %args.data.display(),
                    segments = report.segments,
                    records = report.records,
                    truncated_bytes = report.truncated_bytes,
                    quarantined = report.quarantined.len(),
                    "log recovered"
                );
                for q in &report.quarantined {
                    tracing::warn!(?q, "a corrupt log record was set aside");
                }
                let log = storage.clone();
                let metrics = ExtraMetrics(std::sync::Arc::new(move || {
                    holdfast_server::stats::log_metrics(&log.metrics())
                }));
                serve(args, storage, Some(metrics), None).await
            }
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("holdfast-server: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Serve over `storage` until a signal, then finish in-flight commits.
async fn serve<S: Storage + Clone + Send + 'static>(
    args: Args,
    storage: S,
    extra_metrics: Option<ExtraMetrics>,
    hints: Option<tokio::sync::mpsc::UnboundedReceiver<StoreHint>>,
) -> Result<(), String> {
    let config = Config {
        listen: args.listen,
        www: args.www,
        max_frame: args.max_frame,
        validate_peer_input: !args.unsafe_skip_peer_validation,
        limits: args.limits.limits(),
        extra_metrics,
        auth: args.auth.verifier()?,
        shared_store: args.shared_database,
        shards: args.shards.into(),
    };
    let running = start_with_hints(config, storage, hints)
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::InvalidInput => e.to_string(),
            _ => format!("cannot listen on {}: {e}", args.listen),
        })?;
    let signalled =
        shutdown_signal().map_err(|e| format!("cannot install signal handlers: {e}"))?;
    println!("holdfast-server: listening on ws://{}", running.addr);
    signalled.await;
    tracing::info!("signal received; finishing in-flight commits");
    running.stop().await;
    Ok(())
}

fn rand_u64() -> u64 {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).expect("the OS random number generator works");
    u64::from_le_bytes(b)
}

/// Wait for Ctrl-C or SIGTERM. The handlers are installed when this is
/// called, not when it is first awaited: call it before announcing that the
/// server listens, or a signal sent right after the announcement could find
/// no handler (and be lost if the parent left SIGINT ignored, as shells do
/// for background jobs).
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut int = signal(SignalKind::interrupt())?;
        let mut term = signal(SignalKind::terminate())?;
        Ok(async move {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}
