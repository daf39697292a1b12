//! What a fuzz run reports ([`Report`]), and what it measures for it:
//! per-input wall times ([`Histogram`]) and peak RSS.

use std::path::PathBuf;
use std::time::Duration;

use crate::play::Tally;
use crate::KNOWN_PANICS;

/// A distinct panic location.
#[derive(Clone, Debug)]
pub struct Site {
    pub location: String,
    pub message: String,
    /// 1-based number of the input that first hit it, and when.
    pub first_input: u64,
    pub first_secs: f64,
    pub count: u64,
    /// How many of those panics reached the fuzzer (the core did not catch them).
    pub unwound: u64,
    pub finding: Option<PathBuf>,
}

#[derive(Debug, Default)]
pub struct Report {
    pub inputs: u64,
    pub secs: f64,
    /// Per input, the fuzzing thread's CPU time (what `--slow-ms` limits):
    pub max_ms: f64,
    /// and the most wall time, which also counts time the thread waited for
    /// a core (other processes on the machine).
    pub max_wall_ms: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Inputs slower than `slow_ms`.
    pub slow: u64,
    /// Of those, inputs carrying under 1 MiB of data ([`data_bytes`]): a
    /// slow small input means work beyond linear.
    ///
    /// [`data_bytes`]: crate::data_bytes
    pub slow_small: u64,
    /// The least data a slow input carried, and the most time per MiB of
    /// data a slow input took.
    pub slow_min_bytes: Option<u64>,
    pub slow_max_ms_per_mib: f64,
    pub slowest: Option<PathBuf>,
    pub panics: u64,
    pub sites: Vec<Site>,
    pub tally: Tally,
    pub findings: Vec<PathBuf>,
    pub peak_rss_kb: Option<u64>,
}

impl Report {
    /// When each known panic was first seen (`None`: not seen).
    pub fn known(&self) -> Vec<(&'static str, &'static str, Option<&Site>)> {
        KNOWN_PANICS
            .iter()
            .map(|(name, loc)| (*name, *loc, self.sites.iter().find(|s| s.location == *loc)))
            .collect()
    }

    pub fn summary(&self) -> String {
        let mut s = String::new();
        s.push_str(&format!(
            "{} inputs in {:.1} s ({:.0}/s); per input, CPU time: max {:.2} ms, p99 {:.2} ms, p50 {:.3} ms (wall time: max {:.2} ms); {} over the slow threshold\n",
            self.inputs,
            self.secs,
            self.inputs as f64 / self.secs.max(1e-9),
            self.max_ms,
            self.p99_ms,
            self.p50_ms,
            self.max_wall_ms,
            self.slow
        ));
        if let Some(min) = self.slow_min_bytes {
            s.push_str(&format!(
                "slow inputs carried at least {:.1} MiB of data (frames plus inflated changes); at most {:.1} ms per MiB; {} carried under 1 MiB\n",
                min as f64 / f64::from(1 << 20),
                self.slow_max_ms_per_mib,
                self.slow_small
            ));
        }
        if let Some(p) = &self.slowest {
            s.push_str(&format!("slowest input written to {}\n", p.display()));
        }
        s.push_str(&format!(
            "panics: {} in total at {} distinct locations\n",
            self.panics,
            self.sites.len()
        ));
        for site in &self.sites {
            s.push_str(&format!(
                "  {}  first at input {} after {:.2} s; {} times ({} not caught by the core): {}\n",
                site.location,
                site.first_input,
                site.first_secs,
                site.count,
                site.unwound,
                one_line(&site.message)
            ));
            if let Some(f) = &site.finding {
                s.push_str(&format!("      reproducer: {}\n", f.display()));
            }
        }
        s.push_str("frames by outcome:");
        for (k, v) in &self.tally.frames {
            s.push_str(&format!(" {k}={v}"));
        }
        s.push('\n');
        if self.tally.livelocks + self.tally.handshake_failures > 0 {
            s.push_str(&format!(
                "livelocks: {}, failed handshakes: {}\n",
                self.tally.livelocks, self.tally.handshake_failures
            ));
        }
        if let Some(kb) = self.peak_rss_kb {
            s.push_str(&format!(
                "peak RSS (VmHWM): {:.1} MiB\n",
                kb as f64 / 1024.0
            ));
        }
        s
    }
}

pub(crate) fn one_line(s: &str) -> String {
    let l: String = s.lines().next().unwrap_or("").chars().take(300).collect();
    l
}

/// Per-input wall times: 10 µs buckets up to 1 s, and the exact maximum.
pub(crate) struct Histogram {
    buckets: Vec<u32>,
    n: u64,
    pub(crate) max: Duration,
}

const BUCKET_US: u64 = 10;

impl Histogram {
    pub(crate) fn new() -> Self {
        Self {
            buckets: vec![0; 100_001],
            n: 0,
            max: Duration::ZERO,
        }
    }
    pub(crate) fn add(&mut self, d: Duration) {
        let i = ((d.as_micros() as u64) / BUCKET_US).min(100_000) as usize;
        self.buckets[i] += 1;
        self.n += 1;
        self.max = self.max.max(d);
    }
    pub(crate) fn quantile_ms(&self, q: f64) -> f64 {
        if self.n == 0 {
            return 0.0;
        }
        let target = ((self.n as f64) * q).ceil() as u64;
        let mut acc = 0;
        for (i, c) in self.buckets.iter().enumerate() {
            acc += u64::from(*c);
            if acc >= target {
                return ((i as u64 + 1) * BUCKET_US) as f64 / 1000.0;
            }
        }
        self.max.as_secs_f64() * 1000.0
    }
}

/// Peak resident set size of this process, from /proc/self/status.
pub fn peak_rss_kb() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
