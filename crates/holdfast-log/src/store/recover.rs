//! Opening a log: the recovery steps of the crate docs (temporary files,
//! an unfinished newest segment, segments made obsolete by compaction, then
//! a scan of every segment that quarantines damaged ranges and truncates a
//! torn tail) and the rebuilding of the index.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

use super::index::Index;
use super::segment::{parse_segment_name, read_exact_at, segment_file_name, sync_dir};
use super::{LogError, LogOptions, LogStats, LogStore, Quarantined, RecoveryReport, Segment};
use crate::fault::Faults;
use crate::format::{
    crc_ok, decode_commit, parse_record_header, DecodedCommit, SegmentHeader, ABSOLUTE_MAX_RECORD,
    FORMAT_VERSION, HEADER_LEN, RECORD_HEADER_LEN, RECORD_MAGIC,
};

/// One valid record found by a scan.
struct Found {
    /// Bytes of the whole record (header + payload).
    len: u64,
    decoded: DecodedCommit,
}

/// The record at `pos`, if a whole valid one is there: magic, a length within
/// the file and the hard limit, a matching CRC and a well-formed payload.
fn read_record(file: &File, pos: u64, file_len: u64) -> io::Result<Option<Found>> {
    if pos + RECORD_HEADER_LEN > file_len {
        return Ok(None);
    }
    let mut hdr = [0u8; RECORD_HEADER_LEN as usize];
    read_exact_at(file, &mut hdr, pos)?;
    let Some((len, crc)) = parse_record_header(&hdr) else {
        return Ok(None);
    };
    if len > ABSOLUTE_MAX_RECORD || pos + RECORD_HEADER_LEN + len as u64 > file_len {
        return Ok(None);
    }
    let mut payload = vec![0u8; len as usize];
    read_exact_at(file, &mut payload, pos + RECORD_HEADER_LEN)?;
    if !crc_ok(&payload, crc) {
        return Ok(None);
    }
    Ok(decode_commit(&payload).map(|decoded| Found {
        len: RECORD_HEADER_LEN + len as u64,
        decoded,
    }))
}

/// The offset of the first valid record at or after `from`: scan for the
/// record magic and accept a candidate only if the whole record verifies.
fn find_next_record(file: &File, from: u64, file_len: u64) -> io::Result<Option<u64>> {
    const WINDOW: u64 = 64 << 10;
    let magic = RECORD_MAGIC.to_le_bytes();
    let mut start = from;
    let mut buf = Vec::new();
    while start + 4 <= file_len {
        let n = WINDOW.min(file_len - start);
        buf.resize(n as usize, 0);
        read_exact_at(file, &mut buf, start)?;
        for i in 0..buf.len().saturating_sub(3) {
            if buf[i..i + 4] == magic {
                let at = start + i as u64;
                if read_record(file, at, file_len)?.is_some() {
                    return Ok(Some(at));
                }
            }
        }
        // Overlap by 3 bytes so that a magic across windows is seen.
        start += n.saturating_sub(3).max(1);
    }
    Ok(None)
}
impl LogStore {
    /// Open (creating if needed) the log in `dir`, recover it and rebuild the
    /// index. See the module docs for the recovery rules.
    pub fn open(
        dir: impl AsRef<Path>,
        opts: LogOptions,
    ) -> Result<(LogStore, RecoveryReport), LogError> {
        let dir = dir.as_ref().to_path_buf();
        if opts.segment_size == 0 {
            return Err(LogError::InvalidOptions("segment_size must be > 0".into()));
        }
        if opts.max_record == 0 || opts.max_record > ABSOLUTE_MAX_RECORD {
            return Err(LogError::InvalidOptions(format!(
                "max_record must be in 1..={ABSOLUTE_MAX_RECORD}"
            )));
        }
        if !(1..=100).contains(&opts.compact_garbage_percent) {
            return Err(LogError::InvalidOptions(
                "compact_garbage_percent must be in 1..=100".into(),
            ));
        }
        fs::create_dir_all(&dir).map_err(|e| LogError::io("create directory", &dir, e))?;
        let lock_path = dir.join("LOCK");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| LogError::io("open", &lock_path, e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(LogError::Locked(dir)),
            Err(fs::TryLockError::Error(e)) => return Err(LogError::io("lock", &lock_path, e)),
        }

        let mut report = RecoveryReport::default();
        let mut ids = Vec::new();
        let entries = fs::read_dir(&dir).map_err(|e| LogError::io("read directory", &dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| LogError::io("read directory", &dir, e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.ends_with(".log.tmp") {
                let p = entry.path();
                tracing::warn!(path = %p.display(), "removing the output of an interrupted compaction");
                fs::remove_file(&p).map_err(|e| LogError::io("remove", &p, e))?;
                report.removed_temp_files += 1;
            } else if let Some(id) = parse_segment_name(name) {
                ids.push(id);
            }
        }
        ids.sort_unstable();
        let max_seen = ids.last().copied().unwrap_or(0);

        // Headers. A segment's header is written and fsynced before any record
        // goes into it, so only the newest segment can have a torn header.
        let mut headers = BTreeMap::new();
        let mut dir_dirty = report.removed_temp_files > 0;
        for (i, &id) in ids.iter().enumerate() {
            let path = dir.join(segment_file_name(id));
            let file = File::open(&path).map_err(|e| LogError::io("open", &path, e))?;
            let len = file
                .metadata()
                .map_err(|e| LogError::io("stat", &path, e))?
                .len();
            let mut buf = vec![0u8; len.min(HEADER_LEN) as usize];
            read_exact_at(&file, &mut buf, 0).map_err(|e| LogError::io("read", &path, e))?;
            let header = SegmentHeader::decode(&buf);
            if let Some(h) = header {
                if h.version != FORMAT_VERSION {
                    return Err(LogError::UnsupportedVersion {
                        path,
                        version: h.version,
                    });
                }
            }
            let header = header.filter(|h| {
                let ok = h.segment == id;
                if !ok {
                    tracing::warn!(
                        segment = id,
                        header_id = h.segment,
                        "segment header names another id"
                    );
                }
                ok
            });
            if header.is_none() && i + 1 == ids.len() && len <= HEADER_LEN {
                tracing::warn!(
                    segment = id,
                    bytes = len,
                    "removing a new segment whose header was never completed"
                );
                fs::remove_file(&path).map_err(|e| LogError::io("remove", &path, e))?;
                report.truncated_bytes += len;
                dir_dirty = true;
                continue;
            }
            headers.insert(id, header);
        }

        // A complete compacted segment replaces every segment <= its cutoff.
        let cutoff = headers
            .values()
            .flatten()
            .filter(|h| h.is_compacted() && h.compacted_from < h.segment)
            .map(|h| h.compacted_from)
            .max();
        if let Some(cutoff) = cutoff {
            let obsolete: Vec<u64> = headers.range(..=cutoff).map(|(&id, _)| id).collect();
            for id in obsolete {
                let path = dir.join(segment_file_name(id));
                tracing::warn!(segment = id, "removing a segment replaced by compaction");
                fs::remove_file(&path).map_err(|e| LogError::io("remove", &path, e))?;
                headers.remove(&id);
                report.removed_segments.push(id);
                dir_dirty = true;
            }
        }
        if dir_dirty {
            sync_dir(&dir)?;
        }

        let mut store = LogStore {
            dir,
            opts,
            _lock: lock,
            segments: BTreeMap::new(),
            active: 0,
            end: 0,
            disk_bytes: 0,
            index: Index::default(),
            poisoned: None,
            fault: Faults::default(),
            compacting: None,
            compactions: 0,
            compaction_failures: 0,
            failures_in_a_row: 0,
            retry_after: None,
            last_compaction: None,
            fsync: Default::default(),
            published: Arc::new(Mutex::new(LogStats::default())),
        };
        let last = headers.keys().next_back().copied();
        for (&id, header) in &headers {
            store.scan_segment(id, header.is_some(), Some(id) == last, &mut report)?;
        }
        match last {
            Some(id) => store.active = id,
            None => {
                let id = max_seen + 1;
                let file = store.create_segment(id, SegmentHeader::new(id), false)?;
                store.segments.insert(
                    id,
                    Segment {
                        file: Arc::new(file),
                        len: HEADER_LEN,
                    },
                );
                store.active = id;
                store.end = HEADER_LEN;
            }
        }
        store.disk_bytes = store
            .segments
            .iter()
            .map(|(&id, s)| if id == store.active { store.end } else { s.len })
            .sum();
        store.publish();
        report.segments = store.segments.len() as u32;
        if report.is_clean() {
            tracing::info!(
                segments = report.segments,
                records = report.records,
                keys = store.index.len(),
                "log opened"
            );
        } else {
            tracing::warn!(
                ?report,
                keys = store.index.len(),
                "log opened after recovery"
            );
        }
        Ok((store, report))
    }

    /// Scan one segment, applying its valid records to the index.
    fn scan_segment(
        &mut self,
        id: u64,
        header_ok: bool,
        is_last: bool,
        report: &mut RecoveryReport,
    ) -> Result<(), LogError> {
        let path = self.dir.join(segment_file_name(id));
        let file = OpenOptions::new()
            .read(true)
            .write(is_last)
            .open(&path)
            .map_err(|e| LogError::io("open", &path, e))?;
        let len = file
            .metadata()
            .map_err(|e| LogError::io("stat", &path, e))?
            .len();
        let rd = |e| LogError::io("read", &path, e);
        if !header_ok {
            // Not the newest segment, or with data after it: keep the bytes
            // for inspection and read the records that follow.
            tracing::warn!(
                segment = id,
                "segment header is corrupt; quarantining it and scanning its records"
            );
            let q = self.quarantine(&file, id, 0, len.min(HEADER_LEN), "bin")?;
            report.quarantined.push(q);
        }
        let mut pos = HEADER_LEN;
        while pos < len {
            if let Some(found) = read_record(&file, pos, len).map_err(rd)? {
                self.index.apply(id, pos + RECORD_HEADER_LEN, found.decoded);
                report.records += 1;
                pos += found.len;
                continue;
            }
            match find_next_record(&file, pos + 1, len).map_err(rd)? {
                Some(next) => {
                    tracing::warn!(
                        segment = id,
                        offset = pos,
                        bytes = next - pos,
                        "quarantining a corrupt record"
                    );
                    let q = self.quarantine(&file, id, pos, next - pos, "bin")?;
                    report.quarantined.push(q);
                    pos = next;
                }
                None if is_last => {
                    tracing::warn!(
                        segment = id,
                        offset = pos,
                        bytes = len - pos,
                        "truncating a torn tail"
                    );
                    self.quarantine(&file, id, pos, len - pos, "tail.bin")?;
                    file.set_len(pos)
                        .and_then(|()| file.sync_all())
                        .map_err(|e| LogError::io("truncate", &path, e))?;
                    report.truncated_bytes += len - pos;
                    break;
                }
                None => {
                    tracing::warn!(
                        segment = id,
                        offset = pos,
                        bytes = len - pos,
                        "quarantining a corrupt tail of an older segment"
                    );
                    let q = self.quarantine(&file, id, pos, len - pos, "bin")?;
                    report.quarantined.push(q);
                    pos = len;
                }
            }
        }
        let len = if is_last {
            self.end = pos.max(HEADER_LEN);
            self.end
        } else {
            len
        };
        self.segments.insert(
            id,
            Segment {
                file: Arc::new(file),
                len,
            },
        );
        Ok(())
    }

    /// Copy `len` bytes at `offset` of a segment to
    /// `quarantine/<segment>-<offset>.<ext>`, durably.
    fn quarantine(
        &self,
        file: &File,
        segment: u64,
        offset: u64,
        len: u64,
        ext: &str,
    ) -> Result<Quarantined, LogError> {
        let qdir = self.dir.join("quarantine");
        let path = qdir.join(format!("{segment:016}-{offset}.{ext}"));
        let seg_path = self.dir.join(segment_file_name(segment));
        let mut bytes = vec![0u8; len as usize];
        read_exact_at(file, &mut bytes, offset).map_err(|e| LogError::io("read", &seg_path, e))?;
        let created = !qdir.exists();
        fs::create_dir_all(&qdir).map_err(|e| LogError::io("create directory", &qdir, e))?;
        File::create(&path)
            .and_then(|mut f| {
                f.write_all(&bytes)?;
                f.sync_all()
            })
            .map_err(|e| LogError::io("write quarantine", &path, e))?;
        sync_dir(&qdir)?;
        if created {
            sync_dir(&self.dir)?;
        }
        Ok(Quarantined {
            segment,
            offset,
            len,
            path,
        })
    }
}
