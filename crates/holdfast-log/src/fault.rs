//! Fault injection for the tests of the failure paths (feature
//! `fault-hooks`). Without the feature, [`Faults`] is empty and every point
//! reports "no fault", so release builds carry no hook and no branch on one.

use std::io;
#[cfg(feature = "fault-hooks")]
use std::sync::{Arc, Mutex};

/// Where a test may make the store fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultPoint {
    /// Appending a record: on a fault, half of the record is written first.
    Write,
    /// The `fdatasync` after an append.
    Sync,
    /// Truncating a failed append away.
    Truncate,
    /// Creating a new segment: when rolling (also the roll that starts a
    /// background compaction) and the `.log.tmp` file of a compaction.
    NewSegment,
    /// Compaction: writing one batch of the compacted segment (`.log.tmp`);
    /// on a fault the batches before it are in the file.
    CompactWrite,
    /// Compaction: renaming the complete, fsynced `.log.tmp` to `.log`.
    CompactRename,
    /// Compaction: removing one replaced segment, after the rename (a fault
    /// leaves it for the next open to remove).
    CompactRemove,
}

/// Called at each [`FaultPoint`]; `Some(error)` makes that step fail. A
/// background compaction calls it from its own thread (named
/// `holdfast-log-compact`), so the hook must not wait for the store.
#[cfg(feature = "fault-hooks")]
pub type FaultHook = Box<dyn FnMut(FaultPoint) -> Option<io::Error> + Send>;

/// The installed hook, if any. Clones share it (a compaction running
/// without the store's lock holds a clone).
#[derive(Clone, Default)]
pub(crate) struct Faults {
    #[cfg(feature = "fault-hooks")]
    hook: Arc<Mutex<Option<FaultHook>>>,
}

impl Faults {
    /// The error a test wants at `point`, if any (always `None` without the
    /// `fault-hooks` feature).
    #[inline]
    pub(crate) fn at(&self, point: FaultPoint) -> Option<io::Error> {
        #[cfg(feature = "fault-hooks")]
        {
            let mut hook = self.hook.lock().unwrap_or_else(|p| p.into_inner());
            hook.as_mut().and_then(|f| f(point))
        }
        #[cfg(not(feature = "fault-hooks"))]
        {
            let _ = point;
            None
        }
    }

    #[cfg(feature = "fault-hooks")]
    pub(crate) fn set(&self, hook: Option<FaultHook>) {
        *self.hook.lock().unwrap_or_else(|p| p.into_inner()) = hook;
    }
}
