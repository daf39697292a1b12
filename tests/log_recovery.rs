//! The server's log storage against real files and real fsync: recovery
//! from damage (torn tails at every byte offset, bit flips, torn or corrupt
//! segment headers) and from crashes during compaction.
#![cfg(not(target_arch = "wasm32"))]

mod log_harness;

use std::fs;
use std::time::Instant;

use holdfast_core::memory::MemoryStorage;
use holdfast_core::storage::{Commit, Storage};
use holdfast_log::LogOptions;
use log_harness::*;

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
