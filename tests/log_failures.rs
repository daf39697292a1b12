//! The server's log storage against real files: injected I/O failures
//! (ENOSPC/EIO on append, fdatasync, truncation and segment creation), an
//! oversized commit, a locked directory and bad options.
#![cfg(not(target_arch = "wasm32"))]

mod log_harness;

use std::fs;
use std::io;
use std::sync::{Arc, Mutex};

use holdfast_core::storage::{Commit, StorageError};
use holdfast_log::{FaultHook, FaultPoint, LogError, LogOptions, LogStore};
use log_harness::*;

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
