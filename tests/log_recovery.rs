//! The server's log storage against real files and real fsync: round trips
//! against `MemoryStorage`, torn tails at every byte offset, bit flips,
//! compaction crashes and injected I/O failures.
#![cfg(not(target_arch = "wasm32"))]

use std::fs;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use holdfast_core::memory::MemoryStorage;
use holdfast_core::storage::{Commit, Storage, StorageError, StorageKey};
use holdfast_log::{
    segment_file_name, FaultHook, FaultPoint, LogError, LogOptions, LogStorage, LogStore,
};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// MemoryStorage's futures never wait.
fn now<F: Future>(f: F) -> F::Output {
    match pin!(f).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("memory storage future was pending"),
    }
}

fn key(parts: &[&str]) -> StorageKey {
    StorageKey::new(parts.iter().copied())
}

fn all() -> StorageKey {
    StorageKey(vec![])
}

fn open(dir: &Path, opts: LogOptions) -> (LogStore, holdfast_log::RecoveryReport) {
    LogStore::open(dir, opts).expect("open never fails on damaged data")
}

fn seg(dir: &Path, id: u64) -> PathBuf {
    dir.join(segment_file_name(id))
}

fn segment_ids(dir: &Path) -> Vec<u64> {
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
fn copy_log(src: &Path) -> tempfile::TempDir {
    let dst = tempfile::tempdir().unwrap();
    for id in segment_ids(src) {
        fs::copy(seg(src, id), seg(dst.path(), id)).unwrap();
    }
    dst
}

fn memory_dump(m: &MemoryStorage) -> Vec<(StorageKey, Vec<u8>)> {
    now(m.range(&all())).unwrap()
}

/// Commit `i` of the recovery tests: two puts under a unique name, and a
/// delete of the key commit `i - 1` put as its `-b` (so absence of a torn
/// commit shows in both directions).
fn numbered_commit(i: usize) -> Commit {
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
fn numbered_state(n: usize) -> Vec<(StorageKey, Vec<u8>)> {
    let m = MemoryStorage::new();
    for i in 0..n {
        now(m.commit(numbered_commit(i))).unwrap();
    }
    memory_dump(&m)
}

/// A single-segment log holding `n` numbered commits; returns the segment's
/// length after each commit (`ends[0]` is the empty segment).
fn numbered_log(dir: &Path, n: usize) -> Vec<u64> {
    let (mut s, report) = open(dir, LogOptions::default());
    assert!(report.is_clean());
    let mut ends = vec![fs::metadata(seg(dir, 1)).unwrap().len()];
    for i in 0..n {
        s.commit(&numbered_commit(i)).unwrap();
        ends.push(fs::metadata(seg(dir, 1)).unwrap().len());
    }
    ends
}

fn random_key(rng: &mut ChaCha8Rng) -> StorageKey {
    let doc = ["a", "b", "c", "d"][rng.random_range(0..4)];
    let kind = ["snapshot", "incremental"][rng.random_range(0..2)];
    key(&[doc, kind, &rng.random_range(0..8u32).to_string()])
}

#[test]
fn random_commits_match_memory_storage_across_reopens_and_compactions() {
    let started = Instant::now();
    let (mut commits, mut reopens, mut compactions) = (0, 0, 0);
    for seed in 0..4u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let dir = tempfile::tempdir().unwrap();
        let opts = LogOptions {
            segment_size: 2048,
            ..LogOptions::default()
        };
        let (mut store, _) = open(dir.path(), opts);
        let model = MemoryStorage::new();
        for step in 0..250 {
            let mut c = Commit::default();
            for _ in 0..rng.random_range(0..4) {
                let len = rng.random_range(0..120);
                let v: Vec<u8> = (0..len).map(|_| rng.random()).collect();
                c.puts.push((random_key(&mut rng), v));
            }
            for _ in 0..rng.random_range(0..3) {
                c.deletes.push(random_key(&mut rng));
            }
            if rng.random_bool(0.05) {
                let doc = ["a", "b", "c", "d"][rng.random_range(0..4)];
                c.delete_prefixes.push(match rng.random_range(0..3) {
                    0 => key(&[doc]),
                    1 => key(&[doc, "incremental"]),
                    _ => key(&[doc, "snapshot", "1"]),
                });
            }
            // A put of a key deleted in the same commit must win (deletes first).
            if let (Some(d), true) = (c.deletes.first().cloned(), rng.random_bool(0.2)) {
                c.puts.push((d, vec![step as u8]));
            }
            store.commit(&c).unwrap();
            now(model.commit(c)).unwrap();
            commits += 1;

            if rng.random_bool(0.06) {
                drop(store);
                let (s, report) = open(dir.path(), opts);
                assert!(report.is_clean(), "seed {seed} step {step}: {report:?}");
                store = s;
                reopens += 1;
            }
            if rng.random_bool(0.02) {
                store.compact().unwrap();
                assert_eq!(segment_ids(dir.path()).len(), 1);
                compactions += 1;
            }
            if step % 10 == 0 {
                assert_eq!(
                    store.range(&all()).unwrap(),
                    memory_dump(&model),
                    "seed {seed} step {step}"
                );
            }
        }
        for doc in ["a", "b", "c", "d"] {
            let p = key(&[doc, "incremental"]);
            assert_eq!(store.range(&p).unwrap(), now(model.range(&p)).unwrap());
        }
        for _ in 0..20 {
            let k = random_key(&mut rng);
            assert_eq!(store.get(&k).unwrap(), now(model.get(&k)).unwrap());
        }
        drop(store);
        let (store, report) = open(dir.path(), opts);
        assert!(report.is_clean());
        assert_eq!(
            store.range(&all()).unwrap(),
            memory_dump(&model),
            "seed {seed} final"
        );
    }
    println!(
        "round trip: {commits} commits, {reopens} reopens, {compactions} compactions compared with MemoryStorage in {:?}",
        started.elapsed()
    );
}

#[test]
fn torn_tail_at_every_byte_offset_of_the_last_records() {
    let started = Instant::now();
    const N: usize = 8;
    let src = tempfile::tempdir().unwrap();
    let ends = numbered_log(src.path(), N);
    let from = ends[N - 3];
    let to = ends[N];
    let mut checked = 0;
    for cut in from..to {
        let dir = copy_log(src.path());
        let file = fs::OpenOptions::new()
            .write(true)
            .open(seg(dir.path(), 1))
            .unwrap();
        file.set_len(cut).unwrap();
        drop(file);

        let (mut s, report) = open(dir.path(), LogOptions::default());
        // The number of whole records before the cut.
        let whole = ends.iter().filter(|&&e| e <= cut).count() - 1;
        assert_eq!(report.truncated_bytes, cut - ends[whole], "cut at {cut}");
        assert!(report.quarantined.is_empty());
        assert_eq!(report.records, whole as u64);
        assert_eq!(
            s.range(&all()).unwrap(),
            numbered_state(whole),
            "cut at {cut}"
        );
        assert_eq!(fs::metadata(seg(dir.path(), 1)).unwrap().len(), ends[whole]);

        // The store accepts commits after recovery, and they survive.
        s.commit(&numbered_commit(whole)).unwrap();
        drop(s);
        let (s, report) = open(dir.path(), LogOptions::default());
        assert!(report.is_clean(), "cut at {cut}: {report:?}");
        assert_eq!(s.range(&all()).unwrap(), numbered_state(whole + 1));
        checked += 1;
    }
    println!(
        "torn tail: {checked} cut offsets checked over the last 3 records ({} bytes) in {:?}",
        to - from,
        started.elapsed()
    );
}

#[test]
fn bit_flips_in_a_middle_record_are_quarantined_and_the_rest_kept() {
    let started = Instant::now();
    const N: usize = 7;
    const DAMAGED: usize = 3;
    let src = tempfile::tempdir().unwrap();
    let ends = numbered_log(src.path(), N);
    let (start, end) = (ends[DAMAGED], ends[DAMAGED + 1]);
    // The expected state: every commit except the damaged one.
    let model = MemoryStorage::new();
    for i in (0..N).filter(|&i| i != DAMAGED) {
        now(model.commit(numbered_commit(i))).unwrap();
    }
    let expected = memory_dump(&model);
    let mut flips = 0;
    for at in start..end {
        let dir = copy_log(src.path());
        let path = seg(dir.path(), 1);
        let mut bytes = fs::read(&path).unwrap();
        bytes[at as usize] ^= 1 << (at % 8);
        fs::write(&path, &bytes).unwrap();

        let (mut s, report) = open(dir.path(), LogOptions::default());
        assert_eq!(report.truncated_bytes, 0, "flip at {at}");
        assert_eq!(report.records, (N - 1) as u64, "flip at {at}");
        assert_eq!(report.quarantined.len(), 1, "flip at {at}: {report:?}");
        let q = &report.quarantined[0];
        assert_eq!((q.segment, q.offset, q.len), (1, start, end - start));
        assert_eq!(
            fs::read(&q.path).unwrap(),
            bytes[start as usize..end as usize]
        );
        assert_eq!(s.range(&all()).unwrap(), expected, "flip at {at}");
        s.commit(&numbered_commit(N)).unwrap();
        drop(s);
        let (s, report) = open(dir.path(), LogOptions::default());
        assert_eq!(report.quarantined.len(), 1);
        assert!(s
            .get(&key(&["doc", "c", &format!("{N:03}-a")]))
            .unwrap()
            .is_some());
        flips += 1;
    }
    println!(
        "bit flips: {flips} flipped bytes (every byte of a {}-byte middle record: 12 header + {} payload) in {:?}",
        end - start,
        end - start - 12,
        started.elapsed()
    );
}

#[test]
fn a_corrupt_segment_header_is_quarantined_and_its_records_kept() {
    let src = tempfile::tempdir().unwrap();
    numbered_log(src.path(), 4);
    let path = seg(src.path(), 1);
    let mut bytes = fs::read(&path).unwrap();
    bytes[21] ^= 0x04;
    fs::write(&path, &bytes).unwrap();
    let (s, report) = open(src.path(), LogOptions::default());
    assert_eq!(report.quarantined.len(), 1);
    assert_eq!(report.quarantined[0].offset, 0);
    assert_eq!(report.records, 4);
    assert_eq!(s.range(&all()).unwrap(), numbered_state(4));
}

#[test]
fn a_torn_new_segment_header_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    numbered_log(dir.path(), 3);
    fs::write(seg(dir.path(), 2), b"HFLOGS").unwrap();
    let opts = LogOptions {
        segment_size: 64,
        ..LogOptions::default()
    };
    let (mut s, report) = open(dir.path(), opts);
    assert_eq!(report.truncated_bytes, 6);
    assert_eq!(segment_ids(dir.path()), vec![1]);
    assert_eq!(s.range(&all()).unwrap(), numbered_state(3));
    // The next commit rolls into a freshly created segment 2.
    s.commit(&numbered_commit(3)).unwrap();
    assert_eq!(segment_ids(dir.path()), vec![1, 2]);
    drop(s);
    let (s, report) = open(dir.path(), opts);
    assert!(report.is_clean());
    assert_eq!(s.range(&all()).unwrap(), numbered_state(4));
}

/// Build a multi-segment history where an early segment holds puts that a
/// later one deletes (one by key, one by prefix).
fn compaction_history(dir: &Path, opts: LogOptions) -> (LogStore, MemoryStorage) {
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

#[test]
fn compaction_keeps_live_keys_and_drops_deleted_ones() {
    let dir = tempfile::tempdir().unwrap();
    let opts = LogOptions {
        segment_size: 512,
        ..LogOptions::default()
    };
    let (mut s, m) = compaction_history(dir.path(), opts);
    let before = s.stats().unwrap();
    assert!(before.segments > 3, "{before:?}");
    let after = s.compact().unwrap();
    assert_eq!(after.segments, 1);
    assert_eq!(after.live_keys, 10);
    assert!(after.disk_bytes < before.disk_bytes);
    assert_eq!(segment_ids(dir.path()), vec![before.active_segment + 1]);
    assert_eq!(s.range(&all()).unwrap(), memory_dump(&m));
    // Commits after compaction append to the compacted segment and roll on.
    for i in 0..10u8 {
        let c = Commit {
            puts: vec![(key(&["n", &i.to_string()]), vec![i; 100])],
            deletes: vec![key(&["k", "12"])],
            ..Default::default()
        };
        s.commit(&c).unwrap();
        now(m.commit(c)).unwrap();
    }
    drop(s);
    let (s, report) = open(dir.path(), opts);
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(s.range(&all()).unwrap(), memory_dump(&m));
    assert_eq!(s.get(&key(&["k", "03"])).unwrap(), None);
    assert_eq!(s.range(&key(&["p"])).unwrap(), vec![]);
}

#[test]
fn a_crash_during_compaction_recovers_either_side() {
    let dir = tempfile::tempdir().unwrap();
    let opts = LogOptions {
        segment_size: 512,
        ..LogOptions::default()
    };
    let (mut s, m) = compaction_history(dir.path(), opts);
    let old_ids = segment_ids(dir.path());
    let before = copy_log(dir.path());
    s.compact().unwrap();
    let new_id = *segment_ids(dir.path()).last().unwrap();
    // A commit after compaction deletes a key whose put is in the oldest segment.
    let c = Commit {
        deletes: vec![key(&["k", "10"])],
        ..Default::default()
    };
    s.commit(&c).unwrap();
    now(m.commit(c)).unwrap();
    drop(s);

    // 1. Crash after the rename, before any old segment was removed: both.
    let both = copy_log(dir.path());
    for &id in &old_ids {
        fs::copy(seg(before.path(), id), seg(both.path(), id)).unwrap();
    }
    let (s, report) = open(both.path(), opts);
    assert_eq!(report.removed_segments, old_ids);
    assert_eq!(s.range(&all()).unwrap(), memory_dump(&m));
    assert_eq!(segment_ids(both.path()), segment_ids(dir.path()));
    assert_eq!(segment_ids(both.path())[0], new_id);
    drop(s);

    // 2. Crash midway through the removals: only the newest old segments are
    // left (they are removed in ascending order)... and, worse than any real
    // crash, only the OLDEST one, whose puts were deleted later.
    for keep in [&old_ids[old_ids.len() - 2..], &old_ids[..1]] {
        let partial = copy_log(dir.path());
        for &id in keep {
            fs::copy(seg(before.path(), id), seg(partial.path(), id)).unwrap();
        }
        let (s, report) = open(partial.path(), opts);
        assert_eq!(report.removed_segments, keep.to_vec());
        assert_eq!(s.range(&all()).unwrap(), memory_dump(&m), "kept {keep:?}");
    }

    // 3. Crash before the rename: the old segments and a complete `.tmp`.
    let pre = copy_log(before.path());
    fs::copy(
        seg(dir.path(), new_id),
        pre.path().join(format!("{new_id:016}.log.tmp")),
    )
    .unwrap();
    let (s, report) = open(pre.path(), opts);
    assert_eq!(report.removed_temp_files, 1);
    assert!(report.removed_segments.is_empty());
    assert_eq!(segment_ids(pre.path()), old_ids);
    // The state before compaction (without the later delete).
    assert!(s.get(&key(&["k", "10"])).unwrap().is_some());
    assert_eq!(s.get(&key(&["k", "05"])).unwrap(), None);
    assert_eq!(s.range(&key(&["p"])).unwrap(), vec![]);
    assert_eq!(s.keys(&all()).len(), 10);
}

/// A hook failing the listed points with the given OS errors, as long as the
/// switch is on.
fn failing(points: Vec<(FaultPoint, i32)>) -> (FaultHook, Arc<Mutex<bool>>) {
    let on = Arc::new(Mutex::new(true));
    let flag = on.clone();
    let hook: FaultHook = Box::new(move |p| {
        if !*flag.lock().unwrap() {
            return None;
        }
        points
            .iter()
            .find(|(q, _)| *q == p)
            .map(|(_, errno)| io::Error::from_raw_os_error(*errno))
    });
    (hook, on)
}

const ENOSPC: i32 = 28;
const EIO: i32 = 5;

#[test]
fn failed_writes_return_typed_errors_and_keep_acknowledged_data() {
    let dir = tempfile::tempdir().unwrap();
    let opts = LogOptions::default();
    let (mut s, _) = open(dir.path(), opts);
    let path = seg(dir.path(), 1);
    let len = || fs::metadata(seg(dir.path(), 1)).unwrap().len();
    s.commit(&numbered_commit(0)).unwrap();
    let acked = len();

    // Disk full in the middle of the append: QuotaExceeded, partial bytes gone.
    let (hook, _) = failing(vec![(FaultPoint::Write, ENOSPC)]);
    s.set_fault_hook(Some(hook));
    let err = s.commit(&numbered_commit(1)).unwrap_err();
    assert!(matches!(err, LogError::Io { .. }), "{err}");
    assert!(matches!(
        StorageError::from(err),
        StorageError::QuotaExceeded(_)
    ));
    assert_eq!(len(), acked);

    // fdatasync fails (EIO): Io, the written record truncated away.
    let (hook, _) = failing(vec![(FaultPoint::Sync, EIO)]);
    s.set_fault_hook(Some(hook));
    let err = StorageError::from(s.commit(&numbered_commit(1)).unwrap_err());
    assert!(matches!(err, StorageError::Io(_)), "{err}");
    assert_eq!(len(), acked);
    assert_eq!(s.range(&all()).unwrap(), numbered_state(1));

    // The store keeps working.
    s.set_fault_hook(None);
    s.commit(&numbered_commit(1)).unwrap();
    let acked = len();

    // The append fails and so does its truncation: the store is poisoned.
    let (hook, _) = failing(vec![(FaultPoint::Write, EIO), (FaultPoint::Truncate, EIO)]);
    s.set_fault_hook(Some(hook));
    assert!(s.commit(&numbered_commit(2)).is_err());
    assert!(len() > acked, "half a record was left behind");
    s.set_fault_hook(None);
    assert!(s.is_poisoned());
    let err = s.commit(&numbered_commit(2)).unwrap_err();
    assert!(matches!(err, LogError::Poisoned(_)));
    assert!(matches!(
        StorageError::from(err),
        StorageError::Unavailable(_)
    ));
    assert!(matches!(s.compact(), Err(LogError::Poisoned(_))));
    // Reads still work.
    assert_eq!(s.range(&all()).unwrap(), numbered_state(2));
    let torn = len();
    drop(s);

    // Reopening cuts the half record; everything acknowledged is there.
    let (mut s, report) = open(dir.path(), opts);
    assert_eq!(report.truncated_bytes, torn - acked);
    assert_eq!(fs::metadata(&path).unwrap().len(), acked);
    assert_eq!(s.range(&all()).unwrap(), numbered_state(2));
    s.commit(&numbered_commit(2)).unwrap();

    // Rolling to a new segment fails: typed error, no stray segment file.
    drop(s);
    let small = LogOptions {
        segment_size: 64,
        ..opts
    };
    let (mut s, _) = open(dir.path(), small);
    let (hook, on) = failing(vec![(FaultPoint::NewSegment, ENOSPC)]);
    s.set_fault_hook(Some(hook));
    let err = StorageError::from(s.commit(&numbered_commit(3)).unwrap_err());
    assert!(matches!(err, StorageError::QuotaExceeded(_)), "{err}");
    assert_eq!(segment_ids(dir.path()), vec![1]);
    *on.lock().unwrap() = false;
    s.commit(&numbered_commit(3)).unwrap();
    assert_eq!(segment_ids(dir.path()), vec![1, 2]);
    drop(s);
    let (s, report) = open(dir.path(), small);
    assert!(report.is_clean());
    assert_eq!(s.range(&all()).unwrap(), numbered_state(4));
}

#[test]
fn an_oversized_commit_is_refused_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    let opts = LogOptions {
        max_record: 1024,
        ..LogOptions::default()
    };
    let (mut s, _) = open(dir.path(), opts);
    let before = fs::metadata(seg(dir.path(), 1)).unwrap().len();
    let err = s
        .commit(&Commit {
            puts: vec![(key(&["big"]), vec![0; 2000])],
            ..Default::default()
        })
        .unwrap_err();
    assert!(
        matches!(err, LogError::RecordTooLarge { max: 1024, .. }),
        "{err}"
    );
    assert!(matches!(
        StorageError::from(err),
        StorageError::QuotaExceeded(_)
    ));
    assert_eq!(fs::metadata(seg(dir.path(), 1)).unwrap().len(), before);
    s.commit(&numbered_commit(0)).unwrap();
}

#[test]
fn a_locked_directory_is_refused_and_bad_options_are_typed() {
    let dir = tempfile::tempdir().unwrap();
    let (_s, _) = open(dir.path(), LogOptions::default());
    assert!(matches!(
        LogStore::open(dir.path(), LogOptions::default()),
        Err(LogError::Locked(_))
    ));
    let other = tempfile::tempdir().unwrap();
    let bad = LogOptions {
        segment_size: 0,
        ..LogOptions::default()
    };
    assert!(matches!(
        LogStore::open(other.path(), bad),
        Err(LogError::InvalidOptions(_))
    ));
}

#[tokio::test(flavor = "current_thread")]
async fn log_storage_serves_the_storage_trait_on_a_current_thread_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            let (storage, report) = LogStorage::open(dir.path(), LogOptions::default()).unwrap();
            assert!(report.is_clean());
            let model = MemoryStorage::new();
            for i in 0..20 {
                storage.commit(numbered_commit(i)).await.unwrap();
                model.commit(numbered_commit(i)).await.unwrap();
            }
            storage
                .commit(Commit {
                    delete_prefixes: vec![key(&["doc", "c", "005-a"])],
                    ..Default::default()
                })
                .await
                .unwrap();
            let p = key(&["doc"]);
            let want = {
                model
                    .commit(Commit {
                        delete_prefixes: vec![key(&["doc", "c", "005-a"])],
                        ..Default::default()
                    })
                    .await
                    .unwrap();
                model.range(&p).await.unwrap()
            };
            assert_eq!(storage.range(&p).await.unwrap(), want);
            assert_eq!(
                storage.get(&key(&["doc", "c", "019-b"])).await.unwrap(),
                Some(vec![!19u8; 9])
            );
            let stats = storage.compact().await.unwrap();
            assert_eq!(stats.live_keys as usize, want.len());
            // A task on the LocalSet (not Send-required) can use it too.
            let s2 = storage.clone();
            let got = tokio::task::spawn_local(async move { s2.range(&key(&["doc"])).await })
                .await
                .unwrap()
                .unwrap();
            assert_eq!(got, want);
            drop(storage);
            let (storage, report) = LogStorage::open(dir.path(), LogOptions::default()).unwrap();
            assert!(report.is_clean());
            assert_eq!(storage.range(&p).await.unwrap(), want);
        })
        .await;
}
