//! [`LogStore`]: the synchronous core of the log (open and recovery, append +
//! fdatasync, reads through the in-memory index, compaction).
//!
//! This file holds the store, its option, report and error types and its
//! small accessors; the rest is split by concern, each file an `impl
//! LogStore` block or helpers of one:
//!
//! - `segment`: segment file names, positioned I/O, directory fsync and
//!   segment creation;
//! - `index`: the in-memory index (applying a record to it) and the reads
//!   through it;
//! - `recover`: opening, scanning and repairing the segments;
//! - `append`: appending a commit, undoing a failed append (or poisoning the
//!   store), rolling to a new segment;
//! - `compact`: rewriting the live values into one compacted segment, and
//!   the policy that says when.

mod append;
mod compact;
mod index;
mod recover;
mod segment;

pub use self::segment::segment_file_name;

use std::collections::BTreeMap;

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use holdfast_core::storage::{Detail, StorageError};

#[cfg(feature = "fault-hooks")]
use crate::fault::FaultHook;
use crate::fault::{FaultPoint, Faults};
use crate::format::FORMAT_VERSION;
use crate::metrics::FsyncHistogram;

use self::index::Index;

/// Tuning of a [`LogStore`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogOptions {
    /// Roll to a new segment once the active one has reached this many bytes
    /// (a record is never split, so a segment may exceed it by one record).
    pub segment_size: u64,
    /// The largest commit payload accepted, in bytes (at most 1 GiB). A
    /// larger commit fails with [`LogError::RecordTooLarge`] and writes
    /// nothing. Recovery accepts records up to 1 GiB whatever this says, so
    /// lowering it never hides data already written.
    pub max_record: u32,
    /// Automatic compaction (by [`LogStorage`](crate::LogStorage), after a
    /// commit) needs at least this many bytes of garbage
    /// ([`LogStats::garbage_bytes`]), so that a small log is not rewritten
    /// over and over. 0 turns automatic compaction off.
    pub compact_min_garbage_bytes: u64,
    /// ...and garbage making up at least this percentage (1..=100) of the
    /// log's bytes. At 50, the segment files stay under about twice the live
    /// data (or live data + `compact_min_garbage_bytes`, whichever is more)
    /// between compactions.
    pub compact_garbage_percent: u32,
}

impl Default for LogOptions {
    fn default() -> Self {
        Self {
            segment_size: 64 << 20,
            max_record: 256 << 20,
            compact_min_garbage_bytes: 64 << 20,
            compact_garbage_percent: 50,
        }
    }
}

/// Where a live value lies on disk: `len` bytes at `offset` of segment
/// `segment`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    pub segment: u64,
    pub offset: u64,
    pub len: u32,
}

/// A damaged byte range set aside at open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quarantined {
    pub segment: u64,
    pub offset: u64,
    pub len: u64,
    /// The copy in `<dir>/quarantine/`.
    pub path: PathBuf,
}

/// What [`LogStore::open`] found and did. Empty lists and zero counters mean
/// the log was clean.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Segments live after open.
    pub segments: u32,
    /// Valid records applied to the index.
    pub records: u64,
    /// Bytes cut from the tail of the last segment (a torn or corrupt tail,
    /// or a newest segment whose header was never completed). A non-empty
    /// cut tail is also copied to `quarantine/<segment>-<offset>.tail.bin`.
    pub truncated_bytes: u64,
    /// Damaged ranges skipped in the middle of a segment (or at the tail of a
    /// segment that is not the last), each copied to the quarantine directory.
    pub quarantined: Vec<Quarantined>,
    /// Segments deleted because a complete compacted segment replaces them.
    pub removed_segments: Vec<u64>,
    /// Leftover `*.log.tmp` files of an interrupted compaction, deleted.
    pub removed_temp_files: u32,
}

impl RecoveryReport {
    /// Whether nothing had to be repaired.
    pub fn is_clean(&self) -> bool {
        self.truncated_bytes == 0
            && self.quarantined.is_empty()
            && self.removed_segments.is_empty()
            && self.removed_temp_files == 0
    }
}

/// Sizes and counters of a store: what automatic compaction decides on, and
/// figures for monitoring ([`LogStorage::metrics`](crate::LogStorage::metrics)
/// reads them without waiting for the store). Every field is kept up to date
/// as the store changes; reading them costs no I/O.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogStats {
    /// Segment files in use.
    pub segments: u32,
    pub live_keys: u64,
    /// Bytes of live values.
    pub live_bytes: u64,
    /// Bytes of the segment files in use (not `quarantine/`, not the
    /// `.log.tmp` of a compaction in progress, not segments a compaction
    /// replaced but could not remove: the next open removes those).
    pub disk_bytes: u64,
    /// Bytes of the segment files that hold no live put: superseded and
    /// deleted values, delete records, record and segment headers, corrupt
    /// ranges. About what a compaction would free.
    pub garbage_bytes: u64,
    pub active_segment: u64,
    /// Compactions completed since open (automatic and explicit).
    pub compactions: u64,
    /// Compactions that failed since open (nothing was lost: the log is
    /// as before, and automatic compaction retries after a pause).
    pub compaction_failures: u64,
    /// How long the last completed compaction took, start to switch-over.
    pub last_compaction: Option<Duration>,
    /// Whether a background compaction is under way.
    pub compacting: bool,
    /// Every commit's `fdatasync` duration since open.
    pub fsync: FsyncHistogram,
}

/// Why a log operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The operating system refused: `op` on `path`.
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A commit whose encoded payload exceeds `LogOptions::max_record`.
    #[error("commit of {len} bytes exceeds the maximum record size of {max} bytes")]
    RecordTooLarge { len: u64, max: u32 },
    /// A segment written by a newer (or unknown) format version.
    #[error("segment {} has format version {version}; this build reads version {FORMAT_VERSION}", path.display())]
    UnsupportedVersion { path: PathBuf, version: u32 },
    /// Another process holds the directory's lock.
    #[error("log directory {} is locked by another process", .0.display())]
    Locked(PathBuf),
    /// A write failed and its partial bytes could not be removed: the store
    /// refuses every further write until it is reopened (recovery then
    /// truncates the torn tail). Reads keep working.
    #[error("log refuses writes after an unrepaired I/O failure ({0}); reopen it")]
    Poisoned(String),
    #[error("invalid log options: {0}")]
    InvalidOptions(String),
    /// A compaction was asked for while a background one is under way.
    #[error("a log compaction is already in progress")]
    CompactionInProgress,
}

impl LogError {
    fn io(op: &'static str, path: &Path, source: io::Error) -> Self {
        LogError::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// ENOSPC / EDQUOT (disk full, quota exceeded).
pub(crate) fn is_quota_error(e: &io::Error) -> bool {
    if matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    ) {
        return true;
    }
    #[cfg(target_os = "linux")]
    if matches!(e.raw_os_error(), Some(28) | Some(122)) {
        return true;
    }
    false
}

/// The log's error becomes the [`StorageError`]'s source (and through it
/// the `io::Error`, if any).
impl From<LogError> for StorageError {
    fn from(e: LogError) -> Self {
        let kind: fn(Detail) -> StorageError = match &e {
            LogError::Io { source, .. } if is_quota_error(source) => StorageError::QuotaExceeded,
            LogError::Io { .. } => StorageError::Io,
            LogError::RecordTooLarge { .. } => StorageError::QuotaExceeded,
            LogError::UnsupportedVersion { .. }
            | LogError::Locked(_)
            | LogError::Poisoned(_)
            | LogError::InvalidOptions(_)
            | LogError::CompactionInProgress => StorageError::Unavailable,
        };
        kind(Detail::caused_by(e.to_string(), e))
    }
}

/// One segment file in use. Shared (`Arc`) so that a background compaction
/// can read sealed segments without holding the store.
pub(crate) struct Segment {
    file: Arc<File>,
    /// Its length once sealed; for the active segment, see `LogStore::end`.
    len: u64,
}

/// The synchronous log store. Every method blocks on disk I/O; the server
/// uses it through [`super::LogStorage`].
pub struct LogStore {
    dir: PathBuf,
    opts: LogOptions,
    /// Held (advisory lock) for the store's lifetime.
    _lock: File,
    /// Every live segment, by id. The active (last) one is open read+write.
    segments: BTreeMap<u64, Segment>,
    active: u64,
    /// Length of the active segment: where the next record goes.
    end: u64,
    /// Σ the segments' lengths (the sealed ones' `len` and `end`).
    disk_bytes: u64,
    index: Index,
    poisoned: Option<String>,
    fault: Faults,
    /// While a background compaction runs: the id of the newest segment it
    /// replaces (`compacted_from`).
    compacting: Option<u64>,
    compactions: u64,
    compaction_failures: u64,
    /// Failed compactions since the last one that succeeded, and when
    /// automatic compaction may try again.
    failures_in_a_row: u32,
    retry_after: Option<Instant>,
    last_compaction: Option<Duration>,
    fsync: FsyncHistogram,
    /// A copy of [`LogStore::stats`] refreshed after every change, read by
    /// `LogStorage::metrics` without taking the store.
    published: Arc<Mutex<LogStats>>,
}

impl LogStore {
    fn fault_at(&self, point: FaultPoint) -> Option<io::Error> {
        self.fault.at(point)
    }

    /// Install a fault-injection hook (feature `fault-hooks`, tests only).
    /// A background compaction already under way sees it too.
    #[cfg(feature = "fault-hooks")]
    pub fn set_fault_hook(&mut self, hook: Option<FaultHook>) {
        self.fault.set(hook);
    }

    /// The store's figures, O(1) (see [`LogStats`]).
    pub fn stats(&self) -> Result<LogStats, LogError> {
        Ok(LogStats {
            segments: self.segments.len() as u32,
            live_keys: self.index.len() as u64,
            live_bytes: self.index.live_bytes(),
            disk_bytes: self.disk_bytes,
            garbage_bytes: self.garbage_bytes(),
            active_segment: self.active,
            compactions: self.compactions,
            compaction_failures: self.compaction_failures,
            last_compaction: self.last_compaction,
            compacting: self.compacting.is_some(),
            fsync: self.fsync,
        })
    }

    /// Bytes of live values.
    /// Live keys (puts not deleted since).
    pub fn key_count(&self) -> usize {
        self.index.len()
    }

    pub fn live_bytes(&self) -> u64 {
        self.index.live_bytes()
    }

    /// See [`LogStats::garbage_bytes`]: the segment files' bytes minus the
    /// encoded size of every live put.
    pub fn garbage_bytes(&self) -> u64 {
        self.disk_bytes.saturating_sub(self.index.live_put_bytes())
    }

    /// Refresh the copy that `LogStorage::metrics` reads.
    fn publish(&self) {
        if let Ok(stats) = self.stats() {
            *self.published.lock().unwrap_or_else(|p| p.into_inner()) = stats;
        }
    }

    /// The shared copy of the stats, refreshed after every change.
    pub(crate) fn published_stats(&self) -> Arc<Mutex<LogStats>> {
        self.published.clone()
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether a failed write left the store refusing writes.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_full_and_quota_map_to_quota_exceeded_other_errors_to_io() {
        let err = |errno| {
            LogError::io(
                "append",
                Path::new("x"),
                io::Error::from_raw_os_error(errno),
            )
        };
        assert!(matches!(
            StorageError::from(err(28)),
            StorageError::QuotaExceeded(_)
        ));
        assert!(matches!(
            StorageError::from(err(122)),
            StorageError::QuotaExceeded(_)
        ));
        assert!(matches!(StorageError::from(err(5)), StorageError::Io(_)));
        let too_large = LogError::RecordTooLarge { len: 10, max: 5 };
        assert!(matches!(
            StorageError::from(too_large),
            StorageError::QuotaExceeded(_)
        ));
        let poisoned = LogError::Poisoned("x".into());
        assert_eq!(
            StorageError::from(poisoned).name(),
            "StorageUnavailableError"
        );
    }
}
