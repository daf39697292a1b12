//! The npm package's error names agree with the one table in the core
//! (`holdfast_core::error::ErrorKind`): `HoldfastErrorName` in
//! `pkg/index.d.ts`, `ERROR_NAMES` in `pkg/index.js`, and every name the JS
//! wrapper throws itself. (The Rust side cannot drift: the browser crate
//! builds every JS error from an `ErrorKind`.)

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use holdfast_core::error::ErrorKind;

fn read(rel: &str) -> String {
    fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)).unwrap()
}

fn table() -> BTreeSet<String> {
    ErrorKind::ALL
        .iter()
        .map(|k| k.name().to_string())
        .collect()
}

/// The quoted `...Error` names between `start` and the first `end` after it
/// (comments left out).
fn quoted_names(text: &str, start: &str, end: &str) -> BTreeSet<String> {
    let from = text
        .find(start)
        .unwrap_or_else(|| panic!("{start:?} not found"));
    let block = &text[from..];
    let block = &block[..block.find(end).expect("end of the block") + 1];
    let code: String = block
        .lines()
        .filter(|l| {
            let l = l.trim_start();
            !(l.starts_with("/*") || l.starts_with('*') || l.starts_with("//"))
        })
        .collect();
    code.split('"')
        .skip(1)
        .step_by(2)
        .filter(|s| s.ends_with("Error"))
        .map(str::to_string)
        .collect()
}

/// What to paste into `pkg/index.d.ts` when the table changed.
fn expected_union() -> String {
    let mut out = String::from("export type HoldfastErrorName =\n");
    for (i, k) in ErrorKind::ALL.iter().enumerate() {
        let meaning = k.meaning().trim();
        let end = if i + 1 == ErrorKind::ALL.len() {
            ";"
        } else {
            ""
        };
        out += &format!("  /** {meaning} */\n  | \"{}\"{end}\n", k.name());
    }
    out
}

#[test]
fn index_d_ts_names_every_kind_in_the_table_and_nothing_else() {
    let dts = read("pkg/index.d.ts");
    let names = quoted_names(&dts, "export type HoldfastErrorName", "\";");
    assert_eq!(
        names,
        table(),
        "pkg/index.d.ts's HoldfastErrorName differs from holdfast_core::error; it should read:\n{}",
        expected_union()
    );
}

#[test]
fn index_js_error_names_and_the_wrappers_own_errors_are_in_the_table() {
    let js = read("pkg/index.js");
    let names = quoted_names(&js, "export const ERROR_NAMES", "]);");
    assert_eq!(names, table(), "pkg/index.js ERROR_NAMES");
    // The wrapper validates some input itself: `error("SomeError", ...)`.
    let thrown: BTreeSet<String> = js
        .match_indices("error(\"")
        .map(|(i, m)| {
            let rest = &js[i + m.len()..];
            rest[..rest.find('"').unwrap()].to_string()
        })
        .collect();
    assert!(!thrown.is_empty(), "the scan found the wrapper's errors");
    let table = table();
    let unknown: Vec<&String> = thrown.difference(&table).collect();
    assert!(
        unknown.is_empty(),
        "pkg/index.js throws names not in the table: {unknown:?}"
    );
}
