//! The options of a fuzz run, and where its findings go by default.

use std::path::{Path, PathBuf};

#[derive(Clone, Debug)]
pub struct Options {
    pub seed: u64,
    /// `RepoConfig::validate_peer_input`.
    pub validate: bool,
    /// Stop after this long,
    pub seconds: Option<f64>,
    /// or after this many inputs.
    pub max_inputs: Option<u64>,
    pub stop_on_panic: bool,
    /// Stop once every [`KNOWN_PANICS`](crate::KNOWN_PANICS) location was seen.
    pub until_known: bool,
    /// A fresh repo (from the base storage image) every this many inputs.
    pub reset_every: u64,
    /// Inputs slower than this are counted (and the slowest written out).
    pub slow_ms: f64,
    /// Where findings go; `None`: nowhere.
    pub findings: Option<PathBuf>,
    /// Print progress every 10 s and each new panic location to stderr.
    pub verbose: bool,
    /// An input running longer than this is a hang: a watchdog thread writes
    /// it to the findings directory and ends the process (exit status 3), as
    /// a stuck input cannot be interrupted. `None`: no watchdog.
    pub hang_secs: Option<f64>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            seed: 1,
            validate: true,
            seconds: Some(60.0),
            max_inputs: None,
            stop_on_panic: false,
            until_known: false,
            reset_every: 64,
            slow_ms: 100.0,
            findings: Some(default_findings_dir()),
            verbose: true,
            hang_secs: Some(10.0),
        }
    }
}

pub fn default_findings_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("findings")
}
