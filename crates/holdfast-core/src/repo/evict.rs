//! Keeping the documents held in memory bounded (a server's
//! `ConnLimits::max_loaded_docs`): documents nothing needs in memory (see
//! `Doc::evictable`) are dropped, least recently used first; storage
//! holds everything they had, and the next message about one loads it
//! again like any document not in memory.
//!
//! The work is spread out, because every input waits for it: one scan
//! (linear in the documents held, ~0.1 ms per 10,000) picks the least
//! recently used evictable documents, down to 90 % of the limit, and
//! each turn of the repo (`poll_effect` with nothing queued) drops at most
//! [`EVICT_PER_TURN`] of them (tens of microseconds each: dropping a tenth
//! of 10,000 documents at once held every connection up 20–30 ms under
//! W9's spam). A picked document used or pinned since is skipped.
//!
//! A scan that finds too little to evict (every document in use) is not
//! repeated until the count has grown by a tenth of the limit or a
//! connection closed, so a repo over its limit does not rescan every
//! document on every input.

use super::{Repo, Timestamp};
use crate::id::DocumentId;

/// Documents dropped per turn at most.
const EVICT_PER_TURN: usize = 16;

impl Repo {
    pub(super) fn evict_idle(&mut self) {
        let max = self.cfg.conn_limits.max_loaded_docs;
        let held = self.docs.len();
        let target = max - max / 10;
        if max == 0 || held <= target {
            self.evict_queue.clear();
            return;
        }
        if self.evict_queue.is_empty() {
            if held <= max || held < self.evict_floor {
                return;
            }
            let mut idle: Vec<(Timestamp, DocumentId)> = self
                .docs
                .values()
                .filter(|d| d.evictable())
                .map(|d| (d.last_used, d.id))
                .collect();
            let excess = held - target;
            if idle.len() > excess {
                // The `excess` least recently used.
                idle.select_nth_unstable(excess);
                idle.truncate(excess);
            } else {
                self.evict_floor = held + (max / 10).max(1);
            }
            // Oldest last: popped first.
            idle.sort_unstable_by(|a, b| b.cmp(a));
            self.evict_queue = idle;
        }
        for _ in 0..EVICT_PER_TURN {
            if self.docs.len() <= target {
                self.evict_queue.clear();
                break;
            }
            let Some((used, id)) = self.evict_queue.pop() else {
                break;
            };
            let unchanged = self
                .docs
                .get(&id)
                .is_some_and(|d| d.last_used == used && d.evictable());
            if unchanged {
                self.docs.remove(&id);
                self.evicted += 1;
            }
        }
    }

    /// Documents picked for eviction are left to drop (see
    /// [`Repo::poll_timeout`]: a repo with no input still gets there).
    pub(super) fn eviction_pending(&self) -> bool {
        let max = self.cfg.conn_limits.max_loaded_docs;
        !self.evict_queue.is_empty() && self.docs.len() > max - max / 10
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
