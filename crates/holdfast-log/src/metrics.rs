//! [`FsyncHistogram`]: how long each commit's `fdatasync` took, in fixed
//! buckets, for a Prometheus histogram.

use std::time::Duration;

/// The upper bounds of [`FsyncHistogram`]'s buckets: 0.5, 1, 2, 5, 10, 25,
/// 50, 100, 250, 500 and 1000 ms. A twelfth bucket holds everything slower
/// (Prometheus' `+Inf`).
pub const FSYNC_BUCKET_BOUNDS: [Duration; 11] = [
    Duration::from_micros(500),
    Duration::from_millis(1),
    Duration::from_millis(2),
    Duration::from_millis(5),
    Duration::from_millis(10),
    Duration::from_millis(25),
    Duration::from_millis(50),
    Duration::from_millis(100),
    Duration::from_millis(250),
    Duration::from_millis(500),
    Duration::from_millis(1000),
];

/// The `fdatasync` durations of the commits since the store was opened (one
/// per non-empty commit that reached its fsync, failed or not; not the
/// fsyncs of rolling or compaction).
///
/// `counts[i]` (for `i < 11`) counts the fsyncs that took more than
/// `FSYNC_BUCKET_BOUNDS[i - 1]` (0 for `i = 0`) and at most
/// `FSYNC_BUCKET_BOUNDS[i]`; `counts[11]` those over 1 s. The counts are
/// per bucket, not cumulative: [`FsyncHistogram::cumulative`] gives
/// Prometheus' `le` form.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FsyncHistogram {
    pub counts: [u64; 12],
    /// The total time spent in those fsyncs.
    pub sum: Duration,
}

impl FsyncHistogram {
    pub fn record(&mut self, took: Duration) {
        let bucket = FSYNC_BUCKET_BOUNDS.partition_point(|&bound| bound < took);
        self.counts[bucket] += 1;
        self.sum += took;
    }

    /// How many fsyncs were recorded.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Prometheus buckets: `(le, fsyncs that took at most le)` with `le` in
    /// seconds, ascending; the last one is `(f64::INFINITY, count())`.
    pub fn cumulative(&self) -> [(f64, u64); 12] {
        let mut out = [(f64::INFINITY, 0); 12];
        let mut total = 0;
        for (i, n) in self.counts.iter().enumerate() {
            total += n;
            let le = FSYNC_BUCKET_BOUNDS
                .get(i)
                .map_or(f64::INFINITY, Duration::as_secs_f64);
            out[i] = (le, total);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_land_in_the_bucket_of_their_upper_bound() {
        let mut h = FsyncHistogram::default();
        for us in [0, 500, 501, 1000, 7000, 1_000_000, 1_000_001, 60_000_000] {
            h.record(Duration::from_micros(us));
        }
        assert_eq!(h.counts, [2, 2, 0, 0, 1, 0, 0, 0, 0, 0, 1, 2]);
        assert_eq!(h.count(), 8);
        assert_eq!(h.sum, Duration::from_micros(62_009_002));
        let c = h.cumulative();
        assert_eq!(c[0], (0.0005, 2));
        assert_eq!(c[4], (0.01, 5));
        assert_eq!(c[10], (1.0, 6));
        assert_eq!(c[11], (f64::INFINITY, 8));
    }
}
