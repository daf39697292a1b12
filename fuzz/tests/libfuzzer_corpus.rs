//! Replays the checked-in corpus of the coverage-guided targets
//! (`fuzz/libfuzzer/corpus/<target>/`, made by cargo-fuzz) through the same
//! target bodies on stable Rust, without libFuzzer. Under libFuzzer any
//! panic aborts the fuzzer, also one the core catches (with validation on,
//! a panic inside automerge is a bug); here the panic hook sees them all,
//! and any is a failure.

use std::path::PathBuf;
use std::time::Instant;

use holdfast_fuzz::targets::{check, TARGETS};

fn replay(name: &str) {
    let (_, target) = TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .expect("a target of that name");
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("libfuzzer/corpus")
        .join(name);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(
        files.len() >= 20,
        "{}: only {} inputs",
        dir.display(),
        files.len()
    );
    let start = Instant::now();
    let mut failures = Vec::new();
    for f in &files {
        let data = std::fs::read(f).unwrap();
        let seen = check(*target, &data);
        if !seen.is_empty() {
            failures.push(format!("{}: {seen:?}", f.display()));
        }
    }
    println!(
        "{name}: {} inputs in {:.2} s",
        files.len(),
        start.elapsed().as_secs_f64()
    );
    assert!(
        failures.is_empty(),
        "{} of {} inputs panicked (reproduce with `cargo +nightly fuzz run --fuzz-dir fuzz/libfuzzer {name} FILE`):\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}

#[test]
fn frame_decode_corpus_replays_without_panic() {
    replay("frame_decode");
}

#[test]
fn repo_frames_corpus_replays_without_panic() {
    replay("repo_frames");
}
