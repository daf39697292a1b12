//! The in-memory index (`StorageKey` → where its value lies on disk): how a
//! record changes it, and the reads that go through it.

use std::collections::BTreeMap;
use std::io;

use holdfast_core::storage::StorageKey;

use super::segment::{read_exact_at, segment_file_name};
use super::{Location, LogError, LogStore};
use crate::format::DecodedCommit;

/// The encoded size of a put of `value_len` bytes under `key` in a record
/// payload (`key | len u32 | value`).
pub(super) fn put_len(key: &StorageKey, value_len: u32) -> u64 {
    4 + key.0.iter().map(|p| 4 + p.len() as u64).sum::<u64>() + 4 + value_len as u64
}

/// The map from each live key to its value on disk, with running totals so
/// that the compaction policy is O(1) per commit.
#[derive(Default)]
pub(super) struct Index {
    map: BTreeMap<StorageKey, Location>,
    /// Σ value lengths.
    live_bytes: u64,
    /// Σ [`put_len`]: what a compaction writes, before record framing.
    live_put_bytes: u64,
}

impl Index {
    pub(super) fn map(&self) -> &BTreeMap<StorageKey, Location> {
        &self.map
    }

    /// The locations, to be moved (compaction); the keys stay, so the totals
    /// do not change. Lengths must not change either.
    pub(super) fn locations_mut(
        &mut self,
    ) -> std::collections::btree_map::IterMut<'_, StorageKey, Location> {
        self.map.iter_mut()
    }

    pub(super) fn len(&self) -> usize {
        self.map.len()
    }

    pub(super) fn live_bytes(&self) -> u64 {
        self.live_bytes
    }

    pub(super) fn live_put_bytes(&self) -> u64 {
        self.live_put_bytes
    }

    pub(super) fn get(&self, key: &StorageKey) -> Option<&Location> {
        self.map.get(key)
    }

    fn forget(&mut self, key: &StorageKey, old: Location) {
        self.live_bytes -= old.len as u64;
        self.live_put_bytes -= put_len(key, old.len);
    }

    pub(super) fn insert(&mut self, key: StorageKey, loc: Location) {
        let added = put_len(&key, loc.len);
        if let Some(old) = self.map.get_mut(&key) {
            let old = std::mem::replace(old, loc);
            self.forget(&key, old);
        } else {
            self.map.insert(key, loc);
        }
        self.live_bytes += loc.len as u64;
        self.live_put_bytes += added;
    }

    fn remove(&mut self, key: &StorageKey) {
        if let Some(old) = self.map.remove(key) {
            self.forget(key, old);
        }
    }

    fn remove_prefix(&mut self, prefix: &StorageKey) {
        let doomed: Vec<StorageKey> = self
            .map
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, _)| k.clone())
            .collect();
        for k in doomed {
            self.remove(&k);
        }
    }

    /// Apply one record: deletes, then prefix deletes, then puts (the order
    /// of [`Commit`](holdfast_core::storage::Commit)). `payload_at` is the
    /// file offset of the payload.
    pub(super) fn apply(&mut self, segment: u64, payload_at: u64, rec: DecodedCommit) {
        for k in &rec.deletes {
            self.remove(k);
        }
        for prefix in &rec.delete_prefixes {
            self.remove_prefix(prefix);
        }
        for (k, span) in rec.puts {
            self.insert(
                k,
                Location {
                    segment,
                    offset: payload_at + span.offset as u64,
                    len: span.len,
                },
            );
        }
    }
}

impl LogStore {
    pub(super) fn read(&self, loc: &Location) -> Result<Vec<u8>, LogError> {
        let path = || self.dir.join(segment_file_name(loc.segment));
        let seg = self.segments.get(&loc.segment).ok_or_else(|| {
            LogError::io(
                "read",
                &path(),
                io::Error::new(io::ErrorKind::NotFound, "segment not open"),
            )
        })?;
        let mut buf = vec![0u8; loc.len as usize];
        read_exact_at(&seg.file, &mut buf, loc.offset)
            .map_err(|e| LogError::io("read", &path(), e))?;
        Ok(buf)
    }

    pub fn get(&self, key: &StorageKey) -> Result<Option<Vec<u8>>, LogError> {
        self.index.get(key).map(|loc| self.read(loc)).transpose()
    }

    /// Every record whose key starts with `prefix`, in key order.
    pub fn range(&self, prefix: &StorageKey) -> Result<Vec<(StorageKey, Vec<u8>)>, LogError> {
        self.index
            .map()
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, loc)| Ok((k.clone(), self.read(loc)?)))
            .collect()
    }

    /// The live keys under `prefix`, without reading values.
    pub fn keys(&self, prefix: &StorageKey) -> Vec<StorageKey> {
        self.index
            .map()
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, _)| k.clone())
            .collect()
    }
}
