//! Change chunk level ([`ChangeBody`]): `seq`, `startOp`, deps, actor, other
//! actors, time, message, column bytes, then (most of the time) a
//! recomputed checksum; also chunk type, magic, length field, compression
//! and DEFLATE bombs.

use rand::{Rng, RngExt};

use super::Gen;
use crate::format::{self, ChangeBody, Chunk, SyncMsg, CHUNK_CHANGE, CHUNK_COMPRESSED, MAGIC};

impl<'a> Gen<'a> {
    pub(super) fn changes(&mut self, data: &mut Vec<u8>) {
        let Some(mut m) = SyncMsg::parse(data) else {
            return self.sync(data);
        };
        if m.changes.is_empty() || self.chance(0.05) {
            let c = self.pick(&self.corpus.chunks);
            m.changes.push(c);
        }
        let i = self.rng.random_range(0..m.changes.len());
        let entry = std::mem::take(&mut m.changes[i]);
        m.changes[i] = match Chunk::parse_all(&entry) {
            Some(mut chunks) if !chunks.is_empty() => {
                let j = self.rng.random_range(0..chunks.len());
                match self.chunk(&mut chunks[j]) {
                    Some(raw) => {
                        let mut out = Vec::new();
                        for (k, c) in chunks.iter().enumerate() {
                            if k == j {
                                out.extend_from_slice(&raw);
                            } else {
                                out.extend(c.encode());
                            }
                        }
                        out
                    }
                    None => chunks.iter().flat_map(Chunk::encode).collect(),
                }
            }
            _ => {
                let mut e = entry;
                let other = self.pick(&self.corpus.chunks);
                self.bytes(&mut e, Some(&other), false);
                e
            }
        };
        *data = m.encode();
    }

    /// Mutates `c` in place, or returns raw bytes standing for it (for
    /// mutations of the chunk header itself).
    fn chunk(&mut self, c: &mut Chunk) -> Option<Vec<u8>> {
        if c.typ == CHUNK_COMPRESSED {
            if let Some(inflated) = c.inflate(1 << 24) {
                *c = inflated;
            }
        }
        let roll = self.rng.random_range(0..100);
        if roll < 72 && c.typ == CHUNK_CHANGE {
            if let Some(mut b) = ChangeBody::parse(&c.body) {
                for _ in 0..self.rng.random_range(1..=3) {
                    self.change_body(&mut b);
                }
                c.body = b.encode();
                return self.seal(c);
            }
        }
        match roll {
            0..=84 => {
                // Body bytes (document chunks, column data), then a valid
                // checksum most of the time.
                let mut body = std::mem::take(&mut c.body);
                let other = self.pick(&self.corpus.chunks);
                self.bytes(&mut body, Some(&other), true);
                c.body = body;
                self.seal(c)
            }
            85..=88 => {
                c.typ = self.pick(&[0u8, 1, 2, 3, 4, 0x7f, 0xff]);
                if self.chance(0.7) {
                    c.fix_checksum();
                }
                None
            }
            89..=90 => {
                let mut raw = c.encode();
                let b = self.rng.random_range(0..4);
                raw[b] ^= 1 << self.rng.random_range(0..8);
                Some(raw)
            }
            91..=93 => {
                // The length field disagrees with the body.
                let mut raw = MAGIC.to_vec();
                raw.extend_from_slice(&c.checksum);
                raw.push(c.typ);
                let len = self.pick(&[
                    0,
                    c.body.len() as u64 + 1,
                    (c.body.len() as u64).saturating_sub(1),
                    u32::MAX as u64,
                    u64::MAX,
                ]);
                format::write_uleb(&mut raw, len);
                raw.extend_from_slice(&c.body);
                Some(raw)
            }
            94..=97 => {
                // Compressed form of a (possibly mutated) change.
                if c.typ == CHUNK_CHANGE {
                    c.fix_checksum();
                    let z = deflate(&c.body);
                    c.typ = CHUNK_COMPRESSED;
                    c.body = z;
                }
                None
            }
            _ => {
                if self.validate {
                    // A DEFLATE bomb: a small compressed change that
                    // inflates to many MiB (validation must stop early).
                    let size = self.pick(&[1usize << 20, 16 << 20, 64 << 20]);
                    let mut body = c.body.clone();
                    body.resize(size, 0);
                    c.typ = CHUNK_COMPRESSED;
                    c.checksum = format::checksum(CHUNK_CHANGE, &body);
                    c.body = deflate(&body);
                }
                None
            }
        }
    }

    /// Recompute the checksum (90 %), keep the stale one, or write a random one.
    fn seal(&mut self, c: &mut Chunk) -> Option<Vec<u8>> {
        match self.rng.random_range(0..20) {
            0 => {}
            1 => self.rng.fill_bytes(&mut c.checksum),
            _ => c.fix_checksum(),
        }
        None
    }

    fn change_body(&mut self, b: &mut ChangeBody) {
        match self.rng.random_range(0..24) {
            0..=5 => {
                let r = self.rng.random_range(0..16);
                b.seq = self.pick(&[
                    b.seq.wrapping_add(1),
                    b.seq.wrapping_add(1),
                    b.seq.wrapping_add(2),
                    b.seq.wrapping_sub(1),
                    0,
                    1,
                    2,
                    3,
                    r,
                    1 << 32,
                    1 << 53,
                    u64::MAX,
                ])
            }
            6..=8 => {
                let (r1, r2) = (self.rng.random_range(2..100), self.rng.random_range(2..100));
                b.start_op = self.pick(&[
                    b.start_op.wrapping_add(1),
                    b.start_op.wrapping_sub(1),
                    b.start_op.wrapping_add(r1),
                    b.start_op.saturating_sub(r2),
                    0,
                    1,
                    1 << 32,
                    1 << 53,
                    u64::MAX,
                ])
            }
            9..=11 => self.hashes(&mut b.deps),
            12..=15 => {
                b.actor = match self.rng.random_range(0..7) {
                    0..=2 => {
                        let mut a = vec![0u8; 16];
                        self.rng.fill_bytes(&mut a);
                        a
                    }
                    3 | 4 => self.pick(&self.corpus.actors),
                    5 => Vec::new(),
                    _ => {
                        let mut a = vec![0u8; self.pick(&[1usize, 8, 32, 64, 255])];
                        self.rng.fill_bytes(&mut a);
                        a
                    }
                }
            }
            16 => {
                let r = self.rng.random();
                b.time = self.pick(&[0, -1, i64::MIN, i64::MAX, r]);
            }
            17 => {
                let mut msg = vec![0u8; self.pick(&[0usize, 1, 10, 1000])];
                self.rng.fill_bytes(&mut msg);
                if self.chance(0.5) {
                    msg.iter_mut().for_each(|x| *x = b'a' + *x % 26);
                }
                b.message = msg;
            }
            18..=19 => match self.rng.random_range(0..5) {
                0 => {
                    let a = self.pick(&self.corpus.actors);
                    b.other_actors.push(a);
                }
                1 => b.other_actors.push(b.actor.clone()),
                2 if !b.other_actors.is_empty() => {
                    b.other_actors
                        .remove(self.rng.random_range(0..b.other_actors.len()));
                }
                3 => b.other_actors.clear(),
                _ => {
                    let mut a = vec![0u8; 16];
                    self.rng.fill_bytes(&mut a);
                    b.other_actors.insert(0, a);
                }
            },
            _ => {
                // Column metadata and data.
                let mut rest = std::mem::take(&mut b.rest);
                let other = self.pick(&self.corpus.chunks);
                self.bytes(&mut rest, Some(&other), true);
                b.rest = rest;
            }
        }
    }
}

fn deflate(b: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(b).expect("in memory");
    e.finish().expect("in memory")
}
