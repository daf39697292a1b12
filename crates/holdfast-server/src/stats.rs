//! Counters shared by the socket thread and the core's task, read by
//! `GET /metrics`, and the one place refusals are logged.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Why the server refused a connection, a frame or a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// `max_connections` reached: the socket was closed at accept.
    Connections,
    /// `max_connections_per_ip` reached.
    ConnectionsPerIp,
    /// No `join` within `handshake_timeout`.
    HandshakeTimeout,
    /// A frame above the socket layer's size limit.
    FrameTooLarge,
    /// The client did not read: its unsent frames passed `max_queued_out`.
    QueueFull,
    /// All clients' unsent frames passed `max_queued_out_total`; this one
    /// had the most.
    QueueTotal,
}

impl Refusal {
    pub const ALL: [Refusal; 6] = [
        Refusal::Connections,
        Refusal::ConnectionsPerIp,
        Refusal::HandshakeTimeout,
        Refusal::FrameTooLarge,
        Refusal::QueueFull,
        Refusal::QueueTotal,
    ];

    /// The `reason` label in `/metrics`.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::Connections => "max_connections",
            Refusal::ConnectionsPerIp => "max_connections_per_ip",
            Refusal::HandshakeTimeout => "handshake_timeout",
            Refusal::FrameTooLarge => "frame_too_large",
            Refusal::QueueFull => "max_queued_out",
            Refusal::QueueTotal => "max_queued_out_total",
        }
    }
}

#[derive(Default)]
pub struct Stats {
    refusals: [AtomicU64; Refusal::ALL.len()],
    /// TCP connections open now (HTTP and WebSocket).
    pub tcp_open: AtomicU64,
    /// Frame bytes received from and sent to clients.
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    /// Bytes queued for clients and not yet written, all connections (see
    /// `driver::ConnOut`).
    pub queued_out: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Stats {
    /// Count a refusal and log it (`detail` must already be safe to log).
    pub fn refuse(&self, why: Refusal, detail: std::fmt::Arguments<'_>) {
        let n = self.refusals[why as usize].fetch_add(1, Ordering::Relaxed);
        // A flood would flood the log: the first 10 of each kind, then
        // every 1,000th (the counter has them all).
        if n < 10 || n.is_multiple_of(1000) {
            tracing::warn!(reason = why.label(), total = n + 1, "refused: {detail}");
        }
    }

    pub fn refusals(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        Refusal::ALL.iter().map(|r| {
            (
                r.label(),
                self.refusals[*r as usize].load(Ordering::Relaxed),
            )
        })
    }
}

/// More samples for `/metrics`, from the storage (e.g. [`log_metrics`]);
/// called on the socket thread, so it must not wait for the storage.
#[derive(Clone)]
pub struct ExtraMetrics(pub std::sync::Arc<dyn Fn() -> String + Send + Sync>);

impl std::fmt::Debug for ExtraMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ExtraMetrics")
    }
}

/// The log's figures in Prometheus' text format: its size on disk and what
/// of it is live, compactions, and the fsync latency histogram.
pub fn log_metrics(s: &holdfast_log::LogStats) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let mut one = |name: &str, kind: &str, help: &str, v: u64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
        );
    };
    one(
        "holdfast_log_bytes",
        "gauge",
        "Bytes of the log's segment files.",
        s.disk_bytes,
    );
    one(
        "holdfast_log_live_bytes",
        "gauge",
        "Bytes of live values in the log.",
        s.live_bytes,
    );
    one(
        "holdfast_log_garbage_bytes",
        "gauge",
        "Bytes of the log a compaction would free.",
        s.garbage_bytes,
    );
    one(
        "holdfast_log_compactions_total",
        "counter",
        "Log compactions completed since start.",
        s.compactions,
    );
    one(
        "holdfast_log_compaction_failures_total",
        "counter",
        "Log compactions that failed since start (nothing lost; retried later).",
        s.compaction_failures,
    );
    let name = "holdfast_fsync_seconds";
    let _ = writeln!(
        out,
        "# HELP {name} Duration of each commit's fdatasync.\n# TYPE {name} histogram"
    );
    let buckets = s.fsync.cumulative();
    for (le, n) in &buckets {
        let le = if le.is_infinite() {
            "+Inf".to_string()
        } else {
            le.to_string()
        };
        let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {n}");
    }
    let count = buckets.last().map_or(0, |b| b.1);
    let _ = writeln!(
        out,
        "{name}_sum {}\n{name}_count {count}",
        s.fsync.sum.as_secs_f64()
    );
    out
}

/// An input that held the core task longer than this is logged.
const SLOW_INPUT: Duration = Duration::from_millis(100);

/// Times the core task's handling of one input, until dropped, into a
/// histogram (`holdfast_core_input_seconds`): the core serves every
/// connection, so this is how long every other input waited. One over
/// [`SLOW_INPUT`] is logged with its kind.
pub struct Busy {
    t0: Instant,
    kind: &'static str,
    into: Rc<RefCell<Histogram>>,
}

impl Busy {
    pub fn new(kind: &'static str, into: Rc<RefCell<Histogram>>) -> Self {
        Self {
            t0: Instant::now(),
            kind,
            into,
        }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let took = self.t0.elapsed();
        self.into.borrow_mut().observe(took.as_secs_f64());
        if took > SLOW_INPUT {
            let ms = took.as_millis() as u64;
            tracing::warn!(
                input = self.kind,
                ms,
                "the core task was busy with one input for long; every connection waited"
            );
        }
    }
}

/// Latency buckets, in seconds (`holdfast_commit_seconds`,
/// `holdfast_core_input_seconds`).
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

#[derive(Clone, Default)]
pub struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    pub fn observe(&mut self, v: f64) {
        for (b, n) in BUCKETS.iter().zip(self.counts.iter_mut()) {
            if v <= *b {
                *n += 1;
            }
        }
        self.count += 1;
        self.sum += v;
    }

    /// Add `other`'s observations (another shard's) to these.
    pub fn merge(&mut self, other: &Histogram) {
        for (n, m) in self.counts.iter_mut().zip(other.counts.iter()) {
            *n += m;
        }
        self.count += other.count;
        self.sum += other.sum;
    }

    pub fn write(&self, out: &mut String, name: &str, help: &str) {
        use std::fmt::Write;
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (b, n) in BUCKETS.iter().zip(self.counts.iter()) {
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{le=\"+Inf\"}} {c}\n{name}_sum {s}\n{name}_count {c}",
            c = self.count,
            s = self.sum
        );
    }
}
