//! Shared helpers of the automatic-compaction tests: real files in temp
//! dirs, a model of the expected state, directory sizes, and a
//! current-thread tokio runtime like the server's.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use holdfast_core::storage::{Commit, Storage, StorageKey};
use holdfast_log::{LogOptions, LogStorage, LogStore};

pub fn key(parts: &[&str]) -> StorageKey {
    StorageKey::new(parts.iter().copied())
}

pub fn all() -> StorageKey {
    StorageKey(vec![])
}

/// The expected contents: a commit applied as `MemoryStorage` does
/// (deletes, then prefix deletes, then puts).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Model(pub BTreeMap<StorageKey, Vec<u8>>);

impl Model {
    pub fn apply(&mut self, c: &Commit) {
        for k in &c.deletes {
            self.0.remove(k);
        }
        for p in &c.delete_prefixes {
            self.0.retain(|k, _| !k.starts_with(p));
        }
        for (k, v) in &c.puts {
            self.0.insert(k.clone(), v.clone());
        }
    }

    pub fn dump(&self) -> Vec<(StorageKey, Vec<u8>)> {
        self.0.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// Bytes of live values.
    pub fn live_bytes(&self) -> u64 {
        self.0.values().map(|v| v.len() as u64).sum()
    }
}

/// A current-thread runtime, as in the server (commits run on its blocking
/// pool).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

/// Bytes of every file directly in `dir` (segments, `.log.tmp`, `LOCK`).
pub fn dir_bytes(dir: &Path) -> u64 {
    fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let m = e.ok()?.metadata().ok()?;
            m.is_file().then_some(m.len())
        })
        .sum()
}

/// The file names directly in `dir` ending with `suffix`, sorted.
pub fn files_ending(dir: &Path, suffix: &str) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(suffix))
        .collect();
    names.sort();
    names
}

/// Bytes of the segment files (`*.log`) in `dir`.
pub fn segment_bytes(dir: &Path) -> u64 {
    files_ending(dir, ".log")
        .iter()
        .map(|n| fs::metadata(dir.join(n)).unwrap().len())
        .sum()
}

pub fn open_storage(dir: &Path, opts: LogOptions) -> LogStorage {
    let (s, report) = LogStorage::open(dir, opts).unwrap();
    assert!(report.is_clean(), "{report:?}");
    s
}

/// Commit through the `Storage` trait and apply to the model.
pub async fn commit(s: &LogStorage, m: &mut Model, c: Commit) {
    m.apply(&c);
    s.commit(c).await.expect("commit");
}

/// Reopen `dir` with the synchronous store and compare it with `m`.
pub fn reopen_and_check(dir: &Path, opts: LogOptions, m: &Model) -> LogStore {
    let (s, report) = LogStore::open(dir, opts).unwrap();
    assert_eq!(
        s.range(&all()).unwrap(),
        m.dump(),
        "after reopen ({report:?})"
    );
    s
}
