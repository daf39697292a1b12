//! `GET /metrics`: the server's counters in Prometheus' text exposition
//! format (0.0.4). Each shard's driver reports its [`Figures`]; the HTTP
//! side sums them over the shards and renders them with the figures every
//! shard shares ([`Stats`]).

use std::sync::atomic::Ordering;

use holdfast_core::repo::Repo;
use holdfast_core::storage::Storage;

use super::Driver;
use crate::stats::{Histogram, Stats};

/// What one shard's driver knows for `/metrics`.
#[derive(Clone, Default)]
pub struct Figures {
    /// Frames that decoded, by message type.
    pub received: Vec<(&'static str, u64)>,
    /// The core's refusals, by reason.
    pub refused: Vec<(&'static str, u64)>,
    /// WebSocket connections open (every shard holds every connection:
    /// merged as the largest, not the sum).
    pub connections: u64,
    pub loaded: u64,
    pub evicted: u64,
    pub reads: u64,
    pub frames_held: u64,
    pub commit_seconds: Histogram,
    pub input_seconds: Histogram,
}

fn add(into: &mut Vec<(&'static str, u64)>, from: &[(&'static str, u64)]) {
    for (k, n) in from {
        match into.iter_mut().find(|(x, _)| x == k) {
            Some((_, m)) => *m += n,
            None => into.push((k, *n)),
        }
    }
}

impl Figures {
    /// Add another shard's figures to these.
    pub fn merge(&mut self, o: &Figures) {
        add(&mut self.received, &o.received);
        add(&mut self.refused, &o.refused);
        self.connections = self.connections.max(o.connections);
        self.loaded += o.loaded;
        self.evicted += o.evicted;
        self.reads += o.reads;
        self.frames_held += o.frames_held;
        self.commit_seconds.merge(&o.commit_seconds);
        self.input_seconds.merge(&o.input_seconds);
    }

    /// The metrics text: these figures and the shared `stats`.
    pub fn render(&self, stats: &Stats) -> String {
        use std::fmt::Write;
        let mut out = String::from(
            "# HELP holdfast_messages_received_total Frames received from peers that decoded, by message type.\n\
             # TYPE holdfast_messages_received_total counter\n",
        );
        for (kind, n) in &self.received {
            // Message type names are fixed wire strings: nothing to escape.
            let _ = writeln!(
                out,
                "holdfast_messages_received_total{{type=\"{kind}\"}} {n}"
            );
        }
        let gauge = |out: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        };
        let counter = |out: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        };
        gauge(
            &mut out,
            "holdfast_connections",
            "WebSocket connections open now.",
            self.connections,
        );
        gauge(
            &mut out,
            "holdfast_sockets",
            "TCP connections open now (HTTP and WebSocket).",
            stats.tcp_open.load(Ordering::Relaxed),
        );
        gauge(
            &mut out,
            "holdfast_documents_loaded",
            "Documents held in memory now.",
            self.loaded,
        );
        counter(
            &mut out,
            "holdfast_documents_evicted_total",
            "Idle documents dropped from memory (they load again when asked for).",
            self.evicted,
        );
        counter(
            &mut out,
            "holdfast_storage_reads_total",
            "Documents read from storage (a message about one not in memory and listed in the index).",
            self.reads,
        );
        gauge(
            &mut out,
            "holdfast_frames_waiting_for_storage",
            "Frames whose connection waits for the storage reads they started.",
            self.frames_held,
        );
        gauge(
            &mut out,
            "holdfast_queued_out_bytes",
            "Bytes queued for clients and not yet written to their sockets.",
            stats.queued_out.load(Ordering::Relaxed) as u64,
        );
        counter(
            &mut out,
            "holdfast_bytes_received_total",
            "Frame bytes received from clients.",
            stats.bytes_in.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "holdfast_bytes_sent_total",
            "Frame bytes written to clients.",
            stats.bytes_out.load(Ordering::Relaxed),
        );
        self.commit_seconds.write(
            &mut out,
            "holdfast_commit_seconds",
            "Time from issuing a group commit to its completion (the fsync included).",
        );
        self.input_seconds.write(
            &mut out,
            "holdfast_core_input_seconds",
            "Time a core task spent on one input (a frame, a completion, a timer), its effects included: what every other input of its shard waited.",
        );
        let _ = writeln!(
            out,
            "# HELP holdfast_refusals_total Connections, frames and messages refused, by reason.\n\
             # TYPE holdfast_refusals_total counter"
        );
        for (reason, n) in stats.refusals() {
            let _ = writeln!(out, "holdfast_refusals_total{{reason=\"{reason}\"}} {n}");
        }
        for (reason, n) in &self.refused {
            let _ = writeln!(out, "holdfast_refusals_total{{reason=\"{reason}\"}} {n}");
        }
        out
    }
}

impl<S: Storage + 'static> Driver<S> {
    /// This shard's figures.
    pub(super) fn figures(&self, repo: &Repo) -> Figures {
        Figures {
            received: repo
                .received()
                .iter()
                .map(|(k, n)| {
                    let quiet = self.quiet_received.iter().find(|(q, _)| q == k);
                    (*k, n - quiet.map_or(0, |(_, m)| *m))
                })
                .collect(),
            refused: repo.refused().iter().map(|(k, n)| (*k, *n)).collect(),
            connections: self.conns.len() as u64,
            loaded: repo.loaded_docs() as u64,
            evicted: repo.evicted_docs(),
            reads: self.loads.started_total,
            frames_held: self.loads.frames_held() as u64,
            commit_seconds: self.commit_seconds.clone(),
            input_seconds: self.input_seconds.borrow().clone(),
        }
    }
}
