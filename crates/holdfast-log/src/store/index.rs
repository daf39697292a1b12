//! The in-memory index (`StorageKey` → where its value lies on disk): how a
//! record changes it, and the reads that go through it.

use std::collections::BTreeMap;
use std::io;

use holdfast_core::storage::StorageKey;

use super::segment::{read_exact_at, segment_file_name};
use super::{Location, LogError, LogStats, LogStore};
use crate::format::DecodedCommit;

/// Apply one record to the index: deletes, then prefix deletes, then puts
/// (the order of [`Commit`](holdfast_core::storage::Commit)). `payload_at` is
/// the file offset of the payload.
pub(super) fn apply(
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
    pub(super) fn read(&self, loc: &Location) -> Result<Vec<u8>, LogError> {
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
}
