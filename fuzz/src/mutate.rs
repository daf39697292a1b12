//! Mutators. An input starts as (a prefix of) one genuine session's frames
//! and gets 1..=8 mutations, composed, each picked at random from:
//!
//! - sync message level ([`SyncMsg`]): heads / need / `lastSync` hash edits
//!   (known hash, random hash, bit flip, duplicate, drop, clear, many),
//!   `have` entries, Bloom filter parameters (entries, bits per entry
//!   including 0, probes including huge values) and bit array length
//!   mismatches, the change list (drop, duplicate, reorder, concatenate,
//!   chunks of other documents), version byte, flags, trailing bytes;
//! - change chunk level ([`ChangeBody`]): `seq`, `startOp`, deps, actor (a
//!   new random one, another document's), other actors, time, message,
//!   column bytes; then the checksum is recomputed (most of the time) so that
//!   automerge gets past its checksum check; also chunk type, magic, length
//!   field, compression, DEFLATE bombs;
//! - generic bytes (flip, set, insert, delete, truncate, duplicate, splice
//!   two messages) of the sync data or of a chunk body;
//! - frame level: message type, documentId (another document, a random one,
//!   a long or malformed string), sender / target, and raw CBOR bytes;
//! - sequence level: drop, duplicate, reorder frames, append another
//!   session's frames.

use holdfast_core::id::DocumentId;
use rand::{Rng, RngExt};
use rand_chacha::ChaCha8Rng;

use crate::corpus::Corpus;
use crate::format::{
    self, Bloom, ChangeBody, Chunk, Have, SyncMsg, CHUNK_CHANGE, CHUNK_COMPRESSED, MAGIC,
};
use crate::{PEER_ID, SERVER_ID};

/// Bloom probes in `--no-validate` runs are capped at 2^16: automerge
/// allocates 4 bytes per probe (`Vec::with_capacity(num_probes)` in
/// `sync/bloom.rs`) every time it tests a hash, so 2^32 probes would allocate
/// 16 GiB and kill the fuzzer instead of reporting anything. With validation
/// on, any value goes (validation must refuse it).
pub const NO_VALIDATE_MAX_PROBES: u64 = 1 << 16;

/// Largest LEB128 value written into column bytes in `--no-validate` runs:
/// a huge run length in a column makes automerge materialise that many
/// operations (memory without bound), which would end the run, not find a
/// panic. With validation on, any value goes.
const NO_VALIDATE_MAX_COLUMN_VALUE: u64 = 1 << 12;

/// A frame before encoding.
#[derive(Clone, Debug)]
pub struct Frame {
    pub ty: String,
    pub doc: String,
    pub sender: String,
    pub target: String,
    pub data: Vec<u8>,
}

impl Frame {
    pub fn sync(doc: &DocumentId, request: bool, data: Vec<u8>) -> Frame {
        Frame {
            ty: if request { "request" } else { "sync" }.into(),
            doc: doc.to_string(),
            sender: PEER_ID.into(),
            target: SERVER_ID.into(),
            data,
        }
    }

    /// The frame as CBOR, written by hand so that any field value (a
    /// documentId that is no document id) can be sent.
    pub fn encode(&self) -> Vec<u8> {
        let mut c = Cbor(Vec::new());
        let s = |c: &mut Cbor, k: &str, v: &str| {
            c.text(k);
            c.text(v);
        };
        match self.ty.as_str() {
            "leave" => {
                c.map(2);
                s(&mut c, "type", &self.ty);
                s(&mut c, "senderId", &self.sender);
            }
            "join" => {
                c.map(4);
                s(&mut c, "type", &self.ty);
                s(&mut c, "senderId", &self.sender);
                c.text("peerMetadata");
                c.map(1);
                c.text("isEphemeral");
                c.0.push(0xf4);
                c.text("supportedProtocolVersions");
                c.array(1);
                c.text("1");
            }
            "doc-unavailable" => {
                c.map(4);
                s(&mut c, "type", &self.ty);
                s(&mut c, "senderId", &self.sender);
                s(&mut c, "targetId", &self.target);
                s(&mut c, "documentId", &self.doc);
            }
            "ephemeral" => {
                c.map(7);
                s(&mut c, "type", &self.ty);
                s(&mut c, "senderId", &self.sender);
                s(&mut c, "targetId", &self.target);
                c.text("count");
                c.head(0, self.data.len() as u64 + 1);
                s(&mut c, "sessionId", "fuzz-session");
                s(&mut c, "documentId", &self.doc);
                c.text("data");
                c.bytes(&self.data);
            }
            "remote-heads-changed" => {
                c.map(5);
                s(&mut c, "type", &self.ty);
                s(&mut c, "senderId", &self.sender);
                s(&mut c, "targetId", &self.target);
                s(&mut c, "documentId", &self.doc);
                c.text("newHeads");
                c.map(1);
                c.text("storage-1");
                c.map(2);
                c.text("heads");
                c.array(1);
                c.text(&hex::encode(&self.data));
                c.text("timestamp");
                c.head(0, 1_700_000_000_000);
            }
            "remote-subscription-change" => {
                c.map(5);
                s(&mut c, "type", &self.ty);
                s(&mut c, "senderId", &self.sender);
                s(&mut c, "targetId", &self.target);
                c.text("add");
                c.array(1);
                c.text(&self.doc);
                c.text("remove");
                c.array(0);
            }
            _ => {
                c.map(5);
                s(&mut c, "type", &self.ty);
                s(&mut c, "senderId", &self.sender);
                s(&mut c, "targetId", &self.target);
                s(&mut c, "documentId", &self.doc);
                c.text("data");
                c.bytes(&self.data);
            }
        }
        c.0
    }
}

struct Cbor(Vec<u8>);

impl Cbor {
    fn head(&mut self, major: u8, n: u64) {
        let m = major << 5;
        match n {
            0..=23 => self.0.push(m | n as u8),
            24..=0xff => self.0.extend([m | 24, n as u8]),
            0x100..=0xffff => {
                self.0.push(m | 25);
                self.0.extend((n as u16).to_be_bytes());
            }
            0x1_0000..=0xffff_ffff => {
                self.0.push(m | 26);
                self.0.extend((n as u32).to_be_bytes());
            }
            _ => {
                self.0.push(m | 27);
                self.0.extend(n.to_be_bytes());
            }
        }
    }
    fn bytes(&mut self, b: &[u8]) {
        self.head(2, b.len() as u64);
        self.0.extend_from_slice(b);
    }
    fn text(&mut self, s: &str) {
        self.head(3, s.len() as u64);
        self.0.extend_from_slice(s.as_bytes());
    }
    fn array(&mut self, n: u64) {
        self.head(4, n);
    }
    fn map(&mut self, n: u64) {
        self.head(5, n);
    }
}

/// Frames per input at most.
const MAX_FRAMES: usize = 12;

pub struct Gen<'a> {
    pub rng: ChaCha8Rng,
    pub corpus: &'a Corpus,
    pub validate: bool,
}

fn hash_of(rng: &mut ChaCha8Rng) -> format::Hash {
    let mut h = [0u8; 32];
    rng.fill_bytes(&mut h);
    h
}

impl<'a> Gen<'a> {
    fn pick<T: Clone>(&mut self, xs: &[T]) -> T {
        xs[self.rng.random_range(0..xs.len())].clone()
    }

    fn chance(&mut self, p: f64) -> bool {
        self.rng.random_bool(p)
    }

    fn known_hash(&mut self) -> format::Hash {
        let hs = &self.corpus.hashes;
        hs[self.rng.random_range(0..hs.len())]
    }

    /// One input: the frames after the handshake, encoded.
    pub fn input(&mut self) -> Vec<Vec<u8>> {
        let sessions = &self.corpus.sessions;
        let s = &sessions[self.rng.random_range(0..sessions.len())];
        let k = if self.chance(0.5) {
            s.msgs.len()
        } else {
            self.rng.random_range(1..=s.msgs.len())
        };
        let mut frames: Vec<Frame> = s.msgs[..k]
            .iter()
            .map(|(req, m)| Frame::sync(&s.doc, *req, m.clone()))
            .collect();
        if !self.chance(0.03) {
            let n = 1 + (0..7).take_while(|_| self.chance(0.45)).count();
            for _ in 0..n {
                self.mutate(&mut frames);
            }
        }
        frames.truncate(MAX_FRAMES);
        let mut out: Vec<Vec<u8>> = frames.iter().map(Frame::encode).collect();
        if !out.is_empty() && self.chance(0.04) {
            // Raw CBOR mutations of an encoded frame.
            let i = self.rng.random_range(0..out.len());
            let other = self.pick(&out);
            let mut f = std::mem::take(&mut out[i]);
            for _ in 0..self.rng.random_range(1..=3) {
                self.bytes(&mut f, Some(&other), false);
            }
            out[i] = f;
        }
        out
    }

    fn mutate(&mut self, frames: &mut Vec<Frame>) {
        if frames.is_empty() {
            return;
        }
        let i = self.rng.random_range(0..frames.len());
        match self.rng.random_range(0..100) {
            0..=39 => {
                let mut d = std::mem::take(&mut frames[i].data);
                self.sync(&mut d);
                frames[i].data = d;
            }
            40..=71 => {
                let mut d = std::mem::take(&mut frames[i].data);
                self.changes(&mut d);
                frames[i].data = d;
            }
            72..=79 => {
                let other = self.pick(&self.corpus.messages);
                self.bytes(&mut frames[i].data, Some(&other), false);
            }
            80..=89 => self.frame(&mut frames[i]),
            _ => self.sequence(frames),
        }
    }

    // -- frames -------------------------------------------------------------

    fn frame(&mut self, f: &mut Frame) {
        match self.rng.random_range(0..12) {
            0 => f.ty = if f.ty == "sync" { "request" } else { "sync" }.into(),
            1 => {
                f.ty = self
                    .pick(&[
                        "doc-unavailable",
                        "ephemeral",
                        "remote-heads-changed",
                        "remote-subscription-change",
                        "leave",
                        "join",
                    ])
                    .into()
            }
            2..=4 => {
                // Another document's id: this message's changes and hashes
                // meet a document they do not belong to.
                let d = self.pick(&self.corpus.docs);
                f.doc = d.to_string();
            }
            5 => {
                let mut b = [0u8; 16];
                self.rng.fill_bytes(&mut b);
                f.doc = DocumentId(b).to_string();
            }
            6 => {
                let n = self.pick(&[100usize, 10_000, 1 << 20]);
                f.doc = "x".repeat(n);
            }
            7 => {
                // A valid id with one character changed (fails bs58check).
                let mut s: Vec<u8> = f.doc.clone().into_bytes();
                if !s.is_empty() {
                    let j = self.rng.random_range(0..s.len());
                    s[j] =
                        self.pick(b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz0Il");
                }
                f.doc = String::from_utf8(s).unwrap_or_default();
            }
            8 => f.doc = String::new(),
            9 => f.sender = self.pick(&["", "mallory", SERVER_ID]).into(),
            10 => f.target = self.pick(&["", "elsewhere", PEER_ID]).into(),
            _ => {
                // `request` carrying changes, or `sync` with empty data.
                if self.chance(0.5) {
                    f.ty = "request".into();
                } else {
                    f.data.clear();
                }
            }
        }
    }

    fn sequence(&mut self, frames: &mut Vec<Frame>) {
        let n = frames.len();
        match self.rng.random_range(0..6) {
            0 => {
                let i = self.rng.random_range(0..n);
                let f = frames[i].clone();
                let at = self.rng.random_range(i..=n);
                frames.insert(at, f);
            }
            1 if n > 1 => {
                frames.remove(self.rng.random_range(0..n));
            }
            2 if n > 1 => {
                let (a, b) = (self.rng.random_range(0..n), self.rng.random_range(0..n));
                frames.swap(a, b);
            }
            3 => {
                // Another session's frames after these (often another doc).
                let s = self.pick(&self.corpus.sessions);
                let k = self.rng.random_range(1..=s.msgs.len());
                frames.extend(
                    s.msgs[..k]
                        .iter()
                        .map(|(req, m)| Frame::sync(&s.doc, *req, m.clone())),
                );
            }
            4 => {
                // The same frame many times (retransmission).
                let i = self.rng.random_range(0..n);
                let f = frames[i].clone();
                for _ in 0..self.rng.random_range(1..6) {
                    frames.push(f.clone());
                }
            }
            _ => {
                let copy = frames.clone();
                frames.extend(copy);
            }
        }
        frames.truncate(MAX_FRAMES);
    }

    // -- sync messages ------------------------------------------------------

    fn sync(&mut self, data: &mut Vec<u8>) {
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

    fn hashes(&mut self, hs: &mut Vec<format::Hash>) {
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

    // -- change chunks ------------------------------------------------------

    fn changes(&mut self, data: &mut Vec<u8>) {
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

    // -- bytes --------------------------------------------------------------

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

fn deflate(b: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(b).expect("in memory");
    e.finish().expect("in memory")
}
