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
/// Bytes a change may carry after its columns. automerge 0.12 writes only
/// an author footer there (an author id); the format leaves the space for
/// later versions. Without a bound, a small compressed chunk could make
/// every check below copy and hash tens of MiB of nothing.
pub const MAX_EXTRA_BYTES: usize = 64 << 10;

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
    /// The change as automerge parsed it, uncompressed: applied as is
    /// (`Automerge::apply_changes`), so that nothing parses, inflates or
    /// hashes it a second time.
    pub change: Change,
}

impl ChangeInfo {
    /// Its operations: as kept, or read again from its bytes (which passed
    /// every check already, so reading them again cannot fail; if it did,
    /// the error says so rather than an empty list passing for the rows).
    pub fn rows(&self) -> Result<std::borrow::Cow<'_, [OpRow]>, ChunkError> {
        match &self.rows {
            Some(r) => Ok(r.into()),
            None => check_chunks(self.change.raw_bytes(), &mut Budget::unbounded())?
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
            1 => check_change(body, whole, declared, budget)?,
            2 => {
                // The checksum and the hash cover the uncompressed change:
                // automerge parses that form, and does not inflate it again.
                let inflated = inflate(body, budget)?;
                let mut whole = Vec::with_capacity(inflated.len() + 19);
                whole.extend_from_slice(&MAGIC);
                whole.extend_from_slice(&declared);
                whole.push(1);
                write_uleb(&mut whole, inflated.len() as u64);
                let at = whole.len();
                whole.extend_from_slice(&inflated);
                drop(inflated);
                check_change(&whole[at..], &whole, declared, budget)?
            }
            3 => return Err(ChunkError::Bundle),
            t => return Err(ChunkError::UnknownType(t)),
        });
    }
    Ok(out)
}

fn write_uleb(out: &mut Vec<u8>, mut n: u64) {
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

/// Inflates a compressed change body, no further than the message's
/// budget, and no further than its own header declares (its columns plus
/// [`MAX_EXTRA_BYTES`]): a bomb of trailing bytes is refused once the
/// declared length is passed, not at the budget.
fn inflate(data: &[u8], budget: &mut Budget) -> Result<Vec<u8>, ChunkError> {
    let limit = budget.inflate;
    let mut dec = flate2::read::DeflateDecoder::new(data);
    let mut out = Vec::new();
    let mut bound = limit;
    let mut head_read = false;
    let mut want: usize = 4096;
    loop {
        let target = want.min(bound.saturating_add(1));
        // (`target` never falls below what was read: `want` grows past it,
        // and a bound lowered below it has already refused the chunk.)
        (&mut dec)
            .take(target.saturating_sub(out.len()) as u64)
            .read_to_end(&mut out)
            .map_err(|e| ChunkError::Inflate(e.to_string()))?;
        if out.len() > bound {
            return Err(if bound < limit {
                ChunkError::Rule(format!(
                    "inflates past its columns and {MAX_EXTRA_BYTES} bytes after them"
                ))
            } else {
                ChunkError::InflateTooLarge { limit }
            });
        }
        if out.len() < target {
            break; // the end of the stream
        }
        if !head_read {
            match declared_len(&out) {
                Ok(n) => {
                    bound = bound.min(n.saturating_add(MAX_EXTRA_BYTES));
                    head_read = true;
                    // What was read ahead to find the header may pass it.
                    if out.len() > bound {
                        return Err(ChunkError::Rule(format!(
                            "inflates past its columns and {MAX_EXTRA_BYTES} bytes after them"
                        )));
                    }
                }
                Err(ChunkError::Read(ReadError::Truncated(_))) => {}
                // Malformed: `check_change` says why.
                Err(_) => head_read = true,
            }
        }
        want = if head_read {
            bound.saturating_add(1)
        } else {
            want.saturating_mul(2)
        };
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

/// What a change body holds before its columns' data.
struct Head {
    time: i64,
    others: usize,
    /// Each column's spec and length.
    meta: Vec<(u32, usize)>,
}

fn read_head(r: &mut Reader<'_>) -> Result<Head, ChunkError> {
    let deps = r.count("deps", usize::MAX)?;
    r.take(deps.saturating_mul(32), "deps")?;
    r.prefixed("actor")?;
    r.uleb("seq")?;
    r.uleb("startOp")?;
    let time = r.sleb("time")?;
    r.prefixed("message")?;
    let others = r.count("other actors", usize::MAX)?;
    for _ in 0..others {
        r.prefixed("other actor")?;
    }
    let meta = column_meta(r)?;
    Ok(Head { time, others, meta })
}

/// How long a change body whose first bytes are `prefix` declares itself
/// (without what may follow its columns).
fn declared_len(prefix: &[u8]) -> Result<usize, ChunkError> {
    let mut r = Reader::new(prefix);
    let head = read_head(&mut r)?;
    let cols = head.meta.iter().fold(0usize, |n, c| n.saturating_add(c.1));
    Ok((prefix.len() - r.remaining()).saturating_add(cols))
}

/// `whole` is the uncompressed chunk whose body is `body`.
fn check_change(
    body: &[u8],
    whole: &[u8],
    declared: [u8; 4],
    budget: &mut Budget,
) -> Result<ChangeInfo, ChunkError> {
    let mut r = Reader::new(body);
    let Head { time, others, meta } = read_head(&mut r)?;
    // automerge stores times delta-encoded in i64; two far apart overflow
    // it (a panic). Real ones are milliseconds or seconds since 1970.
    if time.unsigned_abs() > MAX_TIME {
        return Err(ChunkError::Rule(format!("time {time} out of range")));
    }
    let cols = column_data(&mut r, &meta)?;
    if r.remaining() > MAX_EXTRA_BYTES {
        return Err(ChunkError::Rule(format!(
            "{} bytes after the columns (at most {MAX_EXTRA_BYTES})",
            r.remaining()
        )));
    }
    let (ops, deletes) = check_op_columns(&cols, body.len(), budget)?;
    rules::check(&cols, 1 + others)?;
    // Bounded now: automerge's own parse iterates the operations once.
    let change = Change::try_from(whole).map_err(|e| ChunkError::Automerge(e.to_string()))?;
    // automerge's parse does not compare the checksum; it is the first
    // bytes of the hash it computed (one SHA-256 pass, not two).
    let hash = change.hash();
    if hash.0[..4] != declared {
        return Err(ChunkError::Checksum {
            declared: hex::encode(declared),
            computed: hex::encode(&hash.0[..4]),
        });
    }
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
        if canonical != hash {
            return Err(ChunkError::NotCanonical {
                hash: hash.to_string(),
                canonical: canonical.to_string(),
            });
        }
    }
    Ok(ChangeInfo {
        hash,
        actor: change.actor_id().clone(),
        others: change.other_actor_ids().to_vec(),
        seq: change.seq(),
        start_op: change.start_op().get(),
        deps: change.deps().to_vec(),
        author: change.author().is_some(),
        rows: Some(rows),
        ops,
        deletes,
        change,
    })
}
