//! [`LogStore`]: the synchronous core of the log (open and recovery, append +
//! fdatasync, reads through the in-memory index, compaction).

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use holdfast_core::storage::{Commit, StorageError, StorageKey};

use super::format::{
    self, crc_ok, decode_commit, encode_commit, parse_record_header, record_header, DecodedCommit,
    SegmentHeader, ABSOLUTE_MAX_RECORD, FORMAT_VERSION, HEADER_LEN, RECORD_HEADER_LEN,
    RECORD_MAGIC,
};
#[cfg(feature = "fault-hooks")]
use crate::fault::FaultHook;
use crate::fault::{FaultPoint, Faults};

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
}

impl Default for LogOptions {
    fn default() -> Self {
        Self {
            segment_size: 64 << 20,
            max_record: 256 << 20,
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

/// Sizes of a store, for deciding when to compact.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogStats {
    pub segments: u32,
    pub live_keys: u64,
    /// Bytes of live values.
    pub live_bytes: u64,
    /// Bytes of every segment file.
    pub disk_bytes: u64,
    pub active_segment: u64,
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

impl From<LogError> for StorageError {
    fn from(e: LogError) -> Self {
        let msg = e.to_string();
        match e {
            LogError::Io { source, .. } if is_quota_error(&source) => {
                StorageError::QuotaExceeded(msg)
            }
            LogError::Io { .. } => StorageError::Io(msg),
            LogError::RecordTooLarge { .. } => StorageError::QuotaExceeded(msg),
            LogError::UnsupportedVersion { .. }
            | LogError::Locked(_)
            | LogError::Poisoned(_)
            | LogError::InvalidOptions(_) => StorageError::Unavailable(msg),
        }
    }
}

/// The synchronous log store. Every method blocks on disk I/O; the server
/// uses it through [`super::LogStorage`].
pub struct LogStore {
    dir: PathBuf,
    opts: LogOptions,
    /// Held (advisory lock) for the store's lifetime.
    _lock: File,
    /// Every live segment, by id. The active (last) one is open read+write.
    segments: BTreeMap<u64, File>,
    active: u64,
    /// Length of the active segment: where the next record goes.
    end: u64,
    index: BTreeMap<StorageKey, Location>,
    poisoned: Option<String>,
    fault: Faults,
}

/// The file name of segment `id`: at least 16 digits, zero-padded.
pub fn segment_file_name(id: u64) -> String {
    format!("{id:016}.log")
}

fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".log")?;
    // 16 digits, more only past 10^16 (u64 has at most 20).
    if !(16..=20).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// fsync a directory, so that file creations, renames and removals in it are
/// durable.
fn sync_dir(dir: &Path) -> Result<(), LogError> {
    #[cfg(unix)]
    {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| LogError::io("fsync directory", dir, e))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(unix)]
fn read_exact_at(f: &File, buf: &mut [u8], off: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(f, buf, off)
}

#[cfg(unix)]
fn write_all_at(f: &File, buf: &[u8], off: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(f, buf, off)
}

#[cfg(windows)]
fn read_exact_at(f: &File, mut buf: &mut [u8], mut off: u64) -> io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match f.seek_read(buf, off)? {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n => {
                buf = &mut buf[n..];
                off += n as u64;
            }
        }
    }
    Ok(())
}

#[cfg(windows)]
fn write_all_at(f: &File, mut buf: &[u8], mut off: u64) -> io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match f.seek_write(buf, off)? {
            0 => return Err(io::ErrorKind::WriteZero.into()),
            n => {
                buf = &buf[n..];
                off += n as u64;
            }
        }
    }
    Ok(())
}

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

/// Apply one record to the index: deletes, then prefix deletes, then puts
/// (the order of [`Commit`]). `payload_at` is the file offset of the payload.
fn apply(
    index: &mut BTreeMap<StorageKey, Location>,
    segment: u64,
    payload_at: u64,
    rec: DecodedCommit,
) {
    for k in &rec.deletes {
        index.remove(k);
    }
    for prefix in &rec.delete_prefixes {
        remove_prefix(index, prefix);
    }
    for (k, span) in rec.puts {
        index.insert(
            k,
            Location {
                segment,
                offset: payload_at + span.offset as u64,
                len: span.len,
            },
        );
    }
}

fn remove_prefix(index: &mut BTreeMap<StorageKey, Location>, prefix: &StorageKey) {
    let doomed: Vec<StorageKey> = index
        .range(prefix.clone()..)
        .take_while(|(k, _)| k.starts_with(prefix))
        .map(|(k, _)| k.clone())
        .collect();
    for k in doomed {
        index.remove(&k);
    }
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
            index: BTreeMap::new(),
            poisoned: None,
            fault: Faults::default(),
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
                store.segments.insert(id, file);
                store.active = id;
                store.end = HEADER_LEN;
            }
        }
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
                apply(&mut self.index, id, pos + RECORD_HEADER_LEN, found.decoded);
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
        if is_last {
            self.end = pos.max(HEADER_LEN);
        }
        self.segments.insert(id, file);
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

    /// Create segment `id` with `header`, fsync it and the directory. With
    /// `temp`, it is created as `<name>.tmp` (compaction renames it).
    fn create_segment(
        &mut self,
        id: u64,
        header: SegmentHeader,
        temp: bool,
    ) -> Result<File, LogError> {
        let mut path = self.dir.join(segment_file_name(id));
        if temp {
            path.set_extension("log.tmp");
        }
        let result = (|| {
            if let Some(e) = self.fault_at(FaultPoint::NewSegment) {
                return Err(e);
            }
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(!temp)
                .create(temp)
                .truncate(temp)
                .open(&path)?;
            write_all_at(&file, &header.encode(), 0)?;
            file.sync_all()?;
            Ok(file)
        })();
        match result {
            Ok(file) => {
                sync_dir(&self.dir)?;
                Ok(file)
            }
            Err(e) => {
                let _ = fs::remove_file(&path);
                Err(LogError::io("create segment", &path, e))
            }
        }
    }

    fn fault_at(&mut self, point: FaultPoint) -> Option<io::Error> {
        self.fault.at(point)
    }

    /// Install a fault-injection hook (feature `fault-hooks`, tests only).
    #[cfg(feature = "fault-hooks")]
    pub fn set_fault_hook(&mut self, hook: Option<FaultHook>) {
        self.fault.set(hook);
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether a failed write left the store refusing writes.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.is_some()
    }

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
            self.roll()?;
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
        let file = &self.segments[&self.active];
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
        let synced = written.and_then(|()| {
            match self.fault.at(FaultPoint::Sync) {
                Some(e) => Err(e),
                None => file.sync_data(),
            }
            .map_err(|e| ("fdatasync", e))
        });
        if let Err((op, e)) = synced {
            tracing::error!(segment = self.active, offset = at, op, error = %e, "log append failed; removing its partial bytes");
            self.undo_append(at, &path);
            return Err(LogError::io(op, &path, e));
        }
        drop(payload);
        self.end = at + record_len;
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
        apply(
            &mut self.index,
            self.active,
            at + RECORD_HEADER_LEN,
            decoded,
        );
        Ok(())
    }

    /// Cut a failed append off the active segment, or poison the store if
    /// that fails too.
    fn undo_append(&mut self, at: u64, path: &Path) {
        let result = match self.fault_at(FaultPoint::Truncate) {
            Some(e) => Err(e),
            None => {
                let file = &self.segments[&self.active];
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

    /// Start a new active segment.
    fn roll(&mut self) -> Result<(), LogError> {
        let id = self.active + 1;
        let file = self.create_segment(id, SegmentHeader::new(id), false)?;
        self.segments.insert(id, file);
        self.active = id;
        self.end = HEADER_LEN;
        tracing::debug!(segment = id, "rolled to a new log segment");
        Ok(())
    }

    fn read(&self, loc: &Location) -> Result<Vec<u8>, LogError> {
        let path = || self.dir.join(segment_file_name(loc.segment));
        let file = self.segments.get(&loc.segment).ok_or_else(|| {
            LogError::io(
                "read",
                &path(),
                io::Error::new(io::ErrorKind::NotFound, "segment not open"),
            )
        })?;
        let mut buf = vec![0u8; loc.len as usize];
        read_exact_at(file, &mut buf, loc.offset).map_err(|e| LogError::io("read", &path(), e))?;
        Ok(buf)
    }

    pub fn get(&self, key: &StorageKey) -> Result<Option<Vec<u8>>, LogError> {
        self.index.get(key).map(|loc| self.read(loc)).transpose()
    }

    /// Every record whose key starts with `prefix`, in key order.
    pub fn range(&self, prefix: &StorageKey) -> Result<Vec<(StorageKey, Vec<u8>)>, LogError> {
        self.index
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, loc)| Ok((k.clone(), self.read(loc)?)))
            .collect()
    }

    /// The live keys under `prefix`, without reading values.
    pub fn keys(&self, prefix: &StorageKey) -> Vec<StorageKey> {
        self.index
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, _)| k.clone())
            .collect()
    }

    pub fn stats(&self) -> Result<LogStats, LogError> {
        let mut disk_bytes = 0;
        for (&id, f) in &self.segments {
            disk_bytes += f
                .metadata()
                .map_err(|e| LogError::io("stat", &self.dir.join(segment_file_name(id)), e))?
                .len();
        }
        Ok(LogStats {
            segments: self.segments.len() as u32,
            live_keys: self.index.len() as u64,
            live_bytes: self.live_bytes(),
            disk_bytes,
            active_segment: self.active,
        })
    }

    /// Bytes of live values.
    pub fn live_bytes(&self) -> u64 {
        self.index.values().map(|l| l.len as u64).sum()
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_round_trip_and_strangers_are_ignored() {
        assert_eq!(segment_file_name(7), "0000000000000007.log");
        assert_eq!(
            parse_segment_name(&segment_file_name(u64::MAX - 1)),
            Some(u64::MAX - 1)
        );
        for name in [
            "7.log",
            "000000000000000a.log",
            "0000000000000007.log.tmp",
            "LOCK",
        ] {
            assert_eq!(parse_segment_name(name), None, "{name}");
        }
    }

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
