//! holdfast-fuzz: a structure-aware mutation fuzzer for what peers send the
//! holdfast core, on stable Rust (no cargo-fuzz, no sanitizer coverage).
//!
//! Each input is played against a real [`holdfast_core::repo::Repo`]
//! configured as a server: a new incoming connection, the `join` handshake,
//! then 1..=12 frames: genuine sync messages captured from real automerge
//! sync sessions ([`corpus`]), mutated ([`mutate`]). Panics are recorded by
//! a panic hook (which sees them even when the core catches them) and by
//! `catch_unwind` around each input (when it does not); wall time is
//! measured per input.
//!
//! [`run`] is the loop; the `holdfast-fuzz` binary and `tests/short.rs` both
//! call it. See `fuzz/README.md`.
//!
//! Modules: [`corpus`] (the seed sessions), [`mutate`] (the mutators),
//! [`format`](mod@format) (sync message and chunk parsers), [`driver`]
//! (the repo and its in-memory storage); private, their public items
//! re-exported here: `play` (one input on a connection), `panics` (the panic
//! hook), `runner` (the loop, with `options`, `report` and `watchdog`),
//! `findings` (finding files and replay) and `explain`. [`targets`]: the
//! bodies of the coverage-guided targets in `fuzz/libfuzzer/` (cargo-fuzz),
//! which `tests/libfuzzer_corpus.rs` replays on stable.

pub mod corpus;
pub mod driver;
mod explain;
mod findings;
pub mod format;
pub mod mutate;
mod options;
mod panics;
mod play;
mod report;
mod runner;
pub mod targets;
mod watchdog;

pub use explain::{data_bytes, describe_frame, describe_ops};
pub use findings::{read_session, replay, write_session, Replayed};
pub use options::{default_findings_dir, Options};
pub use panics::{install_panic_hook, short_path, PanicSeen, BACKTRACES};
pub use play::{play, Tally};
pub use report::{peak_rss_kb, Report, Site};
pub use runner::{run, run_with};

/// One input: the frames sent after the handshake.
pub type Input = Vec<Vec<u8>>;

pub const PEER_ID: &str = "fuzz-peer";
pub const SERVER_ID: &str = "holdfast-server";

/// The panics of issue 11, by a short name and the end of their location.
pub const KNOWN_PANICS: [(&str, &str); 3] = [
    (
        "Bloom filter with zero bits per entry",
        "automerge-0.12.0/src/sync/bloom.rs:74",
    ),
    (
        "change with its seq rewritten",
        "automerge-0.12.0/src/change_graph.rs:569",
    ),
    (
        "first change of a new actor with seq > 1",
        "automerge-0.12.0/src/op_set2/change/batch.rs:1121",
    ),
];
