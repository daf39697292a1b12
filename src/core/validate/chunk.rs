//! Change and document chunks from peers: framing, checksum, bounded
//! inflation and bounded columns, before automerge parses them.
//!
//! A chunk is `85 6f 4a 83`, a 4-byte checksum (the first bytes of the
//! SHA-256 of type byte, LEB128 body length and body), a type byte (0
//! document, 1 change, 2 DEFLATE-compressed change, 3 bundle) and the
//! LEB128-prefixed body. One entry of a sync message's `changes` may hold
//! several chunks back to back.

use std::io::Read;

use automerge::{ActorId, Change, ChangeHash};
use sha2::{Digest, Sha256};

use super::columns::{self, ACTION_SPEC, CHANGE_ACTOR_SPEC, CHANGE_SEQ_SPEC, DEFLATE, VALUE};
use super::leb::{ReadError, Reader};
use super::PeerLimits;

const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];

/// Why a chunk was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    #[error("{0}")]
    Read(#[from] ReadError),
    #[error("not a chunk (bad magic bytes)")]
    BadMagic,
    #[error("unknown chunk type {0}")]
    UnknownType(u8),
    #[error("bundle chunks are not accepted from peers")]
    Bundle,
    #[error("checksum {declared} does not match the content ({computed})")]
    Checksum { declared: String, computed: String },
    #[error("DEFLATE data is invalid: {0}")]
    Inflate(String),
    #[error("inflates beyond the message's budget of {limit} bytes")]
    InflateTooLarge { limit: usize },
    #[error("column metadata: {0}")]
    Columns(String),
    #[error("column {spec:#x} holds {len} values; the limit is {max}")]
    ColumnTooLong { spec: u32, len: u64, max: u64 },
    #[error("{ops} new operations in {len} uncompressed bytes; the limit is {max}")]
    TooManyOps { ops: u64, len: usize, max: u64 },
    #[error("the message's changes delete {count} values; the limit is {max}")]
    TooManyDeletes { count: u64, max: u64 },
    #[error("document chunk: actor index {0} out of range")]
    BadActorIndex(i128),
    #[error("document chunk: change {index} of actor {actor} has seq {seq}, expected {expected}")]
    DocumentSeq {
        index: usize,
        actor: String,
        seq: i128,
        expected: u64,
    },
    #[error("automerge cannot read it: {0}")]
    Automerge(String),
}

/// A change chunk that passed the checks.
#[derive(Clone, Debug)]
pub struct ChangeInfo {
    pub hash: ChangeHash,
    pub actor: ActorId,
    pub seq: u64,
    pub deps: Vec<ChangeHash>,
    /// Carries an author footer (automerge asserts such a change has seq 1).
    pub author: bool,
    pub ops: u64,
    pub deletes: u64,
    /// The chunk exactly as received.
    pub bytes: Vec<u8>,
}

/// A chunk that passed the checks.
#[derive(Clone, Debug)]
pub enum ChunkInfo {
    Change(ChangeInfo),
    /// A whole document (automerge's v2 sync messages send one to a peer
    /// that lacks more than a third of the document).
    Document {
        ops: u64,
        deletes: u64,
        bytes: Vec<u8>,
    },
}

impl ChunkInfo {
    pub fn ops(&self) -> (u64, u64) {
        match self {
            ChunkInfo::Change(c) => (c.ops, c.deletes),
            ChunkInfo::Document { ops, deletes, .. } => (*ops, *deletes),
        }
    }

    /// Operations that are not deletions.
    pub fn new_ops(&self) -> u64 {
        let (ops, dels) = self.ops();
        ops - dels
    }

    pub fn bytes(&self) -> &[u8] {
        match self {
            ChunkInfo::Change(c) => &c.bytes,
            ChunkInfo::Document { bytes, .. } => bytes,
        }
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
}

impl Budget {
    pub fn for_message(len: usize, limits: &PeerLimits) -> Self {
        Budget {
            inflate: limits.max_expansion.saturating_mul(len),
            ops_per_byte: limits.ops_per_byte as u64,
            ops_allowance: limits.ops_allowance as u64,
            deletes: limits.max_deletes as u64,
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
pub fn check_chunks(bytes: &[u8], budget: &mut Budget) -> Result<Vec<ChunkInfo>, ChunkError> {
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
            0 => {
                verify_checksum(0, body, declared)?;
                check_document(body, whole, budget)?
            }
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

/// The columns' data, inflated where compressed (only document chunks may
/// compress columns).
fn column_data(
    r: &mut Reader<'_>,
    meta: &[(u32, usize)],
    may_deflate: bool,
    budget: &mut Budget,
) -> Result<Vec<(u32, Vec<u8>)>, ChunkError> {
    let mut out = Vec::with_capacity(meta.len());
    for &(spec, len) in meta {
        let raw = r.take(len, "column data")?;
        let data = if spec & DEFLATE != 0 {
            if !may_deflate {
                return Err(ChunkError::Columns("compressed column in a change".into()));
            }
            inflate(raw, budget)?
        } else {
            raw.to_vec()
        };
        out.push((spec & !DEFLATE, data));
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

fn check_change(body: &[u8], whole: &[u8], budget: &mut Budget) -> Result<ChunkInfo, ChunkError> {
    let mut r = Reader::new(body);
    let deps = r.count("deps", usize::MAX)?;
    r.take(deps.saturating_mul(32), "deps")?;
    r.prefixed("actor")?;
    r.uleb("seq")?;
    r.uleb("startOp")?;
    r.sleb("time")?;
    r.prefixed("message")?;
    let others = r.count("other actors", usize::MAX)?;
    for _ in 0..others {
        r.prefixed("other actor")?;
    }
    let meta = column_meta(&mut r)?;
    let cols = column_data(&mut r, &meta, false, budget)?;
    let (ops, deletes) = check_op_columns(&cols, body.len(), budget)?;
    // Bounded now: automerge's own parse iterates the operations once.
    let change = Change::try_from(whole).map_err(|e| ChunkError::Automerge(e.to_string()))?;
    Ok(ChunkInfo::Change(ChangeInfo {
        hash: change.hash(),
        actor: change.actor_id().clone(),
        seq: change.seq(),
        deps: change.deps().to_vec(),
        author: change.author().is_some(),
        ops,
        deletes,
        bytes: whole.to_vec(),
    }))
}

/// A document chunk: actors, heads, change and operation column metadata,
/// their data (columns may be compressed), head indexes. Within it, each
/// actor's changes must have seq 1, 2, 3, ... in order (automerge asserts it
/// while loading).
fn check_document(body: &[u8], whole: &[u8], budget: &mut Budget) -> Result<ChunkInfo, ChunkError> {
    let mut r = Reader::new(body);
    let actors = r.count("actors", usize::MAX)?;
    for _ in 0..actors {
        r.prefixed("actor")?;
    }
    let heads = r.count("heads", usize::MAX)?;
    r.take(heads.saturating_mul(32), "heads")?;
    let change_meta = column_meta(&mut r)?;
    let op_meta = column_meta(&mut r)?;
    let change_cols = column_data(&mut r, &change_meta, true, budget)?;
    let op_cols = column_data(&mut r, &op_meta, true, budget)?;
    let len = body.len()
        + change_cols
            .iter()
            .chain(&op_cols)
            .map(|(_, d)| d.len())
            .sum::<usize>();
    let (ops, deletes) = check_op_columns(&op_cols, len, budget)?;
    // Change metadata: one entry per change, each at least one operation or
    // one byte of column data.
    let max_changes = (ops + len as u64).saturating_add(1 << 16);
    bound_columns(&change_cols, max_changes)?;
    let col = |spec| change_cols.iter().find(|(s, _)| *s == spec).map(|(_, d)| d);
    if let (Some(actor_col), Some(seq_col)) = (col(CHANGE_ACTOR_SPEC), col(CHANGE_SEQ_SPEC)) {
        let actor_idx = columns::values(CHANGE_ACTOR_SPEC, actor_col)?;
        let seqs = columns::values(CHANGE_SEQ_SPEC, seq_col)?;
        let mut held = vec![0u64; actors];
        for (index, (a, s)) in actor_idx.iter().zip(&seqs).enumerate() {
            let a = a.unwrap_or(-1);
            let slot = usize::try_from(a)
                .ok()
                .and_then(|i| held.get_mut(i))
                .ok_or(ChunkError::BadActorIndex(a))?;
            let seq = s.unwrap_or(0);
            if seq != i128::from(*slot) + 1 {
                return Err(ChunkError::DocumentSeq {
                    index,
                    actor: a.to_string(),
                    seq,
                    expected: *slot + 1,
                });
            }
            *slot += 1;
        }
    }
    Ok(ChunkInfo::Document {
        ops,
        deletes,
        bytes: whole.to_vec(),
    })
}
