//! Keeping the documents held in memory bounded (a server's
//! `ConnLimits::max_loaded_docs`): documents nothing needs in memory (see
//! `Doc::evictable`) are dropped, least recently used first; storage
//! holds everything they had, and the next message about one loads it
//! again like any document not in memory.
//!
//! A scan that finds too little to evict (every document in use) is not
//! repeated until the count has grown by a tenth of the limit or a
//! connection closed, so a repo over its limit does not rescan every
//! document on every input.

use super::Repo;
use crate::id::DocumentId;

impl Repo {
    pub(super) fn evict_idle(&mut self) {
        let max = self.cfg.conn_limits.max_loaded_docs;
        let held = self.docs.len();
        if max == 0 || held <= max || held < self.evict_floor {
            return;
        }
        // Down to 90 % of the limit, so the next scan is not one document
        // away.
        let target = max - max / 10;
        let mut idle: Vec<(super::Timestamp, DocumentId)> = self
            .docs
            .values()
            .filter(|d| d.evictable())
            .map(|d| (d.last_used, d.id))
            .collect();
        idle.sort_unstable();
        let excess = held - target;
        for (_, id) in idle.iter().take(excess) {
            self.docs.remove(id);
        }
        self.evicted += idle.len().min(excess) as u64;
        if idle.len() < excess {
            self.evict_floor = self.docs.len() + (max / 10).max(1);
        }
    }

    /// Documents held in memory now (loaded or loading).
    pub fn loaded_docs(&self) -> usize {
        self.docs.len()
    }

    /// Documents evicted from memory since start.
    pub fn evicted_docs(&self) -> u64 {
        self.evicted
    }
}
