//! Change chunks from peers: framing, checksum, bounded inflation, bounded
//! and consistent columns, before automerge parses them.
//!
//! A chunk is `85 6f 4a 83`, a 4-byte checksum (the first bytes of the
//! SHA-256 of type byte, LEB128 body length and body), a type byte (0
//! document, 1 change, 2 DEFLATE-compressed change, 3 bundle) and the
//! LEB128-prefixed body. One entry of a sync message's `changes` may hold
//! several chunks back to back.

use std::io::Read;

use automerge::{ActorId, Change, ChangeHash};
use sha2::{Digest, Sha256};

use super::columns::{self, ACTION_SPEC, DEFLATE, VALUE};
use super::leb::{ReadError, Reader};
use super::ops::{self, OpRow};
use super::rules;
use super::PeerLimits;

// `validate::chunk::ChunkError` stays a valid path (the type is in `error.rs`).
pub use super::error::ChunkError;

const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
/// 2^53: any JavaScript timestamp.
const MAX_TIME: u64 = 1 << 53;

/// A change chunk that passed the checks.
#[derive(Clone, Debug)]
pub struct ChangeInfo {
    pub hash: ChangeHash,
    pub actor: ActorId,
    /// The other actors its operations refer to: automerge expects each to
    /// be known to the document already.
    pub others: Vec<ActorId>,
    pub seq: u64,
    pub start_op: u64,
    pub deps: Vec<ChangeHash>,
    /// Carries an author footer (automerge asserts such a change has seq 1).
    pub author: bool,
    /// Its operations, in order (row `r` has counter `start_op + r`); `None`
    /// once dropped to save memory (see [`ChangeInfo::rows`]).
    pub rows: Option<Vec<OpRow>>,
    pub ops: u64,
    pub deletes: u64,
    /// The chunk exactly as received.
    pub bytes: Vec<u8>,
}

impl ChangeInfo {
    /// Its operations: as kept, or read again from its bytes (which passed
    /// every check already, so reading them again cannot fail; if it did,
    /// the error says so rather than an empty list passing for the rows).
    pub fn rows(&self) -> Result<std::borrow::Cow<'_, [OpRow]>, ChunkError> {
        match &self.rows {
            Some(r) => Ok(r.into()),
            None => check_chunks(&self.bytes, &mut Budget::unbounded())?
                .pop()
                .and_then(|c| c.rows)
                .map(Into::into)
                .ok_or(ChunkError::Rule("no change in a held-back chunk".into())),
        }
    }

    /// Operations that are not deletions.
    pub fn new_ops(&self) -> u64 {
        self.ops - self.deletes
    }
}

/// What a whole message may still cost while its chunks are checked.
pub struct Budget {
    /// Bytes DEFLATE may still produce.
    pub inflate: usize,
    /// New (non-delete) operations allowed per uncompressed chunk byte,
    pub ops_per_byte: u64,
    /// plus this many more for the rest of the message.
    pub ops_allowance: u64,
    /// Deletions the message may still declare.
    pub deletes: u64,
    /// Check that each change is encoded as automerge encodes it (not
    /// needed for bytes automerge produced, or checked before).
    pub canonical: bool,
}

impl Budget {
    /// No limit, no encoding check: for changes automerge itself produced
    /// (the document's own) or that passed the checks before.
    pub fn unbounded() -> Self {
        Budget {
            inflate: usize::MAX,
            ops_per_byte: u64::MAX,
            ops_allowance: u64::MAX,
            deletes: u64::MAX,
            canonical: false,
        }
    }

    pub fn for_message(len: usize, limits: &PeerLimits) -> Self {
        Budget {
            inflate: limits.max_expansion.saturating_mul(len),
            ops_per_byte: limits.ops_per_byte as u64,
            ops_allowance: limits.ops_allowance as u64,
            deletes: limits.max_deletes as u64,
            canonical: true,
        }
    }

    /// Charges a chunk of `len` uncompressed bytes declaring `ops`
    /// operations, `deletes` of them deletions.
    fn charge(&mut self, len: usize, ops: u64, deletes: u64) -> Result<(), ChunkError> {
        if deletes > self.deletes {
            return Err(ChunkError::TooManyDeletes {
                count: deletes,
                max: self.deletes,
            });
        }
        let own = self.ops_per_byte.saturating_mul(len as u64);
        let new = ops - deletes;
        let max = own.saturating_add(self.ops_allowance);
        if new > max {
            return Err(ChunkError::TooManyOps { ops: new, len, max });
        }
        self.deletes -= deletes;
        self.ops_allowance -= new.saturating_sub(own);
        Ok(())
    }
}

/// Checks every chunk in `bytes` (one entry of a sync message's changes).
pub fn check_chunks(bytes: &[u8], budget: &mut Budget) -> Result<Vec<ChangeInfo>, ChunkError> {
    let mut r = Reader::new(bytes);
    let mut out = Vec::new();
    while !r.is_empty() {
        let start = bytes.len() - r.remaining();
        if r.take(4, "chunk magic")? != MAGIC {
            return Err(ChunkError::BadMagic);
        }
        let declared: [u8; 4] = r.take(4, "chunk checksum")?.try_into().expect("4 bytes");
        let ty = r.byte("chunk type")?;
        let body = r.prefixed("chunk body")?;
        let whole = &bytes[start..bytes.len() - r.remaining()];
        out.push(match ty {
            0 => return Err(ChunkError::Document),
            1 => {
                verify_checksum(1, body, declared)?;
                check_change(body, whole, budget)?
            }
            2 => {
                let inflated = inflate(body, budget)?;
                // The checksum covers the uncompressed change.
                verify_checksum(1, &inflated, declared)?;
                check_change(&inflated, whole, budget)?
            }
            3 => return Err(ChunkError::Bundle),
            t => return Err(ChunkError::UnknownType(t)),
        });
    }
    Ok(out)
}

fn verify_checksum(ty: u8, body: &[u8], declared: [u8; 4]) -> Result<(), ChunkError> {
    let mut len = Vec::with_capacity(10);
    let mut n = body.len() as u64;
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            len.push(b);
            break;
        }
        len.push(b | 0x80);
    }
    let mut h = Sha256::new();
    h.update([ty]);
    h.update(&len);
    h.update(body);
    let computed: [u8; 32] = h.finalize().into();
    if computed[..4] != declared {
        return Err(ChunkError::Checksum {
            declared: hex::encode(declared),
            computed: hex::encode(&computed[..4]),
        });
    }
    Ok(())
}

fn inflate(data: &[u8], budget: &mut Budget) -> Result<Vec<u8>, ChunkError> {
    let limit = budget.inflate;
    let mut out = Vec::new();
    flate2::read::DeflateDecoder::new(data)
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| ChunkError::Inflate(e.to_string()))?;
    if out.len() > limit {
        return Err(ChunkError::InflateTooLarge { limit });
    }
    budget.inflate -= out.len();
    Ok(out)
}

/// Column specs and lengths, as automerge's `RawColumns::parse` reads them.
fn column_meta(r: &mut Reader<'_>) -> Result<Vec<(u32, usize)>, ChunkError> {
    let n = r.count("column count", 1 << 10)?;
    let mut cols = Vec::with_capacity(n);
    for _ in 0..n {
        let spec = r.uleb("column spec")?;
        let spec = u32::try_from(spec).map_err(|_| ChunkError::Columns(format!("spec {spec}")))?;
        let len = r.uleb("column length")?;
        let len = usize::try_from(len).map_err(|_| ReadError::Truncated("column data"))?;
        cols.push((spec, len));
    }
    Ok(cols)
}

/// The columns' data (a change never compresses single columns).
fn column_data(
    r: &mut Reader<'_>,
    meta: &[(u32, usize)],
) -> Result<Vec<(u32, Vec<u8>)>, ChunkError> {
    let mut out = Vec::with_capacity(meta.len());
    for &(spec, len) in meta {
        let raw = r.take(len, "column data")?;
        if spec & DEFLATE != 0 {
            return Err(ChunkError::Columns("compressed column in a change".into()));
        }
        out.push((spec, raw.to_vec()));
    }
    Ok(out)
}

/// Counts the operations (from the action column) and charges them to the
/// budget, then bounds every other column by them: automerge reads one value
/// per operation from each (grouped columns: a few per operation).
fn check_op_columns(
    cols: &[(u32, Vec<u8>)],
    len: usize,
    budget: &mut Budget,
) -> Result<(u64, u64), ChunkError> {
    let (ops, deletes) = match cols.iter().find(|(s, _)| *s == ACTION_SPEC) {
        Some((_, data)) => columns::count_actions(data)?,
        None => (0, 0),
    };
    budget.charge(len, ops, deletes)?;
    bound_columns(cols, ops.saturating_mul(4).saturating_add(1 << 16))?;
    Ok((ops, deletes))
}

fn bound_columns(cols: &[(u32, Vec<u8>)], max: u64) -> Result<(), ChunkError> {
    for (spec, data) in cols {
        if spec & 7 == VALUE {
            continue;
        }
        let len = columns::logical_len(*spec, data)?;
        if len > max {
            return Err(ChunkError::ColumnTooLong {
                spec: *spec,
                len,
                max,
            });
        }
    }
    Ok(())
}

fn check_change(body: &[u8], whole: &[u8], budget: &mut Budget) -> Result<ChangeInfo, ChunkError> {
    let mut r = Reader::new(body);
    let deps = r.count("deps", usize::MAX)?;
    r.take(deps.saturating_mul(32), "deps")?;
    r.prefixed("actor")?;
    r.uleb("seq")?;
    r.uleb("startOp")?;
    // automerge stores times delta-encoded in i64; two far apart overflow
    // it (a panic). Real ones are milliseconds or seconds since 1970.
    let time = r.sleb("time")?;
    if time.unsigned_abs() > MAX_TIME {
        return Err(ChunkError::Rule(format!("time {time} out of range")));
    }
    r.prefixed("message")?;
    let others = r.count("other actors", usize::MAX)?;
    for _ in 0..others {
        r.prefixed("other actor")?;
    }
    let meta = column_meta(&mut r)?;
    let cols = column_data(&mut r, &meta)?;
    let (ops, deletes) = check_op_columns(&cols, body.len(), budget)?;
    rules::check(&cols, 1 + others)?;
    // Bounded now: automerge's own parse iterates the operations once.
    let change = Change::try_from(whole).map_err(|e| ChunkError::Automerge(e.to_string()))?;
    if change.start_op().get().saturating_add(ops) > u64::from(u32::MAX) {
        return Err(ChunkError::Rule("operation counters beyond 32 bits".into()));
    }
    let rows = ops::rows(&cols, ops, change.start_op().get())?;
    // automerge keeps operations, not change bytes: it rebuilds a change
    // from its canonical encoding. A change encoded otherwise (same
    // operations, other bytes) would be acknowledged under one hash and
    // stored, and served, under another. (Safe to decode now: the actor
    // indexes were checked.)
    if budget.canonical {
        let canonical = Change::from(change.decode()).hash();
        if canonical != change.hash() {
            return Err(ChunkError::NotCanonical {
                hash: change.hash().to_string(),
                canonical: canonical.to_string(),
            });
        }
    }
    Ok(ChangeInfo {
        hash: change.hash(),
        actor: change.actor_id().clone(),
        others: change.other_actor_ids().to_vec(),
        seq: change.seq(),
        start_op: change.start_op().get(),
        deps: change.deps().to_vec(),
        author: change.author().is_some(),
        rows: Some(rows),
        ops,
        deletes,
        bytes: whole.to_vec(),
    })
}
