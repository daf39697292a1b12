//! Appending a commit: one record, written and fdatasynced before `Ok`; a
//! failed append is cut off again, or poisons the store if that fails too.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use holdfast_core::storage::Commit;

use super::segment::{segment_file_name, write_all_at};
use super::{LogError, LogStore, Segment};
use crate::fault::FaultPoint;
use crate::format::{
    self, encode_commit, record_header, DecodedCommit, SegmentHeader, HEADER_LEN, RECORD_HEADER_LEN,
};

impl LogStore {
    /// Append `commit` as one record and fdatasync it; `Ok` means durable.
    /// On failure nothing of it is visible, now or after reopening.
    pub fn commit(&mut self, commit: &Commit) -> Result<(), LogError> {
        if let Some(why) = &self.poisoned {
            return Err(LogError::Poisoned(why.clone()));
        }
        if commit.is_empty() {
            return Ok(());
        }
        let len = format::payload_len(commit);
        if len > self.opts.max_record as u64 {
            return Err(LogError::RecordTooLarge {
                len,
                max: self.opts.max_record,
            });
        }
        if self.end >= self.opts.segment_size && self.end > HEADER_LEN {
            self.roll_to(self.active + 1)?;
        }
        let (payload, spans) = encode_commit(
            commit.deletes.iter(),
            commit.delete_prefixes.iter(),
            commit.puts.iter().map(|(k, v)| (k, v.as_slice())),
            len as usize,
        );
        let header = record_header(&payload);
        let record_len = RECORD_HEADER_LEN + payload.len() as u64;

        let at = self.end;
        let path = self.dir.join(segment_file_name(self.active));
        let file = &*self.segments[&self.active].file;
        let written = match self.fault.at(FaultPoint::Write) {
            Some(e) => {
                // Simulate a torn append: the header and half the payload.
                let _ = write_all_at(file, &header, at).and_then(|()| {
                    write_all_at(file, &payload[..payload.len() / 2], at + RECORD_HEADER_LEN)
                });
                Err(("append", e))
            }
            // Two positioned writes (header, then payload) spare a copy of the
            // payload; the record is only durable after the fdatasync anyway.
            None => write_all_at(file, &header, at)
                .and_then(|()| write_all_at(file, &payload, at + RECORD_HEADER_LEN))
                .map_err(|e| ("append", e)),
        };
        let mut fsync_took = None;
        let synced = written.and_then(|()| {
            match self.fault.at(FaultPoint::Sync) {
                Some(e) => Err(e),
                None => {
                    let started = Instant::now();
                    let synced = file.sync_data();
                    fsync_took = Some(started.elapsed());
                    synced
                }
            }
            .map_err(|e| ("fdatasync", e))
        });
        if let Some(took) = fsync_took {
            self.fsync.record(took);
        }
        if let Err((op, e)) = synced {
            tracing::error!(segment = self.active, offset = at, op, error = %e, "log append failed; removing its partial bytes");
            self.undo_append(at, &path);
            self.publish();
            return Err(LogError::io(op, &path, e));
        }
        drop(payload);
        self.end = at + record_len;
        self.disk_bytes += record_len;
        let decoded = DecodedCommit {
            deletes: commit.deletes.clone(),
            delete_prefixes: commit.delete_prefixes.clone(),
            puts: commit
                .puts
                .iter()
                .map(|(k, _)| k.clone())
                .zip(spans)
                .collect(),
        };
        self.index
            .apply(self.active, at + RECORD_HEADER_LEN, decoded);
        self.publish();
        Ok(())
    }

    /// Cut a failed append off the active segment, or poison the store if
    /// that fails too.
    fn undo_append(&mut self, at: u64, path: &Path) {
        let result = match self.fault_at(FaultPoint::Truncate) {
            Some(e) => Err(e),
            None => {
                let file = &self.segments[&self.active].file;
                file.set_len(at).and_then(|()| file.sync_data())
            }
        };
        if let Err(e) = result {
            let why = format!(
                "could not truncate {} back to {at} bytes: {e}",
                path.display()
            );
            tracing::error!("{why}; the log refuses writes until reopened");
            self.poisoned = Some(why);
        }
    }

    /// Seal the active segment and start segment `id` (normally the next
    /// id; a background compaction skips one, which it writes itself).
    pub(super) fn roll_to(&mut self, id: u64) -> Result<(), LogError> {
        let file = self.create_segment(id, SegmentHeader::new(id), false)?;
        if let Some(sealed) = self.segments.get_mut(&self.active) {
            sealed.len = self.end;
        }
        self.segments.insert(
            id,
            Segment {
                file: Arc::new(file),
                len: HEADER_LEN,
            },
        );
        self.active = id;
        self.end = HEADER_LEN;
        self.disk_bytes += HEADER_LEN;
        tracing::debug!(segment = id, "rolled to a new log segment");
        Ok(())
    }
}
