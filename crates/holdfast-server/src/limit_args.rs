//! The command-line flags of [`holdfast_server::Limits`] (each defaults to
//! `Limits::default()`; 0 turns a count limit off).

use std::time::Duration;

use clap::Args;
use holdfast_server::Limits;

#[derive(Args, Debug)]
#[command(next_help_heading = "Limits (0 = no limit; see docs/design.md)")]
pub struct LimitArgs {
    /// Open TCP connections in total [default: 3/4 of the file descriptor
    /// limit, at most 10000].
    #[arg(long)]
    max_connections: Option<usize>,
    /// Open TCP connections from one IP address [default: 256].
    #[arg(long)]
    max_connections_per_ip: Option<usize>,
    /// Seconds a new connection has to send its HTTP request head [default: 10].
    #[arg(long)]
    header_timeout_secs: Option<u64>,
    /// Seconds a WebSocket has to send `join` [default: 10].
    #[arg(long)]
    handshake_timeout_secs: Option<u64>,
    /// Bytes of received frames waiting for the core, all connections
    /// [default: 128 MiB].
    #[arg(long)]
    max_queued_in: Option<usize>,
    /// Unsent bytes one connection may have before it is dropped (a client
    /// that does not read) [default: 32 MiB].
    #[arg(long)]
    max_queued_out: Option<usize>,
    /// Unsent bytes of all connections together [default: 512 MiB].
    #[arg(long)]
    max_queued_out_total: Option<usize>,
    /// Storage reads (loads of documents not in memory) at once, all
    /// connections together [default: 16].
    #[arg(long)]
    max_storage_reads: Option<usize>,
    /// Documents one connection may sync [default: 10000].
    #[arg(long)]
    max_docs_per_connection: Option<usize>,
    /// Ephemeral messages per second from one connection [default: 100].
    #[arg(long)]
    ephemeral_per_sec: Option<u32>,
    /// Ephemeral payload bytes per second from one connection [default: 1 MiB].
    #[arg(long)]
    ephemeral_bytes_per_sec: Option<usize>,
    /// Documents one connection's messages may bring into memory per
    /// second (loaded or new), a tenth of it per 100 ms window; past it,
    /// its next frame waits for the next window [default: 2000].
    #[arg(long)]
    new_docs_per_sec: Option<u32>,
    /// Documents held in memory before idle ones are evicted [default: 10000].
    #[arg(long)]
    max_loaded_docs: Option<usize>,
}

impl LimitArgs {
    pub fn limits(&self) -> Limits {
        let mut l = Limits::default();
        let secs = Duration::from_secs;
        macro_rules! set {
            ($($field:ident => $target:expr, $map:expr;)*) => {$(
                if let Some(v) = self.$field {
                    $target = $map(v);
                }
            )*};
        }
        set! {
            max_connections => l.max_connections, |v| v;
            max_connections_per_ip => l.max_connections_per_ip, |v| v;
            header_timeout_secs => l.header_timeout, secs;
            handshake_timeout_secs => l.handshake_timeout, secs;
            max_queued_in => l.max_queued_in, |v| v;
            max_queued_out => l.max_queued_out, |v| v;
            max_queued_out_total => l.max_queued_out_total, |v| v;
            max_storage_reads => l.max_storage_reads, |v| v;
            max_docs_per_connection => l.conn.max_docs_per_conn, |v| v;
            ephemeral_per_sec => l.conn.ephemeral_per_sec, |v| v;
            ephemeral_bytes_per_sec => l.conn.ephemeral_bytes_per_sec, |v| v;
            max_loaded_docs => l.conn.max_loaded_docs, |v| v;
            new_docs_per_sec => l.conn.new_docs_per_sec, |v| v;
        }
        l
    }
}
