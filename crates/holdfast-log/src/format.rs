//! The on-disk encoding: segment headers, record framing and the commit
//! payload. Every integer is fixed-width little-endian. See the module docs of
//! [`super`] for the layout.

use holdfast_core::storage::{Commit, StorageKey};

/// The first 8 bytes of every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"HFLOGSEG";
/// The segment format this code writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// `magic[8] | version u32 | segment id u64 | flags u32 | compacted_from u64 | crc32c u32`.
pub const HEADER_LEN: u64 = 36;
/// Header flag: this segment was written by compaction and replaces every
/// segment whose id is `<= compacted_from`.
pub const FLAG_COMPACTED: u32 = 1;

/// The first 4 bytes of every record (`"HFr1"` read as a little-endian u32).
pub const RECORD_MAGIC: u32 = u32::from_le_bytes(*b"HFr1");
/// `magic u32 | payload_len u32 | crc32c u32`.
pub const RECORD_HEADER_LEN: u64 = 12;
/// The largest payload a scan accepts, whatever `LogOptions::max_record` says
/// (a length field above it is corruption).
pub const ABSOLUTE_MAX_RECORD: u32 = 1 << 30;

/// Payload kind: one whole [`Commit`].
pub const KIND_COMMIT: u8 = 0;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    pub version: u32,
    pub segment: u64,
    pub flags: u32,
    pub compacted_from: u64,
}

impl SegmentHeader {
    pub fn new(segment: u64) -> Self {
        Self {
            version: FORMAT_VERSION,
            segment,
            flags: 0,
            compacted_from: 0,
        }
    }

    pub fn compacted(segment: u64, compacted_from: u64) -> Self {
        Self {
            version: FORMAT_VERSION,
            segment,
            flags: FLAG_COMPACTED,
            compacted_from,
        }
    }

    pub fn is_compacted(&self) -> bool {
        self.flags & FLAG_COMPACTED != 0
    }

    pub fn encode(&self) -> [u8; HEADER_LEN as usize] {
        let mut out = [0u8; HEADER_LEN as usize];
        out[0..8].copy_from_slice(&SEGMENT_MAGIC);
        out[8..12].copy_from_slice(&self.version.to_le_bytes());
        out[12..20].copy_from_slice(&self.segment.to_le_bytes());
        out[20..24].copy_from_slice(&self.flags.to_le_bytes());
        out[24..32].copy_from_slice(&self.compacted_from.to_le_bytes());
        let crc = crc32c::crc32c(&out[0..32]);
        out[32..36].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// `None` when the bytes are not a valid header (short, bad magic or bad
    /// checksum). The version is returned as written; the caller checks it.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < HEADER_LEN as usize || bytes[0..8] != SEGMENT_MAGIC {
            return None;
        }
        let crc = u32_at(bytes, 32);
        if crc32c::crc32c(&bytes[0..32]) != crc {
            return None;
        }
        Some(Self {
            version: u32_at(bytes, 8),
            segment: u64_at(bytes, 12),
            flags: u32_at(bytes, 20),
            compacted_from: u64_at(bytes, 24),
        })
    }
}

/// The 12-byte record header for `payload`.
pub fn record_header(payload: &[u8]) -> [u8; RECORD_HEADER_LEN as usize] {
    let len = (payload.len() as u32).to_le_bytes();
    let crc = crc32c::crc32c_append(crc32c::crc32c(&len), payload);
    let mut out = [0u8; RECORD_HEADER_LEN as usize];
    out[0..4].copy_from_slice(&RECORD_MAGIC.to_le_bytes());
    out[4..8].copy_from_slice(&len);
    out[8..12].copy_from_slice(&crc.to_le_bytes());
    out
}

/// A parsed record header: `(payload_len, crc)`, or `None` for a bad magic.
pub fn parse_record_header(bytes: &[u8; RECORD_HEADER_LEN as usize]) -> Option<(u32, u32)> {
    if u32_at(bytes, 0) != RECORD_MAGIC {
        return None;
    }
    Some((u32_at(bytes, 4), u32_at(bytes, 8)))
}

/// Whether `payload` matches the checksum of its header.
pub fn crc_ok(payload: &[u8], crc: u32) -> bool {
    let len = (payload.len() as u32).to_le_bytes();
    crc32c::crc32c_append(crc32c::crc32c(&len), payload) == crc
}

/// Where one put's value lies inside an encoded payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ValueSpan {
    pub offset: u32,
    pub len: u32,
}

/// A decoded commit payload: keys owned, values as spans into the payload
/// (so recovery never keeps values in memory).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct DecodedCommit {
    pub deletes: Vec<StorageKey>,
    pub delete_prefixes: Vec<StorageKey>,
    pub puts: Vec<(StorageKey, ValueSpan)>,
}

/// The exact payload size of `commit`, without encoding it (u64: a huge
/// commit must be refused, not wrap).
pub fn payload_len(commit: &Commit) -> u64 {
    fn key_len(k: &StorageKey) -> u64 {
        4 + k.0.iter().map(|p| 4 + p.len() as u64).sum::<u64>()
    }
    1 + 4
        + commit.deletes.iter().map(key_len).sum::<u64>()
        + 4
        + commit.delete_prefixes.iter().map(key_len).sum::<u64>()
        + 4
        + commit
            .puts
            .iter()
            .map(|(k, v)| key_len(k) + 4 + v.len() as u64)
            .sum::<u64>()
}

/// Encode a commit payload:
/// `kind u8 | n u32 | key*n (deletes) | n u32 | key*n (prefixes) | n u32 | (key | len u32 | value)*n (puts)`
/// where `key = n_parts u32 | (len u32 | utf8)*n_parts`. The caller has
/// checked [`payload_len`] against the record limit, so every length fits u32.
/// Returns the payload and each put's value span.
pub fn encode_commit<'a>(
    deletes: impl ExactSizeIterator<Item = &'a StorageKey>,
    delete_prefixes: impl ExactSizeIterator<Item = &'a StorageKey>,
    puts: impl ExactSizeIterator<Item = (&'a StorageKey, &'a [u8])>,
    capacity: usize,
) -> (Vec<u8>, Vec<ValueSpan>) {
    fn key(out: &mut Vec<u8>, k: &StorageKey) {
        out.extend_from_slice(&(k.0.len() as u32).to_le_bytes());
        for part in &k.0 {
            out.extend_from_slice(&(part.len() as u32).to_le_bytes());
            out.extend_from_slice(part.as_bytes());
        }
    }
    let mut out = Vec::with_capacity(capacity);
    out.push(KIND_COMMIT);
    out.extend_from_slice(&(deletes.len() as u32).to_le_bytes());
    for k in deletes {
        key(&mut out, k);
    }
    out.extend_from_slice(&(delete_prefixes.len() as u32).to_le_bytes());
    for k in delete_prefixes {
        key(&mut out, k);
    }
    let mut spans = Vec::with_capacity(puts.len());
    out.extend_from_slice(&(puts.len() as u32).to_le_bytes());
    for (k, v) in puts {
        key(&mut out, k);
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
        spans.push(ValueSpan {
            offset: out.len() as u32,
            len: v.len() as u32,
        });
        out.extend_from_slice(v);
    }
    (out, spans)
}

/// Decode a payload whose checksum matched. `None` when it is malformed
/// (unknown kind, a length past the end, trailing bytes, invalid UTF-8).
pub fn decode_commit(payload: &[u8]) -> Option<DecodedCommit> {
    let mut r = Reader {
        buf: payload,
        pos: 0,
    };
    if r.u8()? != KIND_COMMIT {
        return None;
    }
    let mut out = DecodedCommit::default();
    let n = r.u32()?;
    for _ in 0..n {
        out.deletes.push(r.key()?);
    }
    let n = r.u32()?;
    for _ in 0..n {
        out.delete_prefixes.push(r.key()?);
    }
    let n = r.u32()?;
    for _ in 0..n {
        let k = r.key()?;
        let len = r.u32()?;
        let offset = r.pos as u32;
        r.take(len as usize)?;
        out.puts.push((k, ValueSpan { offset, len }));
    }
    (r.pos == payload.len()).then_some(out)
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32_at(self.take(4)?, 0))
    }
    fn key(&mut self) -> Option<StorageKey> {
        let n = self.u32()?;
        // Each part takes at least 4 bytes: refuse counts the payload cannot hold
        // before allocating for them.
        if (n as usize).checked_mul(4)? > self.buf.len() - self.pos {
            return None;
        }
        let mut parts = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let len = self.u32()?;
            let bytes = self.take(len as usize)?;
            parts.push(String::from_utf8(bytes.to_vec()).ok()?);
        }
        Some(StorageKey(parts))
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(parts: &[&str]) -> StorageKey {
        StorageKey::new(parts.iter().copied())
    }

    #[test]
    fn header_round_trips_and_rejects_damage() {
        let h = SegmentHeader::compacted(42, 41);
        let bytes = h.encode();
        assert_eq!(SegmentHeader::decode(&bytes), Some(h));
        for i in 0..bytes.len() {
            let mut b = bytes;
            b[i] ^= 0x10;
            assert_eq!(SegmentHeader::decode(&b), None, "flip at {i}");
        }
        assert_eq!(SegmentHeader::decode(&bytes[..35]), None);
    }

    #[test]
    fn commit_payload_round_trips_with_value_spans() {
        let commit = Commit {
            puts: vec![(key(&["d", "incremental", "h"]), b"value".to_vec())],
            deletes: vec![key(&["d", "x"]), key(&[])],
            delete_prefixes: vec![key(&["e"])],
        };
        let (payload, spans) = encode_commit(
            commit.deletes.iter(),
            commit.delete_prefixes.iter(),
            commit.puts.iter().map(|(k, v)| (k, v.as_slice())),
            0,
        );
        assert_eq!(payload.len() as u64, payload_len(&commit));
        let d = decode_commit(&payload).unwrap();
        assert_eq!(d.deletes, commit.deletes);
        assert_eq!(d.delete_prefixes, commit.delete_prefixes);
        assert_eq!(d.puts.len(), 1);
        assert_eq!(d.puts[0].1, spans[0]);
        let s = spans[0];
        assert_eq!(
            &payload[s.offset as usize..(s.offset + s.len) as usize],
            b"value"
        );
        let hdr = record_header(&payload);
        let (len, crc) = parse_record_header(&hdr).unwrap();
        assert_eq!(len as usize, payload.len());
        assert!(crc_ok(&payload, crc));
        // Truncated or padded payloads are malformed, never a panic.
        for cut in 0..payload.len() {
            assert!(decode_commit(&payload[..cut]).is_none());
        }
        let mut padded = payload.clone();
        padded.push(0);
        assert!(decode_commit(&padded).is_none());
    }
}
