//! `GET /metrics`: the server's counters in Prometheus' text exposition
//! format (0.0.4).

use std::sync::atomic::Ordering;

use holdfast_core::repo::Repo;
use holdfast_core::storage::Storage;

use super::Driver;

impl<S: Storage + 'static> Driver<S> {
    /// The server's metrics in Prometheus' text exposition format (0.0.4).
    pub(super) fn metrics(&self, repo: &Repo) -> String {
        use std::fmt::Write;
        let stats = &self.setup.stats;
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
            self.conns.len() as u64,
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
            repo.loaded_docs() as u64,
        );
        counter(
            &mut out,
            "holdfast_documents_evicted_total",
            "Idle documents dropped from memory (they load again when asked for).",
            repo.evicted_docs(),
        );
        counter(
            &mut out,
            "holdfast_storage_reads_total",
            "Documents read from storage (a message about one not in memory and listed in the index).",
            self.loads.started_total,
        );
        gauge(
            &mut out,
            "holdfast_frames_waiting_for_storage",
            "Frames whose connection waits for the storage reads they started.",
            self.loads.frames_held() as u64,
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
        self.input_seconds.borrow().write(
            &mut out,
            "holdfast_core_input_seconds",
            "Time the core task spent on one input (a frame, a completion, a timer), its effects included: what every other input waited.",
        );
        let _ = writeln!(
            out,
            "# HELP holdfast_refusals_total Connections, frames and messages refused, by reason.\n\
             # TYPE holdfast_refusals_total counter"
        );
        for (reason, n) in stats.refusals() {
            let _ = writeln!(out, "holdfast_refusals_total{{reason=\"{reason}\"}} {n}");
        }
        for (reason, n) in repo.refused() {
            let _ = writeln!(out, "holdfast_refusals_total{{reason=\"{reason}\"}} {n}");
        }
        out
    }
}
