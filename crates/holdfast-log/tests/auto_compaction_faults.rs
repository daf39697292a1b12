//! Automatic compaction when things go wrong, with the fault hooks (feature
//! `fault-hooks`): a crash at every step of a background compaction loses
//! no acknowledged commit, and a compaction that fails fails no commit and
//! leaves the log working.

mod common;

use std::fs;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::*;
use holdfast_core::storage::{Commit, Storage, StorageKey};
use holdfast_log::{FaultHook, FaultPoint, LogOptions, LogStorage, LogStore};

const ENOSPC: i32 = 28;

fn in_compaction_thread() -> bool {
    std::thread::current().name() == Some("holdfast-log-compact")
}

/// Small segments and a low threshold: a compaction every few dozen
/// commits.
fn small_opts() -> LogOptions {
    LogOptions {
        segment_size: 4 << 10,
        compact_min_garbage_bytes: 16 << 10,
        compact_garbage_percent: 50,
        ..LogOptions::default()
    }
}

/// Commit `i` of a deterministic history over 40 keys in 8 documents: a put,
/// every 7th commit a delete, every 97th a whole document deleted.
fn history(i: usize) -> Commit {
    let k = |j: usize| -> StorageKey {
        key(&["doc", &format!("{:02}", j % 8), &format!("{:02}", j % 40)])
    };
    let mut c = Commit {
        puts: vec![(k(i), format!("v{i:05}-").repeat(30).into_bytes())],
        ..Default::default()
    };
    if i % 7 == 3 {
        c.deletes.push(k(i * 3 + 1));
    }
    if i % 97 == 50 {
        c.delete_prefixes
            .push(key(&["doc", &format!("{:02}", (i / 97) % 8)]));
    }
    c
}

fn state_after(n: usize) -> Model {
    let mut m = Model::default();
    for i in 0..n {
        m.apply(&history(i));
    }
    m
}

/// The directory as a crash at this instant would leave it: the segment
/// and `.log.tmp` files, copied newest first (a commit appending meanwhile
/// can only add to the newest, or to a segment not copied yet: the copy is
/// what some instant of the log looked like).
fn crash_copy(dir: &Path) -> tempfile::TempDir {
    let copy = tempfile::tempdir().unwrap();
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".log") || n.ends_with(".log.tmp"))
        .collect();
    names.sort();
    for name in names.iter().rev() {
        match fs::copy(dir.join(name), copy.path().join(name)) {
            Ok(_) => {}
            // Removed by a roll of the writer? Never: only compaction removes.
            Err(e) => panic!("copy {name}: {e}"),
        }
    }
    copy
}

struct Crash {
    point: FaultPoint,
    copy: tempfile::TempDir,
    /// Commits acknowledged before the copy began, and started before it
    /// ended: the copy must hold the state after one of acked..=started.
    acked: usize,
    started: usize,
}

#[test]
fn a_crash_at_any_step_of_an_automatic_compaction_loses_nothing_acknowledged() {
    const COMMITS: usize = 1500;
    let dir = tempfile::tempdir().unwrap();
    let opts = small_opts();
    let storage = open_storage(dir.path(), opts);
    let acked = Arc::new(AtomicUsize::new(0));
    let started = Arc::new(AtomicUsize::new(0));
    let crashes: Arc<Mutex<Vec<Crash>>> = Arc::default();
    {
        let (acked, started, crashes) = (acked.clone(), started.clone(), crashes.clone());
        let path = dir.path().to_path_buf();
        let hook: FaultHook = Box::new(move |point| {
            if in_compaction_thread() {
                let before = acked.load(Ordering::SeqCst);
                let copy = crash_copy(&path);
                crashes.lock().unwrap().push(Crash {
                    point,
                    copy,
                    acked: before,
                    started: started.load(Ordering::SeqCst),
                });
            }
            None
        });
        storage.set_fault_hook(Some(hook));
    }
    runtime().block_on(async {
        for i in 0..COMMITS {
            started.store(i + 1, Ordering::SeqCst);
            storage.commit(history(i)).await.unwrap();
            acked.store(i + 1, Ordering::SeqCst);
        }
    });
    storage.wait_for_compaction();
    storage.set_fault_hook(None);
    let stats = storage.metrics();
    assert!(stats.compactions >= 10, "{stats:?}");
    assert_eq!(stats.compaction_failures, 0);
    let end = state_after(COMMITS);
    assert_eq!(
        runtime().block_on(storage.range(&all())).unwrap(),
        end.dump()
    );
    drop(storage);

    let crashes = std::mem::take(&mut *crashes.lock().unwrap());
    let mut seen = Vec::new();
    for (n, crash) in crashes.iter().enumerate() {
        let (mut s, report) = LogStore::open(crash.copy.path(), opts)
            .unwrap_or_else(|e| panic!("crash {n} at {:?}: {e}", crash.point));
        let got = s.range(&all()).unwrap();
        let matched = (crash.acked..=crash.started).find(|&k| state_after(k).dump() == got);
        assert!(
            matched.is_some(),
            "crash {n} at {:?}: not the state after any of commits {}..={} ({report:?})",
            crash.point,
            crash.acked,
            crash.started
        );
        match crash.point {
            // The `.tmp` exists and is removed; the old segments are kept.
            FaultPoint::CompactWrite | FaultPoint::CompactRename => {
                assert_eq!(report.removed_temp_files, 1, "crash {n}: {report:?}");
                assert!(report.removed_segments.is_empty(), "crash {n}: {report:?}");
            }
            // After the rename: the compacted segment replaces what is left.
            FaultPoint::CompactRemove => {
                assert_eq!(report.removed_temp_files, 0, "crash {n}: {report:?}");
                assert!(!report.removed_segments.is_empty(), "crash {n}: {report:?}");
            }
            _ => {}
        }
        // The recovered log takes commits and reopens clean.
        let k = matched.unwrap();
        s.commit(&history(k)).unwrap();
        drop(s);
        let (s, report) = LogStore::open(crash.copy.path(), opts).unwrap();
        assert!(report.is_clean(), "crash {n}: {report:?}");
        assert_eq!(s.range(&all()).unwrap(), state_after(k + 1).dump());
        if !seen.contains(&crash.point) {
            seen.push(crash.point);
        }
    }
    for point in [
        FaultPoint::NewSegment,
        FaultPoint::CompactWrite,
        FaultPoint::CompactRename,
        FaultPoint::CompactRemove,
    ] {
        assert!(seen.contains(&point), "no crash at {point:?}");
    }
    eprintln!(
        "{} crash points over {} compactions, all recovered",
        crashes.len(),
        stats.compactions
    );
}

/// A hook failing the `nth` (from 1) call at `point` made by a compaction
/// thread with ENOSPC, while the switch is on.
fn failing_compaction(point: FaultPoint, nth: usize) -> (FaultHook, Arc<Mutex<bool>>) {
    let on = Arc::new(Mutex::new(true));
    let flag = on.clone();
    let mut calls = 0;
    let hook: FaultHook = Box::new(move |p| {
        if p != point || !in_compaction_thread() || !*flag.lock().unwrap() {
            return None;
        }
        calls += 1;
        (calls == nth).then(|| io::Error::from_raw_os_error(ENOSPC))
    });
    (hook, on)
}

/// Commit `history` from `from` until `done` holds for the metrics (at most
/// `limit` commits, each of which must succeed). Returns the next index.
async fn commit_until(
    storage: &LogStorage,
    m: &mut Model,
    from: usize,
    limit: usize,
    done: impl Fn(&holdfast_log::LogStats) -> bool,
) -> usize {
    for i in from..from + limit {
        commit(storage, m, history(i)).await;
        storage.wait_for_compaction();
        if done(&storage.metrics()) {
            return i + 1;
        }
    }
    panic!("not reached after {limit} commits: {:?}", storage.metrics());
}

#[test]
fn a_failed_automatic_compaction_fails_no_commit_and_the_log_keeps_working() {
    // The roll that starts it, creating its `.tmp`, writing it, renaming it.
    for (point, nth) in [
        (FaultPoint::NewSegment, 1),
        (FaultPoint::NewSegment, 2),
        (FaultPoint::CompactWrite, 1),
        (FaultPoint::CompactRename, 1),
    ] {
        let what = format!("{point:?} #{nth}");
        let dir = tempfile::tempdir().unwrap();
        let opts = small_opts();
        let storage = open_storage(dir.path(), opts);
        let (hook, on) = failing_compaction(point, nth);
        storage.set_fault_hook(Some(hook));
        let mut m = Model::default();
        runtime().block_on(async {
            let next = commit_until(&storage, &mut m, 0, 500, |s| s.compaction_failures > 0).await;
            let stats = storage.metrics();
            assert_eq!(
                (stats.compactions, stats.compaction_failures),
                (0, 1),
                "{what}"
            );
            assert!(!stats.compacting);
            assert!(files_ending(dir.path(), ".tmp").is_empty(), "{what}");
            assert_eq!(stats.disk_bytes, segment_bytes(dir.path()), "{what}");
            assert_eq!(storage.range(&all()).await.unwrap(), m.dump(), "{what}");

            // It waits before trying again: more garbage, no new attempt.
            *on.lock().unwrap() = false;
            for i in next..next + 200 {
                commit(&storage, &mut m, history(i)).await;
            }
            storage.wait_for_compaction();
            let stats = storage.metrics();
            assert_eq!(
                (stats.compactions, stats.compaction_failures),
                (0, 1),
                "{what}"
            );
            assert!(stats.garbage_bytes > 2 * opts.compact_min_garbage_bytes);

            // An explicit compaction works, and so does the automatic one after.
            let stats = storage.compact().await.unwrap();
            assert_eq!(stats.compactions, 1, "{what}");
            commit_until(&storage, &mut m, next + 200, 500, |s| s.compactions > 1).await;
            assert_eq!(storage.range(&all()).await.unwrap(), m.dump(), "{what}");
        });
        storage.wait_for_compaction();
        assert_eq!(
            storage.metrics().disk_bytes,
            segment_bytes(dir.path()),
            "{what}"
        );
        drop(storage);
        let (s, report) = LogStore::open(dir.path(), opts).unwrap();
        assert!(report.is_clean(), "{what}: {report:?}");
        assert_eq!(s.range(&all()).unwrap(), m.dump(), "{what}");
    }
}

#[test]
fn a_replaced_segment_that_cannot_be_removed_is_removed_at_next_open() {
    let dir = tempfile::tempdir().unwrap();
    let opts = small_opts();
    let storage = open_storage(dir.path(), opts);
    let (hook, _on) = failing_compaction(FaultPoint::CompactRemove, 1);
    storage.set_fault_hook(Some(hook));
    let mut m = Model::default();
    runtime().block_on(async {
        commit_until(&storage, &mut m, 0, 500, |s| s.compactions > 0).await;
    });
    storage.set_fault_hook(None);
    let stats = storage.metrics();
    // A success: the log switched; one old file is left over, not counted.
    assert_eq!((stats.compactions, stats.compaction_failures), (1, 0));
    let left = segment_bytes(dir.path()) - stats.disk_bytes;
    assert!(left > 0, "{stats:?}");
    drop(storage);
    let (s, report) = LogStore::open(dir.path(), opts).unwrap();
    assert_eq!(report.removed_segments.len(), 1, "{report:?}");
    assert_eq!(s.range(&all()).unwrap(), m.dump());
    assert_eq!(s.stats().unwrap().disk_bytes, segment_bytes(dir.path()));
}
