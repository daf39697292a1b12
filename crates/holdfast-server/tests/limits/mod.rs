//! The scenario shared by `hostile_limits*.rs` (issue 14's attacks on
//! resources): the real `holdfast-server` binary with limits set small
//! enough to bite within a test, real sockets on 127.0.0.1, and after each
//! attack the same checks ([`Env::still_serves`]):
//! - `/healthz` answers `ok`;
//! - a fresh well-behaved client creates a document and gets its ack, and a
//!   second one reads it back;
//! - the server's peak RSS, sampled through the attack, stayed under
//!   [`RSS_CAP_MIB`], what the limits the test configured allow.

#![allow(dead_code)]

use std::time::Duration;

use automerge::transaction::Transactable;
use automerge::ROOT;
use holdfast_core::id::DocumentId;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::common::*;

/// The RSS every attack must stay under. The limits each test sets bound
/// what clients can make the server hold well below it (an unlimited
/// server reached 0.3-2.2 GB under the same attacks); the debug build of
/// an idle server holds ~15 MiB.
pub const RSS_CAP_MIB: u64 = 256;

pub struct Env {
    pub server: ServerProc,
    _dir: tempfile::TempDir,
    pub peak_rss_mib: u64,
}

impl Env {
    pub fn start(flags: &[&str]) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let server = ServerProc::spawn(dir.path(), flags);
        Env {
            server,
            _dir: dir,
            peak_rss_mib: 0,
        }
    }

    pub fn url(&self) -> String {
        self.server.url()
    }

    /// The server's resident set now (MiB), also kept as the peak.
    pub fn rss_mib(&mut self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.server.pid()))
            .expect("the server's /proc status");
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS");
        let mib = kib / 1024;
        self.peak_rss_mib = self.peak_rss_mib.max(mib);
        mib
    }

    pub async fn metric(&self, series: &str) -> u64 {
        metric(self.server.addr, series).await
    }

    pub async fn refusals(&self, reason: &str) -> u64 {
        self.metric(&format!("holdfast_refusals_total{{reason=\"{reason}\"}}"))
            .await
    }

    /// Ask `/metrics` until `series` reaches at least `n`. Each attempt is a
    /// round trip to the server, not a wait on a clock.
    pub async fn metric_reaches(&mut self, series: &str, n: u64) -> u64 {
        within(&format!("{series} >= {n}"), async {
            loop {
                let v = self.metric(series).await;
                self.rss_mib();
                if v >= n {
                    return v;
                }
                tokio::task::yield_now().await;
            }
        })
        .await
    }

    /// The checks after every attack (module docs). Returns how long the
    /// well-behaved writer waited for its ack.
    pub async fn still_serves(&mut self, case: &str) -> Duration {
        let addr = self.server.addr;
        let answer = within("/healthz", http_get(addr, "/healthz")).await;
        assert_eq!(answer, (200, "ok\n".into()), "{case}: /healthz");
        let url = self.url();
        let mut writer = Client::connect(&url).await;
        let t0 = Instant::now();
        let note = format!("written after {case}");
        let n = note.clone();
        let (doc, _) = writer.create(move |tx| tx.put(ROOT, "note", n));
        let heads = writer.heads(&doc);
        writer.wait_acked(&doc, &heads).await;
        let acked_in = t0.elapsed();
        let mut reader = Client::connect(&url).await;
        reader.find_doc(doc).await;
        reader
            .wait_for("the acknowledged document", |c| {
                sorted(c.heads(&doc)) == sorted(heads.clone())
            })
            .await;
        assert_eq!(get_str(&reader.doc(&doc), "note"), Some(note));
        writer.close().await;
        reader.close().await;
        let rss = self.rss_mib();
        eprintln!(
            "{case}: a well-behaved client's ack after {acked_in:?}; server RSS now {rss} MiB, peak {} MiB",
            self.peak_rss_mib
        );
        assert!(
            self.peak_rss_mib < RSS_CAP_MIB,
            "{case}: server RSS peaked at {} MiB (cap {RSS_CAP_MIB} MiB)",
            self.peak_rss_mib
        );
        acked_in
    }
}

impl Env {
    /// Once every client has gone: no connection is left, and nothing
    /// stays counted as queued for one (a leak there would, in time, make
    /// the total limit drop innocent connections).
    pub async fn all_released(&mut self) {
        within("every connection to be released", async {
            while self.metric("holdfast_connections").await != 0
                || self.metric("holdfast_queued_out_bytes").await != 0
            {
                tokio::task::yield_now().await;
            }
        })
        .await;
    }
}

/// A joined raw client syncing `doc` (it sent a request for it, and the
/// server answered).
pub async fn subscriber(url: &str, doc: DocumentId) -> (Raw, String) {
    let mut raw = Raw::connect(url).await;
    let server = raw.join().await;
    raw.send_msg(&empty_sync(doc, &raw.peer_id, &server)).await;
    match raw.next().await {
        RawIn::Msg(_) => {}
        RawIn::Closed | RawIn::Undecodable(_) => panic!("the server closed a subscriber"),
    }
    (raw, server)
}

/// Wait until the server closes `stream` (EOF or reset), reading and
/// dropping whatever it sends; true if it was closed, false if `limit`
/// passed first.
pub async fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

/// A string of `n` bytes that automerge cannot compress much.
pub fn noise(n: usize) -> String {
    let mut out = String::with_capacity(n);
    while out.len() < n {
        out.push_str(&hex::encode(random_bytes::<32>()));
    }
    out.truncate(n);
    out
}
