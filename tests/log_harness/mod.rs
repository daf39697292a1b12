//! Shared helpers of the log storage tests (`mod log_harness;` in
//! `log_recovery.rs`, `log_roundtrip.rs` and `log_failures.rs`): real files
//! in temp dirs, the numbered commits and their expected states, and a
//! multi-segment history for compaction.
#![allow(dead_code)]

use std::fs;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use holdfast_core::memory::MemoryStorage;
use holdfast_core::storage::{Commit, Storage, StorageKey};
use holdfast_log::{segment_file_name, LogOptions, LogStore};

/// MemoryStorage's futures never wait.
pub fn now<F: Future>(f: F) -> F::Output {
    match pin!(f).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("memory storage future was pending"),
    }
}

pub fn key(parts: &[&str]) -> StorageKey {
    StorageKey::new(parts.iter().copied())
}

pub fn all() -> StorageKey {
    StorageKey(vec![])
}

pub fn open(dir: &Path, opts: LogOptions) -> (LogStore, holdfast_log::RecoveryReport) {
    LogStore::open(dir, opts).expect("open never fails on damaged data")
}

pub fn seg(dir: &Path, id: u64) -> PathBuf {
    dir.join(segment_file_name(id))
}

pub fn segment_ids(dir: &Path) -> Vec<u64> {
    let mut ids: Vec<u64> = fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".log")?.parse().ok()
        })
        .collect();
    ids.sort();
    ids
}

/// Copy the segment files of `src` into a fresh temp dir.
pub fn copy_log(src: &Path) -> tempfile::TempDir {
    let dst = tempfile::tempdir().unwrap();
    for id in segment_ids(src) {
        fs::copy(seg(src, id), seg(dst.path(), id)).unwrap();
    }
    dst
}

pub fn memory_dump(m: &MemoryStorage) -> Vec<(StorageKey, Vec<u8>)> {
    now(m.range(&all())).unwrap()
}

/// Commit `i` of the recovery tests: two puts under a unique name, and a
/// delete of the key commit `i - 1` put as its `-b` (so absence of a torn
/// commit shows in both directions).
pub fn numbered_commit(i: usize) -> Commit {
    Commit {
        puts: vec![
            (key(&["doc", "c", &format!("{i:03}-a")]), vec![i as u8; 16]),
            (
                key(&["doc", "c", &format!("{i:03}-b")]),
                vec![!(i as u8); 9],
            ),
        ],
        deletes: if i > 0 {
            vec![key(&["doc", "c", &format!("{:03}-b", i - 1)])]
        } else {
            vec![]
        },
        delete_prefixes: vec![],
    }
}

/// The state after commits `0..n` of [`numbered_commit`].
pub fn numbered_state(n: usize) -> Vec<(StorageKey, Vec<u8>)> {
    let m = MemoryStorage::new();
    for i in 0..n {
        now(m.commit(numbered_commit(i))).unwrap();
    }
    memory_dump(&m)
}

/// A single-segment log holding `n` numbered commits; returns the segment's
/// length after each commit (`ends[0]` is the empty segment).
pub fn numbered_log(dir: &Path, n: usize) -> Vec<u64> {
    let (mut s, report) = open(dir, LogOptions::default());
    assert!(report.is_clean());
    let mut ends = vec![fs::metadata(seg(dir, 1)).unwrap().len()];
    for i in 0..n {
        s.commit(&numbered_commit(i)).unwrap();
        ends.push(fs::metadata(seg(dir, 1)).unwrap().len());
    }
    ends
}

/// Build a multi-segment history where an early segment holds puts that a
/// later one deletes (one by key, one by prefix).
pub fn compaction_history(dir: &Path, opts: LogOptions) -> (LogStore, MemoryStorage) {
    let (mut s, _) = open(dir, opts);
    let m = MemoryStorage::new();
    let mut commit = |c: Commit| {
        s.commit(&c).unwrap();
        now(m.commit(c)).unwrap();
    };
    for i in 0..20 {
        commit(Commit {
            puts: vec![
                (key(&["k", &format!("{i:02}")]), vec![i; 40]),
                (key(&["p", &format!("{i:02}")]), vec![i; 8]),
            ],
            ..Default::default()
        });
    }
    for i in 0..10 {
        commit(Commit {
            deletes: vec![key(&["k", &format!("{i:02}")])],
            ..Default::default()
        });
    }
    commit(Commit {
        delete_prefixes: vec![key(&["p"])],
        puts: vec![(key(&["k", "15"]), b"overwritten".to_vec())],
        ..Default::default()
    });
    (s, m)
}
