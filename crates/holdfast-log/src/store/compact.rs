//! Compaction: every live value rewritten into one new segment that makes
//! the old ones obsolete (the order of the writes, renames and fsyncs is in
//! [`LogStore::compact`]), and the policy that runs it automatically
//! ([`LogStore::compaction_due`]).
//!
//! A compaction has three steps so that the middle one, the long one, can
//! run without the store (a background compaction, see `LogStorage`):
//! `begin_compaction` (store held: roll), `CompactJob::write` (write, fsync
//! and rename the new segment, taking the store only for a moment per few
//! thousand keys, to read the next keys of the index) and
//! `finish_compaction` (store held: move the locations to the new segment,
//! switch); then the replaced files are removed, store free again.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use holdfast_core::storage::StorageKey;

use super::index::put_len;
use super::segment::{create_segment_file, read_exact_at, segment_file_name, sync_dir};
use super::{Location, LogError, LogStats, LogStore, Segment};
use crate::fault::{FaultPoint, Faults};
use crate::format::{encode_commit, record_header, SegmentHeader, HEADER_LEN, RECORD_HEADER_LEN};

/// After a failed compaction, automatic compaction waits this long before
/// trying again, doubling with each failure in a row up to [`RETRY_MAX`]
/// (a failure is most likely a full disk, which a retry per commit would
/// only make worse).
const RETRY_FIRST: Duration = Duration::from_secs(10);
const RETRY_MAX: Duration = Duration::from_secs(600);

/// How many index entries one look at the index (store held) covers.
const KEYS_PER_LOOK: usize = 4096;

/// A compaction under way: what `begin_compaction` took from the store. It
/// replaces every segment `<= from` with segment `id = from + 1`.
pub(crate) struct CompactJob {
    dir: PathBuf,
    from: u64,
    id: u64,
    /// The segments `<= from` (sealed, or the store is held throughout).
    files: BTreeMap<u64, Arc<File>>,
    /// Size of the put records written (~1 MiB).
    record_target: u64,
    faults: Faults,
    started: Instant,
}

/// Some index entries in segments `<= from`, in key order, and the key to
/// go on after (`None`: the end of the index).
pub(crate) type IndexChunk = (Vec<(StorageKey, Location)>, Option<StorageKey>);

/// The new segment, complete, fsynced and renamed into place.
pub(crate) struct Compacted {
    file: File,
    len: u64,
    /// `(old, new)` location of every value written, in key order.
    moved: Vec<(Location, Location)>,
    /// Whether the directory fsync after the rename succeeded. If not, the
    /// replaced segments stay on disk (the next open removes them).
    dir_synced: bool,
}

impl LogStore {
    /// Rewrite every live value into one new compacted segment and delete
    /// the old segments, holding the store throughout. Order: write
    /// `<id>.log.tmp` (header flag "compacted from <= previous active id"),
    /// fsync it, rename it to `<id>.log`, fsync the directory; only then
    /// switch to it and delete the old segments in ascending order, then
    /// fsync the directory again. On failure before the rename the store is
    /// unchanged.
    ///
    /// [`LogStorage`](crate::LogStorage) compacts in the background instead
    /// (commits go on meanwhile); this fails with
    /// [`LogError::CompactionInProgress`] while such a compaction runs.
    pub fn compact(&mut self) -> Result<LogStats, LogError> {
        let job = self.begin_compaction(false)?;
        let written = job.write(|after| Ok(self.compaction_chunk(&job, after)));
        let replaced = self.finish_compaction(&job, written)?;
        job.remove_replaced(replaced);
        self.stats()
    }

    /// Whether automatic compaction should run now: it is on
    /// (`compact_min_garbage_bytes > 0`), none is under way, the store is not
    /// poisoned, the garbage has reached both `compact_min_garbage_bytes`
    /// and `compact_garbage_percent` of the log's bytes, and no failed
    /// compaction asks to wait. O(1): the totals are kept as commits go.
    pub fn compaction_due(&self) -> bool {
        let min = self.opts.compact_min_garbage_bytes;
        if min == 0 || self.compacting.is_some() || self.poisoned.is_some() {
            return false;
        }
        let garbage = self.garbage_bytes();
        if garbage < min
            || (garbage as u128) * 100
                < (self.disk_bytes as u128) * self.opts.compact_garbage_percent as u128
        {
            return false;
        }
        self.retry_after.is_none_or(|t| Instant::now() >= t)
    }

    /// Step 1, store held. In the `background`, roll to segment `active +
    /// 2`, so that the commits made while the job writes segment `active +
    /// 1` go to a segment after it (replay order).
    pub(crate) fn begin_compaction(&mut self, background: bool) -> Result<CompactJob, LogError> {
        if let Some(why) = &self.poisoned {
            return Err(LogError::Poisoned(why.clone()));
        }
        if self.compacting.is_some() {
            return Err(LogError::CompactionInProgress);
        }
        let started = Instant::now();
        let from = self.active;
        if background {
            if let Err(e) = self.roll_to(from + 2) {
                self.compaction_failed(&e);
                return Err(e);
            }
        }
        let job = CompactJob {
            dir: self.dir.clone(),
            from,
            id: from + 1,
            files: self
                .segments
                .range(..=from)
                .map(|(&id, s)| (id, s.file.clone()))
                .collect(),
            record_target: (self.opts.max_record as u64).min(1 << 20),
            faults: self.fault.clone(),
            started,
        };
        self.compacting = Some(from);
        self.publish();
        Ok(job)
    }

    /// Step 3, store held: switch to the compacted segment (or count the
    /// failure). Returns the replaced segments, for
    /// [`CompactJob::remove_replaced`].
    pub(crate) fn finish_compaction(
        &mut self,
        job: &CompactJob,
        written: Result<Compacted, LogError>,
    ) -> Result<Vec<u64>, LogError> {
        self.compacting = None;
        let c = match written {
            Ok(c) => c,
            Err(e) => {
                self.compaction_failed(&e);
                return Err(e);
            }
        };
        // A key whose location is still in a replaced segment has not been
        // written since the compaction began (later puts went to segments >
        // id), so the job found it, with that location, and `moved` holds it
        // at the same place in key order. Two keys never share a location.
        let mut moved = c.moved.iter();
        for (_, loc) in self.index.locations_mut() {
            if loc.segment > job.from {
                continue;
            }
            let new = moved.find(|(old, _)| old == loc).map(|(_, new)| *new);
            *loc = new.expect("compaction: a key in a replaced segment was not rewritten");
        }
        let replaced: Vec<u64> = self
            .segments
            .range(..=job.from)
            .map(|(&id, _)| id)
            .collect();
        for id in &replaced {
            if let Some(seg) = self.segments.remove(id) {
                self.disk_bytes -= if *id == self.active {
                    self.end
                } else {
                    seg.len
                };
            }
        }
        self.segments.insert(
            job.id,
            Segment {
                file: Arc::new(c.file),
                len: c.len,
            },
        );
        self.disk_bytes += c.len;
        if self.active <= job.from {
            self.active = job.id;
            self.end = c.len;
        }
        let took = job.started.elapsed();
        self.compactions += 1;
        self.failures_in_a_row = 0;
        self.retry_after = None;
        self.last_compaction = Some(took);
        self.publish();
        tracing::info!(
            replaced = replaced.len(),
            segment = job.id,
            bytes = c.len,
            keys = c.moved.len(),
            ?took,
            "log compacted"
        );
        Ok(if c.dir_synced { replaced } else { Vec::new() })
    }

    /// Count a failed compaction and put automatic compaction on hold.
    fn compaction_failed(&mut self, e: &LogError) {
        self.compaction_failures += 1;
        self.failures_in_a_row += 1;
        let wait = RETRY_FIRST
            .saturating_mul(1 << (self.failures_in_a_row - 1).min(16))
            .min(RETRY_MAX);
        self.retry_after = Some(Instant::now() + wait);
        self.publish();
        tracing::error!(error = %e, retry_in = ?wait, "log compaction failed; the log is unchanged");
    }

    /// The next index entries that `job` rewrites (in segments `<= from`),
    /// after `after` (store held: up to [`KEYS_PER_LOOK`] entries looked at).
    pub(crate) fn compaction_chunk(
        &self,
        job: &CompactJob,
        after: Option<&StorageKey>,
    ) -> IndexChunk {
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        let mut entries = Vec::new();
        for (n, (k, loc)) in self
            .index
            .map()
            .range((start, Bound::Unbounded))
            .enumerate()
        {
            if loc.segment <= job.from {
                entries.push((k.clone(), *loc));
            }
            if n + 1 == KEYS_PER_LOOK {
                return (entries, Some(k.clone()));
            }
        }
        (entries, None)
    }
}

impl CompactJob {
    /// Step 2: write the value of every key whose location is in a segment
    /// `<= from` into `<id>.log.tmp` as batched put records, fsync it,
    /// rename it to `<id>.log` and fsync the directory. `chunk(after)`
    /// returns the next keys from the store ([`LogStore::compaction_chunk`]);
    /// values are read without it (those segments no longer change). On
    /// failure before the rename, the `.tmp` is removed (or the next open
    /// removes it) and nothing else changed.
    ///
    /// The store may change between chunks: a key written or deleted since
    /// the compaction began is in a segment after the compacted one, which
    /// replays after it, so whether the compacted segment also holds its
    /// older value does not matter.
    pub(crate) fn write(
        &self,
        chunk: impl FnMut(Option<&StorageKey>) -> Result<IndexChunk, LogError>,
    ) -> Result<Compacted, LogError> {
        let header = SegmentHeader::compacted(self.id, self.from);
        let file = create_segment_file(&self.faults, &self.dir, self.id, header, true)?;
        let path = self.dir.join(segment_file_name(self.id));
        let mut tmp = path.clone();
        tmp.set_extension("log.tmp");
        let (len, moved) = match self.write_records(&file, &tmp, chunk) {
            Ok(v) => v,
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                return Err(e);
            }
        };
        let renamed = match self.faults.at(FaultPoint::CompactRename) {
            Some(e) => Err(e),
            None => fs::rename(&tmp, &path),
        };
        if let Err(e) = renamed {
            let _ = fs::remove_file(&tmp);
            return Err(LogError::io("rename", &tmp, e));
        }
        // From the rename on, the new segment is what recovery will use (its
        // header makes the old ones obsolete), so the switch goes ahead even
        // if the directory fsync fails: the data are the same either way. But
        // the old segments are then left alone, in case the rename is lost.
        let dir_synced = match sync_dir(&self.dir) {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(error = %e, "directory fsync after a compaction's rename failed; the replaced segments are left for the next open to remove");
                false
            }
        };
        Ok(Compacted {
            file,
            len,
            moved,
            dir_synced,
        })
    }

    /// Write the values into `file` as batched put records and fsync it.
    /// Returns the file's length and the `(old, new)` locations.
    fn write_records(
        &self,
        file: &File,
        path: &Path,
        mut chunk: impl FnMut(Option<&StorageKey>) -> Result<IndexChunk, LogError>,
    ) -> Result<(u64, Vec<(Location, Location)>), LogError> {
        let io = |e| LogError::io("write", path, e);
        // The header was written with pwrite; the buffered writer goes on from
        // the file cursor, so place it after the header.
        let mut cursor = file;
        cursor.seek(SeekFrom::Start(HEADER_LEN)).map_err(io)?;
        let mut out = BufWriter::with_capacity(1 << 20, cursor);
        let mut pos = HEADER_LEN;
        let mut moved = Vec::new();
        // (key, old location, value)
        let mut batch: Vec<(StorageKey, Location, Vec<u8>)> = Vec::new();
        let mut batch_len = 0u64;
        let mut flush = |batch: &mut Vec<(StorageKey, Location, Vec<u8>)>,
                         out: &mut BufWriter<&File>,
                         pos: &mut u64|
         -> Result<(), LogError> {
            if batch.is_empty() {
                return Ok(());
            }
            if let Some(e) = self.faults.at(FaultPoint::CompactWrite) {
                return Err(io(e));
            }
            let (payload, spans) = encode_commit(
                [].iter(),
                [].iter(),
                batch.iter().map(|(k, _, v)| (k, v.as_slice())),
                0,
            );
            out.write_all(&record_header(&payload)).map_err(io)?;
            out.write_all(&payload).map_err(io)?;
            let payload_at = *pos + RECORD_HEADER_LEN;
            moved.extend(batch.iter().zip(&spans).map(|((_, old, _), span)| {
                let new = Location {
                    segment: self.id,
                    offset: payload_at + span.offset as u64,
                    len: span.len,
                };
                (*old, new)
            }));
            batch.clear();
            *pos = payload_at + payload.len() as u64;
            Ok(())
        };
        let mut after: Option<StorageKey> = None;
        loop {
            let (entries, next) = chunk(after.as_ref())?;
            for (k, loc) in entries {
                let put = put_len(&k, loc.len);
                if batch_len > 0 && batch_len + put > self.record_target {
                    flush(&mut batch, &mut out, &mut pos)?;
                    batch_len = 0;
                }
                let value = self.read(&loc)?;
                batch.push((k, loc, value));
                batch_len += put;
            }
            match next {
                Some(k) => after = Some(k),
                None => break,
            }
        }
        flush(&mut batch, &mut out, &mut pos)?;
        // An explicit flush: dropping a BufWriter would swallow its error.
        out.flush().map_err(io)?;
        drop(out);
        file.sync_all()
            .map_err(|e| LogError::io("fsync", path, e))?;
        Ok((pos, moved))
    }

    fn read(&self, loc: &Location) -> Result<Vec<u8>, LogError> {
        let path = || self.dir.join(segment_file_name(loc.segment));
        let file = self.files.get(&loc.segment).ok_or_else(|| {
            LogError::io(
                "read",
                &path(),
                std::io::Error::new(std::io::ErrorKind::NotFound, "segment not open"),
            )
        })?;
        let mut buf = vec![0u8; loc.len as usize];
        read_exact_at(file, &mut buf, loc.offset).map_err(|e| LogError::io("read", &path(), e))?;
        Ok(buf)
    }

    /// Last step, store free: delete the replaced segments in ascending
    /// order (so that what a crash leaves of them is a suffix) and fsync the
    /// directory. A failure only leaves a file for the next open to remove.
    pub(crate) fn remove_replaced(self, replaced: Vec<u64>) {
        let CompactJob {
            dir, files, faults, ..
        } = self;
        drop(files);
        for id in &replaced {
            let p = dir.join(segment_file_name(*id));
            let removed = match faults.at(FaultPoint::CompactRemove) {
                Some(e) => Err(e),
                None => fs::remove_file(&p),
            };
            if let Err(e) = removed {
                tracing::warn!(path = %p.display(), error = %e, "could not remove a compacted segment; it is removed at next open");
            }
        }
        if !replaced.is_empty() {
            if let Err(e) = sync_dir(&dir) {
                tracing::warn!(error = %e, "directory fsync after compaction failed; old segments are removed at next open");
            }
        }
    }
}

#[cfg(test)]
#[path = "compact_tests.rs"]
mod tests;
