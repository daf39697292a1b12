//! automerge's column encodings, read without materialising runs: a column
//! of a few bytes can declare billions of values, so every column's logical
//! length is computed from its run headers and checked before automerge
//! iterates it.
//!
//! Encodings (automerge's `columnar::encoding`): run-length (group, actor,
//! integer, delta, string and value-metadata columns) is a sequence of runs,
//! each a signed LEB128 count `n` then: `n > 0`, one value repeated `n`
//! times; `n < 0`, `-n` literal values; `n == 0`, an unsigned count of nulls.
//! Boolean columns are alternating run lengths (false first). Value columns
//! are raw bytes.

use super::leb::{ReadError, Reader};

/// The column type in the low three bits of a column spec (0 is a group
/// count, 6 value metadata: both plain run-length integers here).
pub const ACTOR: u32 = 1;
pub const INTEGER: u32 = 2;
pub const DELTA: u32 = 3;
pub const BOOLEAN: u32 = 4;
pub const STRING: u32 = 5;
pub const VALUE: u32 = 7;
/// The spec bit of a DEFLATE-compressed column.
pub const DEFLATE: u32 = 8;

/// The action column (id 4, integer) of change and document op columns.
pub const ACTION_SPEC: u32 = (4 << 4) | INTEGER;
/// The action number of a deletion.
pub const ACTION_DEL: i128 = 3;

/// One segment of a run-length column: `count` copies of `value` (`None`:
/// nulls).
pub type Segment = (u64, Option<i128>);

/// Calls `f` for every segment of a run-length column of type `ty`. The work
/// is linear in `data.len()`, whatever the counts say.
pub fn rle_segments<E: From<ReadError>>(
    ty: u32,
    data: &[u8],
    mut f: impl FnMut(Segment) -> Result<(), E>,
) -> Result<(), E> {
    const W: &str = "column run";
    let mut r = Reader::new(data);
    let value = |r: &mut Reader<'_>| -> Result<i128, ReadError> {
        Ok(match ty {
            DELTA => i128::from(r.sleb(W)?),
            STRING => {
                r.prefixed(W)?;
                0
            }
            _ => i128::from(r.uleb(W)?),
        })
    };
    while !r.is_empty() {
        let n = r.sleb(W)?;
        if n > 0 {
            let v = value(&mut r)?;
            f((n as u64, Some(v)))?;
        } else if n < 0 {
            for _ in 0..n.unsigned_abs() {
                // Each literal takes at least one byte: bounded by the data.
                let v = value(&mut r)?;
                f((1, Some(v)))?;
            }
        } else {
            f((r.uleb(W)?, None))?;
        }
    }
    Ok(())
}

/// The number of values a column of spec `spec` (uncompressed) holds.
pub fn logical_len(spec: u32, data: &[u8]) -> Result<u64, ReadError> {
    match spec & 7 {
        VALUE => Ok(data.len() as u64),
        BOOLEAN => {
            let mut r = Reader::new(data);
            let mut total = 0u64;
            while !r.is_empty() {
                total = total.saturating_add(r.uleb("boolean run")?);
            }
            Ok(total)
        }
        ty => {
            let mut total = 0u64;
            rle_segments(ty, data, |(n, _)| {
                total = total.saturating_add(n);
                Ok(())
            })?;
            Ok(total)
        }
    }
}

/// Operations and deletions in an action column.
pub fn count_actions(data: &[u8]) -> Result<(u64, u64), ReadError> {
    let (mut ops, mut dels) = (0u64, 0u64);
    rle_segments(INTEGER, data, |(n, v)| {
        ops = ops.saturating_add(n);
        if v == Some(ACTION_DEL) {
            dels = dels.saturating_add(n);
        }
        Ok(())
    })?;
    Ok((ops, dels))
}

/// The values of a run-length column, nulls as `None`, deltas accumulated.
/// The caller bounds the column's logical length first.
pub fn expand(spec: u32, data: &[u8]) -> Result<Vec<Option<i128>>, ReadError> {
    let ty = spec & 7;
    let mut out = Vec::new();
    let mut acc: i128 = 0;
    rle_segments(ty, data, |(n, v)| {
        match v {
            Some(d) if ty == DELTA => {
                for _ in 0..n {
                    acc = acc.saturating_add(d);
                    out.push(Some(acc));
                }
            }
            other => out.extend(std::iter::repeat_n(other, n as usize)),
        }
        Ok::<(), ReadError>(())
    })?;
    Ok(out)
}
