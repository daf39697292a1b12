//! Every reproducer in `fuzz/regressions/`: a sync message the fuzz target
//! found that made automerge 0.12 panic although it passed validation at the
//! time. Each must still make automerge panic at its recorded location with
//! validation off (so the file still means something), caught by the core,
//! and must be refused without any panic with validation on. A file marked
//! "# Unreachable" names an automerge path holdfast no longer calls: it
//! must cause no panic either way.

use std::path::PathBuf;

use holdfast_fuzz::{read_session, replay};

fn files() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("regressions");
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("fuzz/regressions")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    out.sort();
    out
}

/// The `file:line` after "# panic at automerge-0.12.0/src/".
fn site(text: &str) -> String {
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("# panic at "))
        .expect("a '# panic at' line");
    line.split(':').take(2).collect::<Vec<_>>().join(":")
}

#[test]
fn every_regression_panics_automerge_unvalidated_and_nothing_validated() {
    let files = files();
    assert!(files.len() >= 6, "{files:?}");
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let site = site(&text);
        let (_, inputs) = read_session(&text).unwrap();
        let off = replay(&inputs, false);
        let seen: Vec<_> = off.iter().flat_map(|r| &r.panics).collect();
        if text.lines().any(|l| l.starts_with("# Unreachable")) {
            assert!(seen.is_empty(), "{}: {seen:?}", f.display());
        } else {
            assert!(
                seen.iter().any(|p| p.location.ends_with(&site)),
                "{}: with validation off, no panic at {site}: {seen:?}",
                f.display()
            );
        }
        assert!(
            off.iter().all(|r| !r.unwound),
            "{}: escaped the core",
            f.display()
        );
        let on = replay(&inputs, true);
        let seen: Vec<_> = on.iter().flat_map(|r| &r.panics).collect();
        assert!(
            seen.is_empty(),
            "{}: with validation on: {seen:?}",
            f.display()
        );
    }
}
