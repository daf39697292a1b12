//! Generic byte mutations (flip, set, insert, delete, truncate, duplicate,
//! splice, LEB128 values), of the sync data, a chunk body or column bytes.

use rand::{Rng, RngExt};

use super::Gen;
use crate::format;

/// Largest LEB128 value written into column bytes in `--no-validate` runs:
/// a huge run length in a column makes automerge materialise that many
/// operations (memory without bound), which would end the run, not find a
/// panic. With validation on, any value goes.
const NO_VALIDATE_MAX_COLUMN_VALUE: u64 = 1 << 12;

impl<'a> Gen<'a> {
    /// Generic byte mutations; `leb` allows writing LEB128 values (column
    /// data, Bloom bytes).
    pub fn bytes(&mut self, buf: &mut Vec<u8>, other: Option<&[u8]>, leb: bool) {
        let n = buf.len();
        match self.rng.random_range(0..11) {
            0 if n > 0 => {
                let i = self.rng.random_range(0..n);
                buf[i] ^= 1 << self.rng.random_range(0..8);
            }
            1 if n > 0 => {
                let i = self.rng.random_range(0..n);
                let r = self.rng.random();
                buf[i] = self.pick(&[0x00, 0x01, 0x7f, 0x80, 0xff, r]);
            }
            2 => {
                let at = self.rng.random_range(0..=n);
                let mut ins = vec![0u8; self.rng.random_range(1..=8)];
                self.rng.fill_bytes(&mut ins);
                buf.splice(at..at, ins);
            }
            3 if n > 0 => {
                let at = self.rng.random_range(0..n);
                let len = self.rng.random_range(1..=(n - at).min(16));
                buf.drain(at..at + len);
            }
            4 if n > 0 => buf.truncate(self.rng.random_range(0..n)),
            5 if n > 0 => {
                let at = self.rng.random_range(0..n);
                let len = self.rng.random_range(1..=(n - at).min(64));
                let dup = buf[at..at + len].to_vec();
                let to = self.rng.random_range(0..=n);
                buf.splice(to..to, dup);
            }
            6 | 7 => {
                if let Some(o) = other.filter(|o| !o.is_empty()) {
                    // Splice: a prefix of this, a suffix of the other.
                    let a = self.rng.random_range(0..=n);
                    let b = self.rng.random_range(0..o.len());
                    buf.truncate(a);
                    buf.extend_from_slice(&o[b..]);
                }
            }
            8 if leb && n > 0 => {
                let v = self.pick(&[
                    0u64,
                    1,
                    127,
                    128,
                    1 << 12,
                    1 << 20,
                    1 << 31,
                    1 << 32,
                    u64::MAX,
                ]);
                let v = if self.validate {
                    v
                } else {
                    v.min(NO_VALIDATE_MAX_COLUMN_VALUE)
                };
                let mut enc = Vec::new();
                format::write_uleb(&mut enc, v);
                let at = self.rng.random_range(0..n);
                let end = (at + enc.len()).min(n);
                buf.splice(at..end, enc);
            }
            _ if n > 0 => {
                // A few random bytes overwritten.
                for _ in 0..self.rng.random_range(1..4) {
                    let i = self.rng.random_range(0..n);
                    buf[i] = self.rng.random();
                }
            }
            _ => buf.push(self.rng.random()),
        }
    }
}
