//! Fault injection for the tests of the failure paths (feature
//! `fault-hooks`). Without the feature, [`Faults`] is empty and every point
//! reports "no fault", so release builds carry no hook and no branch on one.

use std::io;

/// Where a test may make the store fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultPoint {
    /// Appending a record: on a fault, half of the record is written first.
    Write,
    /// The `fdatasync` after an append.
    Sync,
    /// Truncating a failed append away.
    Truncate,
    /// Creating a new segment when rolling.
    NewSegment,
}

/// Called at each [`FaultPoint`]; `Some(error)` makes that step fail.
#[cfg(feature = "fault-hooks")]
pub type FaultHook = Box<dyn FnMut(FaultPoint) -> Option<io::Error> + Send>;

/// The installed hook, if any.
#[derive(Default)]
pub(crate) struct Faults {
    #[cfg(feature = "fault-hooks")]
    hook: Option<FaultHook>,
}

impl Faults {
    /// The error a test wants at `point`, if any (always `None` without the
    /// `fault-hooks` feature).
    #[inline]
    pub(crate) fn at(&mut self, point: FaultPoint) -> Option<io::Error> {
        #[cfg(feature = "fault-hooks")]
        {
            self.hook.as_mut().and_then(|f| f(point))
        }
        #[cfg(not(feature = "fault-hooks"))]
        {
            let _ = point;
            None
        }
    }

    #[cfg(feature = "fault-hooks")]
    pub(crate) fn set(&mut self, hook: Option<FaultHook>) {
        self.hook = hook;
    }
}
