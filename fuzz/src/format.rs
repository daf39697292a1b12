//! Just enough of automerge's binary formats to rewrite them: the sync
//! message (automerge 0.12 `sync.rs`), its Bloom filters (`sync/bloom.rs`)
//! and change chunks (`storage/chunk.rs`, `storage/change.rs`).
//!
//! The parsers here are lenient where automerge is (trailing bytes are kept,
//! not refused) and the encoders write whatever they are given: a mutated
//! field is encoded as is, however invalid.

use sha2::{Digest, Sha256};

pub type Hash = [u8; 32];

pub const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
pub const CHUNK_DOCUMENT: u8 = 0;
pub const CHUNK_CHANGE: u8 = 1;
pub const CHUNK_COMPRESSED: u8 = 2;

// ---------------------------------------------------------------------------
// LEB128
// ---------------------------------------------------------------------------

pub fn write_uleb(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

pub fn write_sleb(out: &mut Vec<u8>, mut v: i64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        let done = (v == 0 && b & 0x40 == 0) || (v == -1 && b & 0x40 != 0);
        if done {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

/// A cursor over bytes; every read returns `None` at the end of input or on
/// an over-long LEB128.
pub struct Reader<'a> {
    pub buf: &'a [u8],
    pub pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    pub fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos.min(self.buf.len())..]
    }

    pub fn byte(&mut self) -> Option<u8> {
        let b = *self.buf.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    pub fn uleb(&mut self) -> Option<u64> {
        let mut v: u64 = 0;
        for shift in (0..70).step_by(7) {
            let b = self.byte()?;
            if shift == 63 && b > 1 {
                return None;
            }
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    pub fn sleb(&mut self) -> Option<i64> {
        let mut v: i64 = 0;
        let mut shift = 0;
        loop {
            let b = self.byte()?;
            if shift >= 64 {
                return None;
            }
            v |= i64::from(b & 0x7f) << shift;
            shift += 7;
            if b & 0x80 == 0 {
                if shift < 64 && b & 0x40 != 0 {
                    v |= -1i64 << shift;
                }
                return Some(v);
            }
        }
    }

    pub fn hash(&mut self) -> Option<Hash> {
        self.take(32).map(|s| s.try_into().expect("32 bytes"))
    }

    /// A count-prefixed list of hashes. The count is checked against the
    /// bytes present before anything is allocated.
    pub fn hashes(&mut self) -> Option<Vec<Hash>> {
        let n = self.uleb()?;
        if n > (self.buf.len() - self.pos.min(self.buf.len())) as u64 / 32 {
            return None;
        }
        (0..n).map(|_| self.hash()).collect()
    }

    pub fn len_prefixed(&mut self) -> Option<&'a [u8]> {
        let n = self.uleb()?;
        self.take(usize::try_from(n).ok()?)
    }
}

fn write_hashes(out: &mut Vec<u8>, hs: &[Hash]) {
    write_uleb(out, hs.len() as u64);
    for h in hs {
        out.extend_from_slice(h);
    }
}

fn write_len_prefixed(out: &mut Vec<u8>, b: &[u8]) {
    write_uleb(out, b.len() as u64);
    out.extend_from_slice(b);
}

// ---------------------------------------------------------------------------
// Sync messages
// ---------------------------------------------------------------------------

/// An `automerge::sync::Message` as bytes: `version` (0x42 or 0x43), heads,
/// need, haves (each `lastSync` and raw Bloom bytes), the change chunks, and
/// the optional flags section; anything after it is kept in `trailing`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncMsg {
    pub version: u8,
    pub heads: Vec<Hash>,
    pub need: Vec<Hash>,
    pub have: Vec<Have>,
    pub changes: Vec<Vec<u8>>,
    pub flags: Option<Vec<u8>>,
    pub trailing: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Have {
    pub last_sync: Vec<Hash>,
    /// The encoded Bloom filter (empty: automerge's default, empty filter).
    pub bloom: Vec<u8>,
}

impl SyncMsg {
    pub fn parse(data: &[u8]) -> Option<SyncMsg> {
        let mut r = Reader::new(data);
        let version = r.byte()?;
        let heads = r.hashes()?;
        let need = r.hashes()?;
        let n_have = r.uleb()?;
        let mut have = Vec::new();
        for _ in 0..n_have {
            let last_sync = r.hashes()?;
            let bloom = r.len_prefixed()?.to_vec();
            have.push(Have { last_sync, bloom });
        }
        let n_changes = r.uleb()?;
        let mut changes = Vec::new();
        for _ in 0..n_changes {
            changes.push(r.len_prefixed()?.to_vec());
        }
        let flags = if r.is_empty() {
            None
        } else {
            Some(r.len_prefixed()?.to_vec())
        };
        Some(SyncMsg {
            version,
            heads,
            need,
            have,
            changes,
            flags,
            trailing: r.rest().to_vec(),
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![self.version];
        write_hashes(&mut out, &self.heads);
        write_hashes(&mut out, &self.need);
        write_uleb(&mut out, self.have.len() as u64);
        for h in &self.have {
            write_hashes(&mut out, &h.last_sync);
            write_len_prefixed(&mut out, &h.bloom);
        }
        write_uleb(&mut out, self.changes.len() as u64);
        for c in &self.changes {
            write_len_prefixed(&mut out, c);
        }
        if let Some(f) = &self.flags {
            write_len_prefixed(&mut out, f);
        }
        out.extend_from_slice(&self.trailing);
        out
    }
}

/// A Bloom filter's fields. automerge reads the three numbers as u32 LEB128
/// and then exactly `ceil(entries * bits_per_entry / 8)` bytes of bit array,
/// ignoring what follows; the fields here are u64 so that a mutation can
/// write values automerge must refuse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bloom {
    pub entries: u64,
    pub bits_per_entry: u64,
    pub probes: u64,
    pub bits: Vec<u8>,
}

impl Bloom {
    pub fn parse(b: &[u8]) -> Option<Bloom> {
        if b.is_empty() {
            return Some(Bloom {
                entries: 0,
                bits_per_entry: 10,
                probes: 7,
                bits: Vec::new(),
            });
        }
        let mut r = Reader::new(b);
        Some(Bloom {
            entries: r.uleb()?,
            bits_per_entry: r.uleb()?,
            probes: r.uleb()?,
            bits: r.rest().to_vec(),
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        write_uleb(&mut out, self.entries);
        write_uleb(&mut out, self.bits_per_entry);
        write_uleb(&mut out, self.probes);
        out.extend_from_slice(&self.bits);
        out
    }

    /// The bit array length automerge expects for these parameters.
    pub fn capacity(entries: u64, bits_per_entry: u64) -> u64 {
        ((entries as f64 * bits_per_entry as f64) / 8.0).ceil() as u64
    }
}

// ---------------------------------------------------------------------------
// Chunks
// ---------------------------------------------------------------------------

/// The first 4 bytes of SHA-256 over `type ‖ uleb(len) ‖ body`: the chunk
/// checksum (and, for a change, the first bytes of its hash).
pub fn chunk_hash(typ: u8, body: &[u8]) -> Hash {
    let mut head = vec![typ];
    write_uleb(&mut head, body.len() as u64);
    let mut h = Sha256::new();
    h.update(&head);
    h.update(body);
    h.finalize().into()
}

pub fn checksum(typ: u8, body: &[u8]) -> [u8; 4] {
    let h = chunk_hash(typ, body);
    [h[0], h[1], h[2], h[3]]
}

/// One chunk: magic, checksum, type, uleb length, body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunk {
    pub checksum: [u8; 4],
    pub typ: u8,
    pub body: Vec<u8>,
}

impl Chunk {
    /// Parses one chunk at the start of `b`; returns it and the bytes after it.
    pub fn parse(b: &[u8]) -> Option<(Chunk, &[u8])> {
        let mut r = Reader::new(b);
        if r.take(4)? != MAGIC {
            return None;
        }
        let checksum: [u8; 4] = r.take(4)?.try_into().ok()?;
        let typ = r.byte()?;
        let len = usize::try_from(r.uleb()?).ok()?;
        let body = r.take(len)?.to_vec();
        Some((
            Chunk {
                checksum,
                typ,
                body,
            },
            r.rest(),
        ))
    }

    /// Every chunk in `b` (load_incremental takes concatenated chunks), or
    /// `None` if `b` is not a sequence of whole chunks.
    pub fn parse_all(mut b: &[u8]) -> Option<Vec<Chunk>> {
        let mut out = Vec::new();
        while !b.is_empty() {
            let (c, rest) = Chunk::parse(b)?;
            out.push(c);
            b = rest;
        }
        Some(out)
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&self.checksum);
        out.push(self.typ);
        write_uleb(&mut out, self.body.len() as u64);
        out.extend_from_slice(&self.body);
        out
    }

    pub fn checksum_valid(&self) -> bool {
        self.checksum == checksum(self.typ, &self.body)
    }

    pub fn fix_checksum(&mut self) {
        self.checksum = checksum(self.typ, &self.body);
    }

    /// A compressed change (type 2) as the uncompressed change (type 1) it
    /// stands for; automerge hashes and checksums the uncompressed form, so
    /// the checksum stays valid. At most `max` inflated bytes.
    pub fn inflate(&self, max: usize) -> Option<Chunk> {
        use std::io::Read;
        if self.typ != CHUNK_COMPRESSED {
            return None;
        }
        let mut out = Vec::new();
        flate2::read::DeflateDecoder::new(&self.body[..])
            .take(max as u64 + 1)
            .read_to_end(&mut out)
            .ok()?;
        if out.len() > max {
            return None;
        }
        Some(Chunk {
            checksum: self.checksum,
            typ: CHUNK_CHANGE,
            body: out,
        })
    }
}

/// The header fields of a change chunk's body, then the rest (column
/// metadata, column data, extra bytes) opaque.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangeBody {
    pub deps: Vec<Hash>,
    pub actor: Vec<u8>,
    pub seq: u64,
    pub start_op: u64,
    pub time: i64,
    pub message: Vec<u8>,
    pub other_actors: Vec<Vec<u8>>,
    pub rest: Vec<u8>,
}

impl ChangeBody {
    pub fn parse(body: &[u8]) -> Option<ChangeBody> {
        let mut r = Reader::new(body);
        let deps = r.hashes()?;
        let actor = r.len_prefixed()?.to_vec();
        let seq = r.uleb()?;
        let start_op = r.uleb()?;
        let time = r.sleb()?;
        let message = r.len_prefixed()?.to_vec();
        let n = r.uleb()?;
        if n > body.len() as u64 {
            return None;
        }
        let mut other_actors = Vec::new();
        for _ in 0..n {
            other_actors.push(r.len_prefixed()?.to_vec());
        }
        Some(ChangeBody {
            deps,
            actor,
            seq,
            start_op,
            time,
            message,
            other_actors,
            rest: r.rest().to_vec(),
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        write_hashes(&mut out, &self.deps);
        write_len_prefixed(&mut out, &self.actor);
        write_uleb(&mut out, self.seq);
        write_uleb(&mut out, self.start_op);
        write_sleb(&mut out, self.time);
        write_len_prefixed(&mut out, &self.message);
        write_uleb(&mut out, self.other_actors.len() as u64);
        for a in &self.other_actors {
            write_len_prefixed(&mut out, a);
        }
        out.extend_from_slice(&self.rest);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leb_roundtrip() {
        for v in [0u64, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            let mut b = Vec::new();
            write_uleb(&mut b, v);
            assert_eq!(Reader::new(&b).uleb(), Some(v));
        }
        for v in [
            0i64,
            1,
            -1,
            63,
            64,
            -64,
            -65,
            1_700_000_000,
            i64::MIN,
            i64::MAX,
        ] {
            let mut b = Vec::new();
            write_sleb(&mut b, v);
            assert_eq!(Reader::new(&b).sleb(), Some(v), "{v}");
        }
    }
}
