//! The server's embedded storage: a crash-safe, append-only log of commits
//! (native only).
//!
//! # On-disk format
//!
//! A data directory holds segment files `NNNNNNNNNNNNNNNN.log` (the segment
//! id, a u64, zero-padded to 16 digits), a `LOCK` file (advisory lock held
//! while open) and, after a repair, `quarantine/`. Every integer is
//! fixed-width little-endian.
//!
//! ```text
//! segment  = header record*
//! header   = magic "HFLOGSEG" (8) | version u32 (=1) | segment id u64
//!          | flags u32 (bit 0: compacted) | compacted_from u64
//!          | crc32c u32 over the 32 bytes before it           (36 bytes)
//! record   = magic u32 ("HFr1") | payload_len u32
//!          | crc32c u32 over (payload_len bytes ++ payload) | payload
//! payload  = kind u8 (0 = commit)
//!          | n u32 | key*n                 deletes
//!          | n u32 | key*n                 prefix deletes
//!          | n u32 | (key | len u32 | value bytes)*n   puts
//! key      = n_parts u32 | (len u32 | UTF-8 bytes)*n_parts
//! ```
//!
//! One record holds one whole [`Commit`](holdfast_core::storage::Commit), so a
//! commit is atomic on disk: a torn or corrupt record is discarded whole.
//! Replaying a record applies its deletes, then its prefix deletes, then its
//! puts, exactly as [`MemoryStorage`](holdfast_core::memory::MemoryStorage)
//! does. A payload larger than [`LogOptions::max_record`] is refused with
//! [`LogError::RecordTooLarge`] before anything is written.
//!
//! # Writing and fsync order
//!
//! - `commit` appends the record at the end of the active (highest-id)
//!   segment with one positioned write, calls `fdatasync` (`File::sync_data`)
//!   and only then returns `Ok` and updates the in-memory index.
//! - When the active segment has reached `segment_size`, the next commit
//!   first creates the next segment: create, write the header, `fsync` the
//!   file, `fsync` the directory; only then is a record appended to it.
//! - A failed write or sync (ENOSPC/EDQUOT become
//!   `StorageError::QuotaExceeded`, anything else `StorageError::Io`) is
//!   undone: the file is truncated back to its previous length and
//!   fdatasynced, the index is untouched, and the store keeps accepting
//!   commits. If the truncation fails too, the store is *poisoned*: every
//!   later write fails with [`LogError::Poisoned`]
//!   (`StorageError::Unavailable`) until it is reopened, when recovery cuts
//!   the torn tail. Reads keep working. Acknowledged records are never
//!   touched by either path.
//! - Group commit is the caller's: the core issues one commit at a time
//!   holding everything pending, so one commit is one fsync.
//!
//! # Recovery at open
//!
//! 1. `*.log.tmp` files (an interrupted compaction) are deleted.
//! 2. A newest segment no longer than a header whose header is invalid (a
//!    crash while rolling, before any record could be acknowledged in it) is
//!    deleted.
//! 3. If a segment with the compacted flag exists, every segment with id
//!    `<= compacted_from` is obsolete and deleted (ascending).
//! 4. The remaining segments are scanned in id order. A record is valid when
//!    its magic matches, its length stays within the file (and 1 GiB), its
//!    CRC matches and its payload decodes. At an invalid record the scan
//!    looks forward for the next valid record (the magic followed by a record
//!    that verifies):
//!    - found: the bytes in between are **quarantined**, copied to
//!      `quarantine/<segment>-<offset>.bin` (fsynced), and skipped; every
//!      valid record after them is kept. The bytes stay in the segment (every
//!      open quarantines them again, idempotently) until compaction drops
//!      them.
//!    - not found, in the last segment: a **torn tail**. It is copied to
//!      `quarantine/<segment>-<offset>.tail.bin`, then the file is truncated
//!      at the last valid record boundary and fsynced.
//!    - not found, in an older segment: quarantined as above (never
//!      truncated: nothing is appended there any more).
//!
//!    A corrupt segment header with records after it is quarantined and the
//!    records are scanned from byte 36.
//! 5. The index `BTreeMap<StorageKey, Location>` is rebuilt from the valid
//!    records (values stay on disk and are read on `get`/`range`). What was
//!    done is returned as a [`RecoveryReport`] (and logged with `tracing`).
//!    Only a segment of an unknown format version, a locked directory or an
//!    I/O error fails the open; damage never panics.
//!
//! # Compaction
//!
//! Compaction writes one put per live key (batched, ~1 MiB per record) into
//! `<id>.log.tmp` whose header says "compacted from `<= id - 1`", fsyncs it,
//! renames it to `<id>.log`, fsyncs the directory, and only then deletes the
//! old segments in ascending order and fsyncs the directory again. Deleted
//! keys and delete records are simply not rewritten, so a deleted
//! document's bytes are gone once the segments that held them are. A crash
//! before the rename leaves a `.tmp` (deleted at open) and the old segments;
//! after it, the compacted segment makes the old ones obsolete (step 3), so a
//! deleted key can never come back from an old segment. Deleting in
//! ascending order also means that even with the compacted header
//! unreadable, what is left of the old segments is a suffix, whose replay
//! followed by the compacted puts gives the same state.
//!
//! [`LogStore::compact`] does it all holding the store, with `id = active +
//! 1` (the compacted segment becomes the active one). [`LogStorage`]
//! compacts **automatically**, in a background thread, after a commit that
//! leaves [`LogStats::garbage_bytes`] (the segment bytes not holding a live
//! put) at or above both [`LogOptions::compact_min_garbage_bytes`] (64 MiB
//! by default; 0 turns it off) and [`LogOptions::compact_garbage_percent`]
//! (50 %) of the log: the segment files then stay under about
//! `max(2 × live, live + 64 MiB)` plus what is written while a compaction
//! runs. It first rolls to segment `active + 2` and compacts everything up
//! to the old active segment into `active + 1`, so the commits made while it
//! writes land in a segment replayed after the compacted one; recovery
//! needs nothing new (segment ids need not be contiguous). The store is held
//! only to roll at the start, for a moment per 4096 keys to copy the next
//! keys of the index (a key changed meanwhile is in a later segment, so
//! whether its old value is copied too does not matter), and at the end to
//! point the index at the new segment (O(live keys) in memory: some 30 ms
//! per million keys, release build). A failed compaction
//! removes its `.tmp`, changes nothing else, fails no commit, and is retried
//! after a pause (10 s, doubling up to 10 min).

mod fault;
mod format;
mod metrics;
mod storage;
mod store;

#[cfg(feature = "fault-hooks")]
pub use fault::{FaultHook, FaultPoint};
pub use format::{FORMAT_VERSION, HEADER_LEN, RECORD_HEADER_LEN};
pub use metrics::{FsyncHistogram, FSYNC_BUCKET_BOUNDS};
pub use storage::LogStorage;
pub use store::{
    segment_file_name, Location, LogError, LogOptions, LogStats, LogStore, Quarantined,
    RecoveryReport,
};
