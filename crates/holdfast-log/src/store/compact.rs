//! Compaction: every live value rewritten into one new segment that makes
//! the old ones obsolete (the order of the writes, renames and fsyncs is in
//! [`LogStore::compact`]).

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::Path;

use holdfast_core::storage::StorageKey;

use super::segment::{segment_file_name, sync_dir};
use super::{Location, LogError, LogStats, LogStore};
use crate::format::{encode_commit, record_header, SegmentHeader, HEADER_LEN, RECORD_HEADER_LEN};

impl LogStore {
    /// Rewrite every live value into one new compacted segment and delete
    /// the old segments. Order: write `<id>.log.tmp` (header flag "compacted
    /// from <= previous active id"), fsync it, rename it to `<id>.log`, fsync
    /// the directory; only then switch to it and delete the old segments in
    /// ascending order, then fsync the directory again. On failure before
    /// the rename the store is unchanged.
    pub fn compact(&mut self) -> Result<LogStats, LogError> {
        if let Some(why) = &self.poisoned {
            return Err(LogError::Poisoned(why.clone()));
        }
        let from = self.active;
        let id = from + 1;
        let file = self.create_segment(id, SegmentHeader::compacted(id, from), true)?;
        let mut tmp = self.dir.join(segment_file_name(id));
        tmp.set_extension("log.tmp");
        let written = self.write_compacted(&file, id, &tmp);
        let (index, end) = match written {
            Ok(v) => v,
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                return Err(e);
            }
        };
        let path = self.dir.join(segment_file_name(id));
        if let Err(e) = fs::rename(&tmp, &path) {
            let _ = fs::remove_file(&tmp);
            return Err(LogError::io("rename", &tmp, e));
        }
        // From the rename on, the new segment is what recovery will use (its
        // header makes the old ones obsolete), so switch even if the
        // directory fsync fails: the data are the same either way.
        let old = std::mem::take(&mut self.segments);
        self.segments.insert(id, file);
        self.active = id;
        self.end = end;
        self.index = index;
        sync_dir(&self.dir)?;
        for (old_id, f) in old {
            drop(f);
            let p = self.dir.join(segment_file_name(old_id));
            if let Err(e) = fs::remove_file(&p) {
                tracing::warn!(path = %p.display(), error = %e, "could not remove a compacted segment; it is removed at next open");
            }
        }
        if let Err(e) = sync_dir(&self.dir) {
            tracing::warn!(error = %e, "directory fsync after compaction failed; old segments are removed at next open");
        }
        let stats = self.stats()?;
        tracing::info!(?stats, "log compacted");
        Ok(stats)
    }

    /// Write every live value into `file` as batched put records; fsync it.
    /// Returns the new index and the file's length.
    fn write_compacted(
        &self,
        file: &File,
        id: u64,
        path: &Path,
    ) -> Result<(BTreeMap<StorageKey, Location>, u64), LogError> {
        let target = (self.opts.max_record as u64).min(1 << 20);
        let io = |e| LogError::io("write", path, e);
        // The header was written with pwrite; the buffered writer goes on from
        // the file cursor, so place it after the header.
        let mut cursor = file;
        cursor.seek(SeekFrom::Start(HEADER_LEN)).map_err(io)?;
        let mut out = BufWriter::with_capacity(1 << 20, cursor);
        let mut pos = HEADER_LEN;
        let mut index = BTreeMap::new();
        let mut batch: Vec<(StorageKey, Vec<u8>)> = Vec::new();
        let mut batch_len = 0u64;
        let mut flush = |batch: &mut Vec<(StorageKey, Vec<u8>)>,
                         out: &mut BufWriter<&File>,
                         pos: &mut u64|
         -> Result<(), LogError> {
            if batch.is_empty() {
                return Ok(());
            }
            let (payload, spans) = encode_commit(
                [].iter(),
                [].iter(),
                batch.iter().map(|(k, v)| (k, v.as_slice())),
                0,
            );
            out.write_all(&record_header(&payload)).map_err(io)?;
            out.write_all(&payload).map_err(io)?;
            let payload_at = *pos + RECORD_HEADER_LEN;
            for ((k, _), span) in batch.drain(..).zip(spans) {
                index.insert(
                    k,
                    Location {
                        segment: id,
                        offset: payload_at + span.offset as u64,
                        len: span.len,
                    },
                );
            }
            *pos = payload_at + payload.len() as u64;
            Ok(())
        };
        // Encoded size of one put: key parts + value, plus the counts.
        for (k, loc) in &self.index {
            let put_len =
                4 + k.0.iter().map(|p| 4 + p.len() as u64).sum::<u64>() + 4 + loc.len as u64;
            if batch_len > 0 && batch_len + put_len > target {
                flush(&mut batch, &mut out, &mut pos)?;
                batch_len = 0;
            }
            batch.push((k.clone(), self.read(loc)?));
            batch_len += put_len;
        }
        flush(&mut batch, &mut out, &mut pos)?;
        // An explicit flush: dropping a BufWriter would swallow its error.
        out.flush().map_err(io)?;
        drop(out);
        file.sync_all()
            .map_err(|e| LogError::io("fsync", path, e))?;
        Ok((index, pos))
    }
}
