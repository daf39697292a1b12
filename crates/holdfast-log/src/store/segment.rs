//! Segment files: their names, positioned reads and writes, directory fsync
//! and the creation of a new segment (header written and fsynced, then the
//! directory).

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::Path;

use super::{LogError, LogStore};
use crate::fault::{FaultPoint, Faults};
use crate::format::SegmentHeader;

/// The file name of segment `id`: at least 16 digits, zero-padded.
pub fn segment_file_name(id: u64) -> String {
    format!("{id:016}.log")
}

pub(super) fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".log")?;
    // 16 digits, more only past 10^16 (u64 has at most 20).
    if !(16..=20).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// fsync a directory, so that file creations, renames and removals in it are
/// durable.
pub(super) fn sync_dir(dir: &Path) -> Result<(), LogError> {
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
pub(super) fn read_exact_at(f: &File, buf: &mut [u8], off: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(f, buf, off)
}

#[cfg(unix)]
pub(super) fn write_all_at(f: &File, buf: &[u8], off: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(f, buf, off)
}

#[cfg(windows)]
pub(super) fn read_exact_at(f: &File, mut buf: &mut [u8], mut off: u64) -> io::Result<()> {
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
pub(super) fn write_all_at(f: &File, mut buf: &[u8], mut off: u64) -> io::Result<()> {
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

/// Create segment `id` in `dir` with `header`, fsync it and the directory.
/// With `temp`, it is created as `<name>.tmp` (compaction renames it),
/// replacing any leftover of that name.
pub(super) fn create_segment_file(
    faults: &Faults,
    dir: &Path,
    id: u64,
    header: SegmentHeader,
    temp: bool,
) -> Result<File, LogError> {
    let mut path = dir.join(segment_file_name(id));
    if temp {
        path.set_extension("log.tmp");
    }
    let result = (|| {
        if let Some(e) = faults.at(FaultPoint::NewSegment) {
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
            sync_dir(dir)?;
            Ok(file)
        }
        Err(e) => {
            let _ = fs::remove_file(&path);
            Err(LogError::io("create segment", &path, e))
        }
    }
}

impl LogStore {
    /// Create segment `id` with `header` (see [`create_segment_file`]).
    pub(super) fn create_segment(
        &mut self,
        id: u64,
        header: SegmentHeader,
        temp: bool,
    ) -> Result<File, LogError> {
        create_segment_file(&self.fault, &self.dir, id, header, temp)
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
}
