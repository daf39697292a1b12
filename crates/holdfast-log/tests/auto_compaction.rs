//! Automatic compaction against real files (real fsync): the segment files
//! stay proportional to the live data while documents are overwritten and
//! deleted, a deleted document's bytes (and the delete records) leave the
//! disk, the settings, and the figures `LogStorage::metrics` reports.

mod common;

use std::fs;
use std::time::Instant;

use common::*;
use holdfast_core::storage::{Commit, Storage};
use holdfast_log::{LogError, LogOptions, LogStore, HEADER_LEN};

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;

/// A value naming its round, document and key, padded to `len` bytes.
fn value(round: u32, doc: u32, k: u32, len: usize) -> Vec<u8> {
    let mut v = format!("r{round}-d{doc}-k{k}|").into_bytes();
    v.resize(
        len,
        (round as u8).wrapping_mul(31) ^ (doc as u8) ^ (k as u8),
    );
    v
}

fn doc_key(doc: u32, k: u32) -> holdfast_core::storage::StorageKey {
    key(&["doc", &format!("{doc:02}"), "incremental", &format!("{k}")])
}

#[test]
fn disk_stays_proportional_to_live_data_while_documents_churn() {
    const DOCS: u32 = 32;
    const KEYS: u32 = 4;
    const VALUE: usize = 16 << 10;
    const ROUNDS: u32 = 100;
    const SEGMENT: u64 = 256 * KIB;
    const MIN_GARBAGE: u64 = MIB;
    let dir = tempfile::tempdir().unwrap();
    let opts = LogOptions {
        segment_size: SEGMENT,
        compact_min_garbage_bytes: MIN_GARBAGE,
        compact_garbage_percent: 50,
        ..LogOptions::default()
    };
    let storage = open_storage(dir.path(), opts);
    let mut m = Model::default();
    let mut commits = 0u64;
    let mut written = 0u64;
    let (mut peak, mut peak_live, mut peak_since_idle) = (0u64, 0u64, 0u64);
    let (mut steady_peak, mut steady_samples) = (0u64, 0u64);
    // Value bytes committed since a sample last saw no compaction running.
    let mut since_idle = 0u64;
    let started = Instant::now();
    let mut sample = |m: &Model, just_written: u64| {
        since_idle += just_written;
        let before = storage.metrics();
        let on_disk = dir_bytes(dir.path());
        let after = storage.metrics();
        let live = m.live_bytes();
        if on_disk > peak {
            peak = on_disk;
            peak_live = live;
            peak_since_idle = since_idle;
        }
        // Between compactions, the policy bounds the files: garbage below
        // both 1 MiB and half the log, so at most max(2 × live, live + 1 MiB)
        // (here 2 × live) plus the keys' and headers' overhead.
        let idle =
            !before.compacting && !after.compacting && before.compactions == after.compactions;
        if idle {
            steady_samples += 1;
            steady_peak = steady_peak.max(on_disk);
            let bound = (2 * live).max(live + MIN_GARBAGE) + live / 50 + 4 * KIB;
            assert!(
                on_disk <= bound,
                "{on_disk} bytes on disk for {live} live bytes, no compaction running: {after:?}"
            );
        }
        // At any time, even during a compaction: the old segments (within
        // the bound above when it began), the new one (at most the live data
        // then), and whatever was committed meanwhile (commits do not wait).
        assert!(
            on_disk <= 3 * live + MIN_GARBAGE + 2 * SEGMENT + since_idle,
            "{on_disk} bytes on disk for {live} live bytes, {since_idle} written since idle: {after:?}"
        );
        if idle {
            since_idle = 0;
        }
    };
    runtime().block_on(async {
        for round in 0..ROUNDS {
            for doc in 0..DOCS {
                let c = Commit {
                    puts: (0..KEYS)
                        .map(|k| (doc_key(doc, k), value(round, doc, k, VALUE)))
                        .collect(),
                    ..Default::default()
                };
                written += (KEYS as u64) * VALUE as u64;
                commit(&storage, &mut m, c).await;
                commits += 1;
                sample(&m, (KEYS as u64) * VALUE as u64);
            }
            // A document deleted whole (the next round writes it again, with
            // other values) and one key deleted.
            let gone = (round * 7) % DOCS;
            commit(
                &storage,
                &mut m,
                Commit {
                    delete_prefixes: vec![key(&["doc", &format!("{gone:02}")])],
                    ..Default::default()
                },
            )
            .await;
            commit(
                &storage,
                &mut m,
                Commit {
                    deletes: vec![doc_key((round * 5 + 1) % DOCS, round % KEYS)],
                    ..Default::default()
                },
            )
            .await;
            commits += 2;
            sample(&m, 0);
        }
    });
    let elapsed = started.elapsed();
    storage.wait_for_compaction();
    let stats = runtime().block_on(storage.stats()).unwrap();
    assert_eq!(storage.metrics(), stats);
    assert!(!stats.compacting);
    assert_eq!(stats.compaction_failures, 0);
    assert!(stats.compactions >= 20, "{stats:?}");
    assert_eq!(stats.disk_bytes, segment_bytes(dir.path()), "{stats:?}");
    assert_eq!(stats.live_bytes, m.live_bytes());
    assert_eq!(stats.live_keys, m.0.len() as u64);
    assert_eq!(stats.fsync.count(), commits);
    assert!(files_ending(dir.path(), ".tmp").is_empty());
    // Every live value reads back, now and after reopening.
    assert_eq!(runtime().block_on(storage.range(&all())).unwrap(), m.dump());
    drop(storage);
    let s = reopen_and_check(dir.path(), opts, &m);
    let reopened = s.stats().unwrap();
    assert_eq!(reopened.disk_bytes, stats.disk_bytes);
    assert_eq!(reopened.garbage_bytes, stats.garbage_bytes);
    eprintln!(
        "{ROUNDS} rounds, {commits} commits, {:.1} MB written in {elapsed:.1?}; live {:.2} MB; \
         directory peaked at {:.2} MB (live {:.2} MB, {:.2} MB committed since no compaction ran), \
         {:.2} MB between compactions \
         ({steady_samples} samples); {} compactions, the last in {:?}; fsync mean {:?}; end: {stats:?}",
        written as f64 / 1e6,
        m.live_bytes() as f64 / 1e6,
        peak as f64 / 1e6,
        peak_live as f64 / 1e6,
        peak_since_idle as f64 / 1e6,
        steady_peak as f64 / 1e6,
        stats.compactions,
        stats.last_compaction.unwrap(),
        stats.fsync.sum / stats.fsync.count() as u32,
    );
}

/// Scan every file of `dir` (segments, `.tmp`) for `needle`.
fn on_disk(dir: &std::path::Path, needle: &[u8]) -> bool {
    fs::read_dir(dir).unwrap().any(|e| {
        let p = e.unwrap().path();
        p.is_file()
            && fs::read(&p)
                .unwrap()
                .windows(needle.len())
                .any(|w| w == needle)
    })
}

fn marker(doc: u32, k: u32) -> Vec<u8> {
    format!("SECRET-{doc:02}-{k}-").into_bytes()
}

#[test]
fn a_deleted_documents_bytes_and_the_delete_records_leave_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let opts = LogOptions {
        segment_size: 64 * KIB,
        compact_min_garbage_bytes: 32 * KIB,
        compact_garbage_percent: 50,
        ..LogOptions::default()
    };
    let storage = open_storage(dir.path(), opts);
    let mut m = Model::default();
    runtime().block_on(async {
        for doc in 0..20 {
            let c = Commit {
                puts: (0..3)
                    .map(|k| (doc_key(doc, k), marker(doc, k).repeat(300)))
                    .collect(),
                ..Default::default()
            };
            commit(&storage, &mut m, c).await;
        }
        assert_eq!(storage.metrics().compactions, 0);
        // One commit (so that one compaction sees it all): documents 0..12
        // deleted, the even ones by prefix, the odd ones key by key; key 0 of
        // documents 12..15 overwritten.
        let mut c = Commit::default();
        for doc in 0..12 {
            if doc % 2 == 0 {
                c.delete_prefixes.push(key(&["doc", &format!("{doc:02}")]));
            } else {
                c.deletes.extend((0..3).map(|k| doc_key(doc, k)));
            }
        }
        for doc in 12..15 {
            c.puts.push((doc_key(doc, 0), b"new".repeat(100)));
        }
        commit(&storage, &mut m, c).await;
    });
    storage.wait_for_compaction();
    let stats = storage.metrics();
    assert!(stats.compactions >= 1, "{stats:?}");
    for doc in 0..20 {
        for k in 0..3 {
            let live = doc >= 15 || (doc >= 12 && k > 0);
            assert_eq!(
                on_disk(dir.path(), &marker(doc, k)),
                live,
                "document {doc} key {k}: live {live}"
            );
        }
    }
    assert_eq!(runtime().block_on(storage.range(&all())).unwrap(), m.dump());

    // Everything deleted: once compacted, the log holds no record at all,
    // not even the deletes (two segments: the compacted one, empty, and the
    // active one started when the compaction began).
    runtime().block_on(commit(
        &storage,
        &mut m,
        Commit {
            delete_prefixes: vec![key(&["doc"])],
            ..Default::default()
        },
    ));
    storage.wait_for_compaction();
    let stats = storage.metrics();
    assert_eq!(stats.live_keys, 0);
    assert_eq!(stats.disk_bytes, 2 * HEADER_LEN, "{stats:?}");
    assert_eq!(segment_bytes(dir.path()), 2 * HEADER_LEN);
    assert_eq!(stats.garbage_bytes, 2 * HEADER_LEN);
    drop(storage);
    let s = reopen_and_check(dir.path(), opts, &m);
    assert!(s.keys(&all()).is_empty());
}

#[test]
fn automatic_compaction_can_be_turned_off_and_its_settings_are_checked() {
    let defaults = LogOptions::default();
    assert_eq!(defaults.compact_min_garbage_bytes, 64 * MIB);
    assert_eq!(defaults.compact_garbage_percent, 50);
    for percent in [0, 101] {
        let dir = tempfile::tempdir().unwrap();
        let bad = LogOptions {
            compact_garbage_percent: percent,
            ..defaults
        };
        assert!(matches!(
            LogStore::open(dir.path(), bad),
            Err(LogError::InvalidOptions(_))
        ));
    }

    // Off: 2 MB of overwrites of one key, no compaction.
    let dir = tempfile::tempdir().unwrap();
    let off = LogOptions {
        segment_size: 256 * KIB,
        compact_min_garbage_bytes: 0,
        ..defaults
    };
    let storage = open_storage(dir.path(), off);
    let mut m = Model::default();
    runtime().block_on(async {
        for i in 0..64u32 {
            let c = Commit {
                puts: vec![(key(&["k"]), value(i, 0, 0, 32 << 10))],
                ..Default::default()
            };
            commit(&storage, &mut m, c).await;
            assert!(!storage.metrics().compacting);
        }
    });
    storage.wait_for_compaction();
    let stats = storage.metrics();
    assert_eq!(stats.compactions, 0);
    assert!(stats.disk_bytes > 2 * MIB, "{stats:?}");
    assert_eq!(stats.disk_bytes, segment_bytes(dir.path()));
    assert!(
        stats.garbage_bytes > stats.disk_bytes - 33 * KIB,
        "{stats:?}"
    );
    assert_eq!(stats.fsync.count(), 64);
    assert_eq!(stats.fsync.cumulative()[11].1, 64);

    // An explicit compaction still works, beside commits: two segments left.
    let after = runtime().block_on(storage.compact()).unwrap();
    assert_eq!(after.compactions, 1);
    assert_eq!(after.segments, 2);
    assert!(
        after.disk_bytes < 33 * KIB + 2 * HEADER_LEN + 64,
        "{after:?}"
    );
    assert_eq!(after.disk_bytes, segment_bytes(dir.path()));
    drop(storage);
    reopen_and_check(dir.path(), off, &m);
}
