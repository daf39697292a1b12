//! The server's resource limits: each has a flag (`main.rs`) and a default
//! sized for one machine serving a few thousand clients. Each is logged (at
//! `warn`, untrusted strings escaped) and counted in `/metrics`
//! (`holdfast_refusals_total{reason}`) when it bites.
//!
//! Together they bound what a client can make the server hold:
//! - sockets: `max_connections` in total, `max_connections_per_ip`, each
//!   closed if its HTTP request head is not in within `header_timeout` or
//!   its `join` within `handshake_timeout`;
//! - input: at most one frame per connection waits for the core, and at
//!   most `max_queued_in` bytes of frames for all connections together
//!   (readers wait: the socket's own buffers push back on the client);
//! - output: a connection whose unsent frames pass `max_queued_out` bytes is
//!   disconnected (a client that does not read is never buffered without
//!   bound; an empty queue always takes one frame, however large, so a big
//!   document can still be sent), and when all connections together pass
//!   `max_queued_out_total`, the one with the most unsent bytes goes;
//! - storage reads: a frame that makes the core load documents holds its
//!   connection's input slot until storage answered, and at most
//!   `max_storage_reads` reads run at once (`loads.rs`);
//! - in the core (`holdfast_core::repo::ConnLimits`): documents per
//!   connection, ephemeral messages and bytes per second, new documents per
//!   second (past it the connection's next frame waits for the next
//!   second), documents held in memory (idle ones are evicted and reloaded
//!   on demand).

use std::time::Duration;

use holdfast_core::repo::ConnLimits;

#[derive(Clone, Debug)]
pub struct Limits {
    /// Open TCP connections, all clients together (0: no limit).
    pub max_connections: usize,
    /// Open TCP connections from one IP address (0: no limit).
    pub max_connections_per_ip: usize,
    /// Time for a new connection to send its HTTP request head.
    pub header_timeout: Duration,
    /// Time for a WebSocket to send its first frame (`join`).
    pub handshake_timeout: Duration,
    /// Bytes of frames waiting for the core, all connections together.
    pub max_queued_in: usize,
    /// Unsent bytes one connection may have queued before it is dropped.
    pub max_queued_out: usize,
    /// Unsent bytes of all connections together.
    pub max_queued_out_total: usize,
    /// Storage reads (loads of documents not in memory) running at once,
    /// all connections together; a frame that starts loads also holds its
    /// connection's input slot until they are done.
    pub max_storage_reads: usize,
    /// What one connection may make the core hold or relay.
    pub conn: ConnLimits,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: default_max_connections(),
            max_connections_per_ip: 256,
            header_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            max_queued_in: 128 << 20,
            max_queued_out: 32 << 20,
            max_queued_out_total: 512 << 20,
            max_storage_reads: 16,
            conn: ConnLimits::server(),
        }
    }
}

/// Three quarters of the file descriptors this process may open (after
/// raising the soft limit to the hard one), at most 10,000: the rest stay
/// for the log's segments, `/healthz` and the listener itself.
pub fn default_max_connections() -> usize {
    (raise_fd_limit() as usize / 4 * 3).clamp(16, 10_000)
}

/// Raise the soft `RLIMIT_NOFILE` to the hard limit; the limit now in force.
#[cfg(unix)]
pub fn raise_fd_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    #[allow(clippy::unnecessary_cast)] // rlim_t is not u64 everywhere
    let cur = lim.rlim_cur as u64;
    cur
}

#[cfg(not(unix))]
pub fn raise_fd_limit() -> u64 {
    1024
}
