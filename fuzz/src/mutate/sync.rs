//! Sync message level ([`SyncMsg`]): heads / need / `lastSync` hashes,
//! `have` entries, Bloom filter parameters and bit arrays, the change list,
//! version byte, flags, trailing bytes, and splicing with another message.

use rand::{Rng, RngExt};
use rand_chacha::ChaCha8Rng;

use super::Gen;
use crate::format::{self, Bloom, Have, SyncMsg};

/// Bloom probes in `--no-validate` runs are capped at 2^16: automerge
/// allocates 4 bytes per probe (`Vec::with_capacity(num_probes)` in
/// `sync/bloom.rs`) every time it tests a hash, so 2^32 probes would allocate
/// 16 GiB and kill the fuzzer instead of reporting anything. With validation
/// on, any value goes (validation must refuse it).
pub const NO_VALIDATE_MAX_PROBES: u64 = 1 << 16;

fn hash_of(rng: &mut ChaCha8Rng) -> format::Hash {
    let mut h = [0u8; 32];
    rng.fill_bytes(&mut h);
    h
}

impl<'a> Gen<'a> {
    fn known_hash(&mut self) -> format::Hash {
        let hs = &self.corpus.hashes;
        hs[self.rng.random_range(0..hs.len())]
    }

    pub(super) fn sync(&mut self, data: &mut Vec<u8>) {
        let Some(mut m) = SyncMsg::parse(data) else {
            let other = self.pick(&self.corpus.messages);
            return self.bytes(data, Some(&other), false);
        };
        match self.rng.random_range(0..20) {
            0..=2 => self.hashes(&mut m.heads),
            3..=4 => self.hashes(&mut m.need),
            5..=9 => self.bloom(&mut m),
            10..=11 => {
                if m.have.is_empty() {
                    m.have.push(Have {
                        last_sync: Vec::new(),
                        bloom: Vec::new(),
                    });
                }
                let i = self.rng.random_range(0..m.have.len());
                self.hashes(&mut m.have[i].last_sync);
            }
            12 => match self.rng.random_range(0..4) {
                0 => m.have.clear(),
                1 if !m.have.is_empty() => {
                    let h = m.have[0].clone();
                    for _ in 0..self.rng.random_range(1..10) {
                        m.have.push(h.clone());
                    }
                }
                _ => m.have.push(Have {
                    last_sync: Vec::new(),
                    bloom: Vec::new(),
                }),
            },
            13..=15 => self.change_list(&mut m),
            16 => m.version ^= 0x01,
            17 => {
                m.flags = match self.rng.random_range(0..5) {
                    0 => None,
                    1 => Some(vec![0x02, 0x80 | self.rng.random_range(0..8u8)]),
                    2 => Some(Vec::new()),
                    3 => Some(vec![0x02, 0x81]), // SYNC_RESET
                    _ => {
                        let mut b = vec![0; self.rng.random_range(1..6)];
                        self.rng.fill_bytes(&mut b);
                        Some(b)
                    }
                }
            }
            18 => {
                let mut b = vec![0; self.rng.random_range(1..9)];
                self.rng.fill_bytes(&mut b);
                m.trailing = b;
                if m.flags.is_none() {
                    m.flags = Some(Vec::new());
                }
            }
            _ => {
                // Splice: this message's heads and haves, another's changes.
                let other = self.pick(&self.corpus.messages);
                if let Some(o) = SyncMsg::parse(&other) {
                    m.changes = o.changes;
                }
            }
        }
        *data = m.encode();
    }

    pub(super) fn hashes(&mut self, hs: &mut Vec<format::Hash>) {
        let n = hs.len();
        match self.rng.random_range(0..11) {
            0 if n > 0 => {
                let i = self.rng.random_range(0..n);
                hs[i] = self.known_hash();
            }
            1 if n > 0 => {
                let i = self.rng.random_range(0..n);
                hs[i] = hash_of(&mut self.rng);
            }
            2 if n > 0 => {
                let i = self.rng.random_range(0..n);
                let b = self.rng.random_range(0..256usize);
                hs[i][b / 8] ^= 1 << (b % 8);
            }
            3 if n > 0 => {
                let i = self.rng.random_range(0..n);
                hs.insert(i, hs[i]);
            }
            4 if n > 0 => {
                hs.remove(self.rng.random_range(0..n));
            }
            5 => hs.clear(),
            6 => {
                let h = self.known_hash();
                hs.push(h);
            }
            7 => hs.push(hash_of(&mut self.rng)),
            8 => {
                let k = self.pick(&[10usize, 100, 1000, 5000]);
                for _ in 0..k {
                    let h = if self.chance(0.5) {
                        self.known_hash()
                    } else {
                        hash_of(&mut self.rng)
                    };
                    hs.push(h);
                }
            }
            9 => hs.reverse(),
            _ => {
                let all = self.corpus.hashes.clone();
                let k = self.rng.random_range(0..all.len().min(64));
                let start = self.rng.random_range(0..all.len() - k);
                *hs = all[start..start + k].to_vec();
            }
        }
    }

    fn bloom(&mut self, m: &mut SyncMsg) {
        if m.have.is_empty() || self.chance(0.1) {
            let entries = self.rng.random_range(1..40u64);
            let mut bits = vec![0u8; Bloom::capacity(entries, 10) as usize];
            self.rng.fill_bytes(&mut bits);
            m.have.push(Have {
                last_sync: Vec::new(),
                bloom: Bloom {
                    entries,
                    bits_per_entry: 10,
                    probes: 7,
                    bits,
                }
                .encode(),
            });
        }
        let i = self.rng.random_range(0..m.have.len());
        let Some(mut b) = Bloom::parse(&m.have[i].bloom) else {
            let other = m.have[i].bloom.clone();
            return self.bytes(&mut m.have[i].bloom, Some(&other), true);
        };
        let resize = self.chance(0.75);
        for _ in 0..self.rng.random_range(1..=3) {
            match self.rng.random_range(0..5) {
                0 => {
                    let r = self.rng.random_range(0..200);
                    b.entries = self.pick(&[
                        0,
                        1,
                        2,
                        b.entries.saturating_add(1),
                        b.entries.saturating_sub(1),
                        r,
                        1 << 16,
                        u32::MAX as u64,
                        1 << 32,
                        u64::MAX,
                    ])
                }
                1 => {
                    b.bits_per_entry =
                        self.pick(&[0, 0, 1, 7, 10, 63, 64, 65, 255, u32::MAX as u64, 1 << 32])
                }
                2 => {
                    b.probes = self.pick(&[
                        0,
                        1,
                        7,
                        32,
                        33,
                        1000,
                        1 << 16,
                        u32::MAX as u64 - 1,
                        u32::MAX as u64,
                        1 << 32,
                    ]);
                    if !self.validate {
                        b.probes = b.probes.min(NO_VALIDATE_MAX_PROBES);
                    }
                }
                3 => {
                    // Bit array length mismatches.
                    let cap = Bloom::capacity(b.entries, b.bits_per_entry).min(1 << 20) as usize;
                    let r = self.rng.random_range(0..64);
                    let len = self.pick(&[0, cap.saturating_sub(1), cap + 1, cap / 2, cap * 2, r]);
                    b.bits.resize(len, 0);
                    return self.finish_bloom(m, i, b);
                }
                _ => {
                    let fill = self.pick(&[0x00u8, 0xff, 0x55]);
                    b.bits.iter_mut().for_each(|x| *x = fill);
                    if self.chance(0.5) {
                        self.rng.fill_bytes(&mut b.bits);
                    }
                }
            }
        }
        if resize {
            // Usually keep the array the size the parameters call for, so
            // automerge parses the filter and uses it.
            let cap = Bloom::capacity(b.entries, b.bits_per_entry);
            if cap <= 1 << 20 {
                let old = b.bits.len();
                b.bits.resize(cap as usize, 0);
                if b.bits.len() > old {
                    self.rng.fill_bytes(&mut b.bits[old..]);
                }
            }
        }
        self.finish_bloom(m, i, b)
    }

    fn finish_bloom(&mut self, m: &mut SyncMsg, i: usize, b: Bloom) {
        m.have[i].bloom = b.encode();
        if self.chance(0.05) {
            // automerge writes an empty filter as zero bytes; a zero-entry
            // filter written out in full is parsed differently.
            m.have[i].bloom.clear();
        }
    }

    fn change_list(&mut self, m: &mut SyncMsg) {
        let n = m.changes.len();
        match self.rng.random_range(0..8) {
            0 if n > 0 => {
                m.changes.remove(self.rng.random_range(0..n));
            }
            1 if n > 0 => {
                let i = self.rng.random_range(0..n);
                let c = m.changes[i].clone();
                m.changes.insert(i, c);
            }
            2 if n > 1 => {
                m.changes.reverse();
            }
            3 if n > 1 => {
                // Two entries concatenated into one (load_incremental takes
                // any sequence of chunks).
                let a = m.changes.remove(self.rng.random_range(0..n));
                let i = self.rng.random_range(0..n - 1);
                m.changes[i].extend(a);
            }
            4 => m.changes.clear(),
            5 => {
                let c = self.pick(&self.corpus.chunks);
                let at = self.rng.random_range(0..=n);
                m.changes.insert(at, c);
            }
            6 => {
                for _ in 0..self.rng.random_range(2..20) {
                    let c = self.pick(&self.corpus.chunks);
                    m.changes.push(c);
                }
            }
            _ => {
                m.changes.push(Vec::new());
            }
        }
    }
}
