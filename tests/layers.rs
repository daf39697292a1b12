//! The layout's promises, checked on the source itself: no two files import
//! each other, directly or round a longer circle (within each crate: the
//! browser crate's `src/`, every `crates/*/src` and `fuzz/src`; a file naming a module
//! that contains it, as `impl Repo` in `repo/commit.rs` names `super::Repo`,
//! is Rust's way to split one type across files and does not count), and no
//! source file runs
//! past ~500 lines unless its header says why (a line starting `//! Length:`).
//! `scripts/check-layers.sh` checks the crate graph (`cargo tree`).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

const MAX_LINES: usize = 520;

/// A crate's source files by module path (`[]` is the crate root).
fn modules(src: &Path) -> BTreeMap<Vec<String>, PathBuf> {
    let mut out = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(src).unwrap();
            let mut segs: Vec<String> = rel
                .iter()
                .map(|s| s.to_string_lossy().trim_end_matches(".rs").to_string())
                .collect();
            if matches!(
                segs.last().map(String::as_str),
                Some("mod" | "lib" | "main")
            ) {
                segs.pop();
            }
            // A binary's main.rs and the library's lib.rs are separate roots;
            // only the library's tree is checked here.
            if rel == Path::new("main.rs") {
                continue;
            }
            out.insert(segs, path);
        }
    }
    out
}

/// Paths a file names: `crate::a::b`, `super::a`, `self::a`, the items of
/// one-level `{...}` groups after them, and bare `child::` for its own
/// child modules. Returned as absolute module paths.
fn references(text: &str, me: &[String], children: &BTreeSet<String>) -> Vec<Vec<String>> {
    // An inline `mod tests { use super::*; }` names this file, not its
    // parent: leave inline test modules (they come last) out. Strip line
    // comments (the only kind this code base uses).
    let text = match text.find("#[cfg(test)]\nmod tests {") {
        Some(i) => &text[..i],
        None => text,
    };
    let code: String = text
        .lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    let ident = |i: usize| -> (String, usize) {
        let mut j = i;
        while j < bytes.len() && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_') {
            j += 1;
        }
        (code[i..j].to_string(), j)
    };
    let mut i = 0;
    while i < bytes.len() {
        let boundary = i == 0
            || !(bytes[i - 1].is_ascii_alphanumeric()
                || bytes[i - 1] == b'_'
                || bytes[i - 1] == b':');
        if !boundary || !(bytes[i].is_ascii_alphabetic() || bytes[i] == b'_') {
            i += 1;
            continue;
        }
        let (first, mut j) = ident(i);
        let base: Option<Vec<String>> = match first.as_str() {
            _ if !code[j..].starts_with("::") => None,
            "crate" => Some(vec![]),
            "super" => Some(me[..me.len().saturating_sub(1)].to_vec()),
            "self" => Some(me.to_vec()),
            f if children.contains(f) => Some(me.iter().cloned().chain([f.to_string()]).collect()),
            _ => None,
        };
        let Some(mut path) = base else {
            i = j;
            continue;
        };
        loop {
            if !code[j..].starts_with("::") {
                break;
            }
            j += 2;
            if code[j..].starts_with('{') {
                let end = code[j..].find('}').map(|e| j + e).unwrap_or(code.len());
                for item in code[j + 1..end].split(',') {
                    let segs: Vec<String> = item
                        .trim()
                        .split("::")
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty() && s != "self" && s != "*")
                        .collect();
                    out.push(path.iter().cloned().chain(segs).collect());
                }
                j = end;
                break;
            }
            let (seg, k) = ident(j);
            if seg.is_empty() {
                break;
            }
            path.push(seg);
            j = k;
        }
        out.push(path);
        i = j.max(i + 1);
    }
    out
}

/// The module file a path lands in: its longest prefix that is a file.
fn target<'a>(
    mods: &'a BTreeMap<Vec<String>, PathBuf>,
    path: &[String],
) -> Option<&'a Vec<String>> {
    (0..=path.len())
        .rev()
        .find_map(|n| mods.get_key_value(&path[..n]).map(|(k, _)| k))
}

fn crate_dirs() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut dirs = vec![root.join("src"), root.join("fuzz/src")];
    for entry in fs::read_dir(root.join("crates")).unwrap() {
        dirs.push(entry.unwrap().path().join("src"));
    }
    dirs
}

/// Strongly connected components with more than one file (Tarjan).
fn circles(graph: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>) -> Vec<Vec<Vec<String>>> {
    struct T<'g> {
        g: &'g BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        index: BTreeMap<&'g Vec<String>, usize>,
        low: BTreeMap<&'g Vec<String>, usize>,
        stack: Vec<&'g Vec<String>>,
        on: BTreeSet<&'g Vec<String>>,
        out: Vec<Vec<Vec<String>>>,
    }
    impl<'g> T<'g> {
        fn visit(&mut self, v: &'g Vec<String>) {
            let n = self.index.len();
            self.index.insert(v, n);
            self.low.insert(v, n);
            self.stack.push(v);
            self.on.insert(v);
            for w in &self.g[v] {
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let lw = self.low[w];
                    let lv = self.low.get_mut(v).unwrap();
                    *lv = (*lv).min(lw);
                } else if self.on.contains(w) {
                    let iw = self.index[w];
                    let lv = self.low.get_mut(v).unwrap();
                    *lv = (*lv).min(iw);
                }
            }
            if self.low[v] == self.index[v] {
                let mut comp = Vec::new();
                loop {
                    let w = self.stack.pop().unwrap();
                    self.on.remove(w);
                    comp.push(w.clone());
                    if w == v {
                        break;
                    }
                }
                if comp.len() > 1 {
                    self.out.push(comp);
                }
            }
        }
    }
    let mut t = T {
        g: graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: vec![],
        on: BTreeSet::new(),
        out: vec![],
    };
    for v in graph.keys() {
        if !t.index.contains_key(v) {
            t.visit(v);
        }
    }
    t.out
}

#[test]
fn no_file_imports_a_file_that_imports_it_back() {
    let mut found = Vec::new();
    for src in crate_dirs() {
        let mods = modules(&src);
        let mut graph: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
        for (me, path) in &mods {
            let text = fs::read_to_string(path).unwrap();
            let name = path.file_name().unwrap().to_string_lossy();
            let is_dir_module = name == "mod.rs" || name == "lib.rs";
            let children: BTreeSet<String> = mods
                .keys()
                .filter(|k| k.len() == me.len() + 1 && k.starts_with(me) && is_dir_module)
                .map(|k| k.last().unwrap().clone())
                .collect();
            let edges = graph.entry(me.clone()).or_default();
            for r in references(&text, me, &children) {
                if let Some(t) = target(&mods, &r) {
                    // Naming a module that contains this file (`super::Repo`)
                    // is how Rust splits one type's methods across files,
                    // not a circle; a file's own `tests` module is not one
                    // either. Every other reference is an edge.
                    let ancestor = me.starts_with(t);
                    let own_tests =
                        t.last().map(String::as_str) == Some("tests") && t.starts_with(me);
                    if !ancestor && !own_tests {
                        edges.insert(t.clone());
                    }
                }
            }
        }
        for c in circles(&graph) {
            let name = |m: &Vec<String>| {
                mods[m]
                    .strip_prefix(src.parent().unwrap())
                    .unwrap()
                    .display()
                    .to_string()
            };
            let inside: BTreeSet<&Vec<String>> = c.iter().collect();
            let edges: Vec<String> = c
                .iter()
                .flat_map(|a| {
                    graph[a]
                        .iter()
                        .filter(|b| inside.contains(b))
                        .map(move |b| (a, b))
                })
                .map(|(a, b)| format!("  {} -> {}", name(a), name(b)))
                .collect();
            found.push(format!(
                "{} files in a circle:\n{}",
                c.len(),
                edges.join("\n")
            ));
        }
    }
    assert!(
        found.is_empty(),
        "import circles between files:\n{}",
        found.join("\n")
    );
}

#[test]
fn no_source_file_is_long_without_saying_why() {
    let mut long = Vec::new();
    for src in crate_dirs() {
        for path in modules(&src).values() {
            let text = fs::read_to_string(path).unwrap();
            let lines = text.lines().count();
            let says_why = text
                .lines()
                .take_while(|l| l.starts_with("//"))
                .any(|l| l.starts_with("//! Length:"));
            if lines > MAX_LINES && !says_why {
                long.push(format!("{} ({lines} lines)", path.display()));
            }
        }
    }
    assert!(
        long.is_empty(),
        "files over {MAX_LINES} lines without a `//! Length:` reason in their header:\n{}",
        long.join("\n")
    );
}
