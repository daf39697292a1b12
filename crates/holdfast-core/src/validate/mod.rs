//! Validation of what peers send, before automerge sees it.
//!
//! automerge (pinned at 0.12.0 in Cargo.lock; the checks below were written
//! against its source) trusts the bytes it decodes: a crafted sync message
//! panics it (a Bloom filter with zero bits per entry divides by zero, a
//! change whose `seq` does not follow its actor's last one fails an
//! assertion) or makes it allocate without bound (a Bloom filter declaring
//! 2^32 probes allocates 16 GiB; a compressed change or a run-length encoded
//! column inflates without limit). In the browser a panic aborts the whole
//! WebAssembly module, so these checks are the defence there; the server also
//! isolates what slips through (see `repo::guard`). `docs/automerge-bugs.md`
//! holds a minimal reproduction of each.
//!
//! What is checked here, per message, without the document:
//! - the sync message's structure ([`check_sync_message`]): every count and
//!   length against the bytes actually present and against [`PeerLimits`];
//!   Bloom filters with 1..=64 bits per entry, 1..=32 probes and a bit array
//!   of exactly the declared size;
//! - every change chunk in it ([`chunk`]): magic bytes, checksum, chunk
//!   type, the change header, inflated size, the logical length of every
//!   column, which bounds the operations automerge will materialise, and
//!   the columns' consistency (`rules`: actor indexes, required values,
//!   group and value lengths), every operation's shape ([`ops`]), and that
//!   the change is encoded exactly as automerge would encode it (automerge
//!   stores operations and rebuilds changes: another encoding would be
//!   stored under another hash). Whole documents (v2 messages) are refused:
//!   holdfast never advertises v2, so a peer has no reason to send one.
//! - hash lists come out sorted and distinct (automerge answers a `need`
//!   naming a change twice with that change twice, and then panics).
//!
//! What needs the document (`seq` contiguity per actor, dependencies,
//! `startOp` above the dependencies' counters, what each operation refers
//! to) is checked by the repo with [`chunk::ChangeInfo`]s (see
//! `repo::admit`, `repo::ops_check`).
//!
//! Bound on memory: a message of `n` bytes makes holdfast hold at most
//! `max_expansion * n` inflated bytes, and at most `ops_per_byte` new
//! operations per inflated byte plus `ops_allowance`; deletions at most
//! `max_deletes` and no more than the document holds. Whatever it declares.

pub mod chunk;
mod columns;
mod error;
mod leb;
pub mod ops;
mod rules;

use automerge::sync;

pub use chunk::ChangeInfo;
pub use error::ChunkError;
pub use leb::ReadError;
use leb::Reader;

/// The limits [`check_sync_message`] enforces. The defaults admit every
/// message automerge 0.12 and automerge-repo 2.5.6 produce for documents of
/// any realistic size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerLimits {
    /// Hashes in each of `heads`, `need` and a `have`'s `lastSync`.
    pub max_hashes: usize,
    /// `have` entries (automerge sends at most one).
    pub max_haves: usize,
    /// Bloom filter bits per entry (automerge uses 10).
    pub max_bloom_bits_per_entry: u32,
    /// Bloom filter probes (automerge uses 7).
    pub max_bloom_probes: u32,
    /// Change chunks in one message.
    pub max_changes: usize,
    /// Inflated bytes per byte of message (compressed changes). automerge
    /// compresses changes over 256 bytes; real edits compress 2-10:1, a
    /// paste of one repeated character far better (DEFLATE's ceiling is
    /// about 1032:1), and such a change is refused.
    pub max_expansion: usize,
    /// New (non-delete) operations per uncompressed byte of a chunk, plus
    pub ops_per_byte: usize,
    /// this many per message (run-length columns describe many operations
    /// in few bytes: a list of a million nulls fits in 40).
    pub ops_allowance: usize,
    /// Deletions in one message (a deletion adds no value; the repo also
    /// bounds them by the operations the document holds).
    pub max_deletes: usize,
    /// Changes held back per document because their dependencies have not
    /// arrived (automerge's Bloom filter sync sends such changes now and then).
    pub max_orphans: usize,
}

impl Default for PeerLimits {
    fn default() -> Self {
        PeerLimits {
            max_hashes: 1 << 16,
            max_haves: 8,
            max_bloom_bits_per_entry: 64,
            max_bloom_probes: 32,
            max_changes: 1 << 20,
            max_expansion: 64,
            ops_per_byte: 64,
            ops_allowance: 1 << 16,
            max_deletes: 1 << 20,
            max_orphans: 4096,
        }
    }
}

/// Why a peer's sync message was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    #[error("sync message: {0}")]
    Read(#[from] ReadError),
    #[error("not a sync message (first byte {0:#04x}, expected 0x42 or 0x43)")]
    NotSyncMessage(u8),
    #[error("{0} bytes after the end of the sync message")]
    TrailingBytes(usize),
    #[error("Bloom filter {index}: {reason}")]
    Bloom { index: usize, reason: String },
    #[error("change {index}: {error}")]
    Chunk { index: usize, error: ChunkError },
    #[error("change {hash} by actor {actor} has seq {seq}; the document holds {held} changes of that actor")]
    SeqGap {
        hash: String,
        actor: String,
        seq: u64,
        held: u64,
    },
    #[error(
        "change {hash} carries an author but has seq {seq} (only an actor's first change may)"
    )]
    AuthorNotFirst { hash: String, seq: u64 },
    #[error("change {hash}: {reason}")]
    BadChange { hash: String, reason: String },
    #[error("automerge refused the message: {0}")]
    Automerge(String),
}

/// A sync message that passed [`check_sync_message`].
pub struct CheckedSync {
    /// Decoded by automerge (safe: the structure was checked first).
    pub msg: sync::Message,
    /// What each entry of `msg.changes` holds, in order.
    pub chunks: Vec<Vec<ChangeInfo>>,
}

/// Checks the structure of an encoded `automerge::sync::Message` and every
/// change chunk it carries, then decodes it. Never panics; the work done is
/// linear in `data.len()` (plus the bounded inflation of compressed chunks).
pub fn check_sync_message(
    data: &[u8],
    limits: &PeerLimits,
) -> Result<CheckedSync, ValidationError> {
    let mut r = Reader::new(data);
    let version = r.byte("message type")?;
    if version != 0x42 && version != 0x43 {
        return Err(ValidationError::NotSyncMessage(version));
    }
    hashes(&mut r, "heads", limits)?;
    hashes(&mut r, "need", limits)?;
    let haves = r.count("have", limits.max_haves)?;
    for index in 0..haves {
        hashes(&mut r, "have.lastSync", limits)?;
        let bloom = r.prefixed("have.bloom")?;
        check_bloom(bloom, limits).map_err(|reason| ValidationError::Bloom { index, reason })?;
    }
    let n = r.count("changes", limits.max_changes)?;
    let mut chunks = Vec::with_capacity(n);
    let mut budget = chunk::Budget::for_message(data.len(), limits);
    for index in 0..n {
        let bytes = r.prefixed("changes")?;
        let infos = chunk::check_chunks(bytes, &mut budget)
            .map_err(|error| ValidationError::Chunk { index, error })?;
        chunks.push(infos);
    }
    if !r.is_empty() {
        // The flags section (automerge 0.10+): a length-prefixed byte list.
        r.prefixed("flags")?;
    }
    if !r.is_empty() {
        return Err(ValidationError::TrailingBytes(r.remaining()));
    }
    let mut msg =
        sync::Message::decode(data).map_err(|e| ValidationError::Automerge(e.to_string()))?;
    // automerge answers a `need` naming a change twice with that change
    // twice in one batch, and rebuilding such a batch panics
    // (`collector.rs:788`). Its own lists are sorted and distinct.
    for list in std::iter::once(&mut msg.heads)
        .chain(std::iter::once(&mut msg.need))
        .chain(msg.have.iter_mut().map(|h| &mut h.last_sync))
    {
        list.sort_unstable();
        list.dedup();
    }
    Ok(CheckedSync { msg, chunks })
}

fn hashes(
    r: &mut Reader<'_>,
    what: &'static str,
    limits: &PeerLimits,
) -> Result<(), ValidationError> {
    let n = r.count(what, limits.max_hashes)?;
    r.take(n.saturating_mul(32), what)?;
    Ok(())
}

/// A Bloom filter as automerge's `BloomFilter::parse` reads it: empty, or
/// entries, bits per entry and probes (LEB128 u32), then exactly
/// `ceil(entries * bits / 8)` bytes of bits.
pub(crate) fn check_bloom(bytes: &[u8], limits: &PeerLimits) -> Result<(), String> {
    if bytes.is_empty() {
        return Ok(());
    }
    let mut r = Reader::new(bytes);
    let u32_field = |r: &mut Reader<'_>, what: &'static str| -> Result<u32, String> {
        let v = r.uleb(what).map_err(|e| e.to_string())?;
        u32::try_from(v).map_err(|_| format!("{what} {v} does not fit in 32 bits"))
    };
    let entries = u32_field(&mut r, "entries")?;
    let bits = u32_field(&mut r, "bits per entry")?;
    let probes = u32_field(&mut r, "probes")?;
    if entries == 0 {
        return Err("declares zero entries".into());
    }
    if bits == 0 || bits > limits.max_bloom_bits_per_entry {
        return Err(format!(
            "{bits} bits per entry (allowed 1..={})",
            limits.max_bloom_bits_per_entry
        ));
    }
    if probes == 0 || probes > limits.max_bloom_probes {
        return Err(format!(
            "{probes} probes (allowed 1..={})",
            limits.max_bloom_probes
        ));
    }
    let len = (u64::from(entries) * u64::from(bits)).div_ceil(8);
    // automerge computes probe positions modulo 8 * len in u32 and adds two
    // of them: 8 * len must stay below 2^31.
    if len >= 1 << 28 {
        return Err(format!("{len} bytes of bits is too large"));
    }
    if r.remaining() as u64 != len {
        return Err(format!(
            "{entries} entries at {bits} bits need {len} bytes of bits, {} present",
            r.remaining()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
