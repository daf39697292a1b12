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
//!
//! The sequence level is here, with [`Gen`] and [`Gen::input`]; each other
//! level has a file of its own: `frame` ([`Frame`], its CBOR encoding and
//! the frame level), `sync`, `chunk` and `bytes`.
//!
//! [`SyncMsg`]: crate::format::SyncMsg
//! [`ChangeBody`]: crate::format::ChangeBody

use rand::RngExt;
use rand_chacha::ChaCha8Rng;

use crate::corpus::Corpus;

mod bytes;
mod chunk;
mod frame;
mod sync;

pub use frame::Frame;
pub use sync::NO_VALIDATE_MAX_PROBES;

/// Frames per input at most.
const MAX_FRAMES: usize = 12;

pub struct Gen<'a> {
    pub rng: ChaCha8Rng,
    pub corpus: &'a Corpus,
    pub validate: bool,
}

impl<'a> Gen<'a> {
    fn pick<T: Clone>(&mut self, xs: &[T]) -> T {
        xs[self.rng.random_range(0..xs.len())].clone()
    }

    fn chance(&mut self, p: f64) -> bool {
        self.rng.random_bool(p)
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
}
